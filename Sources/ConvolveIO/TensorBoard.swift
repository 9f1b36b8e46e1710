import Foundation

/// Writes TensorBoard event files (`events.out.tfevents.<time>.<host>.<pid>.<n>`), as
/// `torch.utils.tensorboard.SummaryWriter` does: TFRecord framing (length, masked CRC-32C of the
/// length, data, masked CRC-32C of the data) around `Event` protocol buffers, the first one holding
/// `file_version: "brain.Event:2"`. Scalars, images (PNG bytes) and histograms are `Summary` values.
///
/// An event file is an append-only log that TensorBoard reads while it grows, so it is appended to and
/// flushed (`flush()`), not written through a temporary file; a run cut short leaves every whole record
/// readable.
///
/// ```swift
/// let writer = try SummaryWriter(logDir: "runs/exp1")
/// writer.addScalar("loss/train", 0.31, step: 100)
/// try writer.flush()
/// ```
public final class SummaryWriter {
    /// The event file being written.
    public let path: String
    private let handle: FileHandle
    private var pending = [UInt8]()

    /// - Parameters:
    ///   - logDir: the run's directory (created if needed); TensorBoard is pointed at it or a parent.
    ///   - suffix: appended to the file name.
    public init(logDir: String, suffix: String = "") throws {
        do { try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true) }
        catch { throw IOError(path: logDir, reason: "cannot create the TensorBoard directory: \(error.localizedDescription)") }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        var n = 0
        var candidate: String
        repeat {
            candidate = logDir + "/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid()).\(n)" + suffix
            n += 1
        } while FileManager.default.fileExists(atPath: candidate)
        path = candidate
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw IOError(path: path, reason: "cannot create the event file")
        }
        handle = h
        var event = Protobuf()
        event.double(1, Date().timeIntervalSince1970)
        event.string(3, "brain.Event:2")
        record(event.bytes)
        try flush()
    }

    deinit { try? flush(); try? handle.close() }

    /// A scalar (`add_scalar`).
    /// - Parameters:
    ///   - tag: the chart's name; `a/b` groups charts under `a`.
    ///   - value: the value.
    ///   - step: the x coordinate (a global step or an epoch).
    ///   - wallTime: seconds since 1970 (default: now).
    public func addScalar(_ tag: String, _ value: Double, step: Int, wallTime: Double? = nil) {
        var v = Protobuf()
        v.string(1, tag)
        v.float(2, Float(value))
        summary([v], step: step, wallTime: wallTime)
    }

    /// An image, given as PNG bytes (`add_image`).
    /// - Parameters:
    ///   - tag: the image's name.
    ///   - png: the encoded image.
    ///   - width: its width in pixels.
    ///   - height: its height in pixels.
    ///   - channels: 1 (grey), 3 (RGB) or 4 (RGBA).
    ///   - step: the step the slider shows.
    public func addImage(_ tag: String, png: [UInt8], width: Int, height: Int, channels: Int, step: Int) {
        var image = Protobuf()
        image.int(1, height)
        image.int(2, width)
        image.int(3, channels)
        image.bytes(4, png)
        var v = Protobuf()
        v.string(1, tag)
        v.message(4, image)
        summary([v], step: step, wallTime: nil)
    }

    /// Text (`add_text`), shown in TensorBoard's text tab.
    /// - Parameters:
    ///   - tag: the text's name.
    ///   - text: the text (Markdown).
    ///   - step: the step it belongs to.
    public func addText(_ tag: String, _ text: String, step: Int) {
        // A string tensor (dtype DT_STRING = 7, shape [1]) with the "text" plugin's metadata.
        var plugin = Protobuf(); plugin.string(1, "text")
        var metadata = Protobuf(); metadata.message(1, plugin)
        var dim = Protobuf(); dim.int(1, 1)
        var shape = Protobuf(); shape.message(2, dim)
        var tensor = Protobuf(); tensor.int(1, 7); tensor.message(2, shape); tensor.string(8, text)
        var v = Protobuf()
        v.string(1, tag)
        v.message(9, metadata)
        v.message(8, tensor)
        summary([v], step: step, wallTime: nil)
    }

    /// A histogram of `values` (`add_histogram`), in buckets whose edges grow geometrically away from
    /// zero, as TensorFlow's default histogram does.
    /// - Parameters:
    ///   - tag: the histogram's name.
    ///   - values: the samples (NaNs are skipped).
    ///   - step: the step it belongs to.
    public func addHistogram(_ tag: String, _ values: [Float], step: Int) {
        let finite = values.filter { $0.isFinite }.map(Double.init)
        guard let lo = finite.min(), let hi = finite.max() else { return }
        let edges = Self.bucketEdges
        var counts = [Double](repeating: 0, count: edges.count)
        for x in finite {
            var a = 0, b = edges.count - 1          // first edge ≥ x
            while a < b { let m = (a + b) / 2; if edges[m] < x { a = m + 1 } else { b = m } }
            counts[a] += 1
        }
        // Keep the buckets from the first to the last non-empty one.
        let first = counts.firstIndex { $0 > 0 } ?? 0, last = counts.lastIndex { $0 > 0 } ?? 0
        var h = Protobuf()
        h.double(1, lo); h.double(2, hi); h.double(3, Double(finite.count))
        h.double(4, finite.reduce(0, +)); h.double(5, finite.reduce(0) { $0 + $1 * $1 })
        h.packedDoubles(6, Array(edges[first...last]))
        h.packedDoubles(7, Array(counts[first...last]))
        var v = Protobuf()
        v.string(1, tag)
        v.message(5, h)
        summary([v], step: step, wallTime: nil)
    }

    /// Writes the records so far to the file (TensorBoard then shows them).
    public func flush() throws {
        guard !pending.isEmpty else { return }
        do { try handle.write(contentsOf: Data(pending)) }
        catch { throw IOError(path: path, reason: "cannot write: \(error.localizedDescription)") }
        pending.removeAll(keepingCapacity: true)
    }

    /// TensorFlow's default bucket edges: ±1e-12 · 1.1^k up to 1e20, and +∞ (DBL_MAX).
    static let bucketEdges: [Double] = {
        var positive: [Double] = []
        var v = 1e-12
        while v < 1e20 { positive.append(v); v *= 1.1 }
        return positive.reversed().map { -$0 } + [0] + positive + [Double.greatestFiniteMagnitude]
    }()

    private func summary(_ values: [Protobuf], step: Int, wallTime: Double?) {
        var s = Protobuf()
        for v in values { s.message(1, v) }
        var event = Protobuf()
        event.double(1, wallTime ?? Date().timeIntervalSince1970)
        event.int(2, step)
        event.message(5, s)
        record(event.bytes)
    }

    /// One TFRecord: length, masked CRC of the length, data, masked CRC of the data.
    private func record(_ data: [UInt8]) {
        var length = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { length[i] = UInt8(truncatingIfNeeded: UInt64(data.count) >> (8 * UInt64(i))) }
        pending += length
        pending += Self.littleEndian(CRC32C.masked(length))
        pending += data
        pending += Self.littleEndian(CRC32C.masked(data))
    }

    static func littleEndian(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
}

