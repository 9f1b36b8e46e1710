import Foundation
import CConvolveSupport

/// A dense, contiguous, row-major Float32 tensor that records the operations applied to it
/// so that `backward()` can compute gradients (runtime-tape autograd, PyTorch semantics).
///
/// `Tensor` is a reference type, like `torch.Tensor`: parameters are updated in place by optimizers
/// and shared between modules. Storage is a Swift array, so `reshape`/`view` share it copy-on-write.
public final class Tensor {
    /// The elements in row-major (C) order. Mutating it changes the tensor in place.
    public var storage: [Float]
    /// The size of each dimension. A scalar has shape `[]`.
    public private(set) var shape: [Int]
    /// Whether gradients flow into this tensor. Leaf tensors with this flag accumulate `.grad`.
    public var requiresGrad: Bool
    /// The accumulated gradient of a leaf tensor after `backward()`.
    public var grad: Tensor?
    /// The recorded operation that produced this tensor (nil for leaves and after `backward()`).
    var node: Node?
    /// Gradient flowing into this tensor while `backward()` runs.
    var pendingGrad: [Float]?

    /// Creates a tensor from elements and a shape. The element count must match the shape.
    ///
    /// - Parameters:
    ///   - storage: the elements, row-major (NCHW for images).
    ///   - shape: the dimensions; their product must equal `storage.count`.
    ///   - requiresGrad: record ops on this tensor so `backward()` fills its `grad`.
    public init(_ storage: [Float], shape: [Int], requiresGrad: Bool = false) {
        _ = allocatorTuned
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(storage.count == shape.reduce(1, *),
                     "element count \(storage.count) does not match shape \(shape)")
        self.storage = storage
        self.shape = shape
        self.requiresGrad = requiresGrad
    }

    /// A 1-D tensor of the given values.
    ///
    /// - Parameters:
    ///   - values: the elements.
    ///   - requiresGrad: record ops on it for `backward()`.
    public convenience init(_ values: [Float], requiresGrad: Bool = false) {
        self.init(values, shape: [values.count], requiresGrad: requiresGrad)
    }

    /// A scalar (0-D) tensor.
    ///
    /// - Parameters:
    ///   - scalar: the value.
    ///   - requiresGrad: record ops on it for `backward()`.
    public convenience init(scalar: Float, requiresGrad: Bool = false) {
        self.init([scalar], shape: [], requiresGrad: requiresGrad)
    }

    /// Number of elements.
    @inlinable public var count: Int { storage.count }
    /// Whether every element is finite (no NaN, no infinity).
    public var isAllFinite: Bool { storage.allSatisfy { $0.isFinite } }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// The single value of a one-element tensor (PyTorch's `.item()`).
    public var item: Float {
        precondition(storage.count == 1, "item() needs a one-element tensor, shape is \(shape)")
        return storage[0]
    }
    /// The size of dimension `d` (negative counts from the end).
    ///
    /// - Parameter d: the dimension (negative counts from the end).
    public func size(_ d: Int) -> Int { shape[normalizeDim(d, rank)] }

    /// Replaces the shape without touching the data (same element count).
    func setShape(_ newShape: [Int]) {
        precondition(newShape.reduce(1, *) == storage.count)
        shape = newShape
    }

    // MARK: Factories

