import Foundation
import Convolve
import ConvolveNN
import ConvolveData

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
