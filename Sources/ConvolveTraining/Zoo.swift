import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// The tutorial's PyTorch model: Conv-BN-ReLU-MaxPool ×2 + Linear(196, 10); 2,174 parameters.
public final class TorchSeedNet: Module, Layer {
    public let cnnLayers = Sequential {
        Conv2d(1, 4, kernelSize: 3, stride: 1, padding: 1); BatchNorm2d(4); ReLU(inplace: true)
        MaxPool2d(kernelSize: 2, stride: 2)
        Conv2d(4, 4, kernelSize: 3, stride: 1, padding: 1); BatchNorm2d(4); ReLU(inplace: true)
        MaxPool2d(kernelSize: 2, stride: 2)
    }
    public let linearLayers = Sequential { Linear(4 * 7 * 7, 10) }
    public override init() {}
    public override var typeName: String { "Net" }
    public func callAsFunction(_ x: Tensor) -> Tensor { linearLayers(cnnLayers(x).flatten(startDim: 1)) }
}

/// LeNet-5 (ReLU and max-pool variant) for 28×28 input: 61,706 parameters.
public final class LeNet5: Module, Layer {
    public let features = Sequential {
        Conv2d(1, 6, kernelSize: 5, padding: 2); ReLU(); MaxPool2d(kernelSize: 2)
        Conv2d(6, 16, kernelSize: 5); ReLU(); MaxPool2d(kernelSize: 2)
    }
    public let classifier = Sequential {
        Linear(16 * 5 * 5, 120); ReLU(); Linear(120, 84); ReLU(); Linear(84, 10)
    }
    public override init() {}
    public func callAsFunction(_ x: Tensor) -> Tensor { classifier(features(x).flatten(startDim: 1)) }
}

/// pytorch/examples' MNIST CNN: 1,199,882 parameters. Returns logits (the example's
/// `log_softmax` + `nll_loss` equals `crossEntropy` on these).
public final class MnistCNN: Module, Layer {
    public let conv1 = Conv2d(1, 32, kernelSize: 3, stride: 1)
    public let conv2 = Conv2d(32, 64, kernelSize: 3, stride: 1)
    public let dropout1 = Dropout(0.25)
    public let dropout2 = Dropout(0.5)
    public let fc1 = Linear(9216, 128)
    public let fc2 = Linear(128, 10)
    public override init() {}
    public override var typeName: String { "Net" }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        // Fused: the same values and gradients as maxPool2d(conv2(conv1(x).relu()).relu(), 2).
        var h = conv2.reluMaxPool2x2(conv1(x, fusedReLU: true))
        h = dropout1(h)
        h = dropout2(fc1(h.flatten(startDim: 1)).relu())
        return fc2(h)
    }
}

/// The tutorial's Keras model: Conv2D-MaxPool ×2, Flatten, Dense softmax; 1,198 parameters.
public func kerasSeedModel() -> Model {
    Model(inputShape: [28, 28, 1]) {
        Conv2D(4, 3, activation: .relu)
        MaxPooling2D(2, strides: 2)
        Conv2D(4, 3, activation: .relu)
        MaxPooling2D(2, strides: 2)
        Keras.Flatten()
        Dense(10, activation: .softmax)
    }
}

/// Convolve's version (`convolve --version`; recorded in every run's `run.json` and checkpoint).
public let convolveVersion = "0.4.0"

/// Named models shipped with Convolve and the recipe each trains with by default.
public enum ZooModel: String, CaseIterable, Sendable {
    case torchSeed = "torch-seed"
    case kerasSeed = "keras-seed"
    case lenet5
    case mnistCNN = "mnist-cnn"

    /// Default hyper-parameters (the tutorial's for the seeds, pytorch/examples' for mnist-cnn).
    public var defaults: Recipe {
        switch self {
        case .torchSeed: return Recipe(epochs: 10, batchSize: 64, lr: 0.01, optimizer: "adam", normalize: (0.5, 0.5))
        case .kerasSeed: return Recipe(epochs: 10, batchSize: 32, lr: 0.001, optimizer: "adam", normalize: nil, style: .keras)
        case .lenet5: return Recipe(epochs: 5, batchSize: 64, lr: 0.002, optimizer: "adam", normalize: (0.1307, 0.3081),
                                    stepLRGamma: 0.6)
        case .mnistCNN: return Recipe(epochs: 5, batchSize: 64, lr: 1.0, optimizer: "adadelta", normalize: (0.1307, 0.3081),
                                      stepLRGamma: 0.7)
        }
    }

    /// What the recipe reaches on MNIST with its defaults, and in how long on two cores (RESULTS.md).
    public var expected: (accuracy: String, time: String) {
        switch self {
        case .torchSeed: return ("97.75%", "~11 s")
        case .kerasSeed: return ("97.3% (97.2–97.8% by seed)", "~8 s")
        case .lenet5: return ("99.1–99.3%", "~13 s")
        case .mnistCNN: return ("99.1–99.2%", "~140 s")
        }
    }

    /// One line on what the model is.
    public var about: String {
        switch self {
        case .torchSeed: return "the tutorial's PyTorch model (Conv-BN-ReLU-MaxPool x2 + Linear)"
        case .kerasSeed: return "the tutorial's Keras model (Conv2D-MaxPooling2D x2 + Dense softmax)"
        case .lenet5: return "LeNet-5 with ReLU and max-pooling"
        case .mnistCNN: return "pytorch/examples' MNIST CNN (two 3x3 convs, dropout, two dense)"
        }
    }

