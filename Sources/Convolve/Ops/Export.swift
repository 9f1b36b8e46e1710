import Foundation

// The exportable ops' public faces: each runs its body (`…Untraced`, beside its kernels' callers in
// this folder) and, while an `OpTrace` records, describes itself as ONNX nodes. Adding an op to the
// export means a line here; an op missing here makes export fail with its name.

/// ONNX padding: begins then ends, `[top, left, bottom, right]`.
private func pads(_ p: (Int, Int)) -> OpTrace.Attribute { .ints([p.0, p.1, p.0, p.1]) }
private func pair(_ p: (Int, Int)) -> OpTrace.Attribute { .ints([p.0, p.1]) }

/// 2-D convolution (cross-correlation) of NCHW `input` with `weight` `[out, in/groups, kh, kw]`
/// and optional `bias` `[out]`, like `torch.nn.functional.conv2d`. Bias is fused into the GEMM output pass.
/// With `fusedReLU` the result is `relu(conv2d(...))`, the ReLU applied as the output is written (one
/// tensor and one pass fewer than `conv2d(...).relu()`, same values and gradients).
///
/// - Parameters:
///   - input: `[N, C, H, W]`.
///   - weight: `[outC, C / groups, kh, kw]`.
///   - bias: `[outC]`, or nil.
///   - stride: step between windows, down and across.
///   - padding: zeros added on each side, down and across.
///   - dilation: spacing between kernel taps.
///   - groups: independent channel groups.
///   - fusedReLU: apply a ReLU as the output is written.
/// - Returns: `[N, outC, OH, OW]`.
///
/// ### See Also
/// - ``conv2dReLUMaxPool2x2(_:weight:bias:padding:groups:)``
public func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                   stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                   dilation: (Int, Int) = (1, 1), groups: Int = 1, fusedReLU: Bool = false) -> Tensor {
    let y = OpTrace.suppressed {
        conv2dUntraced(input, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                       groups: groups, fusedReLU: fusedReLU)
    }
    if let trace = OpTrace.current {
        let attributes: [(String, OpTrace.Attribute)] = [("kernel_shape", .ints([weight.shape[2], weight.shape[3]])),
            ("strides", pair(stride)), ("pads", pads(padding)), ("dilations", pair(dilation)), ("group", .int(groups))]
        let ins = [trace.id(input), trace.id(weight), bias.map { trace.id($0) }]
        if fusedReLU {
            let c = trace.add("Conv", ins, attributes)
            trace.add("Relu", [c], output: y)
        } else {
            trace.add("Conv", ins, output: y, attributes)
        }
    }
    return y
}

/// `max_pool2d(relu(conv2d(input, ...)), 2)` as one op: each image's convolution output stays in a
/// cache-sized wide buffer and only the pooled maxima (and which of the four won) are kept, so the
/// full-size activation and its gradient never exist. Same values and gradients as the three ops
/// (ties go to the first maximum, as in PyTorch); layers the shifted-rows GEMM path does not take
/// (strided, dilated, pointwise or few-channel ones) run as the separate ops.
///
/// - Parameters:
///   - input: `[N, C, H, W]`.
///   - weight: `[outC, C / groups, kh, kw]` (unit stride and dilation).
///   - bias: `[outC]`, or nil.
///   - padding: zeros added on each side, down and across.
///   - groups: independent channel groups.
/// - Returns: `[N, outC, OH / 2, OW / 2]`.
public func conv2dReLUMaxPool2x2(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                                 padding: (Int, Int) = (0, 0), groups: Int = 1) -> Tensor {
    let y = OpTrace.suppressed { conv2dReLUMaxPool2x2Untraced(input, weight: weight, bias: bias, padding: padding, groups: groups) }
    if let trace = OpTrace.current {
        let c = trace.add("Conv", [trace.id(input), trace.id(weight), bias.map { trace.id($0) }],
                          [("kernel_shape", .ints([weight.shape[2], weight.shape[3]])), ("strides", .ints([1, 1])),
                           ("pads", pads(padding)), ("dilations", .ints([1, 1])), ("group", .int(groups))])
        let r = trace.add("Relu", [c])
        trace.add("MaxPool", [r], output: y, [("kernel_shape", .ints([2, 2])), ("strides", .ints([2, 2]))])
    }
    return y
}

