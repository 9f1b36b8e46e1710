import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// The tutorial's PyTorch model: Conv-BN-ReLU-MaxPool ×2 + Linear; 2,174 parameters on MNIST.
public final class TorchSeedNet: Module, Layer {
    public let cnnLayers: Sequential
    public let linearLayers: Sequential
    /// - Parameters:
    ///   - channels: input channels.
    ///   - height: input height (at least 4).
    ///   - width: input width (at least 4).
    ///   - classes: output classes.
    public init(channels: Int = 1, height: Int = 28, width: Int = 28, classes: Int = 10) {
        cnnLayers = Sequential {
            Conv2d(channels, 4, kernelSize: 3, stride: 1, padding: 1); BatchNorm2d(4); ReLU(inplace: true)
            MaxPool2d(kernelSize: 2, stride: 2)
            Conv2d(4, 4, kernelSize: 3, stride: 1, padding: 1); BatchNorm2d(4); ReLU(inplace: true)
            MaxPool2d(kernelSize: 2, stride: 2)
        }
        linearLayers = Sequential { Linear(4 * (height / 4) * (width / 4), classes) }
    }
    public override var typeName: String { "Net" }
    public func callAsFunction(_ x: Tensor) -> Tensor { linearLayers(cnnLayers(x).flatten(startDim: 1)) }
}

/// LeNet-5 (ReLU and max-pool variant): 61,706 parameters on MNIST.
public final class LeNet5: Module, Layer {
    public let features: Sequential
    public let classifier: Sequential
    /// - Parameters:
    ///   - channels: input channels.
    ///   - height: input height (at least 12).
    ///   - width: input width (at least 12).
    ///   - classes: output classes.
    public init(channels: Int = 1, height: Int = 28, width: Int = 28, classes: Int = 10) {
        features = Sequential {
            Conv2d(channels, 6, kernelSize: 5, padding: 2); ReLU(); MaxPool2d(kernelSize: 2)
            Conv2d(6, 16, kernelSize: 5); ReLU(); MaxPool2d(kernelSize: 2)
        }
        let (fh, fw) = ((height / 2 - 4) / 2, (width / 2 - 4) / 2)
        classifier = Sequential {
            Linear(16 * fh * fw, 120); ReLU(); Linear(120, 84); ReLU(); Linear(84, classes)
        }
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { classifier(features(x).flatten(startDim: 1)) }
}

/// pytorch/examples' MNIST CNN: 1,199,882 parameters on MNIST. Returns logits (the example's
/// `log_softmax` + `nll_loss` equals `crossEntropy` on these).
public final class MnistCNN: Module, Layer {
    public let conv1: Conv2d, conv2: Conv2d
    public let dropout1 = Dropout(0.25)
    public let dropout2 = Dropout(0.5)
    public let fc1: Linear, fc2: Linear
    /// - Parameters:
    ///   - channels: input channels.
    ///   - height: input height (at least 6).
    ///   - width: input width (at least 6).
    ///   - classes: output classes.
    public init(channels: Int = 1, height: Int = 28, width: Int = 28, classes: Int = 10) {
        conv1 = Conv2d(channels, 32, kernelSize: 3, stride: 1)
        conv2 = Conv2d(32, 64, kernelSize: 3, stride: 1)
        fc1 = Linear(64 * ((height - 4) / 2) * ((width - 4) / 2), 128)
        fc2 = Linear(128, classes)
    }
    public override var typeName: String { "Net" }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        // Fused: the same values and gradients as maxPool2d(conv2(conv1(x).relu()).relu(), 2).
        var h = conv2.reluMaxPool2x2(conv1(x, fusedReLU: true))
        h = dropout1(h)
        h = dropout2(fc1(h.flatten(startDim: 1)).relu())
        return fc2(h)
    }
}

