import Foundation
import Convolve
import ConvolveNN

/// MobileNetV2 (Sandler et al. 2018) in torchvision's layout and `state_dict` keys (`features.N…`,
/// `classifier.1`), so torchvision's weight files load: a 3×3 stride-2 convolution to 32 channels,
/// seventeen inverted residual blocks, a 1×1 convolution to 1280 channels (each convolution followed by
/// batch norm and, except the blocks' projections, ReLU6), global average pooling, dropout and one
/// linear layer; 3,504,872 parameters for 1000 classes. Input RGB 224×224 normalized with ImageNet's
/// mean and std.
public final class MobileNetV2: Module, Layer {
    /// The stem, the blocks and the last 1×1 convolution (`features.0` … `features.18`).
    public let features: Sequential
    let avgpool = AdaptiveAvgPool2d(1)
    /// Dropout and the linear classifier (`classifier.1`).
    public let classifier: Sequential

    /// torchvision's inverted residual settings: expansion t, channels c, repeats n, first stride s.
    static let settings: [(t: Int, c: Int, n: Int, s: Int)] = [
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]

    /// - Parameters:
    ///   - channels: input channels (3: RGB).
    ///   - classes: outputs of the classifier (1000: ImageNet's).
    ///   - dropout: dropout before the classifier.
    public init(channels: Int = 3, classes: Int = 1000, dropout: Double = 0.2) {
        var layers: [any Layer] = [convBNReLU6(channels, 32, kernel: 3, stride: 2)]
        var input = 32
        for setting in Self.settings {
            for i in 0..<setting.n {
                layers.append(InvertedResidual(input, setting.c, stride: i == 0 ? setting.s : 1, expansion: setting.t))
                input = setting.c
            }
        }
        layers.append(convBNReLU6(input, 1280, kernel: 1))
        features = Sequential(layers)
        classifier = Sequential { Dropout(dropout); Linear(1280, classes) }
        super.init()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        classifier(avgpool(features(input)).flatten(startDim: 1))
    }
}

/// torchvision's `Conv2dNormActivation` with ReLU6: a convolution without bias padded to keep the size
/// (at stride 1), batch norm and ReLU6, as one `Sequential` (keys `0.weight`, `1.running_mean`, …).
func convBNReLU6(_ input: Int, _ output: Int, kernel: Int, stride: Int = 1, groups: Int = 1) -> Sequential {
    convNormActivation(input, output, kernel: kernel, stride: stride, groups: groups, activation: ReLU6(inplace: true))
}

/// torchvision's `Conv2dNormActivation`: a convolution without bias padded by `(kernel − 1) / 2`, batch
/// norm (ε and momentum as given: MobileNetV3 uses TensorFlow's 10⁻³ and 0.01) and the activation if
/// any, as one `Sequential` (keys `0.weight`, `1.running_mean`, …).
func convNormActivation(_ input: Int, _ output: Int, kernel: Int, stride: Int = 1, groups: Int = 1,
                        activation: (any Layer)?, eps: Double = 1e-5, momentum: Double = 0.1) -> Sequential {
    var layers: [any Layer] = [
        Conv2d(input, output, kernelSize: IntOrPair(kernel), stride: IntOrPair(stride), padding: IntOrPair((kernel - 1) / 2),
               groups: groups, bias: false),
        BatchNorm2d(output, eps: eps, momentum: momentum),
    ]
    if let activation { layers.append(activation) }
    return Sequential(layers)
}

/// torchvision's `_make_divisible`: `value` rounded to a multiple of `divisor` (at least `divisor`),
/// never more than 10% below it.
func makeDivisible(_ value: Double, _ divisor: Int = 8) -> Int {
    var rounded = Swift.max(divisor, Int(value + Double(divisor) / 2) / divisor * divisor)
    if Double(rounded) < 0.9 * value { rounded += divisor }
    return rounded
}

/// MobileNetV2's inverted residual block (torchvision's `InvertedResidual`, keys `conv.N…`): a 1×1
/// expansion with ReLU6 (when the ratio is not 1), a 3×3 depthwise convolution with ReLU6 carrying the
/// stride, and a linear 1×1 projection with batch norm; the input is added back when the block keeps
/// its shape.
public final class InvertedResidual: Module, Layer {
    public let conv: Sequential
    /// Whether the input is added to the output (stride 1, same channels).
    public let residual: Bool

