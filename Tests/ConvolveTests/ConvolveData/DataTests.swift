import Foundation
import Testing
import Convolve
import CConvolveSupport
@testable import ConvolveData

/// The real MNIST directory: `CONVOLVE_DATA_DIR`, else `../shared/datasets/mnist` beside the repo.
/// Where the tests find real MNIST, as a user's Convolve would: the data-directory setting
/// (`CONVOLVE_DATA_DIR`), else the cache, filled by a verified download where the network allows.
let realMNISTDirectory: String? = {
    if let d = ProcessInfo.processInfo.environment[DataLocation.environmentVariable], !d.isEmpty { return d }
    let location = DataLocation(readEnvironment: false)
    guard (try? location.load(.mnist, train: true, progress: false)) != nil,
          (try? location.load(.mnist, train: false, progress: false)) != nil else { return nil }
    return DataLocation.cacheRoot + "/" + DatasetKind.mnist.rawValue
}()

func mnistDirectory() -> String? { realMNISTDirectory }

/// CI sets `CONVOLVE_REQUIRE_DATA=1`: there a missing data set fails the real-data tests instead of
/// skipping them.
let realDataRequired = ProcessInfo.processInfo.environment["CONVOLVE_REQUIRE_DATA"] == "1"

/// The trait of every test on real MNIST: skipped, with the reason shown, where the data cannot be had.
let needsMNIST: ConditionTrait = .enabled(
    if: realMNISTDirectory != nil || realDataRequired,
    "real MNIST not found: set CONVOLVE_DATA_DIR to a directory with the four gzip IDX files, or allow the verified download into the cache")

/// Loads real MNIST once per process (both splits).
let realMNIST: (train: ImageDataset, test: ImageDataset)? = {
    guard let dir = mnistDirectory() else { return nil }
    guard let train = try? DatasetKind.mnist.load(train: true, directory: dir),
          let test = try? DatasetKind.mnist.load(train: false, directory: dir) else { return nil }
    return (train, test)
}()

func requireMNIST(sourceLocation: SourceLocation = #_sourceLocation) -> (train: ImageDataset, test: ImageDataset)? {
    if realMNIST == nil {
        Issue.record("real MNIST not found: set CONVOLVE_DATA_DIR to the directory with the four gzip IDX files",
                     sourceLocation: sourceLocation)
    }
    return realMNIST
}

/// A scratch directory removed at the end of the test.
final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "convolve-test-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let p = path + "/" + name
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }
}