/// A CIFAR-style ResNet (He et al. 2016, depth 6n + 2 with n = 1): a 3×3 convolution to 16 channels,
/// three stages of `BasicBlock`s at 16, 32 and 64 channels (the last two halve the image), global
/// average pooling and one linear layer. 78,042 parameters for 3 channels and 10 classes; any input
/// size of at least 8×8 (the pooling adapts), any channels and classes.
public final class ResNet: Module, Layer {
    public let conv1: Conv2d, bn1: BatchNorm2d
    public let layer1: Sequential, layer2: Sequential, layer3: Sequential
    public let avgpool = AdaptiveAvgPool2d(1)
    public let fc: Linear
    /// - Parameters:
    ///   - channels: input channels.
    ///   - classes: output classes.
    ///   - blocksPerStage: n; depth is 6n + 2 (1: ResNet-8, 3: ResNet-20).
    ///   - width: channels of the first stage (doubled by each later stage).
    public init(channels: Int = 3, classes: Int = 10, blocksPerStage: Int = 1, width: Int = 16) {
        conv1 = Conv2d(channels, width, kernelSize: 3, padding: 1, bias: false)
        bn1 = BatchNorm2d(width)
        func stage(_ input: Int, _ output: Int, stride: Int) -> Sequential {
            Sequential((0..<blocksPerStage).map { i in BasicBlock(i == 0 ? input : output, output, stride: i == 0 ? stride : 1) })
        }
        layer1 = stage(width, width, stride: 1)
        layer2 = stage(width, 2 * width, stride: 2)
        layer3 = stage(2 * width, 4 * width, stride: 2)
        fc = Linear(4 * width, classes)
    }
    public func callAsFunction(_ input: Tensor) -> Tensor {
        let h = layer3(layer2(layer1(bn1(conv1(input), fusedReLU: true))))
        return fc(avgpool(h).flatten(startDim: 1))
    }
}

/// A small batch-normalized CNN sized for speed (zoo `fast-cnn`, 22,874 parameters on MNIST): three 3×3
/// Conv-BN-ReLU blocks of 16, 16 and 32 channels (no conv bias: batch norm shifts), the first two
/// max-pooled, and one Linear layer. With a one-cycle Adam schedule it reaches 99% on MNIST in one pass
/// over the training set (RESULTS.md).
public final class FastCNN: Module, Layer {
    public let features: Sequential
    public let classifier: Sequential
    /// - Parameters:
    ///   - channels: input channels.
    ///   - height: input height (at least 4).
    ///   - width: input width (at least 4).
    ///   - classes: output classes.
    ///   - widths: the three blocks' output channels (the zoo's: 16, 16, 32).
    ///
    /// Input `[N, channels, height, width]`; output `[N, classes]` logits.
    ///
    /// ### See Also
    /// - ``LeNet5``, ``TorchSeedNet``
    public init(channels: Int = 1, height: Int = 28, width: Int = 28, classes: Int = 10,
                widths: (Int, Int, Int) = (16, 16, 32)) {
        let (c1, c2, c3) = widths
        features = Sequential {
            Conv2d(channels, c1, kernelSize: 3, padding: 1, bias: false); BatchNorm2d(c1); ReLU(inplace: true)
            MaxPool2d(kernelSize: 2)
            Conv2d(c1, c2, kernelSize: 3, padding: 1, bias: false); BatchNorm2d(c2); ReLU(inplace: true)
            MaxPool2d(kernelSize: 2)
            Conv2d(c2, c3, kernelSize: 3, padding: 1, bias: false); BatchNorm2d(c3); ReLU(inplace: true)
        }
        classifier = Sequential { Linear(c3 * (height / 4) * (width / 4), classes) }
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { classifier(features(x).flatten(startDim: 1)) }
}

/// The tutorial's Keras model: Conv2D-MaxPool ×2, Flatten, Dense softmax; 1,198 parameters on MNIST.
///
/// - Parameters:
///   - inputShape: one sample, channels-last `[H, W, C]` (at least 10×10).
///   - classes: output classes.
public func kerasSeedModel(inputShape: [Int] = [28, 28, 1], classes: Int = 10) -> Model {
    Model(inputShape: inputShape) {
        Conv2D(4, 3, activation: .relu)
        MaxPooling2D(2, strides: 2)
        Conv2D(4, 3, activation: .relu)
        MaxPooling2D(2, strides: 2)
        Keras.Flatten()
        Dense(classes, activation: .softmax)
    }
}

/// Convolve's version (`convolve --version`; recorded in every run's `run.json` and checkpoint).
public let convolveVersion = "0.4.0"

/// Named models shipped with Convolve and the recipe each trains with by default. Every model adapts
/// to the dataset's channels, image size and class count (``make(input:classes:)``) where it can.
public enum ZooModel: String, CaseIterable, Sendable {
    case torchSeed = "torch-seed"
    case kerasSeed = "keras-seed"
    case lenet5
    case fastCNN = "fast-cnn"
    case mnistCNN = "mnist-cnn"
    case resnet8
    case resnet20

