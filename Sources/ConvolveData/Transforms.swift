import Foundation
import Convolve

// Deterministic batch transforms (torchvision's `transforms`); the random ones, the augmentations,
// are in Augmentation.swift.

/// A transform applied to a whole batch buffer `[N, C, H, W]` in place. Random transforms (the
/// augmentations in Augmentation.swift) draw from the generator a `DataLoader` seeds for each batch,
/// so an epoch's augmented batches are the same on every run with the same seed, resumed or not.
public protocol Transform: Sendable {
    /// Transforms a batch in place.
    /// - Parameters:
    ///   - batch: the batch's floats, `shape` row-major.
    ///   - shape: `[N, C, H, W]`.
    func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int])
    /// Transforms a batch in place, drawing any randomness from `generator` (deterministic
    /// transforms ignore it: the default calls `apply(_:shape:)`).
    /// - Parameters:
    ///   - batch: the batch's floats, `shape` row-major.
    ///   - shape: `[N, C, H, W]`.
    ///   - generator: the batch's random source.
    func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int], generator: inout Xoshiro256StarStar)
    /// Whether the transform draws random numbers (default false).
    var isRandom: Bool { get }
}

extension Transform {
    public var isRandom: Bool { false }
    public func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int], generator: inout Xoshiro256StarStar) {
        apply(batch, shape: shape)
    }
}

/// Scales byte pixel values to [0, 1] (`transforms.ToTensor`; Keras' `x / 255.0`).
public struct ToTensor: Transform {
    public init() {}
    public func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int]) {
        for i in 0..<batch.count { batch[i] *= 1 / 255 }
    }
}

/// Per-channel `(x - mean) / std` (`transforms.Normalize`). One value applies to every channel.
public struct Normalize: Transform {
    public let mean: [Float], std: [Float]
    /// `(x − mean) / std` per channel (one value for all channels, or one per channel).
    ///
    /// - Parameters:
    ///   - mean: channel means.
    ///   - std: channel standard deviations (non-zero).
    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count && !mean.isEmpty && std.allSatisfy { $0 != 0 }, "bad Normalize parameters")
        self.mean = mean; self.std = std
    }
    /// The standard MNIST statistics (0.1307, 0.3081).
    public static let mnist = Normalize(mean: [0.1307], std: [0.3081])
    public func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int]) {
        guard shape.count >= 2 else { return }
        let n = shape[0], c = shape[1], inner = shape.dropFirst(2).reduce(1, *)
        for b in 0..<n { for ch in 0..<c {
            let m = mean[mean.count == 1 ? 0 : ch], inv = 1 / std[std.count == 1 ? 0 : ch]
            let plane = batch.baseAddress! + (b * c + ch) * inner
            for i in 0..<inner { plane[i] = (plane[i] - m) * inv }
        } }
    }
}

/// Applies transforms in order (`transforms.Compose`).
public struct Compose: Transform {
    public let transforms: [any Transform]
    /// - Parameter transforms: applied in order.
    public init(_ transforms: [any Transform]) { self.transforms = transforms }
    /// - Parameter transforms: applied in order.
    public init(_ transforms: any Transform...) { self.transforms = transforms }
    public func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int]) {
        for t in transforms { t.apply(batch, shape: shape) }
    }
    public func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int], generator: inout Xoshiro256StarStar) {
        for t in transforms { t.apply(batch, shape: shape, generator: &generator) }
    }
    public var isRandom: Bool { transforms.contains { $0.isRandom } }
}
