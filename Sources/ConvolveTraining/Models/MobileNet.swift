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
    ///   - classes: outputs of the classifier (1000: ImageNet's).
    ///   - dropout: dropout before the classifier.
    public init(classes: Int = 1000, dropout: Double = 0.2) {
        var layers: [any Layer] = [convBNReLU6(3, 32, kernel: 3, stride: 2)]
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
    Sequential {
        Conv2d(input, output, kernelSize: IntOrPair(kernel), stride: IntOrPair(stride), padding: IntOrPair((kernel - 1) / 2),
               groups: groups, bias: false)
        BatchNorm2d(output)
        ReLU6(inplace: true)
    }
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
