import Foundation
import Convolve

/// `max(x, 0)` (`torch.nn.ReLU`). `inplace` only affects the printed tree: outputs are never aliased.
public final class ReLU: Module, Layer {
    public let inplace: Bool
    /// - Parameter inplace: printed only, as in PyTorch's tree.
    public init(inplace: Bool = false) { self.inplace = inplace }
    public func callAsFunction(_ input: Tensor) -> Tensor { Profiler.measure("ReLU forward") { input.relu() } }
    public override var extraDescription: String { inplace ? "inplace=True" : "" }
}

/// Logistic sigmoid (`torch.nn.Sigmoid`).
public final class Sigmoid: Module, Layer {
    public override init() {}
    public func callAsFunction(_ input: Tensor) -> Tensor { input.sigmoid() }
}

/// Hyperbolic tangent (`torch.nn.Tanh`).
public final class Tanh: Module, Layer {
    public override init() {}
    public func callAsFunction(_ input: Tensor) -> Tensor { input.tanh() }
}

/// Softmax along `dim` (`torch.nn.Softmax`).
public final class Softmax: Module, Layer {
    public let dim: Int
    /// - Parameter dim: the dimension normalized (negative counts from the end).
    public init(dim: Int = -1) { self.dim = dim }
    public func callAsFunction(_ input: Tensor) -> Tensor { input.softmax(dim: dim) }
    public override var extraDescription: String { "dim=\(dim)" }
}

/// Log-softmax along `dim` (`torch.nn.LogSoftmax`).
public final class LogSoftmax: Module, Layer {
    public let dim: Int
    /// - Parameter dim: the dimension normalized (negative counts from the end).
    public init(dim: Int = -1) { self.dim = dim }
    public func callAsFunction(_ input: Tensor) -> Tensor { input.logSoftmax(dim: dim) }
    public override var extraDescription: String { "dim=\(dim)" }
}

/// `min(max(x, 0), 6)` (`torch.nn.ReLU6`: MobileNetV2, EfficientNet-Lite).
public final class ReLU6: Module, Layer {
    public let inplace: Bool
    /// - Parameter inplace: printed only, as in PyTorch's tree.
    public init(inplace: Bool = false) { self.inplace = inplace }
    public func callAsFunction(_ input: Tensor) -> Tensor { input.relu6() }
    public override var extraDescription: String { inplace ? "inplace=True" : "" }
}

/// `x · σ(x)` (`torch.nn.SiLU`, swish: EfficientNet).
public final class SiLU: Module, Layer {
    public let inplace: Bool
    /// - Parameter inplace: printed only, as in PyTorch's tree.
    public init(inplace: Bool = false) { self.inplace = inplace }
    public func callAsFunction(_ input: Tensor) -> Tensor { input.silu() }
    public override var extraDescription: String { inplace ? "inplace=True" : "" }
}

/// `x · relu6(x + 3) / 6` (`torch.nn.Hardswish`: MobileNetV3).
public final class Hardswish: Module, Layer {
    public let inplace: Bool
    /// - Parameter inplace: printed only, as in PyTorch's tree.
    public init(inplace: Bool = false) { self.inplace = inplace }
    public func callAsFunction(_ input: Tensor) -> Tensor { input.hardswish() }
    public override var extraDescription: String { inplace ? "inplace=True" : "" }
}

/// `relu6(x + 3) / 6` (`torch.nn.Hardsigmoid`: MobileNetV3's squeeze-and-excitation gate).
public final class Hardsigmoid: Module, Layer {
    public let inplace: Bool
    /// - Parameter inplace: printed only, as in PyTorch's tree.
    public init(inplace: Bool = false) { self.inplace = inplace }
    public func callAsFunction(_ input: Tensor) -> Tensor { input.hardsigmoid() }
    public override var extraDescription: String { inplace ? "inplace=True" : "" }
}
