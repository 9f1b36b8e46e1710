import Foundation
import CZlib
import CConvolveSupport
@_exported import ConvolveIO

/// A data-loading failure. Every case names the file and what is wrong with it.
public enum DataError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case badMagic(path: String, found: String)
    case truncated(path: String, expected: Int, got: Int)
    case corruptGzip(path: String, reason: String)
    case countMismatch(images: String, imageCount: Int, labels: String, labelCount: Int)
    case labelOutOfRange(path: String, index: Int, label: Int, classes: Int)
    case badShape(path: String, reason: String)
    case missingData(dataset: String, directory: String, files: [String], cause: String? = nil)
    case download(url: String, reason: String)
    case checksum(path: String, expected: String, got: String)
    case badImage(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): cannot read: \(reason)"
        case let .badMagic(path, found): return "\(path): not an IDX file (magic number \(found); expected 00 00 <type> <rank>)"
        case let .truncated(path, expected, got):
            return "\(path): truncated: expected \(expected) bytes of data, found \(got)"
        case let .corruptGzip(path, reason): return "\(path): corrupt gzip data: \(reason)"
        case let .countMismatch(images, ic, labels, lc):
            return "\(images) has \(ic) images but \(labels) has \(lc) labels"
        case let .labelOutOfRange(path, index, label, classes):
            return "\(path): label \(label) at index \(index) is outside 0..<\(classes)"
        case let .badShape(path, reason): return "\(path): \(reason)"
        case let .missingData(dataset, directory, files, cause):
            return "\(dataset) data not found in \(directory). Put the four files "
                + files.joined(separator: ", ")
                + " there (gzipped or not), or point --data-dir / CONVOLVE_DATA_DIR at a directory holding them."
                + (cause.map { " (download failed: \($0))" } ?? "")
        case let .download(url, reason): return "\(url): download failed: \(reason)"
        case let .checksum(path, expected, got): return "\(path): SHA-256 mismatch (expected \(expected), got \(got))"
        case let .badImage(path, reason): return "\(path): \(reason)"
        }
    }
}

/// A byte stream over a raw or gzip-compressed file, read in chunks (never the whole file at once).
final class ByteStream {
    let path: String
    private let file: UnsafeMutablePointer<FILE>
    private var z = z_stream()
    private let gzip: Bool
    private let inBuf: UnsafeMutablePointer<UInt8>
    private var zDone = false
    private var zInit = false
    /// The file's size in bytes.
    let fileSize: Int
    /// Whether the file is gzip-compressed.
    var isCompressed: Bool { gzip }
    /// The whole decompressed file when libdeflate inflated it in one call (`inflateWhole`), and how much
    /// of it has been read; nil while zlib streams.
    private var whole: [UInt8]?
    private var wholeOffset = 0
    /// The most bytes the stream can yield: the file itself, or for gzip the file times deflate's
    /// largest expansion (1032:1), so a header can be checked against it before anything is allocated.
    var maxDecodedBytes: Int {
        if let whole { return whole.count }
        return gzip ? fileSize.multipliedReportingOverflow(by: 1032).partialValue : fileSize
    }

