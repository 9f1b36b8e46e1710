import Foundation
import RealModule

/// The untraced body of `batchNorm` (see there); `fusedReLU` returns `relu(batchNorm(...))` in the
/// same pass over the output, and masks the gradient where that output is not positive in the backward
/// passes (recomputed from the input with the forward's own arithmetic, so the output is not read).
/// `residual` (with `fusedReLU`) returns `relu(batchNorm(...) + residual)`, the end of a residual block,
/// in that same pass: the normalized values are never stored. Its backward masks the gradient by the
/// output once, in the pass that takes the sums, and hands that masked gradient to `residual`.
///
/// Statistics: each `(sample, channel)` plane's sum and squared deviation from its own mean are taken
/// in one parallel pass (the second read of a plane hits L1), then combined per channel in Float64
/// (Chan et al.'s pairwise formula: exact, no cancellation). The backward pass reads the gradient and
/// the input together once for both sums, and once more for the input gradient.
func batchNormUntraced(_ input: Tensor, runningMean: Tensor?, runningVar: Tensor?, weight: Tensor?, bias: Tensor?,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5, fusedReLU: Bool = false,
                      residual: Tensor? = nil) -> Tensor {
    precondition(input.rank >= 2, "batch norm expects [N, C, ...] input, got \(input.shape)")
    precondition(residual == nil || fusedReLU && residual!.shape == input.shape,
                 "batch norm's residual must have the input's shape \(input.shape) and come with the fused ReLU")
    let n = input.shape[0], c = input.shape[1]
    let inner = input.count / Swift.max(n * c, 1)
    let m = n * inner
    let useBatch = training || runningMean == nil
    precondition(!useBatch || m > 1 || !training,
                 "expected more than 1 value per channel when training, got input size \(input.shape)")
    let planes = n * c
    var mean = [Float](repeating: 0, count: c), invStd = [Float](repeating: 0, count: c)
    input.storage.withUnsafeBufferPointer { px in
        let x = px.baseAddress!
        if useBatch {
            // per plane: its sum and its squared deviation from its own mean
            var planeSum = [Float](repeating: 0, count: planes), planeDev = [Float](repeating: 0, count: planes)
            planeSum.withUnsafeMutableBufferPointer { ps in planeDev.withUnsafeMutableBufferPointer { pd in
                Parallel.forChunks(n, work: input.count * 2, streaming: true) { range in
                    for p in (range.lowerBound * c)..<(range.upperBound * c) {
                        let s = simdSum(x + p * inner, inner)
                        ps[p] = s
                        pd[p] = simdSumSquaredDeviation(x + p * inner, inner, s / Float(inner))
                    }
                }
            } }
            let mu = channelSums(planeSum, samples: n, channels: c).map { $0 / Double(m) }
            var dev = [Double](repeating: 0, count: c)
            planeSum.withUnsafeBufferPointer { ps in planeDev.withUnsafeBufferPointer { pd in
            dev.withUnsafeMutableBufferPointer { dev in
                for b in 0..<n { for ch in 0..<c {
                    let d = Double(ps[b * c + ch]) / Double(inner) - mu[ch]
                    dev[ch] += Double(pd[b * c + ch]) + Double(inner) * d * d
                } }
            } } }
            for ch in 0..<c {
                mean[ch] = Float(mu[ch])
                invStd[ch] = Float(1 / (dev[ch] / Double(m) + Double(eps)).squareRoot())
            }
            if training, let rm = runningMean, let rv = runningVar {
                rm.storage.withUnsafeMutableBufferPointer { rm in rv.storage.withUnsafeMutableBufferPointer { rv in
                    for ch in 0..<c {
                        rm[ch] = (1 - momentum) * rm[ch] + momentum * Float(mu[ch])
                        let unbiased = m > 1 ? dev[ch] / Double(m - 1) : dev[ch]
                        rv[ch] = (1 - momentum) * rv[ch] + momentum * Float(unbiased)
                    }
                } }
            }
        } else {
            for ch in 0..<c {
                mean[ch] = runningMean!.storage[ch]
                invStd[ch] = 1 / (runningVar!.storage[ch] + eps).squareRoot()
            }
        }
    }
    let gamma = weight?.storage, beta = bias?.storage
    let scale = (0..<c).map { invStd[$0] * (gamma?[$0] ?? 1) }
    let shift = (0..<c).map { (beta?[$0] ?? 0) - mean[$0] * scale[$0] }
    let out = input.storage.withUnsafeBufferPointer { x in (residual?.storage).withUnsafeBufferPointerOrNil { r in
        uninitializedFloats(input.count) { y in
            Parallel.forChunks(n, work: input.count * 2, streaming: true) { range in for b in range { for ch in 0..<c {
                let (scale, shift) = (scale[ch], shift[ch])
                let p = (b * c + ch) * inner
                if fusedReLU {
                    simdAffineReLU(y.baseAddress! + p, x.baseAddress! + p, scale, shift, adding: r.map { $0 + p }, inner)
                } else {
                    simdAffine(y.baseAddress! + p, x.baseAddress! + p, scale, shift, inner)
                }
            } } }
        }
    } }
    var inputs = [input]
    if let weight { inputs.append(weight) }
    if let bias { inputs.append(bias) }
    if let residual { inputs.append(residual) }
    let op: StaticString = residual != nil ? "batchNormAddReLU" : fusedReLU ? "batchNormReLU" : "batchNorm"
    // The backward owns the output's gradient buffer: with a residual it gates it in place (the masked
    // gradient the residual receives and the passes below read), otherwise it overwrites it with the
    // input gradient (read and written at the same places: no new buffer, no write-allocate reads).
    return Tensor.resultOwningGradient(out, input.shape, inputs, op: op) { gOut in
        var dgamma = [Float](repeating: 0, count: c), dbeta = [Float](repeating: 0, count: c)
        var separateDX: [Float]?, dxInPlace = false
        input.storage.withUnsafeBufferPointer { px in out.withUnsafeBufferPointer { py in
        gOut.withBaseAddress(writing: residual != nil || input.requiresGrad) { gp in
            let x = px.baseAddress!, y = py.baseAddress!
            // the fused ReLU's mask is recomputed from the input (the output is not read: one
            // stream fewer through memory in both passes); a residual's is applied in the sums pass
            func mask(_ ch: Int) -> ReLUMaskFromInput? {
                fusedReLU && residual == nil ? ReLUMaskFromInput(scale: scale[ch], shift: shift[ch]) : nil
            }
            // Σg and Σg·x per plane in one pass, then per channel
            var planeG = [Float](repeating: 0, count: planes), planeGX = [Float](repeating: 0, count: planes)
            planeG.withUnsafeMutableBufferPointer { sg in planeGX.withUnsafeMutableBufferPointer { sgx in
                Parallel.forChunks(n, work: input.count * 2, streaming: true) { range in
                    for p in (range.lowerBound * c)..<(range.upperBound * c) {
                        let o = p * inner
                        if residual != nil {
                            (sg[p], sgx[p]) = simdGateSumAndDot(gp + o, gp + o, output: y + o, x + o, center: mean[p % c], inner)
                        } else {
                            (sg[p], sgx[p]) = simdMaskedSumAndDot(gp + o, x + o, center: mean[p % c], mask: mask(p % c), inner)
                        }
                    }
                }
            } }
            let sg = channelSums(planeG, samples: n, channels: c), sgx = channelSums(planeGX, samples: n, channels: c)
            for ch in 0..<c {
                dbeta[ch] = Float(sg[ch])
                dgamma[ch] = Float(sgx[ch] * Double(invStd[ch]))   // Σ g·(x−μ)·σ⁻¹
            }
            if !input.requiresGrad { return }
            // dx = γσ⁻¹/M · (M·g − Σg − x̂·Σg·x̂), written as a·g + k·(x − μ) + b0 per channel
            var a = [Float](repeating: 0, count: c), k = [Float](repeating: 0, count: c), b0 = [Float](repeating: 0, count: c)
            for ch in 0..<c {
                let gm = gamma?[ch] ?? 1, istd = invStd[ch]
                if useBatch {
                    let scale = gm * istd / Float(m)
                    a[ch] = scale * Float(m)
                    k[ch] = -scale * dgamma[ch] * istd
                    b0[ch] = -scale * dbeta[ch]
                } else {
                    a[ch] = gm * istd
                }
            }
            func inputGradient(into d: UnsafeMutablePointer<Float>) {
                Parallel.forChunks(n, work: input.count * 2, streaming: true) { range in
                    for p in (range.lowerBound * c)..<(range.upperBound * c) {
                        let ch = p % c, o = p * inner
                        simdMaskedAffine2(d + o, gp + o, a[ch], x + o, center: mean[ch], k[ch], b0[ch], mask: mask(ch), inner)
                    }
                }
            }
            if residual != nil {
                // the gated gradient stays: it is the residual's
                separateDX = uninitializedFloats(input.count) { inputGradient(into: $0.baseAddress!) }
            } else {
                inputGradient(into: gp)
                dxInPlace = true
            }
        } } }
        weight?.accumulate(dgamma)
        bias?.accumulate(dbeta)
        if let residual, residual.requiresGrad { residual.accumulate(gOut) }
        if let separateDX { input.accumulate(separateDX) } else if dxInPlace { input.accumulate(gOut) }
    }
}

/// Each channel's sum over the samples of per-plane values laid out `[samples][channels]`, in sample
/// order and Float64; channels innermost, so the loop runs over contiguous values (vectorized).
private func channelSums(_ planeValues: [Float], samples n: Int, channels c: Int) -> [Double] {
    var sums = [Double](repeating: 0, count: c)
    planeValues.withUnsafeBufferPointer { v in sums.withUnsafeMutableBufferPointer { s in
        for b in 0..<n { for ch in 0..<c { s[ch] += Double(v[b * c + ch]) } }
    } }
    return sums
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