    /// - Parameters:
    ///   - input: channels in.
    ///   - output: channels out.
    ///   - stride: the depthwise convolution's stride (1 or 2).
    ///   - expansion: hidden channels per input channel.
    public init(_ input: Int, _ output: Int, stride: Int, expansion: Int) {
        let hidden = input * expansion
        var layers: [any Layer] = []
        if expansion != 1 { layers.append(convBNReLU6(input, hidden, kernel: 1)) }
        layers.append(convBNReLU6(hidden, hidden, kernel: 3, stride: stride, groups: hidden))
        layers.append(Conv2d(hidden, output, kernelSize: 1, bias: false))
        layers.append(BatchNorm2d(output))
        conv = Sequential(layers)
        residual = stride == 1 && input == output
        super.init()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        residual ? conv(input) + input : conv(input)
    }
}

extension ModelEntry {
    /// MobileNetV2 (`mobilenet_v2`, torchvision's).
    static let mobilenetV2 = imageNet(
        name: "mobilenet_v2", about: "MobileNetV2 (torchvision's layout and keys: 17 inverted residuals, ReLU6, 224x224 ImageNet)",
        expected: ("71.88% ImageNet top-1 (torchvision's V1 weights)", "n/a: `convolve import` weights"),
        pretrained: .imageNet(), parameters: 3_504_872, stemPerChannel: 288, features: 1_280, activationsPerPixel: 395,
        build: { c, k in MobileNetV2(channels: c, classes: k) })
}

/// MobileNetV3 (Howard et al. 2019), Large and Small, in torchvision's layout and `state_dict` keys
/// (`features.N.block.K…`, `classifier.0`, `classifier.3`): a 3×3 stride-2 convolution to 16 channels
/// with hard-swish, inverted residual blocks (``InvertedResidualV3``: ReLU or hard-swish, 3×3 or 5×5
/// depthwise, some with squeeze-and-excitation gated by hard-sigmoid), a 1×1 convolution to 6× the
/// last block's channels, global average pooling, a linear layer with hard-swish, dropout and the
/// classifier. Batch norm with TensorFlow's ε = 10⁻³ and momentum 0.01. 5,483,032 (Large) and
/// 2,542,856 (Small) parameters for 1000 classes. Input RGB 224×224 normalized with ImageNet's
/// mean and std.
public final class MobileNetV3: Module, Layer {
    /// The two sizes of the paper.
    public enum Size: Sendable { case large, small }
    /// The stem, the blocks and the last 1×1 convolution (`features.0` … `features.16` / `.12`).
    public let features: Sequential
    let avgpool = AdaptiveAvgPool2d(1)
    /// Linear, hard-swish, dropout, linear (`classifier.0`, `classifier.3`).
    public let classifier: Sequential

    /// torchvision's `bneck_conf` rows: input, kernel, expanded, output, squeeze-and-excitation,
    /// hard-swish (else ReLU), stride.
    typealias Setting = (input: Int, kernel: Int, expanded: Int, output: Int, se: Bool, hardswish: Bool, stride: Int)
    static let large: [Setting] = [
        (16, 3, 16, 16, false, false, 1), (16, 3, 64, 24, false, false, 2), (24, 3, 72, 24, false, false, 1),
        (24, 5, 72, 40, true, false, 2), (40, 5, 120, 40, true, false, 1), (40, 5, 120, 40, true, false, 1),
        (40, 3, 240, 80, false, true, 2), (80, 3, 200, 80, false, true, 1), (80, 3, 184, 80, false, true, 1),
        (80, 3, 184, 80, false, true, 1), (80, 3, 480, 112, true, true, 1), (112, 3, 672, 112, true, true, 1),
        (112, 5, 672, 160, true, true, 2), (160, 5, 960, 160, true, true, 1), (160, 5, 960, 160, true, true, 1),
    ]
    static let small: [Setting] = [
        (16, 3, 16, 16, true, false, 2), (16, 3, 72, 24, false, false, 2), (24, 3, 88, 24, false, false, 1),
        (24, 5, 96, 40, true, true, 2), (40, 5, 240, 40, true, true, 1), (40, 5, 240, 40, true, true, 1),
        (40, 5, 120, 48, true, true, 1), (48, 5, 144, 48, true, true, 1), (48, 5, 288, 96, true, true, 2),
        (96, 5, 576, 96, true, true, 1), (96, 5, 576, 96, true, true, 1),
    ]

