import Foundation
import Convolve
import ConvolveNN

/// Keras activation names.
public enum Activation: String, Sendable {
    case linear, relu, softmax, sigmoid, tanh

    /// Applies the activation (softmax over the last dimension).
    ///
    /// - Parameter x: the layer's output before its activation.
    public func apply(_ x: Tensor) -> Tensor {
        switch self {
        case .linear: return x
        case .relu: return x.relu()
        case .softmax: return x.softmax(dim: -1)
        case .sigmoid: return x.sigmoid()
        case .tanh: return x.tanh()
        }
    }
}

/// Base of the Keras-style layers: they infer their input shape when the model is built and wrap
/// the same `ConvolveNN` modules the PyTorch-style API uses (Keras initialization by default).
/// Shapes shown to the user are channels-last `(H, W, C)`; the engine runs NCHW.
open class KerasLayer: Module, Layer {
    /// The Keras layer name (`conv2d`, `conv2d_1`, …), assigned by the model.
    public internal(set) var name: String = ""
    /// Keras' class name shown in `summary()`.
    open var kerasClassName: String { String(describing: type(of: self)) }
    /// snake_case stem used for automatic names.
    open var nameStem: String { "layer" }
    /// Output shape (channels-last, no batch) once built.
    public internal(set) var outputShape: [Int] = []
    /// Declared input shape (channels-last), for the first layer.
    public let declaredInputShape: [Int]?

    /// - Parameter inputShape: one sample's shape, channels-last, when this is a model's first layer.
    public init(inputShape: [Int]? = nil) { declaredInputShape = inputShape }

    /// Creates weights for a channels-last `inputShape` and returns the output shape.
    ///
    /// - Parameter s: one sample's shape, channels-last, without the batch.
    open func build(_ s: [Int]) -> [Int] { s }

    open func callAsFunction(_ input: Tensor) -> Tensor { input }

    /// Trainable parameter count.
    public var paramCount: Int { parameterCount }

    /// Keras' `layer.trainable`: false freezes the layer (``Module/freeze()``: no gradients, no
    /// optimizer state, inference mode — batch norm on its moving statistics); true unfreezes it.
    /// Compile again after changing it, as Keras asks.
    public var trainable: Bool {
        get { !isFrozen }
        set { if newValue { unfreeze() } else { freeze() } }
    }
}

/// 2-D convolution (`keras.layers.Conv2D`): `filters` output channels, optional activation.
public final class Conv2D: KerasLayer {
    public let filters: Int, kernelSize: (Int, Int), strides: (Int, Int), padding: Padding
    public let activation: Activation, useBias: Bool
    public private(set) var conv: Conv2d?

    /// A Keras convolution; inputs are channels-last in the `Model`'s API (`[N, H, W, C]`), NCHW inside.
    ///
    /// - Parameters:
    ///   - filters: output channels.
    ///   - kernelSize: kernel height and width (one number: square).
    ///   - strides: step between windows.
    ///   - padding: `.valid` (none) or `.same` (output size = input size / stride).
    ///   - activation: applied to the output (`.relu` is fused into the convolution).
    ///   - useBias: learn a bias.
    ///   - inputShape: `[H, W, C]` when this is the model's first layer.
    ///
    /// ### See Also
    /// - `Conv2d` (the module it wraps), ``Model``
    public init(_ filters: Int, _ kernelSize: IntOrPair, strides: IntOrPair = 1, padding: Padding = .valid,
                activation: Activation = .linear, useBias: Bool = true, inputShape: [Int]? = nil) {
        self.filters = filters; self.kernelSize = kernelSize.pair; self.strides = strides.pair; self.padding = padding
        self.activation = activation; self.useBias = useBias
        super.init(inputShape: inputShape)
    }
    public override var nameStem: String { "conv2d" }
    public override func build(_ s: [Int]) -> [Int] {
        precondition(s.count == 3, "Conv2D expects (height, width, channels) input, got \(s)")
        // Keras' "same" is TensorFlow's: one more zero after than before when the total is odd (a
        // strided or even kernel). Symmetric totals keep explicit padding (and the fused ReLU path).
        let (h, w) = (samePadding(s[0], kernel: kernelSize.0, stride: strides.0), samePadding(s[1], kernel: kernelSize.1, stride: strides.1))
        let c: Conv2d
        if padding == .same && (h.before != h.after || w.before != w.after) {
            c = Conv2d(s[2], filters, kernelSize: IntOrPair(kernelSize), stride: IntOrPair(strides), padding: .same, bias: useBias,
                       initialization: .keras)
        } else {
            let pad = padding == .same ? (h.before, w.before) : (0, 0)
            c = Conv2d(s[2], filters, kernelSize: IntOrPair(kernelSize), stride: IntOrPair(strides), padding: IntOrPair(pad),
                       bias: useBias, initialization: .keras)
        }
        conv = c
        let (oh, ow) = c.outputSize(s[0], s[1])
        return [oh, ow, filters]
    }
    public override var localTensors: [(String, Tensor)] { conv?.localTensors ?? [] }
    public override var children: [(String, Module)] { [] }
    public override func callAsFunction(_ input: Tensor) -> Tensor {
        activation == .relu ? conv!(input, fusedReLU: true) : activation.apply(conv!(input))
    }
}

