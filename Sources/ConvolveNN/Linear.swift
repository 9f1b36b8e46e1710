import Foundation
import Convolve

/// Fully connected layer `y = x·Wᵀ + b` (`torch.nn.Linear`; Keras' `Dense` without activation).
public final class Linear: Module, Layer {
    public let inFeatures: Int, outFeatures: Int
    /// Weight `[out, in]` (PyTorch layout).
    public var weight: Tensor
    public var bias: Tensor?

    /// A fully connected layer from `[..., inFeatures]` to `[..., outFeatures]`.
    ///
    /// - Parameters:
    ///   - inFeatures: size of the last input dimension.
    ///   - outFeatures: size of the last output dimension.
    ///   - bias: learn a bias.
    ///   - initialization: PyTorch's (Kaiming uniform) or Keras' (Glorot uniform) initial weights.
    ///
    /// ### See Also
    /// - `linear`, the op it calls; ``Flatten`` to feed it images
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, initialization: Initialization = .pytorch) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        (weight, self.bias) = Init.weightAndBias(initialization, weightShape: [outFeatures, inFeatures],
                                                 biasCount: bias ? outFeatures : nil,
                                                 fanIn: inFeatures, fanOut: outFeatures)
    }
    public func callAsFunction(_ input: Tensor) -> Tensor {
        Profiler.measure("Linear forward") { linear(input, weight: weight, bias: bias) }
    }
    public override var extraDescription: String {
        "in_features=\(inFeatures), out_features=\(outFeatures), bias=\(bias == nil ? "False" : "True")"
    }
}

/// Flattens dimensions `startDim...endDim` (`torch.nn.Flatten`, default from dim 1).
public final class Flatten: Module, Layer {
    public let startDim: Int, endDim: Int
    /// - Parameters:
    ///   - startDim: first dimension flattened (1 keeps the batch).
    ///   - endDim: last dimension flattened (negative counts from the end).
    public init(startDim: Int = 1, endDim: Int = -1) { self.startDim = startDim; self.endDim = endDim }
    public func callAsFunction(_ input: Tensor) -> Tensor { input.flatten(startDim: startDim, endDim: endDim) }
    public override var extraDescription: String { "start_dim=\(startDim), end_dim=\(endDim)" }
}

/// Returns its input unchanged (`torch.nn.Identity`).
public final class Identity: Module, Layer {
    public override init() {}
    public func callAsFunction(_ input: Tensor) -> Tensor { input }
}

/// Randomly zeroes elements with probability `p` in training mode (`torch.nn.Dropout`).
public final class Dropout: Module, Layer, StochasticLayer {
    public let p: Double
    public let inplace: Bool
    /// Draws the masks (default: the process-wide generator, as in PyTorch).
    public var generator: RandomGenerator = .global
    /// - Parameters:
    ///   - p: probability of zeroing each element while training (the rest are scaled by 1/(1−p)).
    ///   - inplace: printed only, as in PyTorch's tree (outputs are never aliased).
    ///
    /// ### See Also
    /// - `dropout`; ``Module/useGenerator(_:)`` to give it its own generator
    public init(_ p: Double = 0.5, inplace: Bool = false) {
        precondition(p >= 0 && p <= 1, "dropout probability has to be between 0 and 1, but got \(p)")
        self.p = p; self.inplace = inplace
    }
    public func callAsFunction(_ input: Tensor) -> Tensor {
        dropout(input, p: Float(p), training: training, generator: generator)
    }
    public override var extraDescription: String { "p=\(pyRepr(p)), inplace=\(inplace ? "True" : "False")" }
}

/// A layer that draws random numbers while training (dropout): its generator can be replaced, so a
/// run can give its model a generator of its own (`Module.useGenerator`).
public protocol StochasticLayer: AnyObject {
    var generator: RandomGenerator { get set }
}

extension Module {
    /// Makes every stochastic layer in this module (and its children) draw from `generator`.
    ///
    /// - Parameter generator: the stochastic layers' new generator.
    public func useGenerator(_ generator: RandomGenerator) {
        for (_, m) in namedModules() { (m as? StochasticLayer)?.generator = generator }
    }
}