/// 2-D max pooling over NCHW input, like `torch.nn.functional.max_pool2d`.
///
/// - Parameters:
///   - input: `[N, C, H, W]`.
///   - kernelSize: window height and width.
///   - stride: step between windows (default: the window).
///   - padding: implicit −∞ padding (at most half the window).
///   - dilation: spacing between window elements.
///   - ceilMode: round the output size up.
/// - Returns: `[N, C, OH, OW]`; NaN wins a window, as in PyTorch.
public func maxPool2d(_ input: Tensor, kernelSize: (Int, Int), stride: (Int, Int)? = nil,
                      padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), ceilMode: Bool = false) -> Tensor {
    let y = OpTrace.suppressed {
        maxPool2dUntraced(input, kernelSize: kernelSize, stride: stride, padding: padding, dilation: dilation, ceilMode: ceilMode)
    }
    OpTrace.record("MaxPool", [input], output: y, [("kernel_shape", pair(kernelSize)), ("strides", pair(stride ?? kernelSize)),
                                                   ("pads", pads(padding)), ("dilations", pair(dilation)),
                                                   ("ceil_mode", .int(ceilMode ? 1 : 0))])
    return y
}

/// 2-D average pooling over NCHW input, like `torch.nn.functional.avg_pool2d`.
///
/// - Parameters:
///   - input: `[N, C, H, W]`.
///   - kernelSize: window height and width.
///   - stride: step between windows (default: the window).
///   - padding: implicit zero padding.
///   - ceilMode: round the output size up.
///   - countIncludePad: divide by the whole window, padding included.
/// - Returns: `[N, C, OH, OW]`.
public func avgPool2d(_ input: Tensor, kernelSize: (Int, Int), stride: (Int, Int)? = nil,
                      padding: (Int, Int) = (0, 0), ceilMode: Bool = false, countIncludePad: Bool = true) -> Tensor {
    let y = OpTrace.suppressed {
        avgPool2dUntraced(input, kernelSize: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode,
                          countIncludePad: countIncludePad)
    }
    OpTrace.record("AveragePool", [input], output: y, [("kernel_shape", pair(kernelSize)), ("strides", pair(stride ?? kernelSize)),
                                                       ("pads", pads(padding)), ("ceil_mode", .int(ceilMode ? 1 : 0)),
                                                       ("count_include_pad", .int(countIncludePad ? 1 : 0))])
    return y
}

/// Global average pooling over NCHW input: each channel's mean, `[N, C, H, W]` → `[N, C, 1, 1]`
/// (`torch.nn.functional.adaptive_avg_pool2d(x, 1)`, Keras' `GlobalAveragePooling2D` before its flatten).
///
/// - Parameter input: `[N, C, H, W]`.
public func globalAvgPool2d(_ input: Tensor) -> Tensor {
    let y = OpTrace.suppressed { globalAvgPool2dUntraced(input) }
    OpTrace.record("GlobalAveragePool", [input], output: y)
    return y
}

/// `relu(a + b)` for tensors of one shape as one op (a residual block's join): one pass forward, and
/// one masked gradient for both summands.
///
/// - Parameters:
///   - a: a tensor.
///   - b: a tensor of `a`'s shape.
///
/// ### See Also
/// - `BasicBlock`
public func addReLU(_ a: Tensor, _ b: Tensor) -> Tensor {
    let y = OpTrace.suppressed { Tensor.addReLUUntraced(a, b) }
    if let trace = OpTrace.current {
        let sum = trace.add("Add", [trace.id(a), trace.id(b)])
        trace.add("Relu", [sum], output: y)
    }
    return y
}

/// Batch normalization over the channel dimension (dim 1) of `[N, C]` or `[N, C, ...]` input,
/// like `torch.nn.functional.batch_norm`. In training it normalizes with the batch's statistics and
/// updates `runningMean`/`runningVar` in place (`momentum`, unbiased variance); otherwise it uses them.
///
/// - Parameters:
///   - input: `[N, C]` or `[N, C, ...]`.
///   - runningMean: `[C]`, updated in training, or nil (always batch statistics).
///   - runningVar: `[C]`, updated in training, or nil.
///   - weight: `[C]` scale, or nil.
///   - bias: `[C]` shift, or nil.
///   - training: normalize with the batch's statistics (and update the running ones).
///   - momentum: weight of the batch in the running statistics.
///   - eps: added to the variance.
///   - fusedReLU: return `relu(batchNorm(...))`, the ReLU applied as the output is written.
public func batchNorm(_ input: Tensor, runningMean: Tensor?, runningVar: Tensor?, weight: Tensor?, bias: Tensor?,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5, fusedReLU: Bool = false) -> Tensor {
    tracedBatchNorm(input, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias,
                    training: training, momentum: momentum, eps: eps, fusedReLU: fusedReLU, residual: nil)
}

