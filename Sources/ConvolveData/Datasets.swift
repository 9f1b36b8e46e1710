import Foundation
import Convolve

/// Anything a `DataLoader` can batch: `count` samples of one float shape with integer labels.
public protocol BatchSource {
    /// Number of samples.
    var count: Int { get }
    /// Shape of one sample (e.g. `[1, 28, 28]`).
    var sampleShape: [Int] { get }
    /// Number of label classes.
    var classCount: Int { get }
    /// Writes samples `indices` (as floats, before any transform) into `buffer` and their labels.
    /// - Parameters:
    ///   - indices: sample positions.
    ///   - buffer: room for `indices.count` samples of `sampleShape`.
    ///   - labels: receives one label per sample (as many slots as indices).
    func fill(_ indices: ArraySlice<Int>, into buffer: UnsafeMutablePointer<Float>, labels: inout [Int])
    /// Per-batch transform the loader applies after `fill` (e.g. ToTensor + Normalize), if any.
    var transform: (any Transform)? { get }
}

extension BatchSource {
    public var transform: (any Transform)? { nil }

    /// Sample `i` as a `[C, H, W]` tensor (transformed) and its label.
    public subscript(_ i: Int) -> (image: Tensor, label: Int) {
        let (x, y) = batch([i])
        return (x.reshape(sampleShape), y[0])
    }

    /// Samples `indices` as a `[N, ...]` tensor (transformed) and labels.
    ///
    /// - Parameters:
    ///   - indices: sample positions.
    ///   - seed: seeds the random transforms (augmentation) of this batch; nil: drawn from the default generator.
    public func batch(_ indices: [Int], seed: UInt64? = nil) -> (Tensor, [Int]) {
        let per = sampleShape.reduce(1, *)
        var buf = [Float](repeating: 0, count: indices.count * per)
        var labels = [Int](repeating: 0, count: indices.count)
        var generator = Xoshiro256StarStar(seed: seed ?? (transform?.isRandom == true ? RandomGenerator.global.next() : 0))
        buf.withUnsafeMutableBufferPointer { b in
            fill(indices[...], into: b.baseAddress!, labels: &labels)
            transform?.apply(b, shape: [indices.count] + sampleShape, generator: &generator)
        }
        return (Tensor(buf, shape: [indices.count] + sampleShape), labels)
    }
}

/// An image classification dataset held as bytes (`N×C×H×W` pixels 0…255) with byte labels,
/// like `torchvision.datasets.MNIST`. Pixels become floats only when a batch is built. The MNIST-format
/// datasets hold their images packed (`packed()`: zero runs squeezed out, a quarter of the memory).
public struct ImageDataset: BatchSource, Sendable {
    /// Dataset name (e.g. "MNIST").
    public let name: String
    /// The pixel bytes as given, or packed (`PackedImages`; it may hold more images than `count`).
    enum Storage: Sendable {
        case dense(ArraySlice<UInt8>)
        case packed(PackedImages)
    }
    let pixelStore: Storage
    /// Pixels, `count × channels × height × width`, row-major (indices start at 0). For a packed
    /// dataset this decodes every image: read single images with `pixels(ofImage:)`.
    public var pixels: ArraySlice<UInt8> {
        switch pixelStore {
        case .dense(let dense): return dense
        case .packed(let packed):
            let per = channels * height * width
            return [UInt8](unsafeUninitializedCapacity: count * per) { out, filled in
                for i in 0..<count { packed.decode(i, into: out.baseAddress! + i * per, zero: 0) { $0 } }
                filled = count * per
            }[...]
        }
    }
    /// Class index of each image.
    public let labels: ArraySlice<UInt8>
    public let channels: Int, height: Int, width: Int
    /// Human-readable class names; `classNames[label]`.
    public let classNames: [String]
    /// Applied by loaders to each batch (default: ToTensor, i.e. /255).
    public var transform: (any Transform)?

