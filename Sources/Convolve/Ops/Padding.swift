import Foundation

/// Zeros around the last two dimensions of NCHW `input` (`torch.nn.functional.pad(x, (left, right,
/// top, bottom))`, `nn.ZeroPad2d`); the gradient is the inner window of the output gradient.
///
/// - Parameters:
///   - input: `[N, C, H, W]`.
///   - top: rows added above.
///   - left: columns added on the left.
///   - bottom: rows added below.
///   - right: columns added on the right.
/// - Returns: `[N, C, H + top + bottom, W + left + right]`.
public func pad2d(_ input: Tensor, top: Int, left: Int, bottom: Int, right: Int) -> Tensor {
    precondition(input.rank == 4 && min(top, left, bottom, right) >= 0, "pad2d: NCHW input and non-negative padding")
    let (planes, h, w) = (input.shape[0] * input.shape[1], input.shape[2], input.shape[3])
    let (oh, ow) = (h + top + bottom, w + left + right)
    var out = [Float](repeating: 0, count: planes * oh * ow)
    input.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in
        for p in 0..<planes { for r in 0..<h {
            (y.baseAddress! + (p * oh + r + top) * ow + left).update(from: x.baseAddress! + (p * h + r) * w, count: w)
        } }
    } }
    return Tensor.result(out, [input.shape[0], input.shape[1], oh, ow], [input], op: "pad2d") { g in
        input.accumulate { d in
            for p in 0..<planes { for r in 0..<h { for c in 0..<w {
                d[(p * h + r) * w + c] += g[(p * oh + r + top) * ow + left + c]
            } } }
        }
    }
}

/// TensorFlow's "same" padding along one axis for an input of `length`: the output has
/// ⌈length / stride⌉ positions, and the zeros that needs are split with the smaller half before
/// (what Keras, TF-ported EfficientNets and timm's `Conv2dSame` use).
///
/// - Parameters:
///   - length: the input length.
///   - kernel: the window length.
///   - stride: the step.
///   - dilation: spacing between taps.
/// - Returns: zeros before and after.
public func samePadding(_ length: Int, kernel: Int, stride: Int, dilation: Int = 1) -> (before: Int, after: Int) {
    let outputs = (length + stride - 1) / stride
    let total = max((outputs - 1) * stride + (kernel - 1) * dilation + 1 - length, 0)
    return (total / 2, total - total / 2)
}
