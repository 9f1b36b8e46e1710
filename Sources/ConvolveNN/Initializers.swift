import Foundation
import Convolve

/// Which framework's default weight initialization a layer uses.
public enum Initialization: String, Sendable, CaseIterable {
    /// PyTorch: kaiming-uniform(a=√5) weights, i.e. U(±1/√fan_in), and U(±1/√fan_in) bias.
    case pytorch
    /// Keras: glorot-uniform kernels U(±√(6/(fan_in+fan_out))) and zero bias.
    case keras
}

/// Weight initializers, like `torch.nn.init` and `keras.initializers`.
public enum Init {
    /// `torch.nn.init.kaiming_uniform_(w, a:)` with fan-in mode and leaky-ReLU gain.
    ///
    /// - Parameters:
    ///   - shape: the weight's shape.
    ///   - fanIn: inputs per output.
    ///   - a: the leaky-ReLU slope of the gain (√5: PyTorch's layer default).
    ///   - generator: draws the values.
    public static func kaimingUniform(_ shape: [Int], fanIn: Int, a: Float = Float(5).squareRoot(),
                                      generator: RandomGenerator = .global) -> Tensor {
        let gain = (2 / (1 + a * a)).squareRoot()
        let bound = gain * (3 / Float(fanIn)).squareRoot()
        return Tensor.uniform(shape, low: -bound, high: bound, generator: generator)
    }
    /// Keras `GlorotUniform`.
    ///
    /// - Parameters:
    ///   - shape: the weight's shape.
    ///   - fanIn: inputs per output.
    ///   - fanOut: outputs per input.
    ///   - generator: draws the values.
    public static func glorotUniform(_ shape: [Int], fanIn: Int, fanOut: Int,
                                     generator: RandomGenerator = .global) -> Tensor {
        let limit = (6 / Float(fanIn + fanOut)).squareRoot()
        return Tensor.uniform(shape, low: -limit, high: limit, generator: generator)
    }
    /// Weight and bias for a layer with the given fans under `scheme`.
    static func weightAndBias(_ scheme: Initialization, weightShape: [Int], biasCount: Int?,
                              fanIn: Int, fanOut: Int) -> (Tensor, Tensor?) {
        switch scheme {
        case .pytorch:
            let w = kaimingUniform(weightShape, fanIn: fanIn)
            let bound = fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0
            let b = biasCount.map { Tensor.uniform([$0], low: -bound, high: bound) }
            return (w.requiringGrad(), b?.requiringGrad())
        case .keras:
            let w = glorotUniform(weightShape, fanIn: fanIn, fanOut: fanOut)
            return (w.requiringGrad(), biasCount.map { Tensor.zeros([$0], requiresGrad: true) })
        }
    }
}
