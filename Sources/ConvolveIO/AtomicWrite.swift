import Foundation

/// A file that could not be written or read; the message names it.
public struct IOError: Error, CustomStringConvertible, Equatable {
    public let path: String, reason: String
    /// - Parameters:
    ///   - path: the file.
    ///   - reason: what went wrong, for a person.
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    public var description: String { "\(path): \(reason)" }
}

/// Writes `data` to a temporary file beside `path`, then renames it into place, so that a crash or
/// error never leaves a partial file under the final name.
///
/// - Parameters:
///   - data: the file's contents.
///   - path: the file.
public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent()
    let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    do {
        try data.write(to: tmp)
        if rename(tmp.path, url.path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw IOError(path: path, reason: "cannot write: \(reason)")
        }
    } catch let e as IOError { throw e }
    catch {
        try? FileManager.default.removeItem(at: tmp)
        throw IOError(path: path, reason: "cannot write: \(error.localizedDescription)")
    }
}
