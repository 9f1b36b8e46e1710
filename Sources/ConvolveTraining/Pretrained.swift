import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// Where a model's weights come from (torchvision's `weights=`, Keras' `weights=`).
public enum Weights: Sendable, Equatable {
    /// A weight file: a PyTorch `.pth` (either `torch.save` format: a `state_dict`, or a checkpoint
    /// holding one) or a safetensors file, with the model's `state_dict` keys.
    case file(String)
}

/// The named tensors of a weight file, whatever its format: safetensors (a Convolve checkpoint's
/// optimizer state left out), or PyTorch's zip or legacy `torch.save` format (``PyTorchFile``),
/// told apart by their first bytes (or, for a file that is neither, by its extension, so the error
/// speaks of the format meant); in the file's order.
/// - Parameter path: the file.
public func readWeights(_ path: String) throws -> [(String, Tensor)] {
    let pytorchNames = [".pth", ".pt", ".bin", ".ckpt", ".tar"]
    if PyTorchFile.looksLikePyTorch(leadingBytes(of: path, 16)) || pytorchNames.contains(where: { path.lowercased().hasSuffix($0) }) {
        return try PyTorchFile.read(path)
    }
    let (tensors, _, order) = try SafeTensors.read(path)
    return order.filter { !$0.hasPrefix("optimizer.") }.compactMap { key in tensors[key].map { (key, $0) } }
}

/// A weight file's tensors under the model's own keys. Files with the model's keys pass as they are;
/// a file that names them otherwise but holds the same tensors in the same order — timm's
/// EfficientNet-B0 (`conv_stem`, `blocks.N.M.conv_dw`, `se.conv_reduce`, …) against torchvision's
/// layout, as Keras loads weights by order — is matched entry by entry, each shape checked (a 1×1
/// convolution's weight may stand for a linear layer's). Anything else is returned as read, for the
/// strict loader to list what is missing and unexpected.
/// - Parameters:
///   - weights: the file's tensors in file order.
///   - model: the model they are for.
public func matchingKeys(_ weights: [(String, Tensor)], to model: Module) -> [(String, Tensor)] {
    let mine = model.stateDict()
    let names = Set(weights.map(\.0))
    guard !mine.allSatisfy({ names.contains($0.0) }), weights.count == mine.count else { return weights }
    var matched: [(String, Tensor)] = []
    for ((_, theirs), (key, own)) in zip(weights, mine) {
        guard theirs.count == own.count, theirs.shape.filter({ $0 != 1 }) == own.shape.filter({ $0 != 1 }) else { return weights }
        matched.append((key, theirs.shape == own.shape ? theirs : theirs.reshape(own.shape)))
    }
    return matched
}

/// The first `count` bytes of a file (fewer if it is shorter; none if it cannot be read: the reader
/// then names what is wrong).
/// - Parameters:
///   - path: the file.
///   - count: how many bytes.
public func leadingBytes(of path: String, _ count: Int) -> [UInt8] {
    guard let fd = try? openRegularFile(path) else { return [] }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: count)
    let n = read(fd, &bytes, count)
    return Array(bytes.prefix(Swift.max(0, n)))
}

extension Module {
    /// Loads weights strictly (`load_state_dict(strict=True)`): every key of the model present,
    /// none left over, every shape equal, every value finite; the error names the file and lists
    /// the missing, unexpected and mis-shaped keys.
    /// - Parameter weights: the weights to load.
    public func load(_ weights: Weights) throws {
        switch weights {
        case let .file(path):
            let state = Dictionary(matchingKeys(try readWeights(path), to: self), uniquingKeysWith: { first, _ in first })
            try checkFinite(state, path: path)
            do { try loadStateDict(state) } catch { throw RunError("\(path): \(error)") }
        }
    }
}

extension ZooModel {
    /// The model with the weights of `path` loaded strictly, in eval mode, and the input those weights
    /// expect. The class count comes from the file's classifier (so a model fine-tuned to 10 classes
    /// loads as one); the input is the registry's record of the published weights (``pretrained``)
    /// with `classNames`, or ImageNet's names when the classifier has 1000 outputs, else "0", "1", ….
    /// - Parameters:
    ///   - path: a `.pth` or `.safetensors` file with the model's `state_dict` keys.
    ///   - classNames: the classes' names, or nil.
    public func loadPretrained(_ path: String, classNames: [String]? = nil) throws -> (model: Module & Layer, input: InputSpec) {
        guard var spec = pretrained else {
            throw RunError("\(rawValue) has no published pretrained weights; train it with `convolve train`")
        }
        let probe = make()
        let state = Dictionary(matchingKeys(try readWeights(path), to: probe), uniquingKeysWith: { first, _ in first })
        // The classifier is the model's last two-dimensional parameter (`fc.weight`, `classifier.1.weight`).
        var classes = defaultClasses
        if let (key, _) = probe.stateDict().last(where: { $0.1.rank == 2 }), let stored = state[key], stored.rank == 2,
           Bounds.classes.contains(stored.shape[0]) {
            classes = stored.shape[0]
        }
        if let classNames {
            guard classNames.count == classes else {
                throw RunError("\(path): the classifier has \(classes) outputs but \(classNames.count) class names were given")
            }
            spec.classNames = classNames
        } else if classes != spec.classNames.count {
            spec.classNames = (0..<classes).map(String.init)
        }
        try spec.validate(path)
        let model = classes == defaultClasses ? probe : try make(input: spec.sampleShape, classes: classes)
        try checkFinite(state, path: path)
        do { try model.loadStateDict(state) } catch { throw RunError("\(path): \(error)") }
        model.eval()
        return (model, spec)
    }
}

