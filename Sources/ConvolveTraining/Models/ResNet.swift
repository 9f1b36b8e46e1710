import Foundation
import Convolve
import ConvolveNN
import ConvolveData

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