    /// The input one sample must have, `[channels, height, width]`.
    public var inputShape: [Int] { [1, 28, 28] }

    /// A new, randomly initialized instance (uses the global generator: seed it first).
    public func make() -> Module & Layer {
        switch self {
        case .torchSeed: return TorchSeedNet()
        case .kerasSeed: return kerasSeedModel()
        case .lenet5: return LeNet5()
        case .mnistCNN: return MnistCNN()
        }
    }
}

/// Which tutorial half a recipe follows: how `convolve train` prints (PyTorch's epoch lines or Keras'
/// progress bar) and Keras' Adam epsilon (1e-7, added before bias correction) or PyTorch's (1e-8).
public enum TrainingStyle: String, Sendable, Codable { case pytorch, keras }

/// Training hyper-parameters: the single source of a run's normalization, optimizer and schedule.
public struct Recipe: Sendable, Codable, Equatable {
    public var epochs: Int
    public var batchSize: Int
    public var lr: Double
    public var optimizer: String
    /// Normalize(mean, std) after /255; nil means plain /255 (Keras half).
    public var normalizeMean: Double?
    public var normalizeStd: Double?
    /// Per-epoch StepLR decay (pytorch/examples uses 0.7), or nil.
    public var stepLRGamma: Double?
    public var style: TrainingStyle

    /// - Parameters:
    ///   - epochs: passes over the training set.
    ///   - batchSize: images per training step.
    ///   - lr: initial learning rate.
    ///   - optimizer: one of `Recipe.optimizerNames`.
    ///   - normalize: `(mean, std)` applied after scaling pixels to [0, 1]; nil: only the scaling.
    ///   - stepLRGamma: learning-rate decay per epoch (StepLR with step 1), or nil for none.
    ///   - style: which tutorial half the run follows (printing, Adam's epsilon).
    public init(epochs: Int, batchSize: Int, lr: Double, optimizer: String, normalize: (Double, Double)?,
                stepLRGamma: Double? = nil, style: TrainingStyle = .pytorch) {
        self.epochs = epochs; self.batchSize = batchSize; self.lr = lr; self.optimizer = optimizer
        normalizeMean = normalize?.0; normalizeStd = normalize?.1; self.stepLRGamma = stepLRGamma; self.style = style
    }

    enum CodingKeys: String, CodingKey { case epochs, batchSize, lr, optimizer, normalizeMean, normalizeStd, stepLRGamma, style }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epochs = try c.decode(Int.self, forKey: .epochs)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        lr = try c.decode(Double.self, forKey: .lr)
        optimizer = try c.decode(String.self, forKey: .optimizer)
        normalizeMean = try c.decodeIfPresent(Double.self, forKey: .normalizeMean)
        normalizeStd = try c.decodeIfPresent(Double.self, forKey: .normalizeStd)
        stepLRGamma = try c.decodeIfPresent(Double.self, forKey: .stepLRGamma)
        style = try c.decodeIfPresent(TrainingStyle.self, forKey: .style) ?? .pytorch
    }

    /// The optimizers a recipe can name.
    public static let optimizerNames = ["adam", "adamw", "sgd", "rmsprop", "adadelta"]

    /// The optimizer this recipe names, over `parameters`.
    ///
    /// - Parameter parameters: the model's parameters.
    public func makeOptimizer(_ parameters: [Tensor]) throws -> Optimizer {
        let keras = style == .keras
        switch optimizer.lowercased() {
        case "adam": return Adam(parameters, lr: lr, eps: keras ? 1e-7 : 1e-8, epsilonStyle: keras ? .keras : .pytorch)
        case "adamw": return AdamW(parameters, lr: lr)
        case "sgd": return SGD(parameters, lr: lr, momentum: 0.9)
        case "rmsprop": return RMSprop(parameters, lr: lr)
        case "adadelta": return Adadelta(parameters, lr: lr)
        default:
            throw RunError("unknown optimizer \(optimizer) (use " + Self.optimizerNames.joined(separator: ", ") + ")")
        }
    }

    /// The learning-rate schedule, stepped once per epoch, or nil.
    ///
    /// - Parameter optimizer: whose learning rate the schedule sets.
    public func makeScheduler(_ optimizer: Optimizer) -> (any LRScheduler)? {
        stepLRGamma.map { StepLR(optimizer, stepSize: 1, gamma: $0) }
    }

    /// The per-batch transform: pixels to [0, 1], then the recipe's normalization.
    public var transform: any Transform {
        normalizeMean.map { Compose(ToTensor(), Normalize(mean: [Float($0)], std: [Float(normalizeStd ?? 1)])) } ?? ToTensor()
    }

    /// Raw pixel bytes `shape` (`[N, C, H, W]`) as the tensor `transform` makes of them.
    ///
    /// - Parameters:
    ///   - pixels: bytes 0…255, NCHW.
    ///   - shape: `[N, C, H, W]`.
    public func tensor(pixels: [UInt8], shape: [Int]) -> Tensor {
        var values = pixels.map { Float($0) }
        values.withUnsafeMutableBufferPointer { transform.apply($0, shape: shape) }
        return Tensor(values, shape: shape)
    }
}