    /// Default hyper-parameters (the tutorial's for the seeds, pytorch/examples' for mnist-cnn, the
    /// ResNet paper's CIFAR recipe — SGD 0.1, momentum 0.9, weight decay 5e-4 — with a cosine schedule
    /// for resnet8).
    public var defaults: Recipe {
        switch self {
        case .torchSeed: return Recipe(epochs: 10, batchSize: 64, lr: 0.01, optimizer: "adam", normalize: (0.5, 0.5))
        case .kerasSeed: return Recipe(epochs: 10, batchSize: 32, lr: 0.001, optimizer: "adam", normalize: nil, style: .keras)
        case .lenet5: return Recipe(epochs: 5, batchSize: 64, lr: 0.002, optimizer: "adam", normalization: .dataset,
                                    stepLRGamma: 0.6)
        case .fastCNN: return Recipe(epochs: 1, batchSize: 32, lr: 0.015, optimizer: "adam", normalization: .dataset,
                                     oneCycle: true)
        case .mnistCNN: return Recipe(epochs: 5, batchSize: 64, lr: 1.0, optimizer: "adadelta", normalization: .dataset,
                                      stepLRGamma: 0.7)
        case .resnet8, .resnet20: return Recipe(epochs: 30, batchSize: 128, lr: 0.1, optimizer: "sgd", normalization: .dataset,
                                                weightDecay: 5e-4, cosine: true)
        }
    }

    /// What the recipe reaches with its defaults, and in how long on two cores (RESULTS.md).
    public var expected: (accuracy: String, time: String) {
        switch self {
        case .torchSeed: return ("97.79% (MNIST)", "~4 s")
        case .kerasSeed: return ("97.2% (MNIST; 97.2–97.8% by seed)", "~4 s")
        case .lenet5: return ("99.1–99.3% (MNIST)", "~6 s")
        case .fastCNN: return ("99.0–99.2% (MNIST, one epoch)", "~2 s")
        case .mnistCNN: return ("99.1–99.2% (MNIST)", "~70 s")
        case .resnet8: return ("~87% CIFAR-10 (estimate); 99.72% MNIST --augment", "~8 min CIFAR-10 (est.)")
        case .resnet20: return ("~91% CIFAR-10 (the paper's 91.25%)", "~22 min CIFAR-10 (est.)")
        }
    }

    /// One line on what the model is.
    public var about: String {
        switch self {
        case .torchSeed: return "the tutorial's PyTorch model (Conv-BN-ReLU-MaxPool x2 + Linear)"
        case .kerasSeed: return "the tutorial's Keras model (Conv2D-MaxPooling2D x2 + Dense softmax)"
        case .lenet5: return "LeNet-5 with ReLU and max-pooling"
        case .fastCNN: return "three 3x3 Conv-BN-ReLU blocks (16/16/32) + Linear, one-cycle Adam: 99% in one epoch"
        case .mnistCNN: return "pytorch/examples' MNIST CNN (two 3x3 convs, dropout, two dense)"
        case .resnet8: return "CIFAR-style ResNet-8 (3 residual blocks with BatchNorm, global average pooling)"
        case .resnet20: return "CIFAR-style ResNet-20 (He et al. 2016: 9 residual blocks, 16/32/64 channels)"
        }
    }

