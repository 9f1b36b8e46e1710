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

/// What kind of thing `mode` (a `stat` mode) is, for messages ("a FIFO", "a directory").
func fileKind(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFDIR: return "a directory"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFIFO: return "a FIFO (named pipe)"
    case S_IFSOCK: return "a socket"
    case S_IFLNK: return "a symbolic link"
    default: return "not a regular file"
    }
}

/// Writes `data` to a temporary file beside `path` (created exclusively, never through a link),
/// flushes it to the disk, then renames it into place, so that a crash, a full disk or any other error
/// never leaves a partial file under the final name: the previous file stays whole. A `path` that is
/// a directory, a device, a FIFO or a socket is refused rather than replaced (`--output /dev/null` must
/// not replace the system's node); a symbolic link is replaced by the file, never written through.
///
/// - Parameters:
///   - data: the file's contents.
///   - path: the file.
public func writeAtomically(_ data: Data, to path: String) throws {
    var st = stat()
    if lstat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG, (st.st_mode & S_IFMT) != S_IFLNK {
        throw IOError(path: path, reason: "cannot write: it is \(fileKind(st.st_mode)), not a regular file")
    }
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent()
    let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    func failure(_ what: String) -> IOError {
        let reason = String(cString: strerror(errno))
        unlink(tmp)
        return IOError(path: path, reason: "cannot write: \(what)\(reason)")
    }
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw failure("") }
    var written = 0
    let ok = data.withUnsafeBytes { raw -> Bool in
        while written < raw.count {
            let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
            if n < 0 { if errno == EINTR { continue }; return false }
            written += n
        }
        return true
    }
    // A full disk may only show at the flush (delayed allocation) or the close.
    guard ok, fsync(fd) == 0 else { let e = failure(""); close(fd); throw e }
    guard close(fd) == 0 else { throw failure("") }
    guard rename(tmp, path) == 0 else { throw failure("") }
}

/// Reads a whole regular file of at most `maxBytes` bytes. A FIFO, a device, a directory or a socket
/// is refused without blocking on it (a FIFO given as an input would otherwise wait forever), and so is
/// a file larger than `maxBytes` (before anything of its size is allocated).
///
/// - Parameters:
///   - path: the file.
///   - maxBytes: the largest size accepted.
///   - what: what the file should be, for the size message ("a checkpoint").
public func readRegularFile(_ path: String, maxBytes: Int = Int.max, what: String = "the file") throws -> Data {
    let fd = try openRegularFile(path, maxBytes: maxBytes, what: what)
    defer { close(fd) }
    var st = stat()
    fstat(fd, &st)
    let size = Int(st.st_size)
    var data = Data(count: size)
    var got = 0
    let ok = data.withUnsafeMutableBytes { raw -> Bool in
        while got < size {
            let n = read(fd, raw.baseAddress! + got, size - got)
            if n < 0 { if errno == EINTR { continue }; return false }
            if n == 0 { break }
            got += n
        }
        return true
    }
    guard ok else { throw IOError(path: path, reason: "cannot read: \(String(cString: strerror(errno)))") }
    if got < size { data.count = got }   // the file shrank while being read
    return data
}

/// Opens `path` for reading after checking that it is a regular file of at most `maxBytes` bytes
/// (see ``readRegularFile(_:maxBytes:what:)``); the caller closes the descriptor.
///
/// - Parameters:
///   - path: the file.
///   - maxBytes: the largest size accepted.
///   - what: what the file should be, for the size message.
public func openRegularFile(_ path: String, maxBytes: Int = Int.max, what: String = "the file") throws -> Int32 {
    // O_NONBLOCK: opening a FIFO with no writer would block; it is cleared once the file is known regular.
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else {
        let reason = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
        throw IOError(path: path, reason: reason)
    }
    var st = stat()
    guard fstat(fd, &st) == 0 else { close(fd); throw IOError(path: path, reason: String(cString: strerror(errno))) }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        close(fd)
        throw IOError(path: path, reason: "it is \(fileKind(st.st_mode)), not a regular file")
    }
    guard Int(st.st_size) <= maxBytes else {
        close(fd)
        throw IOError(path: path, reason: "is \(Int(st.st_size)) bytes, more than \(what) may be (\(maxBytes) bytes)")
    }
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
    return fd
}

/// Whether `path` names a regular file (following links), without opening it.
/// - Parameter path: the file.
public func isRegularFile(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
}
