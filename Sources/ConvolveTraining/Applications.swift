import Foundation
import Convolve
import ConvolveNN

/// An ImageNet architecture whose classifier can be taken off: the network up to its last feature map
/// (`features`), and the names of the children that make the top (pooling, dropout, classifier).
public protocol FeatureExtractor: Module, Layer {
    /// The last feature map, `[N, featureChannels, H / 32, W / 32]`.
    /// - Parameter input: `[N, C, H, W]`, normalized.
    func features(_ input: Tensor) -> Tensor
    /// Channels of the last feature map.
    var featureChannels: Int { get }
    /// The `state_dict` prefixes of the top (`fc`, `classifier`, `_fc`).
    var topKeys: Set<String> { get }
}

extension ResNet: FeatureExtractor {
    public func features(_ input: Tensor) -> Tensor {
        var h = bn1(conv1(input), fusedReLU: true)
        if let maxpool { h = maxpool(h) }
        h = layer3(layer2(layer1(h)))
        if let layer4 { h = layer4(h) }
        return h
    }
    public var featureChannels: Int { fc.inFeatures }
    public var topKeys: Set<String> { ["fc"] }
}

extension MobileNetV2: FeatureExtractor {
    public func features(_ input: Tensor) -> Tensor { let stages: Sequential = features; return stages(input) }
    public var featureChannels: Int { 1280 }
    public var topKeys: Set<String> { ["classifier"] }
}

extension MobileNetV3: FeatureExtractor {
    public func features(_ input: Tensor) -> Tensor { let stages: Sequential = features; return stages(input) }
    public var featureChannels: Int { (classifier.layers[0] as! Linear).inFeatures }
    public var topKeys: Set<String> { ["classifier"] }
}

extension EfficientNet: FeatureExtractor {
    public func features(_ input: Tensor) -> Tensor { let stages: Sequential = features; return stages(input) }
    public var featureChannels: Int { 1280 }
    public var topKeys: Set<String> { ["classifier"] }
}

extension EfficientNetLite: FeatureExtractor {
    public var featureChannels: Int { 1280 }
    public var topKeys: Set<String> { ["_fc"] }
}

/// A pretrained ImageNet network as one Keras layer (`keras.applications.ResNet50(include_top=False,
/// weights=...)`): without its top, it maps `(H, W, 3)` images — normalized as its weights expect — to
/// its last feature map `(H/32, W/32, features)` (or, with `pooling: .avg`, to the pooled vector);
/// with its top, to the 1000 ImageNet probabilities. Its weights are under `<name>.` in the model's
/// `state_dict`, the top's left out when it is not included.
///
/// ```swift
/// let base = try KerasApplication(.mobilenetV2, weights: .file("mobilenet_v2.pth"), inputShape: [224, 224, 3])
/// let model = Model {
///     base; GlobalAveragePooling2D(); Dense(5, activation: .softmax)
/// }
/// ```
public final class KerasApplication: KerasLayer {
    /// Pooling of the feature map when the top is not included (Keras' `pooling`).
    public enum Pooling: Sendable { case none, avg }
    /// The whole network (its top unused when not included).
    public let network: any FeatureExtractor
    public let zoo: ZooModel
    public let includeTop: Bool, pooling: Pooling

    /// - Parameters:
    ///   - zoo: an ImageNet architecture of the registry (`.resnet50`, `.mobilenetV2`, …).
    ///   - weights: its pretrained weights, or nil for random ones.
    ///   - includeTop: keep the ImageNet classifier (outputs probabilities), else output features.
    ///   - pooling: without the top, `.avg` pools the feature map to a vector.
    ///   - inputShape: one sample's shape, channels-last (`[224, 224, 3]`), when this is the first layer.
    public init(_ zoo: ZooModel, weights: Weights? = nil, includeTop: Bool = false, pooling: Pooling = .none,
                inputShape: [Int]? = nil) throws {
        guard let network = zoo.make() as? any FeatureExtractor else {
            throw RunError("\(zoo.rawValue) is not an ImageNet architecture (\(ZooModel.allCases.filter { $0.pretrained != nil }.map(\.rawValue).joined(separator: ", ")))")
        }
        if let weights { try network.load(weights) }
        self.network = network; self.zoo = zoo; self.includeTop = includeTop; self.pooling = pooling
        super.init(inputShape: inputShape)
    }

    public override var kerasClassName: String { "Functional" }
    public override var nameStem: String { zoo.rawValue }
    public override var children: [(String, Module)] {
        includeTop ? network.children : network.children.filter { !network.topKeys.contains($0.0) }
    }
    public override func build(_ s: [Int]) -> [Int] {
        if includeTop { return [network.stateDict().last(where: { $0.1.rank == 2 })?.1.shape[0] ?? 1000] }
        if pooling == .avg { return [network.featureChannels] }
        return [(s[0] + 31) / 32, (s[1] + 31) / 32, network.featureChannels]
    }
    public override func callAsFunction(_ input: Tensor) -> Tensor {
        network.train(training)
        if includeTop { return network(input).softmax(dim: 1) }
        let map = network.features(input)
        return pooling == .avg ? globalAvgPool2d(map).flatten(startDim: 1) : map
    }
}