    /// - Parameters:
    ///   - name: shown in messages.
    ///   - pixels: `count × channels × height × width` bytes, row-major (CHW per image).
    ///   - labels: one class index per image.
    ///   - channels: channels per image.
    ///   - height: image height.
    ///   - width: image width.
    ///   - classNames: a name per class, by label.
    ///   - transform: applied by loaders to each batch (default: scale to [0, 1]).
    public init(name: String, pixels: [UInt8], labels: [UInt8], channels: Int, height: Int, width: Int,
                classNames: [String], transform: (any Transform)? = ToTensor()) {
        self.init(name: name, pixels: pixels[...], labels: labels[...], channels: channels, height: height,
                  width: width, classNames: classNames, transform: transform)
    }

    init(name: String, pixels: ArraySlice<UInt8>, labels: ArraySlice<UInt8>, channels: Int, height: Int, width: Int,
         classNames: [String], transform: (any Transform)?) {
        precondition(pixels.startIndex == 0 && labels.startIndex == 0, "dataset slices must start at 0")
        precondition(pixels.count == labels.count * channels * height * width, "pixel count does not match labels")
        self.init(name: name, pixelStore: .dense(pixels), labels: labels, channels: channels, height: height, width: width,
                  classNames: classNames, transform: transform)
    }

    init(name: String, pixelStore: Storage, labels: ArraySlice<UInt8>, channels: Int, height: Int, width: Int,
         classNames: [String], transform: (any Transform)?) {
        self.name = name; self.pixelStore = pixelStore; self.labels = labels
        self.channels = channels; self.height = height; self.width = width
        self.classNames = classNames; self.transform = transform
    }

    /// The same dataset with its images packed (runs of zero bytes squeezed out), if that saves at least
    /// a third of the memory (MNIST: 55 → 14 MB), else itself. Batches, values and order are unchanged;
    /// building a batch decodes its images.
    public func packed() -> ImageDataset {
        guard case .dense(let dense) = pixelStore else { return self }
        let per = channels * height * width
        let packed = dense.withUnsafeBufferPointer { PackedImages($0, imageSize: per, count: count) }
        guard packed.bytes.count + packed.offsets.count * MemoryLayout<Int>.size <= dense.count * 2 / 3 else { return self }
        return ImageDataset(name: name, pixelStore: .packed(packed), labels: labels, channels: channels, height: height,
                            width: width, classNames: classNames, transform: transform)
    }

    /// Whether the images are held packed (`packed()`).
    public var isPacked: Bool { if case .packed = pixelStore { true } else { false } }

    /// Image `i`'s pixels, `channels × height × width` bytes (CHW).
    /// - Parameter i: the image's position, `0..<count`.
    public func pixels(ofImage i: Int) -> [UInt8] {
        precondition(i >= 0 && i < count, "image \(i) is outside 0..<\(count)")
        let per = channels * height * width
        switch pixelStore {
        case .dense(let dense): return Array(dense[(i * per)..<((i + 1) * per)])
        case .packed(let packed):
            return [UInt8](unsafeUninitializedCapacity: per) { out, filled in
                packed.decode(i, into: out.baseAddress!, zero: 0) { $0 }
                filled = per
            }
        }
    }

    public var count: Int { labels.count }
    public var sampleShape: [Int] { [channels, height, width] }
    public var classCount: Int { classNames.count }

    /// - Parameters:
    ///   - indices: sample positions.
    ///   - buffer: room for `indices.count` samples of `sampleShape`.
    ///   - out: receives one label per sample.
    public func fill(_ indices: ArraySlice<Int>, into buffer: UnsafeMutablePointer<Float>, labels out: inout [Int]) {
        let per = channels * height * width
        switch pixelStore {
        case .dense(let dense):
            dense.withUnsafeBufferPointer { px in
                for (j, i) in indices.enumerated() {
                    let src = px.baseAddress! + i * per, dst = buffer + j * per
                    for k in 0..<per { dst[k] = Float(src[k]) }
                    out[j] = Int(labels[i])
                }
            }
        case .packed(let packed):
            packed.touch(indices)
            for (j, i) in indices.enumerated() {
                packed.decode(i, into: buffer + j * per, zero: 0) { Float($0) }
                out[j] = Int(labels[i])
            }
        }
    }

    /// Returns a copy with a different transform (`dataset.with(transform: Compose(ToTensor(), Normalize(...)))`).
    ///
    /// - Parameter transform: applied by loaders to each batch (nil: raw 0…255 floats).
    public func with(transform: (any Transform)?) -> ImageDataset {
        var d = self; d.transform = transform; return d
    }