/// Big-endian IDX bytes for a header plus raw element bytes.
func idxBytes(type: UInt8, shape: [Int], payload: [UInt8]) -> [UInt8] {
    var b: [UInt8] = [0, 0, type, UInt8(shape.count)]
    for d in shape { b += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
    return b + payload
}

/// A small synthetic MNIST-format pair: `n` images of h×w with labels i % 10.
func syntheticPair(_ dir: TempDir, n: Int = 20, h: Int = 4, w: Int = 3, gzip: Bool = true,
                   prefix: String = "train") -> (String, String) {
    let pixels = (0..<(n * h * w)).map { UInt8($0 % 256) }
    let labels = (0..<n).map { UInt8($0 % 10) }
    var img = idxBytes(type: 0x08, shape: [n, h, w], payload: pixels)
    var lab = idxBytes(type: 0x08, shape: [n], payload: labels)
    if gzip { img = Gzip.compress(img); lab = Gzip.compress(lab) }
    let ext = gzip ? ".gz" : ""
    return (dir.write("\(prefix)-images-idx3-ubyte\(ext)", img), dir.write("\(prefix)-labels-idx1-ubyte\(ext)", lab))
}

@Suite struct IDXTests {
    @Test(arguments: [false, true])
    func readsEveryElementType(gzip: Bool) throws {
        let dir = TempDir()
        // value 1, -2, 300, -70000, 1.5, -2.25 in each type's big-endian encoding
        let cases: [(UInt8, [UInt8], [Double])] = [
            (0x08, [1, 255], [1, 255]),
            (0x09, [1, 0xFE], [1, -2]),
            (0x0B, [0x01, 0x2C, 0xFF, 0xFE], [300, -2]),
            (0x0C, [0xFF, 0xFE, 0xEE, 0x90, 0, 0, 0, 7], [-70000, 7]),
            (0x0D, [0x3F, 0xC0, 0, 0, 0xC0, 0x10, 0, 0], [1.5, -2.25]),
            (0x0E, [0x3F, 0xF8, 0, 0, 0, 0, 0, 0, 0xC0, 0x02, 0, 0, 0, 0, 0, 0], [1.5, -2.25]),
        ]
        for (type, payload, expected) in cases {
            var bytes = idxBytes(type: type, shape: [2, 1], payload: payload)
            if gzip { bytes = Gzip.compress(bytes) }
            let arr = try IDX.read(dir.write("t\(type).idx", bytes))
            #expect(arr.shape == [2, 1])
            #expect((0..<2).map { arr.value(at: $0) } == expected, "type \(type)")
        }
        // rank 4 and rank 1
        let r4 = try IDX.read(dir.write("r4", idxBytes(type: 0x08, shape: [1, 2, 2, 2], payload: Array(0..<8))))
        #expect(r4.shape == [1, 2, 2, 2] && r4.bytes == Array(0..<8))
    }

    /// libdeflate's one-call inflate (used when installed; CI installs it) gives zlib's bytes, and every
    /// file it cannot take (several gzip members, a trailer that lies, corrupt data) streams through zlib.
    @Test(.enabled(if: convolve_gunzip_available() != 0 || realDataRequired,
                   "libdeflate is not installed (apt-get install libdeflate0): zlib streams every file"))
    func oneCallInflateMatchesZlibStreaming() throws {
        #expect(convolve_gunzip_available() != 0, "libdeflate.so.0 did not load")
        let dir = TempDir()
        let payload: [UInt8] = (0..<5000).map { (i: Int) -> UInt8 in UInt8(truncatingIfNeeded: i * 7 + i / 13) }
        let plain = idxBytes(type: 0x08, shape: [50, 10, 10], payload: payload)
        let gz = Gzip.compress(plain)
        let path = dir.write("one.gz", gz)
        func streamed(_ path: String) throws -> [UInt8] {
            let stream = try ByteStream(path: path)
            var out = [UInt8](repeating: 0, count: plain.count + 16)
            let n = try out.withUnsafeMutableBytes { try stream.read(into: $0.baseAddress!, count: $0.count) }
            return Array(out[0..<n])
        }
        let whole = try ByteStream(path: path, inflateWhole: true)
        #expect(whole.maxDecodedBytes == plain.count, "libdeflate did not inflate the file in one call")
        #expect(try streamed(path) == plain)
        #expect(try IDX.read(path).bytes == payload)
        // Two members: zlib reads the first only, so both paths stop at the same place.
        let twoMembers = dir.write("two.gz", gz + Gzip.compress([1, 2, 3]))
        #expect(try ByteStream(path: twoMembers, inflateWhole: true).maxDecodedBytes > plain.count + 3)
        #expect(try IDX.read(twoMembers).bytes == payload)
        // A trailer that declares fewer bytes than there are: zlib streams, with its own length check.
        var lying = gz; lying[lying.count - 4] &-= 1
        let lyingPath = dir.write("lying.gz", lying)
        #expect(try ByteStream(path: lyingPath, inflateWhole: true).maxDecodedBytes > plain.count)
        #expect(throws: DataError.self) { _ = try IDX.read(lyingPath) }
    }

    @Test func loadsSyntheticDatasetAndTransforms() throws {
        let dir = TempDir()
        // 4×3 images: a pair of IDX files of any image size (MNIST's loader requires 28×28).
        let (trainImages, trainLabels) = syntheticPair(dir, n: 20, prefix: "train")
        let (testImages, testLabels) = syntheticPair(dir, n: 10, gzip: false, prefix: "t10k")
        let classes = DatasetKind.mnist.classNames
        let train = try DatasetKind.loadPair(images: trainImages, labels: trainLabels, name: "tiny", classNames: classes)
        let test = try DatasetKind.loadPair(images: testImages, labels: testLabels, name: "tiny", classNames: classes)
        #expect(train.count == 20 && test.count == 10)
        #expect(train.sampleShape == [1, 4, 3])
        #expect(train.labelHistogram == [2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
        let (img, label) = train[1]
        #expect(label == 1 && img.shape == [1, 4, 3])
        #expect(abs(img.storage[0] - 12 / 255) < 1e-6)
        let norm = train.with(transform: Compose(ToTensor(), Normalize(mean: [0.5], std: [0.5])))
        #expect(abs(norm[1].image.storage[0] - (12 / 255 - 0.5) / 0.5) < 1e-6)
        let y = oneHot([2, 0], classes: 3)
        #expect(y.storage == [0, 0, 1, 1, 0, 0])
    }

    /// One bad file per case: each gives one clear DataError naming the file.
    @Test func badInputsGiveOneClearError() throws {
        let dir = TempDir()
        let good = idxBytes(type: 0x08, shape: [3, 2, 2], payload: Array(repeating: 7, count: 12))
        let labels = idxBytes(type: 0x08, shape: [3], payload: [1, 2, 3])
        let imgPath = dir.write("img", good), labPath = dir.write("lab", labels)

        func expectError(_ path: String, _ matches: (DataError) -> Bool, _ body: () throws -> Void) {
            do { try body(); Issue.record("no error for \(path)") }
            catch let e as DataError {
                #expect(matches(e), "unexpected error \(e)")
                #expect(e.description.contains(path), "message does not name \(path): \(e)")
            } catch { Issue.record("not a DataError: \(error)") }
        }
        let badMagic = dir.write("magic", [0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 5])
        expectError(badMagic, { if case .badMagic = $0 { true } else { false } }) { _ = try IDX.read(badMagic) }

        let truncated = dir.write("trunc", Array(good.dropLast(5)))
        expectError(truncated, { if case .truncated = $0 { true } else { false } }) { _ = try IDX.read(truncated) }

        let truncatedGz = dir.write("trunc.gz", Array(Gzip.compress(good).dropLast(12)))
        expectError(truncatedGz, { e in if case .corruptGzip = e { true } else if case .truncated = e { true } else { false } }) {
            _ = try IDX.read(truncatedGz)
        }

        var gz = Gzip.compress(good)
        for i in 12..<min(gz.count - 8, 20) { gz[i] ^= 0x5A }
        let corrupt = dir.write("corrupt.gz", gz)
        expectError(corrupt, { if case .corruptGzip = $0 { true } else { false } }) { _ = try IDX.read(corrupt) }

        let fewLabels = dir.write("few", idxBytes(type: 0x08, shape: [2], payload: [1, 2]))
        expectError(fewLabels, { if case .countMismatch = $0 { true } else { false } }) {
            _ = try DatasetKind.loadPair(images: imgPath, labels: fewLabels, name: "x", classNames: DatasetKind.mnist.classNames)
        }
        let badLabel = dir.write("badlabel", idxBytes(type: 0x08, shape: [3], payload: [1, 12, 3]))
        expectError(badLabel, { if case .labelOutOfRange(_, 1, 12, 10) = $0 { true } else { false } }) {
            _ = try DatasetKind.loadPair(images: imgPath, labels: badLabel, name: "x", classNames: DatasetKind.mnist.classNames)
        }
        let missing = dir.path + "/nowhere"
        expectError(missing, { if case .unreadable = $0 { true } else { false } }) {
            _ = try DatasetKind.mnist.load(train: true, directory: missing)
        }
        expectError(dir.path, { if case .missingData = $0 { true } else { false } }) {
            _ = try DatasetKind.mnist.load(train: true, directory: dir.path)
        }
        expectError(dir.path, { if case .unreadable = $0 { true } else { false } }) { _ = try IDX.read(dir.path) }
        _ = labPath
    }
}

@Suite struct DataLoaderTests {
    func dataset(_ n: Int) -> TensorDataset {
        TensorDataset(Tensor((0..<n).map(Float.init), shape: [n, 1]), (0..<n).map { $0 % 10 })
    }

    @Test func coversEveryIndexOncePerEpochAndIsDeterministic() {
        let ds = dataset(103)
        let a = DataLoader(ds, batchSize: 10, shuffle: true, seed: 42)
        let b = DataLoader(ds, batchSize: 10, shuffle: true, seed: 42)
        #expect(a.count == 11)
        var epochs: [[Float]] = []
        for _ in 0..<2 {
            var seen: [Float] = []
            var seenB: [Float] = []
            for ((x, y), (xb, _)) in zip(a, b) {
                seen += x.storage
                seenB += xb.storage
                #expect(zip(x.storage, y).allSatisfy { Int($0) % 10 == $1 })
            }
            #expect(seen.sorted() == (0..<103).map(Float.init))
            #expect(seen == seenB)
            epochs.append(seen)
        }
        #expect(epochs[0] != epochs[1], "each epoch should reshuffle")
        #expect(epochs[0] != (0..<103).map(Float.init))
    }

    @Test func dropLastAndNoShuffleAndPrefetchAgree() {
        let ds = dataset(103)
        let d = DataLoader(ds, batchSize: 10, dropLast: true)
        #expect(d.count == 10)
        let batches = Array(d)
        #expect(batches.count == 10 && batches.allSatisfy { $0.0.shape == [10, 1] })
        #expect(batches[0].0.storage == (0..<10).map(Float.init))
        let noPrefetch = DataLoader(ds, batchSize: 7, shuffle: true, seed: 3, prefetch: false)
        let withPrefetch = DataLoader(ds, batchSize: 7, shuffle: true, seed: 3)
        #expect(Array(noPrefetch).map(\.1) == Array(withPrefetch).map(\.1))
    }

    @Test func splitIsDeterministicAndDisjoint() {
        let ds = dataset(50)
        let (tr, va) = ds.split(validationFraction: 0.2, seed: 1)
        let (tr2, _) = ds.split(validationFraction: 0.2, seed: 1)
        #expect(tr.count == 40 && va.count == 10 && tr.indices == tr2.indices)
        #expect(Set(tr.indices).isDisjoint(with: va.indices))
    }
}

@Suite struct PackedImagesTests {
    /// Images that test every segment boundary: all zero, all 255, zero and literal runs longer than a
    /// segment holds (255), single pixels, alternation, an odd size (not a multiple of the 8-byte steps).
    static func awkwardImages(size: Int) -> [[UInt8]] {
        let rng = RandomGenerator(seed: 9)
        return [
            [UInt8](repeating: 0, count: size), [UInt8](repeating: 255, count: size),
            (0..<size).map { $0 % 2 == 0 ? 0 : UInt8(1 + $0 % 200) },
            (0..<size).map { $0 < 600 ? 0 : 7 }, (0..<size).map { $0 < 600 ? 9 : 0 },
            (0..<size).map { $0 == size / 2 ? 1 : 0 }, (0..<size).map { $0 == 0 || $0 == size - 1 ? 3 : 0 },
            (0..<size).map { _ in rng.nextInt(3) == 0 ? UInt8(rng.nextInt(256)) : 0 },
            (0..<size).map { $0 % 300 < 270 ? UInt8(1 + $0 % 254) : 0 },
        ]
    }

    @Test(arguments: [784, 781, 3 * 17 * 19])
    func packingKeepsEveryByteAndBatch(size: Int) {
        let images = Self.awkwardImages(size: size)
        let (c, h, w) = size == 784 ? (1, 28, 28) : size == 781 ? (1, 11, 71) : (3, 17, 19)
        let dense = ImageDataset(name: "awkward", pixels: Array(images.joined()), labels: (0..<images.count).map { UInt8($0) },
                                 channels: c, height: h, width: w, classNames: (0..<images.count).map(String.init))
        let packed = ImageDataset(name: "awkward", pixelStore: .packed(
            Array(images.joined()).withUnsafeBufferPointer { PackedImages($0, imageSize: size, count: images.count) }),
            labels: dense.labels, channels: c, height: h, width: w, classNames: dense.classNames, transform: ToTensor())
        for (i, image) in images.enumerated() { #expect(packed.pixels(ofImage: i) == image, "image \(i)") }
        #expect(Array(packed.pixels) == Array(dense.pixels))
        let order = [4, 0, 8, 8, 2, 7, 1, 6, 3, 5]
        let (a, la) = dense.batch(order), (b, lb) = packed.batch(order)
        #expect(a.storage == b.storage && la == lb)
        #expect(packed.prefix(3).count == 3 && Array(packed.prefix(3).pixels) == Array(dense.prefix(3).pixels))
        #expect(packed.channelStatistics().mean == dense.channelStatistics().mean)
    }

    /// `packed()` keeps a dataset dense where packing saves too little (random bytes: CIFAR-like).
    @Test func packingOnlyWhereItPays() {
        let rng = RandomGenerator(seed: 4)
        let noisy = ImageDataset(name: "noise", pixels: (0..<(20 * 3072)).map { _ in UInt8(rng.nextInt(256)) },
                                 labels: [UInt8](repeating: 0, count: 20), channels: 3, height: 32, width: 32, classNames: ["a"])
        #expect(!noisy.packed().isPacked)
        let sparse = ImageDataset(name: "sparse", pixels: Array(Self.awkwardImages(size: 784).joined()),
                                  labels: [UInt8](repeating: 0, count: 9), channels: 1, height: 28, width: 28, classNames: ["a"])
        #expect(sparse.packed().isPacked)
    }
}

@Suite struct RealMNISTTests {
    /// MNIST-format datasets load packed: every image decodes to the IDX file's own bytes, in a quarter
    /// of the memory.
    @Test(needsMNIST) func mnistIsHeldPackedAndDecodesToTheFilesBytes() throws {
        guard let (train, test) = requireMNIST(), let dir = mnistDirectory() else { return }
        #expect(train.isPacked && test.isPacked)
        let file = try IDX.read(dir + "/t10k-images-idx3-ubyte.gz")
        #expect(Array(test.pixels) == file.bytes)
        guard case .packed(let packed) = train.pixelStore else { return }
        #expect(packed.bytes.count < 60_000 * 784 / 3, "packed MNIST: \(packed.bytes.count) bytes")
    }


    @Test(needsMNIST) func countsHistogramsAndPixelStatistics() throws {
        guard let (train, test) = requireMNIST() else { return }
        #expect(train.count == 60000 && test.count == 10000)
        #expect(train.labelHistogram == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
        #expect(test.labelHistogram == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
        var sum: Double = 0, sumSq: Double = 0
        let pixels = train.pixels
        for p in pixels { let v = Double(p) / 255; sum += v; sumSq += v * v }
        let n = Double(pixels.count)
        let mean = sum / n, std = (sumSq / n - mean * mean).squareRoot()
        #expect(abs(mean - 0.1307) < 5e-5, "mean \(mean)")
        #expect(abs(std - 0.3081) < 5e-5, "std \(std)")
        let loader = DataLoader(train, batchSize: 64, shuffle: true, seed: 0)
        #expect(loader.count == 938)
        var it = loader.makeIterator()
        let (images, labels) = it.next()!
        #expect(images.shape == [64, 1, 28, 28] && labels.count == 64)
    }
}

@Suite(.serialized) struct DownloadTests {
    @Test func sha256KnownVectors() {
        var h = SHA256(); h.update(Array("abc".utf8))
        #expect(h.hexDigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256().hexDigest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var long = SHA256(); long.update([UInt8](repeating: 0x61, count: 1000))
        #expect(long.hexDigest() == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test func fallsBackAcrossMirrorsAndVerifies() throws {
        let payload = Array((0..<5000).map { UInt8($0 % 251) })
        var hasher = SHA256(); hasher.update(payload)
        let digest = hasher.hexDigest()
        var corrupted = payload; corrupted[100] ^= 1
        let server = try TestHTTPServer(routes: [
            "/corrupt/f.gz": .init(status: 200, body: corrupted),
            "/trunc/f.gz": .init(status: 200, body: Array(payload[0..<1000]), declaredLength: payload.count),
            "/good/f.gz": .init(status: 200, body: payload),
        ])
        defer { server.stop() }
        let dir = TempDir()
        let mirrors = ["missing", "corrupt", "trunc", "good"].map { server.base + "/" + $0 + "/" }
        try Downloader(progress: false, timeout: 10).fetch("f.gz", mirrors: mirrors, sha256: digest, into: dir.path)
        #expect(FileManager.default.contents(atPath: dir.path + "/f.gz") == Data(payload))
        // Every mirror was tried, in order, ending with the good one (a client may retry a request).
        let firstSeen = server.requests.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        #expect(firstSeen == ["/missing/f.gz", "/corrupt/f.gz", "/trunc/f.gz", "/good/f.gz"])
        // No partial files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["f.gz"])
    }

    @Test func allMirrorsFailingLeavesNothingAndSaysWhy() throws {
        let server = try TestHTTPServer(routes: ["/bad/f.gz": .init(status: 200, body: [1, 2, 3])])
        defer { server.stop() }
        let dir = TempDir()
        do {
            try Downloader(progress: false, timeout: 10).fetch("f.gz", mirrors: [server.base + "/bad/", server.base + "/none/"],
                                                              sha256: String(repeating: "0", count: 64), into: dir.path)
            Issue.record("expected failure")
        } catch let e as DataError {
            #expect(e.description.contains("SHA-256 mismatch") && e.description.contains("HTTP 404"), "\(e)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func dataLocationDownloadsIntoCacheThenLoads() throws {
        let dir = TempDir()
        let src = TempDir()
        _ = syntheticPair(src, n: 12, h: 28, w: 28, prefix: "t10k")
        let names = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        var routes: [String: TestHTTPServer.Route] = [:], sums: [String: String] = [:]
        for name in names {
            let bytes = [UInt8](FileManager.default.contents(atPath: src.path + "/" + name)!)
            routes["/m/" + name] = .init(status: 200, body: bytes)
            var h = SHA256(); h.update(bytes); sums[name] = h.hexDigest()
        }
        let server = try TestHTTPServer(routes: routes)
        setenv("XDG_CACHE_HOME", dir.path, 1)
        defer { unsetenv("XDG_CACHE_HOME") }
        let cache = DataLocation(directory: nil, readEnvironment: false)
        #expect(cache.directory == nil)
        // The real MNIST checksums do not match these synthetic files: a clear failure, nothing cached.
        do {
            _ = try cache.load(.mnist, train: false, mirrors: [server.base + "/m/"], progress: false)
            Issue.record("a checksum mismatch was accepted")
        } catch let e as DataError {
            #expect(e.description.contains("SHA-256 mismatch") && e.description.contains(dir.path + "/convolve/mnist"), "\(e)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/convolve/mnist/" + names[0]))
        // With the right checksums the files land in the cache and load.
        let ds = try cache.load(.mnist, train: false, mirrors: [server.base + "/m/"], checksums: sums, progress: false)
        #expect(ds.count == 12)
        server.stop()
        // Offline now: the cache is used without touching the network.
        let again = try cache.load(.mnist, train: false, mirrors: [server.base + "/m/"], progress: false)
        #expect(again.count == 12)
    }

    @Test func cifarDownloadsIntoTheCacheVerifiedThenLoads() throws {
        let dir = TempDir()
        let archive = cifarArchive()
        var h = SHA256(); h.update(archive)
        let server = try TestHTTPServer(routes: ["/c/cifar-10-binary.tar.gz": .init(status: 200, body: archive)])
        defer { server.stop() }
        setenv("XDG_CACHE_HOME", dir.path, 1)
        defer { unsetenv("XDG_CACHE_HOME") }
        // The published checksums do not match a generated archive: refused, nothing cached.
        let wrong = DataLocation(readEnvironment: false, mirrors: [server.base + "/c/"])
        #expect { try CIFAR.cifar10.load(train: false, from: wrong, progress: false) } throws: {
            "\($0)".contains("SHA-256 mismatch") && "\($0)".contains(dir.path + "/convolve/cifar10")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/convolve/cifar10/cifar-10-binary.tar.gz"))
        let right = DataLocation(readEnvironment: false, mirrors: [server.base + "/missing/", server.base + "/c/"],
                                 checksums: ["cifar-10-binary.tar.gz": h.hexDigest()])
        #expect(try CIFAR.cifar10.load(train: false, from: right, progress: false).count == 4)
        #expect(FileManager.default.fileExists(atPath: dir.path + "/convolve/cifar10/cifar-10-binary.tar.gz"))
    }
}
