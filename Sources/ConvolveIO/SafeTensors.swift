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
                for v in t.storage { var x = Int64(v).littleEndian; withUnsafeBytes(of: &x) { out.append(contentsOf: $0) } }
            } else {
                // Float32 is little-endian on every platform Swift targets here.
                t.storage.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        try writeAtomically(out, to: path)
    }

    /// Reads all tensors and the metadata. Validates the header (sizes, offsets, dtypes, shapes)
    /// against the file size before allocating any tensor.
    ///
    /// - Parameter path: the file.
    /// - Returns: the tensors by name, the metadata, and the names in file order.
    public static func read(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String], order: [String]) {
        func fail(_ reason: String) -> FormatError { FormatError(path: path, reason: reason) }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                throw fail(isDir.boolValue ? "is a directory" : "cannot be opened")
            }
            throw fail("no such file")
        }
        defer { try? handle.close() }
        let fileSize = Int((try? handle.seekToEnd()) ?? 0)
        try? handle.seek(toOffset: 0)
        guard fileSize >= 8, let lenData = try handle.read(upToCount: 8), lenData.count == 8 else {
            throw fail("file is \(fileSize) bytes, too short for a header")
        }
        let headerLen = lenData.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLen <= UInt64(maxHeaderBytes), Int(headerLen) <= fileSize - 8 else {
            throw fail("header length \(headerLen) exceeds the file size \(fileSize)")
        }
        guard let headerData = try handle.read(upToCount: Int(headerLen)), headerData.count == Int(headerLen),
              let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        let dataSize = fileSize - 8 - Int(headerLen)
        var metadata: [String: String] = [:]
        if let m = header["__metadata__"] {
            guard let mm = m as? [String: String] else { throw fail("__metadata__ must map strings to strings") }
            metadata = mm
        }
        struct Entry { let name: String; let dtype: String; let shape: [Int]; let begin: Int; let end: Int }
        var entries: [Entry] = []
        for (name, value) in header where name != "__metadata__" {
            guard let d = value as? [String: Any], let dtype = d["dtype"] as? String,
                  let shapeN = d["shape"] as? [NSNumber], let offN = d["data_offsets"] as? [NSNumber], offN.count == 2 else {
                throw fail("entry \"\(name)\" lacks dtype, shape or data_offsets")
            }
            let shape = shapeN.map(\.intValue)
            let (b, e) = (offN[0].intValue, offN[1].intValue)
            let elemSize: Int
            switch dtype {
            case "F32", "I32": elemSize = 4
            case "F64", "I64": elemSize = 8
            case "F16", "BF16", "I16": elemSize = 2
            case "U8", "I8", "BOOL": elemSize = 1
            default: throw fail("entry \"\(name)\" has unsupported dtype \(dtype)")
            }
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
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: b, end: e))
        }
        entries.sort { $0.begin < $1.begin }
        for (a, b) in zip(entries, entries.dropFirst()) where a.end > b.begin {
            throw fail("entries \"\(a.name)\" and \"\(b.name)\" overlap")
        }
        // An empty data section (metadata only, or only zero-size tensors) is valid: reading zero
        // bytes gives nil.
        let body = dataSize == 0 ? Data() : (try handle.read(upToCount: dataSize) ?? Data())
        guard body.count == dataSize else { throw fail("data section is shorter than the header says") }
        var tensors: [String: Tensor] = [:]
        body.withUnsafeBytes { raw in
            for e in entries {
                let n = e.shape.reduce(1, *)
                var values = [Float](repeating: 0, count: n)
                for i in 0..<n {
                    let o = e.begin + i * (e.end - e.begin) / Swift.max(n, 1)
                    switch e.dtype {
                    case "F32": values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
                    case "F64": values[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self))))
                    case "I64": values[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int64.self)))
                    case "I32": values[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int32.self)))
                    case "I16": values[i] = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int16.self)))
                    case "U8", "BOOL": values[i] = Float(raw[o])
                    case "I8": values[i] = Float(Int8(bitPattern: raw[o]))
                    case "F16": values[i] = Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))))
                    case "BF16": values[i] = Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))) << 16)
                    default: break
                    }
                }
                tensors[e.name] = Tensor(values, shape: e.shape)
            }
        }
        return (tensors, metadata, entries.map(\.name))
    }
}
