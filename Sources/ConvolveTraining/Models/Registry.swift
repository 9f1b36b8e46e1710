import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// One registered model: its name, what it is, how it is built for an input, its default recipe, what
/// that recipe reaches, the smallest input it takes and its size — everything the CLI, the run driver
/// and `convolve models` ask of a model, in one value (torchvision's `register_model` and `Weights`
/// entries). A model family's file defines its entries; ``ZooModel/registry`` lists them once.
public struct ModelEntry: Sendable {
    /// The registry name (`--model`).
    public let name: String
    /// One line on what the model is.
    public let about: String
    /// The recipe it trains with by default.
    public let defaults: Recipe
    /// What the recipe reaches with its defaults, and in how long on two cores (RESULTS.md).
    public let expected: (accuracy: String, time: String)
    /// The smallest image side the architecture takes (its pooling and valid convolutions shrink it).
    public let minimumSize: Int
    /// Builds the model for `(channels, height, width, classes)`.
    let build: @Sendable (Int, Int, Int, Int) -> Module & Layer
    /// Its parameters and the activations one training sample keeps, in numbers, for
    /// `(channels, height, width, classes)` (floating point: absurd sizes cannot overflow).
    let size: @Sendable (Double, Double, Double, Double) -> (Double, Double)
    /// The smallest plane its batch norm normalizes, for `(height, width)`; nil without batch norm.
    let normalizedPlane: (@Sendable (Int, Int) -> Int?)?
    /// The sample shape `[channels, height, width]` and classes it is built for by default (MNIST's
    /// for the small CNNs, ImageNet's for the ImageNet architectures).
    public let defaultInput: (shape: [Int], classes: Int)
    /// The input its published pretrained weights expect (size, resize and crop, mean and std, the
    /// class names), recorded in the checkpoint `convolve import` writes; nil when none are published.
    public let pretrained: InputSpec?

    /// - Parameters:
    ///   - name: the registry name.
    ///   - about: one line on what it is.
    ///   - defaults: its default recipe.
    ///   - expected: accuracy and time its recipe reaches.
    ///   - minimumSize: the smallest image side it takes.
    ///   - build: builds it for `(channels, height, width, classes)`.
    ///   - size: parameters and activations per training sample for `(channels, height, width, classes)`.
    ///   - normalizedPlane: the smallest plane its batch norm normalizes for `(height, width)`, or nil.
    ///   - defaultInput: the sample shape and classes it is built for by default.
    ///   - pretrained: the input its published weights expect, or nil.
    public init(name: String, about: String, defaults: Recipe, expected: (accuracy: String, time: String), minimumSize: Int,
                build: @escaping @Sendable (Int, Int, Int, Int) -> Module & Layer,
                size: @escaping @Sendable (Double, Double, Double, Double) -> (Double, Double),
                normalizedPlane: (@Sendable (Int, Int) -> Int?)? = nil,
                defaultInput: (shape: [Int], classes: Int) = ([1, 28, 28], 10), pretrained: InputSpec? = nil) {
        self.name = name; self.about = about; self.defaults = defaults; self.expected = expected
        self.minimumSize = minimumSize; self.build = build; self.size = size; self.normalizedPlane = normalizedPlane
        self.defaultInput = defaultInput; self.pretrained = pretrained
    }

    /// The training recipe of the ImageNet architectures: torchvision's reference recipe (SGD with
    /// momentum 0.9, weight decay 10⁻⁴, a cosine schedule) at batch 32 with its rate scaled to match
    /// (0.1 × 32 / 256); normalization by the dataset's own channel statistics.
    static let imageNetRecipe = Recipe(epochs: 90, batchSize: 32, lr: 0.0125, optimizer: "sgd", normalization: .dataset,
                                       weightDecay: 1e-4, cosine: true)

    /// An ImageNet architecture's entry: RGB 224×224 and 1000 classes by default, any input of at
    /// least 32×32 (five stride-2 stages), its parameters exact from those of the 1000-class RGB
    /// network (`parameters`), its stem's weights per input channel (`stemPerChannel`) and the
    /// classifier's input features, and its activations per sample as `activationsPerPixel × h × w`
    /// (counted at 224×224, ``RegistryTests``).
    static func imageNet(name: String, about: String, expected: (accuracy: String, time: String), pretrained: InputSpec,
                         parameters: Double, stemPerChannel: Double, features: Double, activationsPerPixel: Double,
                         build: @escaping @Sendable (Int, Int) -> Module & Layer) -> ModelEntry {
        ModelEntry(name: name, about: about, defaults: imageNetRecipe, expected: expected, minimumSize: 32,
                   build: { c, _, _, k in build(c, k) },
                   size: { c, h, w, k in
                       (parameters + stemPerChannel * (c - 3) + (features + 1) * (k - 1000), activationsPerPixel * h * w)
                   },
                   normalizedPlane: { h, w in ((h + 31) / 32) * ((w + 31) / 32) },
                   defaultInput: ([3, 224, 224], 1000), pretrained: pretrained)
    }
}

/// `floor(x)`, never below zero: a feature map's side after valid convolutions and pooling.
func whole(_ x: Double) -> Double { Swift.max(0, Foundation.floor(x)) }