    /// - Parameters:
    ///   - path: a raw or gzip file (sniffed by its magic bytes).
    ///   - inflateWhole: inflate a gzip file in one call with libdeflate when it is installed (about
    ///     twice zlib's speed; for files read whole, like IDX). Zlib streams otherwise, and whenever
    ///     libdeflate cannot do it (several gzip members, corrupt data: zlib words the error).
    init(path: String, inflateWhole: Bool = false) throws {
        self.path = path
        // Only a regular file (a FIFO would block the open, a device would never end).
        let fd: Int32
        do { fd = try openRegularFile(path) } catch let e as IOError { throw DataError.unreadable(path: path, reason: e.reason) }
        guard let f = fdopen(fd, "rb") else {
            close(fd)
            throw DataError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        file = f
        var info = stat()
        fileSize = fstat(fileno(f), &info) == 0 ? Int(info.st_size) : Int.max
        // Sniff the gzip magic rather than trusting the extension.
        let b0 = fgetc(f), b1 = fgetc(f)
        rewind(f)
        gzip = b0 == 0x1f && b1 == 0x8b
        if gzip {
            let rc = inflateInit2_(&z, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
            guard rc == Z_OK else { fclose(f); throw DataError.corruptGzip(path: path, reason: "inflateInit failed (\(rc))") }
            zInit = true
        }
        inBuf = .allocate(capacity: 1 << 16)   // last: no throw can leave it allocated
        if gzip && inflateWhole { whole = inflateInOneCall() }
    }

    /// The decompressed file from libdeflate, or nil (no library, or it could not: zlib will stream).
    /// The output size comes from the gzip trailer (ISIZE), trusted only up to deflate's largest expansion.
    private func inflateInOneCall() -> [UInt8]? {
        guard fileSize >= 18, fileSize < 1 << 30, convolve_gunzip_available() != 0 else { return nil }
        var compressed = [UInt8](repeating: 0, count: fileSize)
        let got = compressed.withUnsafeMutableBytes { fread($0.baseAddress!, 1, fileSize, file) }
        rewind(file)
        guard got == fileSize else { return nil }
        let declared = Int(compressed[fileSize - 4]) | Int(compressed[fileSize - 3]) << 8
            | Int(compressed[fileSize - 2]) << 16 | Int(compressed[fileSize - 1]) << 24
        guard declared > 0, declared <= maxDecodedBytes, declared < 1 << 31 else { return nil }
        var ok = false
        let decoded = [UInt8](unsafeUninitializedCapacity: declared) { out, count in
            var written: UInt = 0
            ok = compressed.withUnsafeBufferPointer {
                convolve_gunzip($0.baseAddress, UInt(fileSize), out.baseAddress, UInt(declared), &written)
            } == 0 && Int(written) == declared
            count = ok ? declared : 0
        }
        return ok ? decoded : nil
    }

    /// The next `count` bytes as an array without copying them, when the file was inflated in one call
    /// and holds them (its first bytes, already read, are moved out in place); nil otherwise.
    func takeBytes(_ count: Int) -> [UInt8]? {
        guard var bytes = whole, bytes.count - wholeOffset >= count else { return nil }
        whole = nil
        bytes.removeFirst(wholeOffset)
        bytes.removeLast(bytes.count - count)
        wholeOffset = 0
        return bytes
    }
    deinit {
        if zInit { inflateEnd(&z) }
        fclose(file)
        inBuf.deallocate()
    }

    /// Reads up to `count` bytes into `dst`; returns the number read (less only at end of data).
    func read(into dst: UnsafeMutableRawPointer, count: Int) throws -> Int {
        if count == 0 { return 0 }
        if let whole {
            let n = Swift.min(count, whole.count - wholeOffset)
            whole.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress! + wholeOffset, byteCount: n) }
            wholeOffset += n
            return n
        }
        if !gzip { return fread(dst, 1, count, file) }
        var produced = 0
        while produced < count && !zDone {
            if z.avail_in == 0 {
                let n = fread(inBuf, 1, 1 << 16, file)
                if n == 0 {
                    throw DataError.corruptGzip(path: path, reason: "unexpected end of compressed data")
                }
                z.next_in = inBuf
                z.avail_in = uInt(n)
            }
            z.next_out = (dst + produced).assumingMemoryBound(to: Bytef.self)
            z.avail_out = uInt(count - produced)
            let before = Int(z.avail_out)
            let rc = inflate(&z, Z_NO_FLUSH)
            produced += before - Int(z.avail_out)
            if rc == Z_STREAM_END { zDone = true; break }
            if rc != Z_OK && rc != Z_BUF_ERROR {
                let msg = z.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw DataError.corruptGzip(path: path, reason: msg)
            }
        }
        return produced
    }

    /// Reads exactly `count` bytes or throws `truncated`.
    func readExactly(into dst: UnsafeMutableRawPointer, count: Int, dataBytes: Int? = nil) throws {
        var got = 0
        while got < count {
            let n = try read(into: dst + got, count: count - got)
            if n == 0 { throw DataError.truncated(path: path, expected: dataBytes ?? count, got: got) }
            got += n
        }
    }
}

/// Element types of the IDX format.
public enum IDXType: UInt8, Sendable {
    case uint8 = 0x08, int8 = 0x09, int16 = 0x0B, int32 = 0x0C, float32 = 0x0D, float64 = 0x0E
    /// Bytes per element.
    public var size: Int {
        switch self {
        case .uint8, .int8: return 1
        case .int16: return 2
        case .int32, .float32: return 4
        case .float64: return 8
        }
    }
}

/// An array read from an IDX file: its element type, shape, and host-endian element bytes.
/// `uint8` data (MNIST images) stays as bytes until a batch needs floats.
public struct IDXArray: Sendable {
    public let type: IDXType
    public let shape: [Int]
    /// Elements in host byte order.
    public let bytes: [UInt8]

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// Element `i` as a Double (any element type).
    ///
    /// - Parameter i: the element's position, row-major.
    public func value(at i: Int) -> Double {
        bytes.withUnsafeBytes { raw in
            switch type {
            case .uint8: return Double(raw[i])
            case .int8: return Double(Int8(bitPattern: raw[i]))
            case .int16: return Double(raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))
            case .int32: return Double(raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
            case .float32: return Double(raw.loadUnaligned(fromByteOffset: i * 4, as: Float.self))
            case .float64: return raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self)
            }
        }
    }
    /// All elements converted to Float.
    public func floats() -> [Float] { (0..<count).map { Float(value(at: $0)) } }
}