    /// The input one sample must have by default (MNIST's), `[channels, height, width]`.
    public var inputShape: [Int] { [1, 28, 28] }

    /// The smallest image side the architecture takes (its pooling and valid convolutions shrink it).
    public var minimumSize: Int {
        switch self { case .torchSeed: 4; case .kerasSeed: 10; case .lenet5: 12; case .fastCNN: 4; case .mnistCNN: 6; case .resnet8, .resnet20: 8 }
    }

    /// A new, randomly initialized instance for MNIST-shaped input (uses the global generator: seed it first).
    public func make() -> Module & Layer {
        (try? make(input: inputShape, classes: 10)) ?? TorchSeedNet()
    }

    /// A new, randomly initialized instance for samples of `input` (`[C, H, W]`) and `classes` classes
    /// (uses the global generator: seed it first).
    /// - Parameters:
    ///   - input: one sample's shape, `[channels, height, width]`.
    ///   - classes: output classes.
    public func make(input: [Int], classes: Int) throws -> Module & Layer {
        try validate(input: input, classes: classes)
        let (c, h, w) = (input[0], input[1], input[2])
        switch self {
        case .torchSeed: return TorchSeedNet(channels: c, height: h, width: w, classes: classes)
        case .kerasSeed: return kerasSeedModel(inputShape: [h, w, c], classes: classes)
        case .lenet5: return LeNet5(channels: c, height: h, width: w, classes: classes)
        case .fastCNN: return FastCNN(channels: c, height: h, width: w, classes: classes)
        case .mnistCNN: return MnistCNN(channels: c, height: h, width: w, classes: classes)
        case .resnet8: return ResNet(channels: c, classes: classes)
        case .resnet20: return ResNet(channels: c, classes: classes, blocksPerStage: 3)
        }
    }

    /// Throws, saying why, when the model cannot take samples of `input` with `classes` classes.
    /// - Parameters:
    ///   - input: one sample's shape, `[channels, height, width]`.
    ///   - classes: output classes.
    public func validate(input: [Int], classes: Int) throws {
        guard input.count == 3, input.allSatisfy({ $0 >= 1 }), classes >= 2 else {
            throw RunError("\(rawValue): cannot build a model for samples \(input) and \(classes) classes")
        }
        let (h, w) = (input[1], input[2])
        guard h >= minimumSize && w >= minimumSize else {
            throw RunError("\(rawValue) needs images of at least \(minimumSize)x\(minimumSize); these are \(h)x\(w) "
                + "(give a larger --image-size or choose another model)")
        }
    }
}

/// Which tutorial half a recipe follows: how `convolve train` prints (PyTorch's epoch lines or Keras'
/// progress bar) and Keras' Adam epsilon (1e-7, added before bias correction) or PyTorch's (1e-8).
public enum TrainingStyle: String, Sendable, Codable { case pytorch, keras }

/// Where a recipe's normalization comes from.
public enum NormalizationChoice: Sendable, Equatable {
    /// Only pixels / 255 (the Keras half).
    case none
    /// One mean and standard deviation for every channel (the tutorial's 0.5, 0.5).
    case fixed(mean: Double, std: Double)
    /// The dataset's per-channel statistics (MNIST's 0.1307, 0.3081; CIFAR-10's three; measured for folders).
    case dataset
}

/// Training hyper-parameters: the single source of a run's normalization, optimizer and schedule.
public struct Recipe: Sendable, Codable, Equatable {
    public var epochs: Int
    public var batchSize: Int
    public var lr: Double
    public var optimizer: String
    /// Normalize(mean, std) after /255; nil means plain /255 (Keras half) unless `datasetNormalization`.
    public var normalizeMean: Double?
    public var normalizeStd: Double?
    /// Normalize with the dataset's per-channel statistics (overrides `normalizeMean`/`normalizeStd`).
    public var datasetNormalization: Bool
    /// Per-epoch StepLR decay (pytorch/examples uses 0.7), or nil.
    public var stepLRGamma: Double?
    /// Cosine annealing of the learning rate to 0 over the run's epochs (stepped per epoch).
    public var cosine: Bool
    /// One-cycle schedule (PyTorch's `OneCycleLR`, stepped per batch): warm up to `lr` over the first 30%
    /// of the run's steps, then anneal towards zero. Overrides `cosine` and `stepLRGamma`.
    public var oneCycle: Bool
    /// L2 weight decay (SGD's `weight_decay`), or nil.
    public var weightDecay: Double?
    /// Random training-set augmentation, or nil for none.
    public var augmentation: AugmentationPreset?
    public var style: TrainingStyle