/// A model of the registry, by name (`ZooModel(rawValue: "lenet5")`, `.lenet5`). Every model adapts to
/// the dataset's channels, image size and class count (``make(input:classes:)``) where it can.
public struct ZooModel: RawRepresentable, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Every registered model, in the order `convolve models` lists them: one line per model.
    public static let registry: [ModelEntry] = [
        .torchSeed, .kerasSeed, .lenet5, .fastCNN, .mnistCNN, .resnet8, .resnet20,
        .resnet18, .resnet34, .resnet50, .mobilenetV2, .mobilenetV3Large, .mobilenetV3Small, .efficientnetB0, .efficientnetLite0,
    ]
    /// Names are found with `-` and `_` alike (`efficientnet-lite0`, `mobilenet-v2`, `fast_cnn`).
    private static let byName = Dictionary(uniqueKeysWithValues: registry.map { (key($0.name), $0) })
    private static func key(_ name: String) -> String { name.lowercased().replacingOccurrences(of: "_", with: "-") }

    public static let torchSeed = ZooModel(ModelEntry.torchSeed)
    public static let kerasSeed = ZooModel(ModelEntry.kerasSeed)
    public static let lenet5 = ZooModel(ModelEntry.lenet5)
    public static let fastCNN = ZooModel(ModelEntry.fastCNN)
    public static let mnistCNN = ZooModel(ModelEntry.mnistCNN)
    public static let resnet8 = ZooModel(ModelEntry.resnet8)
    public static let resnet20 = ZooModel(ModelEntry.resnet20)
    public static let resnet18 = ZooModel(ModelEntry.resnet18)
    public static let resnet34 = ZooModel(ModelEntry.resnet34)
    public static let resnet50 = ZooModel(ModelEntry.resnet50)
    public static let mobilenetV2 = ZooModel(ModelEntry.mobilenetV2)
    public static let mobilenetV3Large = ZooModel(ModelEntry.mobilenetV3Large)
    public static let mobilenetV3Small = ZooModel(ModelEntry.mobilenetV3Small)
    public static let efficientnetB0 = ZooModel(ModelEntry.efficientnetB0)
    public static let efficientnetLite0 = ZooModel(ModelEntry.efficientnetLite0)

    /// The registered models.
    public static var allCases: [ZooModel] { registry.map(ZooModel.init) }

    /// The model's entry: everything the registry knows of it.
    public let entry: ModelEntry
    /// The registry name.
    public var rawValue: String { entry.name }
    public var description: String { entry.name }

    init(_ entry: ModelEntry) { self.entry = entry }
    /// The registered model of this name, or nil.
    /// - Parameter rawValue: a registry name (`lenet5`).
    public init?(rawValue: String) {
        guard let entry = Self.byName[Self.key(rawValue)] else { return nil }
        self.entry = entry
    }
    public static func == (a: ZooModel, b: ZooModel) -> Bool { a.rawValue == b.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    /// Default hyper-parameters (the tutorial's for the seeds, pytorch/examples' for mnist-cnn, the
    /// ResNet paper's CIFAR recipe with a cosine schedule for the ResNets).
    public var defaults: Recipe { entry.defaults }
    /// What the recipe reaches with its defaults, and in how long on two cores (RESULTS.md).
    public var expected: (accuracy: String, time: String) { entry.expected }
    /// One line on what the model is.
    public var about: String { entry.about }
    /// The input one sample has by default (MNIST's, or ImageNet's for the ImageNet architectures),
    /// `[channels, height, width]`.
    public var inputShape: [Int] { entry.defaultInput.shape }
    /// The classes it has by default (10, or ImageNet's 1000).
    public var defaultClasses: Int { entry.defaultInput.classes }
    /// The input its published pretrained weights expect, or nil.
    public var pretrained: InputSpec? { entry.pretrained }
    /// The smallest image side the architecture takes.
    public var minimumSize: Int { entry.minimumSize }

    /// A new, randomly initialized instance for its default input (``inputShape``, ``defaultClasses``;
    /// uses the global generator: seed it first).
    public func make() -> Module & Layer {
        entry.build(inputShape[0], inputShape[1], inputShape[2], defaultClasses)
    }

    /// A new, randomly initialized instance for samples of `input` (`[C, H, W]`) and `classes` classes
    /// (uses the global generator: seed it first).
    /// - Parameters:
    ///   - input: one sample's shape, `[channels, height, width]`.
    ///   - classes: output classes.
    public func make(input: [Int], classes: Int) throws -> Module & Layer {
        try validate(input: input, classes: classes)
        return entry.build(input[0], input[1], input[2], classes)
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

    /// Rough sizes of the model for samples of `input` (`[C, H, W]`) and `classes` classes, in numbers
    /// (Float32 each), computed without building it: its parameters and the activations one sample keeps
    /// alive in a training step. Computed in floating point, so absurd sizes cannot overflow.
    /// - Parameters:
    ///   - input: one sample's shape.
    ///   - classes: output classes.
    public func estimatedSize(input: [Int], classes: Int) -> (parameters: Double, activationsPerSample: Double) {
        guard input.count == 3 else { return (0, 0) }
        let (p, a) = entry.size(Double(input[0]), Double(input[1]), Double(input[2]), Double(classes))
        return (p, a)
    }

    /// The smallest plane (height × width) a batch-norm layer of the model normalizes, for samples of
    /// `input`; nil when the model has none. Where it is 1, a batch of one sample gives batch norm one
    /// value per channel, which training cannot normalize (PyTorch refuses it too).
    /// - Parameter input: one sample's shape.
    public func smallestNormalizedPlane(input: [Int]) -> Int? {
        guard input.count == 3 else { return nil }
        return entry.normalizedPlane?(input[1], input[2])
    }
}