extension ResNet {
    /// ResNet-18 with pretrained weights (`torchvision.models.resnet18(weights=...)`), in eval mode.
    /// - Parameters:
    ///   - weights: a file with torchvision's keys.
    ///   - classes: outputs of its classifier (1000: ImageNet's).
    public static func resnet18(weights: Weights, classes: Int = 1000) throws -> ResNet {
        try loaded(resnet18(classes: classes), weights)
    }
    /// ResNet-34 with pretrained weights, in eval mode.
    /// - Parameters:
    ///   - weights: a file with torchvision's keys.
    ///   - classes: outputs of its classifier.
    public static func resnet34(weights: Weights, classes: Int = 1000) throws -> ResNet {
        try loaded(resnet34(classes: classes), weights)
    }
    /// ResNet-50 with pretrained weights (`torchvision.models.resnet50(weights=...)`), in eval mode.
    /// - Parameters:
    ///   - weights: a file with torchvision's keys.
    ///   - classes: outputs of its classifier.
    public static func resnet50(weights: Weights, classes: Int = 1000) throws -> ResNet {
        try loaded(resnet50(classes: classes), weights)
    }
}

extension MobileNetV2 {
    /// MobileNetV2 with pretrained weights (`torchvision.models.mobilenet_v2(weights=...)`), in eval mode.
    /// - Parameters:
    ///   - weights: a file with torchvision's keys.
    ///   - classes: outputs of its classifier.
    public convenience init(weights: Weights, classes: Int = 1000) throws {
        self.init(classes: classes)
        try load(weights)
        eval()
    }
}

extension EfficientNetLite {
    /// EfficientNet-Lite with pretrained weights (the `efficientnet-lite-pytorch` package's
    /// `from_pretrained`), in eval mode.
    /// - Parameters:
    ///   - variant: `.lite0` … `.lite4`.
    ///   - weights: a file with the package's keys (`efficientnet-lite0-57934424.pth`).
    ///   - classes: outputs of its classifier.
    public convenience init(_ variant: Variant = .lite0, weights: Weights, classes: Int = 1000) throws {
        self.init(variant, classes: classes)
        try load(weights)
        eval()
    }
}

/// `model` with `weights` loaded, in eval mode.
func loaded<M: Module>(_ model: M, _ weights: Weights) throws -> M {
    try model.load(weights)
    model.eval()
    return model
}

/// Loads pretrained weights into a network built for another dataset — fine-tuning's start: every
/// backbone tensor (all but the top, ``FeatureExtractor/topKeys``) from the file, strictly (missing,
/// unexpected and mis-shaped backbone keys listed; the stem's shape names a channel mismatch), the
/// file's top left out so the network keeps its new head for the dataset's classes.
/// - Parameters:
///   - model: an ImageNet architecture built for the dataset (``FeatureExtractor``).
///   - zoo: its registry entry.
///   - path: the weight file (`.pth` or `.safetensors`).
public func loadBackbone(_ model: Module & Layer, of zoo: ZooModel, from path: String) throws {
    guard let network = model as? any FeatureExtractor else {
        throw RunError("\(path): pretrained weights load into the ImageNet architectures only (\(ZooModel.allCases.filter { $0.pretrained != nil }.map(\.rawValue).joined(separator: ", ")))")
    }
    func isTop(_ key: String) -> Bool { network.topKeys.contains { key == $0 || key.hasPrefix($0 + ".") } }
    // Matched by order against the network as the file's classes would build it (its top's shapes
    // are the file's, not the dataset's).
    let read = try readWeights(path)
    let fileClasses = read.last(where: { $0.1.rank == 2 }).map { $0.1.shape[0] } ?? zoo.defaultClasses
    let reference = try zoo.make(input: zoo.inputShape, classes: Bounds.classes.contains(fileClasses) ? fileClasses : zoo.defaultClasses)
    let file = Dictionary(matchingKeys(read, to: reference).filter { !isTop($0.0) }, uniquingKeysWith: { first, _ in first })
    try checkFinite(file, path: path)
    do { try model.loadStateDict(file, skipping: isTop) }
    catch { throw RunError("\(path): not the backbone of this \(type(of: model)): \(error)") }
}