    /// - Parameters:
    ///   - epochs: passes over the training set.
    ///   - batchSize: images per training step.
    ///   - lr: initial learning rate.
    ///   - optimizer: one of `Recipe.optimizerNames`.
    ///   - normalization: what `Normalize` uses after scaling pixels to [0, 1].
    ///   - stepLRGamma: learning-rate decay per epoch (StepLR with step 1), or nil for none.
    ///   - weightDecay: L2 penalty for SGD, or nil.
    ///   - cosine: cosine-anneal the learning rate over the epochs.
    ///   - oneCycle: one-cycle schedule stepped per batch, peaking at `lr` (overrides the other two).
    ///   - augmentation: random training-set augmentation, or nil.
    ///   - style: which tutorial half the run follows (printing, Adam's epsilon).
    public init(epochs: Int, batchSize: Int, lr: Double, optimizer: String, normalization: NormalizationChoice,
                stepLRGamma: Double? = nil, weightDecay: Double? = nil, cosine: Bool = false, oneCycle: Bool = false,
                augmentation: AugmentationPreset? = nil, style: TrainingStyle = .pytorch) {
        self.epochs = epochs; self.batchSize = batchSize; self.lr = lr; self.optimizer = optimizer
        switch normalization {
        case .none: datasetNormalization = false
        case let .fixed(m, s): normalizeMean = m; normalizeStd = s; datasetNormalization = false
        case .dataset: datasetNormalization = true
        }
        self.stepLRGamma = stepLRGamma; self.weightDecay = weightDecay; self.cosine = cosine; self.oneCycle = oneCycle
        self.augmentation = augmentation; self.style = style
    }

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
        self.init(epochs: epochs, batchSize: batchSize, lr: lr, optimizer: optimizer,
                  normalization: normalize.map { .fixed(mean: $0.0, std: $0.1) } ?? .none, stepLRGamma: stepLRGamma, style: style)
    }

    /// The normalization this recipe asks for.
    public var normalization: NormalizationChoice {
        if datasetNormalization { return .dataset }
        return normalizeMean.map { .fixed(mean: $0, std: normalizeStd ?? 1) } ?? .none
    }