/// CRC-32C (Castagnoli), the checksum of TFRecord framing, and its "masked" form.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// - Parameter bytes: the data.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// TFRecord's masked CRC: rotated right by 15 bits plus a constant.
    /// - Parameter bytes: the data.
    public static func masked(_ bytes: [UInt8]) -> UInt32 {
        let c = checksum(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}

/// A protocol-buffer message being encoded: the few wire types the event format needs.
struct Protobuf {
    private(set) var bytes: [UInt8] = []
    private mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    private mutating func key(_ field: Int, _ wire: UInt64) { varint(UInt64(field) << 3 | wire) }
    mutating func int(_ field: Int, _ v: Int) { key(field, 0); varint(UInt64(bitPattern: Int64(v))) }
    mutating func double(_ field: Int, _ v: Double) {
        key(field, 1)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt64(i)))) }
    }
    mutating func float(_ field: Int, _ v: Float) {
        key(field, 5)
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt32(i)))) }
    }
    mutating func bytes(_ field: Int, _ b: [UInt8]) { key(field, 2); varint(UInt64(b.count)); bytes += b }
    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ m: Protobuf) { bytes(field, m.bytes) }
    mutating func packedDoubles(_ field: Int, _ values: [Double]) {
        var body = Protobuf()
        for v in values { for i in 0..<8 { body.bytes.append(UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt64(i)))) } }
        bytes(field, body.bytes)
    }
}