/// A pooling window module whose output size can be computed ahead of a forward pass.
public protocol WindowPooling: Layer {
    func outputSize(_ h: Int, _ w: Int) -> (Int, Int)
}
extension MaxPool2d: WindowPooling {}
extension AvgPool2d: WindowPooling {}

/// Shared body of the Keras pooling layers: wraps a `ConvolveNN` pooling module, keeps channels.
public class KerasPooling: KerasLayer {
    public let pool: any WindowPooling
    init(_ pool: any WindowPooling) { self.pool = pool; super.init() }
    public override func build(_ s: [Int]) -> [Int] {
        let (oh, ow) = pool.outputSize(s[0], s[1])
        return [oh, ow, s[2]]
    }
    public override var children: [(String, Module)] { [] }
    public override func callAsFunction(_ input: Tensor) -> Tensor { pool(input) }
}

/// Max pooling (`keras.layers.MaxPooling2D`); strides default to the pool size.
public final class MaxPooling2D: KerasPooling {
    /// - Parameters:
    ///   - poolSize: window height and width (one number: square).
    ///   - strides: step between windows (default: the pool size).
    public init(_ poolSize: IntOrPair = 2, strides: IntOrPair? = nil) {
        super.init(MaxPool2d(kernelSize: poolSize, stride: strides ?? poolSize))
    }
    public override var nameStem: String { "max_pooling2d" }
}

/// Average pooling (`keras.layers.AveragePooling2D`); strides default to the pool size.
public final class AveragePooling2D: KerasPooling {
    /// - Parameters:
    ///   - poolSize: window height and width (one number: square).
    ///   - strides: step between windows (default: the pool size).
    public init(_ poolSize: IntOrPair = 2, strides: IntOrPair? = nil) {
        super.init(AvgPool2d(kernelSize: poolSize, stride: strides ?? poolSize))
    }
    public override var nameStem: String { "average_pooling2d" }
}

/// Flattens each sample (`keras.layers.Flatten`). Internally flattens NCHW order.
public final class KerasFlatten: KerasLayer {
    /// - Parameter inputShape: one sample's shape, channels-last, when this is a model's first layer.
    public override init(inputShape: [Int]? = nil) { super.init(inputShape: inputShape) }
    public override var kerasClassName: String { "Flatten" }
    public override var nameStem: String { "flatten" }
    public override func build(_ s: [Int]) -> [Int] { [s.reduce(1, *)] }
    public override func callAsFunction(_ input: Tensor) -> Tensor { input.flatten(startDim: 1) }
}

