import Foundation
import Convolve

/// 2-D max pooling (`torch.nn.MaxPool2d`). Stride defaults to the kernel size.
public final class MaxPool2d: Module, Layer {
    public let kernelSize: (Int, Int), stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
    public let ceilMode: Bool
    /// The arguments as given (one number or a pair), for PyTorch's repr.
    private let given: [IntOrPair]

    /// Max pooling over NCHW input.
    ///
    /// - Parameters:
    ///   - kernelSize: window height and width (one number: square).
    ///   - stride: step between windows (default: the window size).
    ///   - padding: implicit −∞ padding on each side (at most half the window).
    ///   - dilation: spacing between window elements.
    ///   - ceilMode: round the output size up instead of down.
    ///
    /// ### See Also
    /// - `maxPool2d`, ``AvgPool2d``, ``IntOrPair``
    public init(kernelSize: IntOrPair, stride: IntOrPair? = nil, padding: IntOrPair = 0, dilation: IntOrPair = 1,
                ceilMode: Bool = false) {
        self.kernelSize = kernelSize.pair; self.stride = (stride ?? kernelSize).pair; self.padding = padding.pair
        self.dilation = dilation.pair; self.ceilMode = ceilMode
        given = [kernelSize, stride ?? kernelSize, padding, dilation]
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        Profiler.measure("MaxPool2d forward") {
            maxPool2d(input, kernelSize: kernelSize, stride: stride, padding: padding, dilation: dilation, ceilMode: ceilMode)
        }
    }
    /// Output spatial size for an input of `h`×`w`.
    ///
    /// - Parameters:
    ///   - h: input height.
    ///   - w: input width.
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        (convOutputSize(h, kernel: kernelSize.0, stride: stride.0, padding: padding.0, dilation: dilation.0, ceilMode: ceilMode),
         convOutputSize(w, kernel: kernelSize.1, stride: stride.1, padding: padding.1, dilation: dilation.1, ceilMode: ceilMode))
    }
    public override var extraDescription: String {
        let (k, s, p, d) = (given[0].pythonDescription, given[1].pythonDescription, given[2].pythonDescription,
                            given[3].pythonDescription)
        return "kernel_size=\(k), stride=\(s), padding=\(p), dilation=\(d), ceil_mode=\(ceilMode ? "True" : "False")"
    }
}

/// 2-D average pooling (`torch.nn.AvgPool2d`). Stride defaults to the kernel size.
public final class AvgPool2d: Module, Layer {
    public let kernelSize: (Int, Int), stride: (Int, Int), padding: (Int, Int)
    public let ceilMode: Bool, countIncludePad: Bool
    /// The arguments as given (one number or a pair), for PyTorch's repr.
    private let given: [IntOrPair]

    /// Average pooling over NCHW input.
    ///
    /// - Parameters:
    ///   - kernelSize: window height and width (one number: square).
    ///   - stride: step between windows (default: the window size).
    ///   - padding: implicit zero padding on each side.
    ///   - ceilMode: round the output size up.
    ///   - countIncludePad: divide by the whole window, padding included (PyTorch's default).
    ///
    /// ### See Also
    /// - `avgPool2d`, ``MaxPool2d``, ``IntOrPair``
    public init(kernelSize: IntOrPair, stride: IntOrPair? = nil, padding: IntOrPair = 0, ceilMode: Bool = false,
                countIncludePad: Bool = true) {
        self.kernelSize = kernelSize.pair; self.stride = (stride ?? kernelSize).pair; self.padding = padding.pair
        self.ceilMode = ceilMode; self.countIncludePad = countIncludePad
        given = [kernelSize, stride ?? kernelSize, padding]
    }
    public func callAsFunction(_ input: Tensor) -> Tensor {
        avgPool2d(input, kernelSize: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode,
                  countIncludePad: countIncludePad)
    }
    /// Output spatial size for an input of `h`×`w`.
    /// - Parameters:
    ///   - h: input height.
    ///   - w: input width.
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        (convOutputSize(h, kernel: kernelSize.0, stride: stride.0, padding: padding.0, ceilMode: ceilMode),
         convOutputSize(w, kernel: kernelSize.1, stride: stride.1, padding: padding.1, ceilMode: ceilMode))
    }
    public override var extraDescription: String {
        "kernel_size=\(given[0].pythonDescription), stride=\(given[1].pythonDescription), padding=\(given[2].pythonDescription)"
    }
}

/// Averages each channel over the whole image (`torch.nn.AdaptiveAvgPool2d(1)` / `(1, 1)`):
/// `[N, C, H, W]` → `[N, C, 1, 1]`, whatever H and W — the head of a ResNet that adapts to any input size.
public final class AdaptiveAvgPool2d: Module, Layer {
    /// The output size; only 1 (global average pooling) is supported.
    public let outputSize: (Int, Int)

    /// - Parameter outputSize: 1 (or `[1, 1]`): one value per channel.
    ///
    /// ### See Also
    /// - `globalAvgPool2d`, ``AvgPool2d``
    public init(_ outputSize: IntOrPair = 1) {
        precondition(outputSize.pair == (1, 1), "AdaptiveAvgPool2d supports only outputSize 1 (global average pooling)")
        self.outputSize = outputSize.pair
    }
    public func callAsFunction(_ input: Tensor) -> Tensor { globalAvgPool2d(input) }
    public override var extraDescription: String { "output_size=(1, 1)" }
}
