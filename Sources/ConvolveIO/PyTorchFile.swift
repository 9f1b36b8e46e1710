import Foundation
import Convolve

/// Reads the tensors of a PyTorch weight file, as `torch.load(path, weights_only=True)` would and
/// never more: the zip format of `torch.save` (PyTorch ≥ 1.6: `archive/data.pkl` and one stored entry
/// per storage) and the legacy format before it (magic number, protocol and system pickles, the
/// object pickle, the storage keys, then each storage's count and bytes). The pickle runs through a
/// restricted unpickler that rebuilds only tensors and containers; a file asking for any other
/// global is refused, naming it. Tensors may be any dtype PyTorch stores (read as Float32), strided
/// or offset views, and share storages.
///
/// A checkpoint's nested `state_dict` (or `model_state_dict`, `model`) is taken when the top level
/// holds one; nested dicts of tensors are flattened with dots; non-tensor values (an epoch number,
/// `_metadata`) are skipped; a DataParallel `module.` prefix on every key is removed.
public enum PyTorchFile {
    /// Why a PyTorch file was rejected; every message names the file.
    public struct FormatError: Error, CustomStringConvertible, Equatable {
        public let path: String, reason: String
        public var description: String { "\(path): not a readable PyTorch weights file: \(reason)" }
    }

    /// Whether `bytes` start like a PyTorch file (a zip archive, or the legacy format's magic pickle).
    ///
    /// - Parameter bytes: the file's first bytes (at least 15).
    public static func looksLikePyTorch(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.starts(with: zipMagic) || bytes.starts(with: legacyMagic)
    }

    static let zipMagic: [UInt8] = [0x50, 0x4b, 0x03, 0x04]
    /// `pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)`: the legacy format's first pickle.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]

    /// Reads every tensor of the file in the order the pickle lists them.
    ///
    /// - Parameter path: a `.pth` / `.pt` / `.bin` file written by `torch.save`.
    /// - Returns: the tensors by key, in file order.
    public static func read(_ path: String) throws -> [(String, Tensor)] {
        let file: Data
        do { file = try readRegularFile(path, what: "a PyTorch weights file") }
        catch let e as IOError { throw FormatError(path: path, reason: e.reason) }
        do {
            return try file.withUnsafeBytes { try decode($0) }
        } catch let f as Unpickler.Failure {
            throw FormatError(path: path, reason: f.reason)
        }
    }

    /// The tensors of a PyTorch file's bytes (the fuzz target's entry).
    static func decode(_ raw: UnsafeRawBufferPointer) throws -> [(String, Tensor)] {
        if raw.starts(with: zipMagic) { return try decodeZip(raw) }
        if raw.starts(with: legacyMagic) { return try decodeLegacy(raw) }
        throw Unpickler.Failure(reason: "it is neither a zip archive (PyTorch ≥ 1.6) nor a legacy torch.save file")
    }

    // MARK: - The zip format