/// Fully connected layer (`keras.layers.Dense`).
public final class Dense: KerasLayer {
    public let units: Int, activation: Activation, useBias: Bool
    public private(set) var linear: Linear?
    /// - Parameters:
    ///   - units: output features.
    ///   - activation: applied to the output (`.softmax` is fused into the cross-entropy when training).
    ///   - useBias: learn a bias.
    ///   - inputShape: `[features]` when this is the model's first layer.
    ///
    /// ### See Also
    /// - `Linear` (the module it wraps), ``Objective``
    public init(_ units: Int, activation: Activation = .linear, useBias: Bool = true, inputShape: [Int]? = nil) {
        self.units = units; self.activation = activation; self.useBias = useBias
        super.init(inputShape: inputShape)
    }
    public override var nameStem: String { "dense" }
    public override func build(_ s: [Int]) -> [Int] {
        linear = Linear(s[s.count - 1], units, bias: useBias, initialization: .keras)
        return Array(s.dropLast()) + [units]
    }
    public override var localTensors: [(String, Tensor)] { linear?.localTensors ?? [] }
    public override var children: [(String, Module)] { [] }
    /// Pre-activation output (logits for a softmax layer).
    ///
    /// - Parameter input: `[N, features]`.
    public func logits(_ input: Tensor) -> Tensor { linear!(input) }
    public override func callAsFunction(_ input: Tensor) -> Tensor { activation.apply(linear!(input)) }
}

/// Dropout (`keras.layers.Dropout`), active only while fitting.
public final class KerasDropout: KerasLayer, StochasticLayer {
    public let rate: Double
    /// Draws the masks (default: the process-wide generator).
    public var generator: RandomGenerator = .global
    /// - Parameter rate: share of inputs zeroed while fitting.
    public init(_ rate: Double) { self.rate = rate; super.init() }
    public override var kerasClassName: String { "Dropout" }
    public override var nameStem: String { "dropout" }
    public override func callAsFunction(_ input: Tensor) -> Tensor {
        dropout(input, p: Float(rate), training: training, generator: generator)
    }
}

/// Batch normalization over the channels (`keras.layers.BatchNormalization`, axis −1): Keras'
/// defaults — momentum 0.99 (each batch weighs 0.01 in the moving statistics), epsilon 1e-3.
/// Normalizes with the batch's statistics while fitting and the moving ones otherwise.
public final class BatchNormalization: KerasLayer {
    public let momentum: Double, epsilon: Double
    public private(set) var norm: BatchNorm2d?
    /// - Parameters:
    ///   - momentum: Keras' momentum of the moving statistics (PyTorch's is 1 − this).
    ///   - epsilon: added to the variance.
    ///
    /// ### See Also
    /// - `BatchNorm2d` (the module it wraps)
    public init(momentum: Double = 0.99, epsilon: Double = 1e-3) {
        self.momentum = momentum; self.epsilon = epsilon
        super.init()
    }
    public override var nameStem: String { "batch_normalization" }
    public override func build(_ s: [Int]) -> [Int] {
        norm = BatchNorm2d(s[s.count - 1], eps: epsilon, momentum: 1 - momentum)
        return s
    }
    public override var localTensors: [(String, Tensor)] { norm?.localTensors ?? [] }
    public override var bufferNames: Set<String> { norm?.bufferNames ?? [] }
    public override var children: [(String, Module)] { [] }
    public override func callAsFunction(_ input: Tensor) -> Tensor {
        norm!.train(training)
        return norm!(input)
    }
}

/// The mean of each channel over the image (`keras.layers.GlobalAveragePooling2D`): `(H, W, C)` → `(C)`.
public final class GlobalAveragePooling2D: KerasLayer {
    public override init(inputShape: [Int]? = nil) { super.init(inputShape: inputShape) }
    public override var nameStem: String { "global_average_pooling2d" }
    public override func build(_ s: [Int]) -> [Int] { [s[s.count - 1]] }
    public override func callAsFunction(_ input: Tensor) -> Tensor { globalAvgPool2d(input).flatten(startDim: 1) }
}

/// A standalone activation (`keras.layers.Activation`).
public final class KerasActivation: KerasLayer {
    public let activation: Activation
    /// - Parameter activation: the function applied.
    public init(_ activation: Activation) { self.activation = activation; super.init() }
    public override var kerasClassName: String { "Activation" }
    public override var nameStem: String { "activation" }
    public override func callAsFunction(_ input: Tensor) -> Tensor { activation.apply(input) }
}

/// Keras' `layers` namespace spelling: `Keras.Flatten()`, `Keras.Dropout(0.5)`.
public enum Keras {
    public typealias Flatten = KerasFlatten
    public typealias Dropout = KerasDropout
    public typealias Activation = KerasActivation
}