    /// - Parameters:
    ///   - size: `.large` or `.small`.
    ///   - channels: input channels (3: RGB).
    ///   - classes: outputs of the classifier (1000: ImageNet's).
    ///   - dropout: dropout before the classifier.
    public init(_ size: Size, channels: Int = 3, classes: Int = 1000, dropout: Double = 0.2) {
        let settings = size == .large ? Self.large : Self.small
        var layers: [any Layer] = [convNormActivation(channels, 16, kernel: 3, stride: 2, activation: Hardswish(),
                                                      eps: 1e-3, momentum: 0.01)]
        for s in settings {
            layers.append(InvertedResidualV3(s.input, s.expanded, s.output, kernel: s.kernel, stride: s.stride,
                                             squeezeExcitation: s.se, hardswish: s.hardswish))
        }
        let last = settings.last!.output
        layers.append(convNormActivation(last, 6 * last, kernel: 1, activation: Hardswish(), eps: 1e-3, momentum: 0.01))
        features = Sequential(layers)
        let hidden = size == .large ? 1280 : 1024
        classifier = Sequential { Linear(6 * last, hidden); Hardswish(); Dropout(dropout); Linear(hidden, classes) }
        super.init()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        classifier(avgpool(features(input)).flatten(startDim: 1))
    }
}

/// MobileNetV3's inverted residual block (torchvision's `mobilenetv3.InvertedResidual`, keys
/// `block.N…`): a 1×1 expansion (when it widens), a depthwise k×k convolution carrying the stride,
/// each with batch norm and ReLU or hard-swish, optionally squeeze-and-excitation (to a multiple of 8
/// near a quarter of the channels, gated by hard-sigmoid), and a linear 1×1 projection with batch
/// norm; the input is added back when the block keeps its shape.
public final class InvertedResidualV3: Module, Layer {
    public let block: Sequential
    /// Whether the input is added to the output (stride 1, same channels).
    public let residual: Bool

    /// - Parameters:
    ///   - input: channels in.
    ///   - expanded: channels of the depthwise convolution.
    ///   - output: channels out.
    ///   - kernel: the depthwise kernel (3 or 5).
    ///   - stride: the depthwise stride (1 or 2).
    ///   - squeezeExcitation: whether to gate the channels after the depthwise convolution.
    ///   - hardswish: hard-swish (else ReLU) after the expansion and the depthwise convolution.
    public init(_ input: Int, _ expanded: Int, _ output: Int, kernel: Int, stride: Int, squeezeExcitation: Bool, hardswish: Bool) {
        let activation: () -> any Layer = { hardswish ? Hardswish() : ReLU() }
        var layers: [any Layer] = []
        if expanded != input {
            layers.append(convNormActivation(input, expanded, kernel: 1, activation: activation(), eps: 1e-3, momentum: 0.01))
        }
        layers.append(convNormActivation(expanded, expanded, kernel: kernel, stride: stride, groups: expanded,
                                         activation: activation(), eps: 1e-3, momentum: 0.01))
        if squeezeExcitation {
            layers.append(SqueezeExcitation(expanded, makeDivisible(Double(expanded / 4)), scaleActivation: Hardsigmoid()))
        }
        layers.append(convNormActivation(expanded, output, kernel: 1, activation: nil, eps: 1e-3, momentum: 0.01))
        block = Sequential(layers)
        residual = stride == 1 && input == output
        super.init()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        residual ? block(input) + input : block(input)
    }
}

extension ModelEntry {
    /// MobileNetV3-Large (`mobilenet_v3_large`, torchvision's).
    static let mobilenetV3Large = imageNet(
        name: "mobilenet_v3_large", about: "MobileNetV3-Large (torchvision's layout and keys: 15 blocks, SE, hard-swish, 224x224 ImageNet)",
        expected: ("74.04% ImageNet top-1 (torchvision's V1 weights)", "n/a: `convolve import` weights"),
        pretrained: .imageNet(), parameters: 5_483_032, stemPerChannel: 144, features: 1_280, activationsPerPixel: 231,
        build: { c, k in MobileNetV3(.large, channels: c, classes: k) })

    /// MobileNetV3-Small (`mobilenet_v3_small`, torchvision's).
    static let mobilenetV3Small = imageNet(
        name: "mobilenet_v3_small", about: "MobileNetV3-Small (torchvision's layout and keys: 11 blocks, SE, hard-swish, 224x224 ImageNet)",
        expected: ("67.67% ImageNet top-1 (torchvision's weights)", "n/a: `convolve import` weights"),
        pretrained: .imageNet(), parameters: 2_542_856, stemPerChannel: 144, features: 1_024, activationsPerPixel: 82,
        build: { c, k in MobileNetV3(.small, channels: c, classes: k) })
}