    /// A tensor filled with zeros.
    ///
    /// - Parameters:
    ///   - shape: the dimensions.
    ///   - requiresGrad: record ops on it for `backward()`.
    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor([Float](repeating: 0, count: shape.reduce(1, *)), shape: shape, requiresGrad: requiresGrad)
    }
    /// A tensor filled with ones.
    ///
    /// - Parameters:
    ///   - shape: the dimensions.
    ///   - requiresGrad: record ops on it for `backward()`.
    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, requiresGrad: requiresGrad)
    }
    /// A tensor filled with one value.
    ///
    /// - Parameters:
    ///   - shape: the dimensions.
    ///   - value: every element.
    ///   - requiresGrad: record ops on it for `backward()`.
    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        Tensor([Float](repeating: value, count: shape.reduce(1, *)), shape: shape, requiresGrad: requiresGrad)
    }
    /// Values `0, 1, …, n-1`.
    ///
    /// - Parameter n: how many values.
    public static func arange(_ n: Int) -> Tensor {
        Tensor((0..<n).map(Float.init), shape: [n])
    }
    /// Uniform samples in `[low, high)` from `generator` (the seeded global generator by default).
    ///
    /// - Parameters:
    ///   - shape: the dimensions.
    ///   - low: the smallest value.
    ///   - high: the bound above every value.
    ///   - generator: draws the values (locked once for the whole tensor).
    ///   - requiresGrad: record ops on it for `backward()`.
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1,
                               generator: RandomGenerator = .global, requiresGrad: Bool = false) -> Tensor {
        let n = shape.reduce(1, *)
        var out = [Float](repeating: 0, count: n)
        generator.withState { rng in for i in 0..<n { out[i] = low + (high - low) * rng.nextFloat() } }
        return Tensor(out, shape: shape, requiresGrad: requiresGrad)
    }
    /// Normal samples with the given mean and standard deviation.
    ///
    /// - Parameters:
    ///   - shape: the dimensions.
    ///   - mean: the distribution's mean.
    ///   - std: its standard deviation.
    ///   - generator: draws the values.
    ///   - requiresGrad: record ops on it for `backward()`.
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1,
                              generator: RandomGenerator = .global, requiresGrad: Bool = false) -> Tensor {
        let n = shape.reduce(1, *)
        var out = [Float](repeating: 0, count: n)
        generator.withState { rng in for i in 0..<n { out[i] = mean + std * rng.nextNormal() } }
        return Tensor(out, shape: shape, requiresGrad: requiresGrad)
    }
    /// Bernoulli samples: 1 with probability `p`, else 0.
    ///
    /// - Parameters:
    ///   - shape: the dimensions.
    ///   - p: probability of a 1.
    ///   - generator: draws the values.
    public static func bernoulli(_ shape: [Int], p: Float, generator: RandomGenerator = .global) -> Tensor {
        let n = shape.reduce(1, *)
        var out = [Float](repeating: 0, count: n)
        generator.withState { rng in for i in 0..<n { out[i] = rng.nextFloat() < p ? 1 : 0 } }
        return Tensor(out, shape: shape)
    }

    // MARK: Autograd helpers

    /// A tensor sharing this one's data with no history and no gradient.
    public func detach() -> Tensor { Tensor(storage, shape: shape) }

    /// Sets `requiresGrad` and returns self, for chaining.
    @discardableResult
    /// - Parameter flag: whether ops on it are recorded for `backward()`.
    public func requiringGrad(_ flag: Bool = true) -> Tensor { requiresGrad = flag; return self }

    /// Copies another tensor's values into this one in place (shapes must have equal counts).
    ///
    /// - Parameter other: a tensor with as many elements.
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy: \(other.shape) into \(shape)")
        storage = other.storage
    }

    // Accessors: code outside the core reads and writes a tensor's values through these, never through
    // `storage`, so that where the values live (a second backend's buffer) stays the core's business.

    /// The elements in row-major order, read or replaced whole (the count must stay the same).
    @inlinable public var scalars: [Float] {
        get { storage }
        set {
            precondition(newValue.count == storage.count, "scalars: \(newValue.count) values for shape \(shape)")
            storage = newValue
        }
    }

    /// Sets every element to `value` in place.
    /// - Parameter value: the value.
    @inlinable public func fill(_ value: Float) { storage.withUnsafeMutableBufferPointer { $0.update(repeating: value) } }

    /// Calls `body` with the elements, row-major.
    /// - Parameter body: reads the elements.
    @inlinable public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer(body)
    }

    /// Calls `body` with the elements to update in place, row-major.
    /// - Parameter body: reads and writes the elements.
    @inlinable public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer { try body($0) }
    }

    /// Calls `body` with the elements' bytes (little-endian Float32, row-major).
    /// - Parameter body: reads the bytes.
    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes(body)
    }

    /// Calls `body` with the elements' bytes to overwrite in place.
    /// - Parameter body: reads and writes the bytes.
    @inlinable public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeMutableBytes(body)
    }
}

@inline(__always) func normalizeDim(_ d: Int, _ rank: Int) -> Int {
    let r = d < 0 ? d + rank : d
    precondition(r >= 0 && r < Swift.max(rank, 1), "dimension \(d) out of range for rank \(rank)")
    return r
}

extension Tensor: CustomStringConvertible {
    /// A readable rendering like PyTorch's: nested brackets, at most a few values per row.
    public var description: String {
        func fmt(_ v: Float) -> String {
            if v == v.rounded() && Swift.abs(v) < 1e6 { return String(format: "%.0f.", v) }
            return String(format: "%.4f", v)
        }
        func render(_ dim: Int, _ offset: Int, _ indent: String) -> String {
            if dim == rank { return fmt(storage[offset]) }
            let n = shape[dim]
            let stride = shape[(dim + 1)...].reduce(1, *)
            let show: [Int?] = n > 6 ? [0, 1, 2, nil, n - 3, n - 2, n - 1] : (0..<n).map { $0 }
            let parts = show.map { i -> String in
                guard let i else { return "..." }
                return render(dim + 1, offset + i * stride, indent + " ")
            }
            let sep = dim == rank - 1 ? ", " : ",\n" + indent + " "
            return "[" + parts.joined(separator: sep) + "]"
        }
        let body = rank == 0 ? fmt(storage.first ?? 0) : render(0, 0, "       ")
        var extra = ""
        if requiresGrad { extra = node == nil ? ", requiresGrad: true" : ", gradFn" }
        return "tensor(\(body), shape: \(shape)\(extra))"
    }
}

/// Gives freed memory back to the system. The allocator is tuned never to trim during training (that
/// would page-fault every step), so call this between phases, e.g. before evaluating after training.
public func releaseUnusedMemory() {
    convolve_release_memory()
}

/// Keeps freed activation buffers in the heap instead of returning them to the OS: without this,
/// glibc serves each ≥128 KB tensor with a fresh mmap and page-faults on every training step.
let allocatorTuned: Bool = {
    convolve_tune_allocator()
    return true
}()
