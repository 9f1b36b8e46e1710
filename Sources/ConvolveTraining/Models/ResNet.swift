import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// ResNet (He et al. 2016) in torchvision's layout and `state_dict` keys, in two shapes:
///
/// - **ImageNet** (`resnet18()`, `resnet34()`, `resnet50()`: torchvision's `resnet18` … with the same
///   keys, so its weight files load): a 7×7 stride-2 convolution to 64 channels, a 3×3 stride-2 max
///   pool, four stages of `BasicBlock`s or `Bottleneck`s at 64, 128, 256 and 512 (× 4) channels, global
///   average pooling and one linear layer. Input RGB 224×224 normalized with ImageNet's mean and std.
/// - **CIFAR** (`init(channels:classes:blocksPerStage:width:)`, depth 6n + 2): a 3×3 convolution to 16
///   channels and three stages of `BasicBlock`s at 16, 32 and 64; 78,042 parameters for 3 channels and
///   10 classes, any input of at least 8×8.
public final class ResNet: Module, Layer {
    /// The residual block of the ImageNet networks.
    public enum Block: Sendable { case basic, bottleneck }
    public let conv1: Conv2d, bn1: BatchNorm2d
    /// The stem's 3×3 stride-2 max pool (ImageNet), or nil (CIFAR).
    public let maxpool: MaxPool2d?
    public let layer1: Sequential, layer2: Sequential, layer3: Sequential
    /// The fourth stage (ImageNet), or nil (CIFAR).
    public let layer4: Sequential?
    public let avgpool = AdaptiveAvgPool2d(1)
    public let fc: Linear

    /// The CIFAR-style ResNet of depth 6n + 2.
    ///
    /// - Parameters:
    ///   - channels: input channels.
    ///   - classes: output classes.
    ///   - blocksPerStage: n; depth is 6n + 2 (1: ResNet-8, 3: ResNet-20).
    ///   - width: channels of the first stage (doubled by each later stage).
    public init(channels: Int = 3, classes: Int = 10, blocksPerStage: Int = 1, width: Int = 16) {
        conv1 = Conv2d(channels, width, kernelSize: 3, padding: 1, bias: false)
        bn1 = BatchNorm2d(width)
        maxpool = nil
        func stage(_ input: Int, _ output: Int, stride: Int) -> Sequential {
            Sequential((0..<blocksPerStage).map { i in BasicBlock(i == 0 ? input : output, output, stride: i == 0 ? stride : 1) })
        }
        layer1 = stage(width, width, stride: 1)
        layer2 = stage(width, 2 * width, stride: 2)
        layer3 = stage(2 * width, 4 * width, stride: 2)
        layer4 = nil
        fc = Linear(4 * width, classes)
    }

    /// torchvision's ImageNet ResNet (`torchvision.models.ResNet(block, layers)`).
    ///
    /// - Parameters:
    ///   - block: `.basic` (ResNet-18, -34) or `.bottleneck` (ResNet-50 and deeper).
    ///   - layers: blocks in each of the four stages (`[2, 2, 2, 2]` for ResNet-18).
    ///   - channels: input channels (3: RGB).
    ///   - classes: outputs of the classifier (1000: ImageNet's).
    ///
    /// ### See Also
    /// - ``resnet18(classes:)``, ``resnet34(classes:)``, ``resnet50(classes:)``, ``BasicBlock``, ``Bottleneck``
    public init(block: Block, layers: [Int], channels: Int = 3, classes: Int = 1000) {
        precondition(layers.count == 4 && layers.allSatisfy { $0 >= 1 }, "an ImageNet ResNet has four stages of at least one block")
        conv1 = Conv2d(channels, 64, kernelSize: 7, stride: 2, padding: 3, bias: false)
        bn1 = BatchNorm2d(64)
        maxpool = MaxPool2d(kernelSize: 3, stride: 2, padding: 1)
        let expansion = block == .basic ? 1 : Bottleneck.expansion
        var inChannels = 64
        func stage(_ width: Int, _ blocks: Int, stride: Int) -> Sequential {
            Sequential((0..<blocks).map { i -> Module & Layer in
                defer { inChannels = width * expansion }
                let s = i == 0 ? stride : 1
                return block == .basic ? BasicBlock(inChannels, width, stride: s) : Bottleneck(inChannels, width: width, stride: s)
            })
        }
        layer1 = stage(64, layers[0], stride: 1)
        layer2 = stage(128, layers[1], stride: 2)
        layer3 = stage(256, layers[2], stride: 2)
        layer4 = stage(512, layers[3], stride: 2)
        fc = Linear(512 * expansion, classes)
    }

