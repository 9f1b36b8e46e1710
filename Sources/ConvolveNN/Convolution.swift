import Foundation
import Convolve

/// Padding by name (Keras' `padding=`, PyTorch's `padding='same'`).
public enum Padding: String, Sendable {
    /// No padding.
    case valid
    /// TensorFlow's "same": ⌈size / stride⌉ outputs, the zeros split with the smaller half before
    /// (see `samePadding`), computed for each input's size.
    case same
}

/// 2-D convolution over NCHW input (`torch.nn.Conv2d`). Weight `[out, in/groups, kh, kw]`, bias `[out]`.
public final class Conv2d: Module, Layer {
    public let inChannels: Int, outChannels: Int
    public let kernelSize: (Int, Int), stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
    public let groups: Int
    /// Whether the padding is TensorFlow's "same", worked out for each input (then `padding` is unused).
    public let samePadding: Bool
    /// Convolution kernel `[out, in/groups, kh, kw]`.
    public var weight: Tensor
    /// Per-output-channel bias, or nil.
    public var bias: Tensor?

    /// A convolution over NCHW input `[N, inChannels, H, W]`, giving `[N, outChannels, OH, OW]`.
    ///
    /// ```swift
    /// Conv2d(1, 4, kernelSize: 3, stride: 1, padding: 1)     // nn.Conv2d(1, 4, kernel_size=3, stride=1, padding=1)
    /// Conv2d(8, 16, kernelSize: [3, 1], padding: [1, 0])
    /// ```
    ///
    /// - Parameters:
    ///   - inChannels: channels of the input.
    ///   - outChannels: channels of the output (filters).
    ///   - kernelSize: kernel height and width (one number: square).
    ///   - stride: step between windows, down and across.
    ///   - padding: zeros added on each side, down and across.
    ///   - dilation: spacing between kernel taps.
    ///   - groups: split channels into this many independent groups (both counts must divide by it).
    ///   - bias: learn a per-output-channel bias.
    ///   - initialization: PyTorch's (Kaiming uniform) or Keras' (Glorot uniform) initial weights.
    ///
    /// ### See Also
    /// - `conv2d`, the op it calls
    /// - ``MaxPool2d``, ``BatchNorm2d``, ``IntOrPair``
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: IntOrPair, stride: IntOrPair = 1,
                            padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: Int = 1, bias: Bool = true,
                            initialization: Initialization = .pytorch) {
        self.init(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding, dilation: dilation,
                  groups: groups, bias: bias, initialization: initialization, same: false)
    }

    /// A convolution padded by name: `.same` is TensorFlow's "same" (asymmetric for strided or even
    /// kernels, as in TF-ported weights: EfficientNet-Lite, Keras), worked out for each input's size.
    ///
    /// ```swift
    /// Conv2d(3, 32, kernelSize: 3, stride: 2, padding: .same, bias: false)   // the EfficientNet-Lite stem
    /// ```
    ///
    /// - Parameters:
    ///   - inChannels: channels of the input.
    ///   - outChannels: channels of the output (filters).
    ///   - kernelSize: kernel height and width (one number: square).
    ///   - stride: step between windows, down and across.
    ///   - padding: `.valid` (none) or `.same`.
    ///   - dilation: spacing between kernel taps.
    ///   - groups: split channels into this many independent groups (`inChannels`: depthwise).
    ///   - bias: learn a per-output-channel bias.
    ///   - initialization: PyTorch's (Kaiming uniform) or Keras' (Glorot uniform) initial weights.
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: IntOrPair, stride: IntOrPair = 1,
                            padding: Padding, dilation: IntOrPair = 1, groups: Int = 1, bias: Bool = true,
                            initialization: Initialization = .pytorch) {
        self.init(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: 0, dilation: dilation,
                  groups: groups, bias: bias, initialization: initialization, same: padding == .same)
    }

    init(_ inChannels: Int, _ outChannels: Int, kernelSize: IntOrPair, stride: IntOrPair, padding: IntOrPair,
         dilation: IntOrPair, groups: Int, bias: Bool, initialization: Initialization, same: Bool) {
        precondition(inChannels % groups == 0 && outChannels % groups == 0, "channels must divide by groups")
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernelSize = kernelSize.pair; self.stride = stride.pair; self.padding = padding.pair
        self.dilation = dilation.pair
        self.groups = groups
        samePadding = same
        let receptive = kernelSize.first * kernelSize.second
        (weight, self.bias) = Init.weightAndBias(initialization,
            weightShape: [outChannels, inChannels / groups, kernelSize.first, kernelSize.second],
            biasCount: bias ? outChannels : nil,
            fanIn: inChannels / groups * receptive, fanOut: outChannels / groups * receptive)
        super.init()
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        guard samePadding, input.rank == 4 else { return callAsFunction(input, fusedReLU: false) }
        let (h, w) = (Convolve.samePadding(input.shape[2], kernel: kernelSize.0, stride: stride.0, dilation: dilation.0),
                      Convolve.samePadding(input.shape[3], kernel: kernelSize.1, stride: stride.1, dilation: dilation.1))
        return Profiler.measure("Conv2d forward") {
            conv2d(input, weight: weight, bias: bias, stride: stride, padding: (h.before, w.before, h.after, w.after),
                   dilation: dilation, groups: groups)
        }
    }

    /// `relu(self(input))` in one pass: the ReLU is applied as the convolution writes its output
    /// (what `F.relu(self.conv1(x))` computes, with one activation tensor and one pass fewer).
    ///
    /// - Parameters:
    ///   - input: `[N, inChannels, H, W]`.
    ///   - fusedReLU: apply the ReLU as the output is written.
    public func callAsFunction(_ input: Tensor, fusedReLU: Bool) -> Tensor {
        if samePadding { return fusedReLU ? callAsFunction(input).relu() : callAsFunction(input) }
        return Profiler.measure("Conv2d forward") {
            conv2d(input, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                   groups: groups, fusedReLU: fusedReLU)
        }
    }

    /// `max_pool2d(relu(self(input)), 2)` in one op: the full-size activation is never stored
    /// (see `conv2dReLUMaxPool2x2`; strided or dilated layers run the separate ops).
    ///
    /// - Parameter input: `[N, inChannels, H, W]`.
    public func reluMaxPool2x2(_ input: Tensor) -> Tensor {
        guard stride == (1, 1) && dilation == (1, 1) else {
            return maxPool2d(callAsFunction(input, fusedReLU: true), kernelSize: (2, 2))
        }
        return Profiler.measure("Conv2d forward") {
            conv2dReLUMaxPool2x2(input, weight: weight, bias: bias, padding: padding, groups: groups)
        }
    }

    /// Output spatial size for an input of `h`×`w`.
    ///
    /// - Parameters:
    ///   - h: input height.
    ///   - w: input width.
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        if samePadding { return ((h + stride.0 - 1) / stride.0, (w + stride.1 - 1) / stride.1) }
        return (convOutputSize(h, kernel: kernelSize.0, stride: stride.0, padding: padding.0, dilation: dilation.0),
         convOutputSize(w, kernel: kernelSize.1, stride: stride.1, padding: padding.1, dilation: dilation.1))
    }

    public override var extraDescription: String {
        var s = "\(inChannels), \(outChannels), kernel_size=\(tup(kernelSize)), stride=\(tup(stride))"
        if samePadding { s += ", padding=same" } else if padding != (0, 0) { s += ", padding=\(tup(padding))" }
        if dilation != (1, 1) { s += ", dilation=\(tup(dilation))" }
        if groups != 1 { s += ", groups=\(groups)" }
        if bias == nil { s += ", bias=False" }
        return s
    }
}

func tup(_ t: (Int, Int)) -> String { "(\(t.0), \(t.1))" }