/// `relu(batchNorm(input, ...) + residual)` as one op (the end of a residual block: torchvision's
/// `BasicBlock` applies `bn2`, adds the shortcut and rectifies): the normalized values are never stored,
/// and the backward masks the gradient once, in the pass that takes batch norm's sums. The same values
/// and gradients as `addReLU(batchNorm(...), residual)`, with two passes over memory fewer.
///
/// - Parameters:
///   - input: `[N, C]` or `[N, C, ...]`.
///   - residual: a tensor of `input`'s shape (the shortcut).
///   - runningMean: `[C]`, updated in training, or nil (always batch statistics).
///   - runningVar: `[C]`, updated in training, or nil.
///   - weight: `[C]` scale, or nil.
///   - bias: `[C]` shift, or nil.
///   - training: normalize with the batch's statistics (and update the running ones).
///   - momentum: weight of the batch in the running statistics.
///   - eps: added to the variance.
///
/// ### See Also
/// - `batchNorm`, `addReLU`, `BasicBlock`
public func batchNormAddReLU(_ input: Tensor, residual: Tensor, runningMean: Tensor?, runningVar: Tensor?,
                             weight: Tensor?, bias: Tensor?, training: Bool, momentum: Float = 0.1,
                             eps: Float = 1e-5) -> Tensor {
    tracedBatchNorm(input, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias,
                           training: training, momentum: momentum, eps: eps, fusedReLU: true, residual: residual)
}

/// `batchNormUntraced`, recorded for export (eval mode) as BatchNormalization, then Add (with a
/// residual) and Relu (when fused).
private func tracedBatchNorm(_ input: Tensor, runningMean: Tensor?, runningVar: Tensor?, weight: Tensor?, bias: Tensor?,
                             training: Bool, momentum: Float, eps: Float, fusedReLU: Bool, residual: Tensor?) -> Tensor {
    let y = OpTrace.suppressed {
        batchNormUntraced(input, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias,
                          training: training, momentum: momentum, eps: eps, fusedReLU: fusedReLU, residual: residual)
    }
    // Exported in eval mode only: normalization by the running statistics.
    if let trace = OpTrace.current, !training, let runningMean, let runningVar {
        let c = input.shape[1]
        let scale = weight ?? Tensor([Float](repeating: 1, count: c), shape: [c])
        let shift = bias ?? Tensor([Float](repeating: 0, count: c), shape: [c])
        let ins = [trace.id(input), trace.id(scale), trace.id(shift), trace.id(runningMean), trace.id(runningVar)]
        if let residual {
            let normalized = trace.add("BatchNormalization", ins, [("epsilon", .float(eps))])
            let sum = trace.add("Add", [normalized, trace.id(residual)])
            trace.add("Relu", [sum], output: y)
        } else if fusedReLU {
            let normalized = trace.add("BatchNormalization", ins, [("epsilon", .float(eps))])
            trace.add("Relu", [normalized], output: y)
        } else {
            trace.add("BatchNormalization", ins, output: y, [("epsilon", .float(eps))])
        }
    }
    return y
}

/// `input · weightᵀ + bias` for `input` `[..., in]`, `weight` `[out, in]`, `bias` `[out]`
/// (`torch.nn.functional.linear`), with the bias fused into the output pass.
///
/// - Parameters:
///   - input: `[..., in]`.
///   - weight: `[out, in]` (PyTorch's layout).
///   - bias: `[out]`, or nil.
/// - Returns: `[..., out]`.
public func linear(_ input: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let y = OpTrace.suppressed { linearUntraced(input, weight: weight, bias: bias) }
    if input.rank == 2 {
        OpTrace.record("Gemm", [input, weight, bias], output: y, [("transB", .int(1))])
    }
    return y
}

extension Tensor {
    /// Records a one-input op while tracing; returns `y`.
    func traced(_ op: String, _ y: Tensor, _ attributes: [(String, OpTrace.Attribute)] = []) -> Tensor {
        OpTrace.record(op, [self], output: y, attributes)
        return y
    }
}