    /// ResNet-18 (torchvision's `resnet18`: 11,689,512 parameters for 1000 classes).
    /// - Parameter classes: outputs of the classifier.
    public static func resnet18(classes: Int = 1000) -> ResNet { ResNet(block: .basic, layers: [2, 2, 2, 2], classes: classes) }
    /// ResNet-34 (torchvision's `resnet34`).
    /// - Parameter classes: outputs of the classifier.
    public static func resnet34(classes: Int = 1000) -> ResNet { ResNet(block: .basic, layers: [3, 4, 6, 3], classes: classes) }
    /// ResNet-50 (torchvision's `resnet50`, v1.5: stride on the 3×3 convolutions).
    /// - Parameter classes: outputs of the classifier.
    public static func resnet50(classes: Int = 1000) -> ResNet { ResNet(block: .bottleneck, layers: [3, 4, 6, 3], classes: classes) }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        var h = bn1(conv1(input), fusedReLU: true)
        if let maxpool { h = maxpool(h) }
        h = layer3(layer2(layer1(h)))
        if let layer4 { h = layer4(h) }
        return fc(avgpool(h).flatten(startDim: 1))
    }
}

extension ModelEntry {
    /// The CIFAR ResNet recipe of the paper (SGD 0.1, momentum 0.9, weight decay 5e-4) with a cosine schedule.
    static let resNetRecipe = Recipe(epochs: 30, batchSize: 128, lr: 0.1, optimizer: "sgd", normalization: .dataset,
                                     weightDecay: 5e-4, cosine: true)

    /// A CIFAR-style ResNet of depth 6n + 2: its parameters (exact, without buffers) and activations.
    static func resNetSize(blocksPerStage n: Double) -> @Sendable (Double, Double, Double, Double) -> (Double, Double) {
        { c, h, w, k in (c * 144 + 76_960 + (n - 1) * 97_216 + 65 * k, (c + 48 + 168 * n) * h * w) }
    }

    /// ResNet-8 (`resnet8`).
    static let resnet8 = ModelEntry(
        name: "resnet8", about: "CIFAR-style ResNet-8 (3 residual blocks with BatchNorm, global average pooling)",
        defaults: resNetRecipe, expected: ("~87% CIFAR-10 (estimate); 99.72% MNIST --augment", "~8 min CIFAR-10 (est.)"),
        minimumSize: 8, build: { c, _, _, k in ResNet(channels: c, classes: k) }, size: resNetSize(blocksPerStage: 1),
        normalizedPlane: { h, w in ((h + 3) / 4) * ((w + 3) / 4) })

    /// ResNet-20 (`resnet20`).
    static let resnet20 = ModelEntry(
        name: "resnet20", about: "CIFAR-style ResNet-20 (He et al. 2016: 9 residual blocks, 16/32/64 channels)",
        defaults: resNetRecipe, expected: ("~91% CIFAR-10 (the paper's 91.25%)", "~22 min CIFAR-10 (est.)"),
        minimumSize: 8, build: { c, _, _, k in ResNet(channels: c, classes: k, blocksPerStage: 3) }, size: resNetSize(blocksPerStage: 3),
        normalizedPlane: { h, w in ((h + 3) / 4) * ((w + 3) / 4) })
}

extension ModelEntry {
    /// ResNet-18 (`resnet18`, torchvision's).
    static let resnet18 = imageNet(
        name: "resnet18", about: "ResNet-18 (torchvision's layout and keys: 8 basic blocks, 64-512 channels, 224x224 ImageNet)",
        expected: ("69.76% ImageNet top-1 (torchvision's weights)", "n/a: `convolve import` weights"),
        pretrained: .imageNet(), parameters: 11_689_512, stemPerChannel: 3_136, features: 512, activationsPerPixel: 100,
        build: { c, k in ResNet(block: .basic, layers: [2, 2, 2, 2], channels: c, classes: k) })

    /// ResNet-34 (`resnet34`, torchvision's).
    static let resnet34 = imageNet(
        name: "resnet34", about: "ResNet-34 (torchvision's layout and keys: 16 basic blocks, 224x224 ImageNet)",
        expected: ("73.31% ImageNet top-1 (torchvision's weights)", "n/a: `convolve import` weights"),
        pretrained: .imageNet(), parameters: 21_797_672, stemPerChannel: 3_136, features: 512, activationsPerPixel: 150,
        build: { c, k in ResNet(block: .basic, layers: [3, 4, 6, 3], channels: c, classes: k) })

    /// ResNet-50 (`resnet50`, torchvision's v1.5).
    static let resnet50 = imageNet(
        name: "resnet50", about: "ResNet-50 v1.5 (torchvision's layout and keys: 16 bottlenecks, 224x224 ImageNet)",
        expected: ("76.13% ImageNet top-1 (torchvision's V1 weights)", "n/a: `convolve import` weights"),
        pretrained: .imageNet(), parameters: 25_557_032, stemPerChannel: 3_136, features: 2_048, activationsPerPixel: 420,
        build: { c, k in ResNet(block: .bottleneck, layers: [3, 4, 6, 3], channels: c, classes: k) })
}