/// Reads IDX files (LeCun's MNIST format), raw or gzip-compressed, streaming straight into
/// the result buffer.
public enum IDX {
    /// Largest element count accepted (guards against a header that lies before allocating).
    public static let maxElements = 1 << 31

    /// Reads a whole IDX file of any element type and rank.
    /// - Parameter path: a raw or gzip IDX file (sniffed, not by extension).
    public static func read(_ path: String) throws -> IDXArray {
        let stream = try ByteStream(path: path, inflateWhole: true)
        var magic = [UInt8](repeating: 0, count: 4)
        do { try magic.withUnsafeMutableBytes { try stream.readExactly(into: $0.baseAddress!, count: 4) } }
        catch DataError.truncated { throw DataError.badMagic(path: path, found: "missing (file too short)") }
        let hex = magic.map { String(format: "%02x", $0) }.joined(separator: " ")
        guard magic[0] == 0, magic[1] == 0, let type = IDXType(rawValue: magic[2]), magic[3] >= 1 else {
            throw DataError.badMagic(path: path, found: hex)
        }
        let rank = Int(magic[3])
        var dimBytes = [UInt8](repeating: 0, count: 4 * rank)
        do { try dimBytes.withUnsafeMutableBytes { try stream.readExactly(into: $0.baseAddress!, count: 4 * rank) } }
        catch DataError.truncated { throw DataError.truncated(path: path, expected: 4 * rank, got: 0) }
        var shape: [Int] = []
        var total = 1
        for d in 0..<rank {
            let v = Int(dimBytes[4 * d]) << 24 | Int(dimBytes[4 * d + 1]) << 16 | Int(dimBytes[4 * d + 2]) << 8 | Int(dimBytes[4 * d + 3])
            shape.append(v)
            total = total.multipliedReportingOverflow(by: Swift.max(v, 1)).partialValue
            if total > maxElements { throw DataError.badShape(path: path, reason: "header claims \(shape) elements, too many") }
        }
        total = shape.reduce(1, *)
        let nbytes = total * type.size
        // Check the declared size against the bytes that can be there before allocating for it.
        let header = 4 + 4 * rank
        if stream.isCompressed {
            if nbytes > stream.maxDecodedBytes {
                throw DataError.badShape(path: path, reason: "header declares \(shape) (\(nbytes) bytes), more than "
                    + "\(stream.fileSize) compressed bytes can hold")
            }
        } else if nbytes > stream.fileSize - header {
            throw DataError.truncated(path: path, expected: nbytes, got: Swift.max(0, stream.fileSize - header))
        }
        var bytes = try stream.takeBytes(nbytes) ?? [UInt8](unsafeUninitializedCapacity: nbytes) { buffer, count in
            if let base = buffer.baseAddress { try stream.readExactly(into: base, count: nbytes) }
            count = nbytes
        }
        // Convert big-endian multi-byte elements to host order in place.
        if type.size > 1 {
            bytes.withUnsafeMutableBytes { raw in
                let s = type.size
                for i in 0..<total {
                    let p = raw.baseAddress! + i * s
                    for j in 0..<(s / 2) { let t = p.load(fromByteOffset: j, as: UInt8.self)
                        p.storeBytes(of: p.load(fromByteOffset: s - 1 - j, as: UInt8.self), toByteOffset: j, as: UInt8.self)
                        p.storeBytes(of: t, toByteOffset: s - 1 - j, as: UInt8.self) }
                }
            }
        }
        return IDXArray(type: type, shape: shape, bytes: bytes)
    }

    /// Writes an IDX file of unsigned bytes (used by tests and `convolve` to export samples).
    /// - Parameters:
    ///   - bytes: the elements, row-major.
    ///   - shape: the dimensions.
    ///   - path: the file (written atomically).
    public static func writeUInt8(_ bytes: [UInt8], shape: [Int], to path: String) throws {
        var data = Data([0, 0, IDXType.uint8.rawValue, UInt8(shape.count)])
        for d in shape { data.append(contentsOf: [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)]) }
        data.append(contentsOf: bytes)
        try writeAtomically(data, to: path)
    }
}