    private static func decodeZip(_ raw: UnsafeRawBufferPointer) throws -> [(String, Tensor)] {
        let entries = try ZipDirectory(raw).entries
        guard let pickleName = entries.keys.filter({ $0.hasSuffix("/data.pkl") && $0.split(separator: "/").count == 2 }).min() else {
            throw Unpickler.Failure(reason: "the archive has no <name>/data.pkl")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        if let order = entries[prefix + "byteorder"] {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: raw[order]), as: UTF8.self)
            guard text == "little" else { throw Unpickler.Failure(reason: "byte order \"\(text.prefix(20))\" (only little-endian files are read)") }
        }
        var unpickler = Unpickler(UnsafeRawBufferPointer(rebasing: raw[entries[pickleName]!])) { type, key, count, _ in
            guard let range = entries[prefix + "data/" + key] else {
                throw Unpickler.Failure(reason: "storage \(key) has no entry \(prefix)data/\(key)")
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: type.size)
            guard !overflow, bytes <= range.count else {
                throw Unpickler.Failure(reason: "storage \(key) declares \(count) elements of \(type.size) bytes but its entry has \(range.count)")
            }
            return PickleStorage(type: type, key: key, count: count)
        }
        let root = try unpickler.load()
        // The unpickler's containers are emptied when it goes: it must outlive the walk over them.
        return try withExtendedLifetime(unpickler) {
            try tensors(of: root, fileSize: raw.count) { source in raw.baseAddress! + entries[prefix + "data/" + source.key]!.lowerBound }
        }
    }

    // MARK: - The legacy format

    private static func decodeLegacy(_ raw: UnsafeRawBufferPointer) throws -> [(String, Tensor)] {
        var declared: [String: PickleStorage] = [:]
        var unpickler = Unpickler(raw, from: legacyMagic.count) { type, key, count, extra in
            if let view = extra.first, case .tuple = view {
                throw Unpickler.Failure(reason: "storage \(key) is a storage view (a PyTorch 0.3 file), which is not read")
            }
            if let earlier = declared[key], earlier.type != type || earlier.count != count {
                throw Unpickler.Failure(reason: "storage \(key) is declared twice, differently")
            }
            let s = PickleStorage(type: type, key: key, count: count)
            declared[key] = s
            return s
        }
        guard case let .int(version) = try unpickler.load(), version == 1001 else {
            throw Unpickler.Failure(reason: "the legacy format's protocol version is not 1001")
        }
        guard case let .dict(info) = try unpickler.load() else { throw Unpickler.Failure(reason: "no system information pickle") }
        for (k, v) in info.items {
            if case .string("little_endian") = k, case .bool(false) = v {
                throw Unpickler.Failure(reason: "a big-endian file (only little-endian files are read)")
            }
        }
        let root = try unpickler.load()
        guard case let .list(keyList) = try unpickler.load() else { throw Unpickler.Failure(reason: "no list of storage keys after the object") }
        // Each storage in key order: an 8-byte element count, then its bytes.
        var position = unpickler.position
        var starts: [String: Int] = [:]
        for item in keyList.items {
            guard case let .string(key) = item, let storage = declared[key] else {
                throw Unpickler.Failure(reason: "the storage key list names a storage the object does not use")
            }
            guard raw.count - position >= 8 else { throw Unpickler.Failure(reason: "the file ends before storage \(key)") }
            let count = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: position, as: Int64.self))
            guard count == Int64(storage.count) else {
                throw Unpickler.Failure(reason: "storage \(key) holds \(count) elements where the object declares \(storage.count)")
            }
            position += 8
            guard storage.count <= (raw.count - position) / storage.type.size else {
                throw Unpickler.Failure(reason: "the file ends inside storage \(key) (\(storage.count) elements of \(storage.type.size) bytes)")
            }
            starts[key] = position
            position += storage.count * storage.type.size
        }
        for key in declared.keys where starts[key] == nil {
            throw Unpickler.Failure(reason: "storage \(key) is used but not stored")
        }
        return try withExtendedLifetime(unpickler) {
            try tensors(of: root, fileSize: raw.count) { source in raw.baseAddress! + starts[source.key]! }
        }
    }

    // MARK: - From the pickle's value to named tensors

    /// The named tensors of the unpickled object: a checkpoint's nested state dict if it has one,
    /// nested dicts flattened with dots, a common `module.` prefix removed.
    private static func tensors(of root: PickleValue, fileSize: Int,
                                storageBase: (PickleStorage) -> UnsafeRawPointer) throws -> [(String, Tensor)] {
        guard case let .dict(top) = root else {
            throw Unpickler.Failure(reason: "the file holds \(root.kind), not a dict of tensors (a state_dict)")
        }
        var chosen = top
        for name in ["state_dict", "model_state_dict", "model"] {
            if let v = top.items.first(where: { if case .string(name) = $0.key { true } else { false } }), case let .dict(d) = v.value {
                chosen = d
                break
            }
        }
        var found: [(String, PickleTensor)] = []
        var visits = 0
        func collect(_ dict: PickleDict, _ prefix: String, depth: Int) throws {
            guard depth < 32 else { throw Unpickler.Failure(reason: "dicts nested more than 32 deep") }
            for (k, v) in dict.items {
                visits += 1
                guard visits <= 10_000_000 else { throw Unpickler.Failure(reason: "more than 10,000,000 entries") }
                guard case let .string(key) = k else { continue }
                switch v {
                case let .tensor(t): found.append((prefix + key, t))
                case let .dict(d): try collect(d, prefix + key + ".", depth: depth + 1)
                default: continue
                }
            }
        }
        try collect(chosen, "", depth: 0)
        if !found.isEmpty && found.allSatisfy({ $0.0.hasPrefix("module.") }) {
            found = found.map { (String($0.0.dropFirst("module.".count)), $0.1) }
        }
        var seen = Set<String>()
        for (k, _) in found where !seen.insert(k).inserted { throw Unpickler.Failure(reason: "key \(k) appears twice") }
        // Views of one storage can describe more elements than the file holds; bounded all the same.
        var total = 0
        let limit = 2 * fileSize + (1 << 20)
        for (key, t) in found {
            let (n, overflow) = t.shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d); return (p, acc.1 || o)
            }
            total += overflow ? limit + 1 : n
            guard total <= limit else {
                throw Unpickler.Failure(reason: "the tensors (up to \(key)) describe more elements than a \(fileSize)-byte file holds")
            }
        }
        return found.map { key, t in (key, materialize(t, base: storageBase(t.source))) }
    }

    /// The tensor's elements gathered row-major from its storage by size, stride and offset.
    private static func materialize(_ t: PickleTensor, base: UnsafeRawPointer) -> Tensor {
        let count = t.shape.reduce(1, *)
        let raw = UnsafeRawBufferPointer(start: base, count: t.source.count * t.source.type.size)
        var values = [Float](repeating: 0, count: count)
        guard count > 0 else { return Tensor(values, shape: t.shape) }
        let type = t.source.type
        var index = [Int](repeating: 0, count: t.shape.count)
        var element = t.offset
        for i in 0..<count {
            values[i] = type.value(in: raw, at: 0, index: element)
            // Advance the multi-index (last dimension fastest) and the storage position with it.
            var d = t.shape.count - 1
            while d >= 0 {
                index[d] += 1
                element += t.strides[d]
                if index[d] < t.shape[d] { break }
                element -= t.strides[d] * t.shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return Tensor(values, shape: t.shape)
    }
}

/// The stored entries of a zip archive, by name, as byte ranges of the archive (PyTorch writes its
/// archives uncompressed, 64-byte aligned; ZIP64 records are followed when sizes need them).
struct ZipDirectory {
    let entries: [String: Range<Int>]

    init(_ raw: UnsafeRawBufferPointer) throws {
        func fail(_ reason: String) -> Unpickler.Failure { Unpickler.Failure(reason: "zip archive: " + reason) }
        func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
        func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        func u64(_ o: Int) throws -> Int {
            let v = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self))
            guard v <= UInt64(raw.count) else { throw fail("a ZIP64 value \(v) beyond the \(raw.count)-byte file") }
            return Int(v)
        }
        let n = raw.count
        guard n >= 22 else { throw fail("too short for an end-of-directory record") }
        // The end-of-central-directory record: within the last 64 KiB + 22 bytes (its comment).
        var eocd = -1
        var o = n - 22
        while o >= Swift.max(0, n - 22 - 65_535) {
            if u32(o) == 0x0605_4b50 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record") }
        var count = u16(eocd + 10), dirSize = u32(eocd + 12), dirOffset = u32(eocd + 16)
        if count == 0xFFFF || dirSize == 0xFFFF_FFFF || dirOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before points at the ZIP64 end record.
            guard eocd >= 20, u32(eocd - 20) == 0x0706_4b50 else { throw fail("ZIP64 sizes without a ZIP64 locator") }
            let record = try u64(eocd - 12)
            guard record <= n - 56, u32(record) == 0x0606_4b50 else { throw fail("no ZIP64 end record at \(record)") }
            count = try u64(record + 32); dirSize = try u64(record + 40); dirOffset = try u64(record + 48)
        }
        guard dirOffset <= n, dirSize <= n - dirOffset else { throw fail("the central directory lies outside the file") }
        guard count <= dirSize / 46 else { throw fail("\(count) entries cannot fit a \(dirSize)-byte directory") }
        var entries: [String: Range<Int>] = [:]
        var p = dirOffset
        for _ in 0..<count {
            guard p <= dirOffset + dirSize - 46, u32(p) == 0x0201_4b50 else { throw fail("a bad central directory entry at \(p)") }
            let method = u16(p + 10)
            var size = u32(p + 20), stored = u32(p + 24)
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32)
            var local = u32(p + 42)
            let end = p + 46 + nameLength + extraLength + commentLength
            guard end <= dirOffset + dirSize else { throw fail("an entry at \(p) runs past the directory") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: raw[(p + 46)..<(p + 46 + nameLength)]), as: UTF8.self)
            // ZIP64 extra field: the 8-byte values replace those saturated at 0xFFFFFFFF, in order.
            var e = p + 46 + nameLength
            while e + 4 <= p + 46 + nameLength + extraLength {
                let id = u16(e), length = u16(e + 2)
                guard e + 4 + length <= p + 46 + nameLength + extraLength else { throw fail("entry \(name): a bad extra field") }
                if id == 0x0001 {
                    var f = e + 4
                    func next() throws -> Int {
                        guard f + 8 <= e + 4 + length else { throw fail("entry \(name): a short ZIP64 field") }
                        defer { f += 8 }
                        return try u64(f)
                    }
                    if stored == 0xFFFF_FFFF { stored = try next() }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                e += 4 + length
            }
            guard method == 0 else { throw fail("entry \(name) is compressed (method \(method)); torch.save stores entries uncompressed") }
            guard size == stored else { throw fail("entry \(name) is stored with two sizes (\(size), \(stored))") }
            guard local <= n - 30, u32(local) == 0x0403_4b50 else { throw fail("entry \(name) has no local header at \(local)") }
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            guard start <= n, size <= n - start else { throw fail("entry \(name) (\(size) bytes at \(start)) runs past the file") }
            entries[name] = start..<(start + size)
            p = end
        }
        self.entries = entries
    }
}
