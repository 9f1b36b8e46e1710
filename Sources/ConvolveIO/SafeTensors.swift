import Foundation
import Convolve

/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header
/// (`{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {…}}`), then little-endian data.
/// Files open in PyTorch (`safetensors.torch.load_file`). Keys ending in `num_batches_tracked` are
/// stored as I64, like PyTorch's buffers; everything else as F32.
public enum SafeTensors {
    /// Why a safetensors file was rejected; every message names the file.
    public struct FormatError: Error, CustomStringConvertible, Equatable {
        public let path: String, reason: String
        public var description: String { "\(path): invalid safetensors file: \(reason)" }
    }

    /// Header size accepted before any allocation (the format's own limit is 100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// Writes tensors (in the given order) and string metadata atomically to `path`.
    ///
    /// - Parameters:
    ///   - tensors: names and tensors, in file order (a `stateDict()`).
    ///   - metadata: string pairs stored in `__metadata__`.
    ///   - path: the file.
    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, t) in tensors {
            let isInt = name.hasSuffix("num_batches_tracked")
            let size = t.count * (isInt ? 8 : 4)
            header[name] = ["dtype": isInt ? "I64" : "F32", "shape": t.shape, "data_offsets": [offset, offset + size]]
            offset += size
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        // One buffer of the file's exact size (a separate body buffer would hold every tensor twice).
        var out = Data(capacity: 8 + json.count + offset)
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        for (name, t) in tensors {
            if name.hasSuffix("num_batches_tracked") {
                for v in t.scalars { var x = Int64(v).littleEndian; withUnsafeBytes(of: &x) { out.append(contentsOf: $0) } }
            } else {
                // Float32 is little-endian on every platform Swift targets here.
                t.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        try writeAtomically(out, to: path)
    }

    /// One value of the header: the `__metadata__` map, or a tensor's entry. Decoded strictly: offsets
    /// and shape sizes must be JSON integers that fit (`4.9`, `true` or 2⁶⁴ are refused, not truncated).
    enum HeaderValue: Decodable {
        case metadata([String: String])
        case tensor(dtype: String, shape: [Int], offsets: [Int])
        enum Keys: String, CodingKey { case dtype, shape, data_offsets }
        init(from decoder: Decoder) throws {
            if decoder.codingPath.last?.stringValue == "__metadata__" {
                self = .metadata(try decoder.singleValueContainer().decode([String: String].self)); return
            }
            let c = try decoder.container(keyedBy: Keys.self)
            self = .tensor(dtype: try c.decode(String.self, forKey: .dtype), shape: try c.decode([Int].self, forKey: .shape),
                           offsets: try c.decode([Int].self, forKey: .data_offsets))
        }
    }

    /// Reads all tensors and the metadata. Validates the header (sizes, offsets, dtypes, shapes)
    /// against the file size before allocating any tensor. Only a regular file is read (a FIFO or a
    /// device is refused without waiting on it).
    ///
    /// - Parameter path: the file.
    /// - Returns: the tensors by name, the metadata, and the names in file order.
    public static func read(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String], order: [String]) {
        func fail(_ reason: String) -> FormatError { FormatError(path: path, reason: reason) }
        let file: Data
        do { file = try readRegularFile(path, what: "a safetensors file") }
        catch let e as IOError { throw fail(e.reason) }
        let fileSize = file.count
        guard fileSize >= 8 else { throw fail("file is \(fileSize) bytes, too short for a header") }
        let headerLen = file.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLen <= UInt64(maxHeaderBytes), Int(headerLen) <= fileSize - 8 else {
            throw fail("header length \(headerLen) exceeds the file size \(fileSize)")
        }
        let headerData = file.subdata(in: 8..<(8 + Int(headerLen)))
        guard headerData.first == UInt8(ascii: "{") else { throw fail("header is not a JSON object") }
        let header: [String: HeaderValue]
        do { header = try JSONDecoder().decode([String: HeaderValue].self, from: headerData) }
        catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
            throw fail("header is not a JSON object")
        } catch {
            throw fail("bad header: \(describe(error))")
        }
        let dataSize = fileSize - 8 - Int(headerLen)
        var metadata: [String: String] = [:]
        struct Entry { let name: String; let type: ElementType; let shape: [Int]; let begin: Int; let end: Int }
        var entries: [Entry] = []
        for (name, value) in header {
            let (dtype, shape, offsets): (String, [Int], [Int])
            switch value {
            case let .metadata(m): metadata = m; continue
            case let .tensor(d, s, o): (dtype, shape, offsets) = (d, s, o)
            }
            guard offsets.count == 2 else { throw fail("entry \"\(name)\" data_offsets has \(offsets.count) values, not 2") }
            let (b, e) = (offsets[0], offsets[1])
            guard let type = ElementType(rawValue: dtype) else { throw fail("entry \"\(name)\" has unsupported dtype \(dtype)") }
            let elemSize = type.size
            guard shape.allSatisfy({ $0 >= 0 && $0 < Int(Int32.max) }) else { throw fail("entry \"\(name)\" has a bad shape \(shape)") }
            var count = 1
            for s in shape {
                let (p, o) = count.multipliedReportingOverflow(by: s)
                if o || p > dataSize { throw fail("entry \"\(name)\" shape \(shape) is larger than the file") }
                count = p
            }
            guard b >= 0, e >= b, e <= dataSize else {
                throw fail("entry \"\(name)\" data_offsets [\(b), \(e)] lie outside the \(dataSize)-byte data section")
            }
            guard e - b == count * elemSize else {
                throw fail("entry \"\(name)\" has \(e - b) bytes for shape \(shape) of \(dtype)")
            }
            entries.append(Entry(name: name, type: type, shape: shape, begin: b, end: e))
        }
        entries.sort { $0.begin < $1.begin }
        for (a, b) in zip(entries, entries.dropFirst()) where a.end > b.begin {
            throw fail("entries \"\(a.name)\" and \"\(b.name)\" overlap")
        }
        // An empty data section (metadata only, or only zero-size tensors) is valid.
        let body = file.subdata(in: (8 + Int(headerLen))..<fileSize)
        var tensors: [String: Tensor] = [:]
        body.withUnsafeBytes { raw in
            for e in entries {
                let n = e.shape.reduce(1, *)
                let values = (0..<n).map { e.type.value(in: raw, at: e.begin, index: $0) }
                tensors[e.name] = Tensor(values, shape: e.shape)
            }
        }
        return (tensors, metadata, entries.map(\.name))
    }

    /// A decoding error in a person's words, with the key path where it happened.
    static func describe(_ error: Error) -> String {
        func at(_ path: [CodingKey]) -> String { path.map(\.stringValue).joined(separator: ".") }
        switch error {
        case let DecodingError.typeMismatch(_, c), let DecodingError.valueNotFound(_, c), let DecodingError.dataCorrupted(c):
            return "\(at(c.codingPath)): \(c.debugDescription)"
        case let DecodingError.keyNotFound(key, c):
            return "\(at(c.codingPath + [key])) is missing"
        default: return "\(error)"
        }
    }
}