    enum CodingKeys: String, CodingKey {
        case epochs, batchSize, lr, optimizer, normalizeMean, normalizeStd, datasetNormalization, stepLRGamma, cosine,
             oneCycle, weightDecay, augmentation, style
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epochs = try c.decode(Int.self, forKey: .epochs)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        lr = try c.decode(Double.self, forKey: .lr)
        optimizer = try c.decode(String.self, forKey: .optimizer)
        normalizeMean = try c.decodeIfPresent(Double.self, forKey: .normalizeMean)
        normalizeStd = try c.decodeIfPresent(Double.self, forKey: .normalizeStd)
        datasetNormalization = try c.decodeIfPresent(Bool.self, forKey: .datasetNormalization) ?? false
        stepLRGamma = try c.decodeIfPresent(Double.self, forKey: .stepLRGamma)
        cosine = try c.decodeIfPresent(Bool.self, forKey: .cosine) ?? false
        oneCycle = try c.decodeIfPresent(Bool.self, forKey: .oneCycle) ?? false
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay)
        augmentation = try c.decodeIfPresent(AugmentationPreset.self, forKey: .augmentation)
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
        case "sgd": return SGD(parameters, lr: lr, momentum: 0.9, weightDecay: weightDecay ?? 0)
        case "rmsprop": return RMSprop(parameters, lr: lr)
        case "adadelta": return Adadelta(parameters, lr: lr)
        default:
            throw RunError("unknown optimizer \(optimizer) (use " + Self.optimizerNames.joined(separator: ", ") + ")")
        }
    }

    /// Whether the schedule steps after every batch (one-cycle) rather than every epoch.
    public var schedulesPerBatch: Bool { oneCycle }

    /// The learning-rate schedule, or nil: stepped once per batch when ``schedulesPerBatch``, else once
    /// per epoch.
    ///
    /// - Parameters:
    ///   - optimizer: whose learning rate the schedule sets.
    ///   - stepsPerEpoch: training steps in one epoch (what a per-batch schedule spans `epochs` of).
    public func makeScheduler(_ optimizer: Optimizer, stepsPerEpoch: Int) -> (any LRScheduler)? {
        if oneCycle { return OneCycleLR(optimizer, maxLR: lr, totalSteps: Swift.max(1, epochs * stepsPerEpoch)) }
        if cosine { return CosineAnnealingLR(optimizer, tMax: epochs) }
        return stepLRGamma.map { StepLR(optimizer, stepSize: 1, gamma: $0) }
    }

    /// The per-batch transform for MNIST-shaped data: pixels to [0, 1], then the recipe's
    /// normalization (dataset statistics: MNIST's). Runs use ``InputSpec/transform`` instead.
    public var transform: any Transform {
        InputSpec(dataset: DatasetKind.mnist, recipe: self).transform
    }

    /// Raw pixel bytes `shape` (`[N, C, H, W]`) as the tensor `transform` makes of them.
    ///
    /// - Parameters:
    ///   - pixels: bytes 0…255, NCHW.
    ///   - shape: `[N, C, H, W]`.
    public func tensor(pixels: [UInt8], shape: [Int]) -> Tensor {
        InputSpec(dataset: DatasetKind.mnist, recipe: self).tensor(pixels: pixels, shape: shape)
    }
}

/// Random training-set augmentations a recipe can name (`--augment` picks one for the dataset).
public enum AugmentationPreset: String, Sendable, Codable, CaseIterable {
    /// Small affine warps for digits and characters: ±10° rotation, ±10% shift, 0.9–1.1 zoom (no flips).
    case digits
    /// Random crops with padding (1/8 of the size) and horizontal flips, for photographs and clothes.
    case crops

    /// The preset that suits a dataset: digits for MNIST and KMNIST, crops for everything else.
    /// - Parameter dataset: the dataset's name.
    public static func suited(to dataset: String) -> AugmentationPreset {
        dataset == DatasetKind.mnist.rawValue || dataset == DatasetKind.kmnist.rawValue ? .digits : .crops
    }

    /// The random transforms, applied to raw pixels before scaling.
    /// - Parameters:
    ///   - height: the images' height.
    ///   - width: the images' width.
    public func transforms(height: Int, width: Int) -> [any Transform] {
        switch self {
        case .digits: return [RandomAffine(degrees: 10, translate: 0.1, scale: 0.9...1.1)]
        case .crops: return [RandomCrop(padding: Swift.max(1, Swift.min(height, width) / 8)), RandomHorizontalFlip()]
        }
    }
}

/// What a trained model needs to know about its input, saved in every checkpoint (metadata `input`):
/// the sample shape, the class names and the normalization, so `evaluate`, `predict` and `export`
/// need no flags.
public struct InputSpec: Codable, Sendable, Equatable {
    /// The dataset's name, or the image folder's path.
    public var dataset: String
    public var channels: Int, height: Int, width: Int
    public var classNames: [String]
    /// `Normalize` after pixels / 255, per channel (one value for all); nil: none.
    public var mean: [Double]?, std: [Double]?
    /// Images of another size are centre-cropped to the aspect ratio before resizing (else stretched).
    public var centerCrop: Bool

