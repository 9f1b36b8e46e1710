import Foundation
import Testing
@testable import ConvolveIO

@Suite struct TensorBoardTests {
    @Test func crc32cKnownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    }

    /// Splits a TFRecord file into records, checking both masked CRCs of each.
    static func records(_ bytes: [UInt8]) -> [[UInt8]]? {
        var out: [[UInt8]] = [], pos = 0
        func u32(_ p: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[p + $1]) << (8 * UInt32($1)) } }
        while pos < bytes.count {
            guard pos + 12 <= bytes.count else { return nil }
            let header = Array(bytes[pos..<(pos + 8)])
            let length = Int((0..<8).reduce(UInt64(0)) { $0 | UInt64(header[$1]) << (8 * UInt64($1)) })
            guard u32(pos + 8) == CRC32C.masked(header), pos + 16 + length <= bytes.count else { return nil }
            let data = Array(bytes[(pos + 12)..<(pos + 12 + length)])
            guard u32(pos + 12 + length) == CRC32C.masked(data) else { return nil }
            out.append(data)
            pos += 16 + length
        }
        return out
    }

    @Test func eventFileHasTheVersionRecordThenOneRecordPerSummary() throws {
        let dir = NSTemporaryDirectory() + "tb-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try SummaryWriter(logDir: dir)
        writer.addScalar("loss", 0.5, step: 3)
        writer.addHistogram("w", [-1, 0, 0.5, 2, .nan], step: 3)
        writer.addImage("x", png: [1, 2, 3], width: 1, height: 1, channels: 1, step: 3)
        try writer.flush()
        #expect(writer.path.contains("/events.out.tfevents."))
        let recs = try #require(Self.records([UInt8](try Data(contentsOf: URL(fileURLWithPath: writer.path)))))
        #expect(recs.count == 4)
        #expect(String(decoding: recs[0], as: UTF8.self).contains("brain.Event:2"))
        // Event{wall_time=1, step=2: 3, summary=5 {value=1 {tag=1 "loss", simple_value=2: 0.5}}}
        let scalar = recs[1]
        #expect(scalar.count > 9 && scalar[9] == 0x10 && scalar[10] == 3, "step field")
        let tail = Array(scalar.suffix(11))
        #expect(tail == [0x0A, 0x04] + Array("loss".utf8) + [0x15] + Array(withUnsafeBytes(of: Float(0.5).bitPattern.littleEndian, Array.init)))
    }

    @Test func histogramBucketsCountEveryFiniteValue() throws {
        let edges = SummaryWriter.bucketEdges
        #expect(edges.first! < -1e19 && edges.last! == .greatestFiniteMagnitude && edges.contains(0))
        #expect(zip(edges, edges.dropFirst()).allSatisfy { $0 < $1 })
    }
}
