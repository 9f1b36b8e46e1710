import Foundation

/// Reads the members of a tar archive (POSIX ustar, with GNU long names), gzip-compressed or not,
/// streaming: nothing is extracted to disk and only the members asked for are held in memory.
public enum Tar {
    /// The regular-file members of the archive at `path` whose names `wanted` accepts, by name.
    /// Sizes are checked against the archive before anything is allocated.
    ///
    /// - Parameters:
    ///   - path: a `.tar` or `.tar.gz` file (compression is sniffed, not taken from the name).
    ///   - maxMemberBytes: the largest member accepted.
    ///   - wanted: whether to keep a member (by its path inside the archive).
    public static func members(of path: String, maxMemberBytes: Int = 1 << 31,
                               where wanted: (String) -> Bool) throws -> [String: [UInt8]] {
        let stream = try ByteStream(path: path)
        func bad(_ reason: String) -> DataError { DataError.badImage(path: path, reason: "not a valid tar archive: \(reason)") }
        var result: [String: [UInt8]] = [:]
        var header = [UInt8](repeating: 0, count: 512)
        var longName: String?
        var sawHeader = false
        while true {
            let got = try header.withUnsafeMutableBytes { try readUpTo(stream, $0.baseAddress!, 512) }
            if got == 0 && sawHeader { break }   // archives may end without the two zero blocks
            guard got == 512 else {
                throw got == 0 ? bad("empty file") : DataError.truncated(path: path, expected: 512, got: got)
            }
            if header.allSatisfy({ $0 == 0 }) { break }   // end-of-archive marker
            let stored = octal(header[148..<156])
            var sum = 0
            for (i, b) in header.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            guard let stored, stored == sum else {
                throw bad(sawHeader ? "a member header has a wrong checksum" : "no tar header at the start (is it a tar archive?)")
            }
            sawHeader = true
            guard let size = octal(header[124..<136]), size >= 0 else { throw bad("a member has an unreadable size") }
            let type = header[156]
            var name = longName ?? string(header[0..<100])
            longName = nil
            if Array(header[257..<262]) == Array("ustar".utf8), header[345] != 0, name == string(header[0..<100]) {
                name = string(header[345..<500]) + "/" + name
            }
            let padded = (size + 511) / 512 * 512
            guard padded <= stream.maxDecodedBytes else {
                throw DataError.truncated(path: path, expected: padded, got: stream.maxDecodedBytes)
            }
            let keep = (type == UInt8(ascii: "0") || type == 0) && wanted(name)
            if type == UInt8(ascii: "L") {   // GNU long name: the next member's name is this member's data
                guard size <= 65536 else { throw bad("a long name of \(size) bytes") }
                let bytes = try read(stream, padded, path: path)
                longName = string(bytes[0..<size])
                continue
            }
            if keep {
                guard size <= maxMemberBytes else { throw bad("member \(name) is \(size) bytes, more than \(maxMemberBytes)") }
                var bytes = try read(stream, padded, path: path)
                bytes.removeLast(padded - size)
                result[name] = bytes
            } else {
                try skip(stream, padded, path: path)
            }
        }
        return result
    }

    static func readUpTo(_ stream: ByteStream, _ dst: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        var got = 0
        while got < count {
            let n = try stream.read(into: dst + got, count: count - got)
            if n == 0 { break }
            got += n
        }
        return got
    }

    static func read(_ stream: ByteStream, _ count: Int, path: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = try bytes.withUnsafeMutableBytes { try readUpTo(stream, $0.baseAddress!, count) }
        guard got == count else { throw DataError.truncated(path: path, expected: count, got: got) }
        return bytes
    }

    static func skip(_ stream: ByteStream, _ count: Int, path: String) throws {
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        var left = count
        while left > 0 {
            let n = Swift.min(left, scratch.count)
            let got = try scratch.withUnsafeMutableBytes { try readUpTo(stream, $0.baseAddress!, n) }
            guard got == n else { throw DataError.truncated(path: path, expected: count, got: count - left + got) }
            left -= n
        }
    }

    /// An octal number field (NUL- or space-terminated), or nil.
    static func octal(_ field: ArraySlice<UInt8>) -> Int? {
        var value = 0, digits = 0
        for b in field {
            if b == 0 || b == 32 { if digits > 0 { break } else { continue } }
            guard b >= 48 && b <= 55, value < (1 << 58) else { return nil }
            value = value * 8 + Int(b - 48); digits += 1
        }
        return digits > 0 ? value : nil
    }

    static func string(_ field: ArraySlice<UInt8>) -> String {
        String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
    }
}
