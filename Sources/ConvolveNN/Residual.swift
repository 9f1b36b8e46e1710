import Foundation
import Convolve

/// The residual block of the CIFAR ResNets (He et al. 2016, torchvision's `BasicBlock`):
/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, two 3×3 convolutions without bias, each
/// followed by BatchNorm; the shortcut is the identity, or a 1×1 convolution + BatchNorm when the
/// block changes the channel count or the stride (torchvision's `downsample`).
public final class BasicBlock: Module, Layer {
    public let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    /// The projection shortcut, or nil for the identity.
    public let downsample: Sequential?

    /// NCHW in, `[N, outChannels, H / stride, W / stride]` out.
    ///
    /// - Parameters:
    ///   - inChannels: channels of the input.
    ///   - outChannels: channels of the output.
    ///   - stride: the first convolution's (and the shortcut's) stride; 2 halves the image.
    ///
    /// ### See Also
    /// - ``Conv2d``, ``BatchNorm2d``, ``AdaptiveAvgPool2d``
    public init(_ inChannels: Int, _ outChannels: Int, stride: Int = 1) {
        conv1 = Conv2d(inChannels, outChannels, kernelSize: 3, stride: .init(stride), padding: 1, bias: false)
        bn1 = BatchNorm2d(outChannels)
        conv2 = Conv2d(outChannels, outChannels, kernelSize: 3, padding: 1, bias: false)
        bn2 = BatchNorm2d(outChannels)
        downsample = stride != 1 || inChannels != outChannels
            ? Sequential { Conv2d(inChannels, outChannels, kernelSize: 1, stride: .init(stride), bias: false); BatchNorm2d(outChannels) }
            : nil
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        let h = conv2(bn1(conv1(input), fusedReLU: true))
        return bn2(h, addingReLU: downsample.map { $0(input) } ?? input)
    }
}

/// The residual block of ResNet-50 and deeper (torchvision's `Bottleneck`, "ResNet v1.5": the stride on
/// the 3×3 convolution): `relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))` with a
/// 1×1 reduction to `width` channels, a 3×3 convolution and a 1×1 expansion to `4 · width`; the
/// shortcut is the identity, or a strided 1×1 convolution + BatchNorm where the shape changes.
public final class Bottleneck: Module, Layer {
    /// Output channels per unit of `width`.
    public static let expansion = 4
    public let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d, conv3: Conv2d, bn3: BatchNorm2d
    /// The projection shortcut, or nil for the identity.
    public let downsample: Sequential?

    /// NCHW in, `[N, 4 · width, H / stride, W / stride]` out.
    ///
    /// - Parameters:
    ///   - inChannels: channels of the input.
    ///   - width: channels of the inner 3×3 convolution (the output has 4 × as many).
    ///   - stride: the 3×3 convolution's (and the shortcut's) stride; 2 halves the image.
    ///
    /// ### See Also
    /// - ``BasicBlock``, ``Conv2d``, ``BatchNorm2d``
    public init(_ inChannels: Int, width: Int, stride: Int = 1) {
        let out = width * Self.expansion
        conv1 = Conv2d(inChannels, width, kernelSize: 1, bias: false)
        bn1 = BatchNorm2d(width)
        conv2 = Conv2d(width, width, kernelSize: 3, stride: .init(stride), padding: 1, bias: false)
        bn2 = BatchNorm2d(width)
        conv3 = Conv2d(width, out, kernelSize: 1, bias: false)
        bn3 = BatchNorm2d(out)
        downsample = stride != 1 || inChannels != out
            ? Sequential { Conv2d(inChannels, out, kernelSize: 1, stride: .init(stride), bias: false); BatchNorm2d(out) }
            : nil
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        let h = conv2(bn1(conv1(input), fusedReLU: true))
        return bn3(conv3(bn2(h, fusedReLU: true)), addingReLU: downsample.map { $0(input) } ?? input)
    }
}

/// Squeeze-and-excitation (Hu et al. 2018; torchvision's `ops.SqueezeExcitation`, keys `fc1`, `fc2`):
/// each channel of the input scaled by a gate computed from the whole image —
/// `x · σ(fc2(δ(fc1(avgpool(x)))))` with 1×1 convolutions (with bias) down to `squeezeChannels` and
/// back. MobileNetV3 gates with hard-sigmoid after ReLU, EfficientNet with the sigmoid after SiLU.
public final class SqueezeExcitation: Module, Layer {
    let avgpool = AdaptiveAvgPool2d(1)
    public let fc1: Conv2d, fc2: Conv2d
    let activation: any Layer, scaleActivation: any Layer

    /// - Parameters:
    ///   - inputChannels: channels of the input (and of the gate).
    ///   - squeezeChannels: channels of the bottleneck between the two 1×1 convolutions.
    ///   - activation: δ, after the first convolution (ReLU by default, as torchvision's).
    ///   - scaleActivation: σ, making the gate (the sigmoid by default).
    public init(_ inputChannels: Int, _ squeezeChannels: Int, activation: any Layer = ReLU(), scaleActivation: any Layer = Sigmoid()) {
        fc1 = Conv2d(inputChannels, squeezeChannels, kernelSize: 1)
        fc2 = Conv2d(squeezeChannels, inputChannels, kernelSize: 1)
        self.activation = activation
        self.scaleActivation = scaleActivation
        super.init()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        input.scaledPerChannel(by: scaleActivation(fc2(activation(fc1(avgpool(input))))))
    }
}
