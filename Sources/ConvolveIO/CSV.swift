import Foundation

/// CSV text (RFC 4180): a header row, then one row per record; fields holding a comma, a quote or a
/// line break are quoted, quotes doubled.
public enum CSV {
    /// - Parameters:
    ///   - header: the column names.
    ///   - rows: the records, each as many fields as the header (missing values as empty strings).
    public static func text(header: [String], rows: [[String]]) -> String {
        func field(_ f: String) -> String {
            f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
        }
        return ([header] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }
}