    /// - Parameters:
    ///   - dataset: the dataset's name or folder path.
    ///   - channels: channels per sample.
    ///   - height: sample height.
    ///   - width: sample width.
    ///   - classNames: a name per class.
    ///   - mean: channel means for `Normalize` (after / 255), or nil.
    ///   - std: channel standard deviations, or nil.
    ///   - centerCrop: crop other-sized images to the aspect ratio before resizing.
    public init(dataset: String, channels: Int, height: Int, width: Int, classNames: [String],
                mean: [Double]?, std: [Double]?, centerCrop: Bool = false) {
        self.dataset = dataset; self.channels = channels; self.height = height; self.width = width
        self.classNames = classNames; self.mean = mean; self.std = std; self.centerCrop = centerCrop
    }

    /// The spec of a training set under a recipe: the dataset's shape and classes, and the recipe's
    /// normalization resolved (dataset statistics from `provider`).
    /// - Parameters:
    ///   - provider: the dataset (its statistics).
    ///   - train: the loaded training set.
    ///   - recipe: the normalization choice.
    ///   - centerCrop: how other-sized images were made to fit.
    public init(provider: any DatasetProvider, train: ImageDataset, recipe: Recipe, centerCrop: Bool = false) {
        var mean: [Double]?, std: [Double]?
        switch recipe.normalization {
        case .none: break
        case let .fixed(m, s): mean = [m]; std = [s]
        case .dataset: (mean, std) = provider.statistics(of: train)
        }
        self.init(dataset: provider.name, channels: train.channels, height: train.height, width: train.width,
                  classNames: train.classNames, mean: mean, std: std, centerCrop: centerCrop)
    }

    /// The spec of a built-in MNIST-family dataset under a recipe (checkpoints written before specs).
    /// - Parameters:
    ///   - dataset: the dataset.
    ///   - recipe: the normalization choice.
    public init(dataset: DatasetKind, recipe: Recipe) {
        var mean: [Double]?, std: [Double]?
        switch recipe.normalization {
        case .none: break
        case let .fixed(m, s): mean = [m]; std = [s]
        case .dataset: (mean, std) = (dataset.mean, dataset.std)
        }
        self.init(dataset: dataset.rawValue, channels: 1, height: 28, width: 28, classNames: dataset.classNames,
                  mean: mean, std: std)
    }

    /// `[channels, height, width]`.
    public var sampleShape: [Int] { [channels, height, width] }

    /// Pixels to [0, 1], then `Normalize(mean, std)` if the spec has one.
    public var transform: any Transform {
        guard let mean, let std else { return ToTensor() }
        return Compose(ToTensor(), Normalize(mean: mean.map(Float.init), std: std.map(Float.init)))
    }

    /// Raw pixel bytes (`[N, C, H, W]`) as the tensor `transform` makes of them.
    /// - Parameters:
    ///   - pixels: bytes 0…255, NCHW.
    ///   - shape: `[N, C, H, W]`.
    public func tensor(pixels: [UInt8], shape: [Int]) -> Tensor {
        var values = pixels.map { Float($0) }
        values.withUnsafeMutableBufferPointer { transform.apply($0, shape: shape) }
        return Tensor(values, shape: shape)
    }

    /// An image file's pixels as one sample: converted to the spec's channels, centre-cropped if the
    /// spec says so, resized (bilinear) to its size; CHW bytes.
    /// - Parameter image: a decoded image of any size.
    public func sample(from image: Image) -> [UInt8] {
        var img = image.converted(channels: channels)
        if img.width != width || img.height != height {
            if centerCrop { img = img.centerCropped(aspectWidth: width, aspectHeight: height) }
            img = img.resized(width: width, height: height)
        }
        var chw = [UInt8](repeating: 0, count: channels * height * width)
        for p in 0..<(height * width) { for c in 0..<channels { chw[c * height * width + p] = img.pixels[p * channels + c] } }
        return chw
    }
}
