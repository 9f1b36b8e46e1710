import Foundation
import ArgumentParser
import ConvolveData
import ConvolveTraining

/// Edit distance (insertions, deletions, substitutions), case-insensitive.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.lowercased()), b = Array(b.lowercased())
    var row = Array(0...b.count)
    for i in 1...Swift.max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let current = row[j]
            row[j] = Swift.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return a.isEmpty ? b.count : row[b.count]
}

/// The known name closest to `name`, if it is close enough to be a typo (or `name` is a prefix of it).
func closestName(_ name: String, in known: [String]) -> String? {
    let scored = known.map { ($0, editDistance(name, $0)) }.sorted { $0.1 < $1.1 }
    if let prefix = known.first(where: { $0.lowercased().hasPrefix(name.lowercased()) && !name.isEmpty }) { return prefix }
    guard let best = scored.first, best.1 <= Swift.max(2, name.count / 3) else { return nil }
    return best.0
}

/// "unknown model 'lenet' — did you mean 'lenet5'? Known: …"
func unknownName(_ what: String, _ name: String, known: [String]) -> ValidationError {
    let hint = closestName(name, in: known).map { " — did you mean '\($0)'?" } ?? "."
    return ValidationError("unknown \(what) '\(name)'\(hint) Known: \(known.joined(separator: ", ")).")
}

func parseModel(_ name: String) throws -> ZooModel {
    if let m = ZooModel(rawValue: name.lowercased()) { return m }
    throw unknownName("model", name, known: ZooModel.allCases.map(\.rawValue))
}

/// A built-in dataset's name (lower-cased), or a path to an image folder: anything that exists, or
/// looks like a path (has a `/` or starts with `.`). Other names get a suggestion.
func parseDataset(_ name: String) throws -> String {
    if DatasetCatalog.named(name) != nil { return name.lowercased() }
    if name.contains("/") || name.hasPrefix(".") || FileManager.default.fileExists(atPath: name) { return name }
    let hint = closestName(name, in: DatasetCatalog.names).map { " — did you mean '\($0)'?" } ?? "."
    throw ValidationError("unknown dataset '\(name)'\(hint) Known: \(DatasetCatalog.names.joined(separator: ", ")), "
        + "or the path of a directory with one folder of images per class.")
}
