import Foundation
import Testing
import Convolve
import ConvolveIO
@testable import ConvolveData

/// A POSIX ustar archive of `members` (what `tar -cf` writes), for tests.
func tarArchive(_ members: [(name: String, bytes: [UInt8])]) -> [UInt8] {
    var out: [UInt8] = []
    for (name, bytes) in members {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int) { for (i, b) in text.utf8.enumerated() { header[offset + i] = b } }
        put(name, at: 0)
        put("0000644", at: 100); put("0000000", at: 108); put("0000000", at: 116)
        put(String(format: "%011o", bytes.count), at: 124)
        put("00000000000", at: 136)
        header[156] = UInt8(ascii: "0")
        put("ustar", at: 257); put("00", at: 263)
        for i in 148..<156 { header[i] = 32 }
        let sum = header.reduce(0) { $0 + Int($1) }
        put(String(format: "%06o", sum), at: 148); header[154] = 0; header[155] = 32
        out += header + bytes + [UInt8](repeating: 0, count: (512 - bytes.count % 512) % 512)
    }
    return out + [UInt8](repeating: 0, count: 1024)
}

/// CIFAR-10 records: label byte, then 1,024 red, 1,024 green and 1,024 blue bytes; pixel values
/// encode (record, channel) so the layout can be checked.
func cifarRecords(_ labels: [UInt8], seed: Int) -> [UInt8] {
    var out: [UInt8] = []
    for (i, label) in labels.enumerated() {
        out.append(label)
        for c in 0..<3 { for p in 0..<1024 { out.append(UInt8(truncatingIfNeeded: (seed + i) * 7 + c * 50 + p % 13)) } }
    }
    return out
}

/// A CIFAR-10 binary archive in the exact layout of `cifar-10-binary.tar.gz`, with `perBatch` records
/// in each of the five training batches and the test batch.
func cifarArchive(perBatch: Int = 4, classNames: String = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n")
    -> [UInt8] {
    var members: [(name: String, bytes: [UInt8])] = [("cifar-10-batches-bin/batches.meta.txt", Array(classNames.utf8))]
    for b in 1...5 {
        members.append(("cifar-10-batches-bin/data_batch_\(b).bin",
                        cifarRecords((0..<perBatch).map { UInt8(($0 + b) % 10) }, seed: b * 100)))
    }
    members.append(("cifar-10-batches-bin/test_batch.bin", cifarRecords((0..<perBatch).map { UInt8($0 % 10) }, seed: 999)))
    members.append(("cifar-10-batches-bin/readme.html", Array("<html></html>".utf8)))
    return Gzip.compress(tarArchive(members))
}

@Suite struct CIFARTests {
    @Test func readsTheBinaryArchiveLayout() throws {
        let dir = TempDir()
        _ = dir.write("cifar-10-binary.tar.gz", cifarArchive())
        let train = try CIFAR.cifar10.load(train: true, directory: dir.path)
        let test = try CIFAR.cifar10.load(train: false, directory: dir.path)
        #expect(train.count == 20 && test.count == 4)
        #expect(train.sampleShape == [3, 32, 32] && train.classNames[3] == "cat" && train.classNames.count == 10)
        // Record 1 of batch 2: label (1 + 2) % 10; its red plane starts with (200 + 1) * 7, green 50 higher.
        let i = 4 + 1, plane = 1024
        #expect(train.labels[i] == 3)
        #expect(train.pixels[i * 3 * plane] == UInt8(truncatingIfNeeded: 201 * 7))
        #expect(train.pixels[i * 3 * plane + plane] == UInt8(truncatingIfNeeded: 201 * 7 + 50))
        #expect(train.pixels[i * 3 * plane + 2 * plane + 5] == UInt8(truncatingIfNeeded: 201 * 7 + 100 + 5))
        #expect(test.labels.map { Int($0) } == [0, 1, 2, 3])
        // The extracted folder reads the same.
        let extracted = TempDir()
        try FileManager.default.createDirectory(atPath: extracted.path + "/cifar10/cifar-10-batches-bin", withIntermediateDirectories: true)
        for b in 1...5 {
            _ = extracted.write("cifar10/cifar-10-batches-bin/data_batch_\(b).bin",
                                cifarRecords((0..<4).map { UInt8(($0 + b) % 10) }, seed: b * 100))
        }
        _ = extracted.write("cifar10/cifar-10-batches-bin/test_batch.bin", cifarRecords((0..<4).map { UInt8($0 % 10) }, seed: 999))
        let again = try CIFAR.cifar10.load(train: true, directory: extracted.path)
        #expect(again.pixels == train.pixels && again.labels == train.labels)
    }

    @Test func badArchivesAndRecordFilesNameTheFile() throws {
        let dir = TempDir()
        func failure(_ bytes: [UInt8]) -> String {
            _ = dir.write("cifar-10-binary.tar.gz", bytes)
            do { _ = try CIFAR.cifar10.load(train: true, directory: dir.path); return "loaded" } catch { return "\(error)" }
        }
        let archive = dir.path + "/cifar-10-binary.tar.gz"
        // Not a tar archive at all (gzip of text), not gzip, truncated gzip.
        #expect(failure(Gzip.compress(Array(String(repeating: "not a tar ", count: 100).utf8))).contains("not a valid tar archive"))
        #expect(failure(Array("plain text".utf8)).hasPrefix(archive))
        let whole = cifarArchive()
        #expect(failure(Array(whole.prefix(whole.count / 2))).hasPrefix(archive))
        // A record file with a partial record.
        var members: [(name: String, bytes: [UInt8])] = []
        for b in 1...5 { members.append(("cifar-10-batches-bin/data_batch_\(b).bin", cifarRecords([1, 2], seed: b))) }
        members[2].bytes.removeLast(7)
        members.append(("cifar-10-batches-bin/test_batch.bin", cifarRecords([1], seed: 0)))
        let partial = failure(Gzip.compress(tarArchive(members)))
        #expect(partial.contains("data_batch_3.bin") && partial.contains("not a whole number of 3073-byte"), "\(partial)")
        // A label outside 0..<10, a member missing, a wrong class list.
        members[2].bytes = cifarRecords([1, 12], seed: 3)
        #expect(failure(Gzip.compress(tarArchive(members))).contains("label 12"))
        #expect(failure(Gzip.compress(tarArchive(Array(members.dropFirst()))))
            .contains("no cifar-10-batches-bin/data_batch_1.bin"))
        #expect(failure(cifarArchive(classNames: "a\nb\n")).contains("lists 2 class names"))
        // Nothing there at all.
        let empty = TempDir()
        #expect(throws: DataError.self) { try CIFAR.cifar10.load(train: true, directory: empty.path) }
    }

    @Test func md5KnownVectors() {
        func md5(_ s: String) -> String { var h = MD5(); h.update(Array(s.utf8)); return h.hexDigest() }
        #expect(md5("") == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(md5("abc") == "900150983cd24fb0d6963f7d28e17f72")
        #expect(md5(String(repeating: "1234567890", count: 8)) == "57edf4a22be3c955ac49da2e2107b67a")
    }
}
