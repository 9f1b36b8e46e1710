import Foundation
import Convolve

/// 2-D max pooling (`torch.nn.MaxPool2d`). Stride defaults to the kernel size.
public final class MaxPool2d: Module, Layer {
    public let kernelSize: (Int, Int), stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
    public let ceilMode: Bool
    private let square: Bool

    /// Max pooling over NCHW input.
    ///
    /// - Parameters:
    ///   - kernelSize: window height and width.
    ///   - stride: step between windows (default: the window size).
    ///   - padding: implicit −∞ padding on each side (at most half the window).
    ///   - dilation: spacing between window elements.
    ///   - ceilMode: round the output size up instead of down.
    ///
    /// ### See Also
    /// - `maxPool2d`, ``AvgPool2d``
    public init(kernelSize: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                dilation: (Int, Int) = (1, 1), ceilMode: Bool = false) {
        self.kernelSize = kernelSize; self.stride = stride ?? kernelSize; self.padding = padding
        self.dilation = dilation; self.ceilMode = ceilMode; square = false
    }
    /// Square max pooling over NCHW input.
    ///
    /// - Parameters:
    ///   - kernelSize: window size.
    ///   - stride: step between windows (default: the window size).
    ///   - padding: implicit −∞ padding on each side.
    ///   - dilation: spacing between window elements.
    ///   - ceilMode: round the output size up.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, dilation: Int = 1, ceilMode: Bool = false) {
        self.kernelSize = (kernelSize, kernelSize); self.stride = (stride ?? kernelSize, stride ?? kernelSize)
        self.padding = (padding, padding); self.dilation = (dilation, dilation); self.ceilMode = ceilMode
        square = true
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        Profiler.measure("MaxPool2d forward") {
            maxPool2d(input, kernelSize: kernelSize, stride: stride, padding: padding, dilation: dilation, ceilMode: ceilMode)
        }
    }
    /// Output spatial size for an input of `h`×`w`.
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        (convOutputSize(h, kernel: kernelSize.0, stride: stride.0, padding: padding.0, dilation: dilation.0, ceilMode: ceilMode),
         convOutputSize(w, kernel: kernelSize.1, stride: stride.1, padding: padding.1, dilation: dilation.1, ceilMode: ceilMode))
    }
    public override var extraDescription: String {
        func f(_ t: (Int, Int)) -> String { square ? "\(t.0)" : tup(t) }
        return "kernel_size=\(f(kernelSize)), stride=\(f(stride)), padding=\(f(padding)), dilation=\(f(dilation)), ceil_mode=\(ceilMode ? "True" : "False")"
    }
}

/// 2-D average pooling (`torch.nn.AvgPool2d`). Stride defaults to the kernel size.
public final class AvgPool2d: Module, Layer {
    public let kernelSize: (Int, Int), stride: (Int, Int), padding: (Int, Int)
    public let ceilMode: Bool, countIncludePad: Bool
    private let square: Bool

    /// Average pooling over NCHW input.
    ///
    /// - Parameters:
    ///   - kernelSize: window height and width.
    ///   - stride: step between windows (default: the window size).
    ///   - padding: implicit zero padding on each side.
    ///   - ceilMode: round the output size up.
    ///   - countIncludePad: divide by the whole window, padding included (PyTorch's default).
    ///
    /// ### See Also
    /// - `avgPool2d`, ``MaxPool2d``
    public init(kernelSize: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                ceilMode: Bool = false, countIncludePad: Bool = true) {
        self.kernelSize = kernelSize; self.stride = stride ?? kernelSize; self.padding = padding
        self.ceilMode = ceilMode; self.countIncludePad = countIncludePad; square = false
    }
    /// Square average pooling over NCHW input.
    ///
    /// - Parameters:
    ///   - kernelSize: window size.
    ///   - stride: step between windows (default: the window size).
    ///   - padding: implicit zero padding on each side.
    ///   - ceilMode: round the output size up.
    ///   - countIncludePad: divide by the whole window, padding included.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false,
                countIncludePad: Bool = true) {
        self.kernelSize = (kernelSize, kernelSize); self.stride = (stride ?? kernelSize, stride ?? kernelSize)
        self.padding = (padding, padding); self.ceilMode = ceilMode; self.countIncludePad = countIncludePad
        square = true
    }
    public func callAsFunction(_ input: Tensor) -> Tensor {
        avgPool2d(input, kernelSize: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode,
                  countIncludePad: countIncludePad)
    }
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        (convOutputSize(h, kernel: kernelSize.0, stride: stride.0, padding: padding.0, ceilMode: ceilMode),
         convOutputSize(w, kernel: kernelSize.1, stride: stride.1, padding: padding.1, ceilMode: ceilMode))
    }
    public override var extraDescription: String {
        func f(_ t: (Int, Int)) -> String { square ? "\(t.0)" : tup(t) }
        return "kernel_size=\(f(kernelSize)), stride=\(f(stride)), padding=\(f(padding))"
    }
}
