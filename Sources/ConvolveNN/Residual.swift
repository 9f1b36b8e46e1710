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
