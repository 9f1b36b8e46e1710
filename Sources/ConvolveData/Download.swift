import Foundation
import CConvolveSupport

/// Downloads dataset files from a list of mirrors, verifying SHA-256 before moving each into place.
/// HTTP goes through libcurl, loaded when the first download starts (`CConvolveSupport/http.c` says why
/// not URLSession).
public final class Downloader: @unchecked Sendable {
    private let showProgress: Bool
    private let timeout: TimeInterval
    private var handle: FileHandle?
    private var hasher = SHA256()
    private var md5Hasher = MD5()
    private var received: Int64 = 0
    private var expected: Int64 = -1
    private var started = Date()
    private var label = ""

    /// `progress` draws a bar on stderr (use it only on a terminal).
    ///
    /// - Parameters:
    ///   - progress: draw a progress line on stderr.
    ///   - timeout: seconds without data before a mirror is given up.
    public init(progress: Bool, timeout: TimeInterval = 60) {
        showProgress = progress
        self.timeout = timeout
    }

    /// Fetches `name` from the first mirror that serves it with the right checksum into `directory`.
    /// A 404, a truncated body or a checksum mismatch moves on to the next mirror.
    ///
    /// - Parameters:
    ///   - name: the file name, appended to each mirror's URL.
    ///   - mirrors: base URLs, tried in order.
    ///   - sha256: the expected digest (nil: not checked).
    ///   - md5: the expected MD5, for files whose publisher gives no SHA-256 (nil: not checked).
    ///   - directory: where the verified file is moved.
    public func fetch(_ name: String, mirrors: [String], sha256: String?, md5: String? = nil,
                      into directory: String) throws {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        catch { throw DataError.unreadable(path: directory, reason: "cannot create directory: \(error.localizedDescription)") }
        let final = directory + "/" + name
        var reasons: [String] = []
        for mirror in mirrors {
            let url = mirror.hasSuffix("/") ? mirror + name : mirror + "/" + name
            let tmp = directory + "/.\(name).part-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: tmp) }
            do {
                let digest = try download(url, to: tmp)
                if let sha256, digest != sha256 {
                    throw DataError.checksum(path: url, expected: sha256, got: digest)
                }
                if let md5, md5Hasher.hexDigest() != md5 {
                    throw DataError.checksum(path: url, expected: "MD5 " + md5, got: md5Hasher.hexDigest())
                }
                guard rename(tmp, final) == 0 else {
                    throw DataError.unreadable(path: final, reason: String(cString: strerror(errno)))
                }
                return
            } catch let e as DataError {
                reasons.append(e.description)
            }
        }
        throw DataError.download(url: name, reason: reasons.joined(separator: "; "))
    }

    /// Streams one URL into `path`, returning its SHA-256.
    func download(_ url: String, to path: String) throws -> String {
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw DataError.unreadable(path: path, reason: "cannot write")
        }
        handle = h; hasher = SHA256(); md5Hasher = MD5(); received = 0; expected = -1; started = Date()
        label = url.split(separator: "/").last.map(String.init) ?? url
        var message = [CChar](repeating: 0, count: 512)
        let sink: convolve_http_sink = { context, data, size, expected in
            let me = Unmanaged<Downloader>.fromOpaque(context!).takeUnretainedValue()
            return me.receive(UnsafeBufferPointer(start: data, count: Int(size)), expected: expected) ? 0 : 1
        }
        let rc = convolve_http_get(url, Int(timeout.rounded(.up)), Unmanaged.passUnretained(self).toOpaque(), sink,
                                   &message, Int32(message.count))
        try? h.close()
        handle = nil
        if showProgress && received > 0 { FileHandle.standardError.write("\n".data(using: .utf8)!) }
        if rc != 0 { throw DataError.download(url: url, reason: String(cString: message)) }
        if expected >= 0 && received != expected {
            throw DataError.download(url: url, reason: "truncated: received \(received) of \(expected) bytes")
        }
        return hasher.hexDigest()
    }

    /// One piece of the body: written, hashed, and shown. False stops the transfer (the file cannot be written).
    private func receive(_ data: UnsafeBufferPointer<UInt8>, expected declared: Int64) -> Bool {
        expected = declared
        let chunk = Data(buffer: data)
        do { try handle?.write(contentsOf: chunk) } catch { return false }
        hasher.update(chunk)
        md5Hasher.update(chunk)
        received += Int64(data.count)
        if showProgress {
            let line: String
            let elapsed = Swift.max(Date().timeIntervalSince(started), 1e-3)
            let rate = Double(received) / elapsed
            if expected > 0 {
                let frac = Double(received) / Double(expected)
                let bar = String(repeating: "=", count: Int(frac * 30)).padding(toLength: 30, withPad: " ", startingAt: 0)
                let eta = rate > 0 ? Double(expected - received) / rate : 0
                line = String(format: "\r%@ [%@] %5.1f%% %.1f MB, %.1f MB/s, %.0f s elapsed, ETA %.0f s", label, bar,
                              frac * 100, Double(received) / 1e6, rate / 1e6, elapsed, eta)
            } else {
                line = String(format: "\r%@ %.1f MB, %.1f MB/s, %.0f s elapsed", label, Double(received) / 1e6,
                              rate / 1e6, elapsed)
            }
            FileHandle.standardError.write(line.data(using: .utf8)!)
        }
        return true
    }
}