    /// Number of images per class.
    public var labelHistogram: [Int] {
        var h = [Int](repeating: 0, count: classCount)
        for l in labels where Int(l) < h.count { h[Int(l)] += 1 }
        return h
    }

    /// The first `n` samples (for quick runs and tests); shares the pixel storage, copies nothing.
    ///
    /// - Parameter n: how many samples to keep (the data is shared, not copied).
    public func prefix(_ n: Int) -> ImageDataset {
        let m = Swift.min(n, count), per = channels * height * width
        let kept: Storage
        switch pixelStore {
        case .dense(let dense): kept = .dense(dense[0..<(m * per)])
        case .packed: kept = pixelStore   // images past the labels are never read
        }
        return ImageDataset(name: name, pixelStore: kept, labels: labels[0..<m], channels: channels, height: height,
                            width: width, classNames: classNames, transform: transform)
    }
}

/// A view of a dataset restricted to some indices (PyTorch's `Subset`).
public struct Subset<Base: BatchSource>: BatchSource {
    public let base: Base
    public let indices: [Int]
    /// - Parameters:
    ///   - base: the whole dataset.
    ///   - indices: the samples of this subset, in order.
    public init(_ base: Base, indices: [Int]) { self.base = base; self.indices = indices }
    public var count: Int { indices.count }
    public var sampleShape: [Int] { base.sampleShape }
    public var classCount: Int { base.classCount }
    public var transform: (any Transform)? { base.transform }
    /// - Parameters:
    ///   - positions: positions in this subset.
    ///   - buffer: room for `positions.count` samples.
    ///   - labels: receives one label per sample.
    public func fill(_ positions: ArraySlice<Int>, into buffer: UnsafeMutablePointer<Float>, labels: inout [Int]) {
        base.fill(positions.map { indices[$0] }[...], into: buffer, labels: &labels)
    }
}

extension BatchSource {
    /// A deterministic train/validation split: shuffles indices with `seed` and holds out
    /// `validationFraction` of them (Keras' `validation_split` takes the last fraction instead: pass `shuffle: false`).
    ///
    /// - Parameters:
    ///   - validationFraction: share of the samples held out.
    ///   - seed: fixes the shuffle.
    ///   - shuffle: shuffle before splitting (Keras' `validation_split` does not).
    public func split(validationFraction: Double, seed: UInt64 = 0, shuffle: Bool = true)
        -> (train: Subset<Self>, validation: Subset<Self>) {
        precondition(validationFraction >= 0 && validationFraction < 1, "validation fraction must be in [0, 1)")
        let order = shuffle ? RandomGenerator(seed: seed).permutation(count) : Array(0..<count)
        let nVal = Int((Double(count) * validationFraction).rounded())
        return (Subset(self, indices: Array(order[..<(count - nVal)])), Subset(self, indices: Array(order[(count - nVal)...])))
    }
}

/// In-memory samples from a float tensor `[N, ...]` and integer labels (what `model.fit(x, y)` batches).
public struct TensorDataset: BatchSource {
    public let x: Tensor
    public let y: [Int]
    public let classCount: Int
    /// - Parameters:
    ///   - x: samples along the first dimension (`[N, ...]`).
    ///   - y: one label per sample.
    ///   - classCount: number of classes (default: the largest label + 1).
    public init(_ x: Tensor, _ y: [Int], classCount: Int? = nil) {
        precondition(x.rank >= 1 && x.shape[0] == y.count, "x has \(x.rank >= 1 ? x.shape[0] : 0) samples, y has \(y.count)")
        self.x = x; self.y = y
        self.classCount = classCount ?? ((y.max() ?? -1) + 1)
    }
    public var count: Int { y.count }
    public var sampleShape: [Int] { Array(x.shape.dropFirst()) }
    public func fill(_ indices: ArraySlice<Int>, into buffer: UnsafeMutablePointer<Float>, labels: inout [Int]) {
        let per = sampleShape.reduce(1, *)
        x.withUnsafeBufferPointer { src in
            for (j, i) in indices.enumerated() {
                (buffer + j * per).update(from: src.baseAddress! + i * per, count: per)
                labels[j] = y[i]
            }
        }
    }
}
