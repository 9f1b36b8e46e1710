import Foundation
import RealModule

/// The untraced body of `batchNorm` (see there).
func batchNormUntraced(_ input: Tensor, runningMean: Tensor?, runningVar: Tensor?, weight: Tensor?, bias: Tensor?,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5) -> Tensor {
    precondition(input.rank >= 2, "batch norm expects [N, C, ...] input, got \(input.shape)")
    let n = input.shape[0], c = input.shape[1]
    let inner = input.count / Swift.max(n * c, 1)
    let m = n * inner
    let useBatch = training || runningMean == nil
    precondition(!useBatch || m > 1 || !training,
                 "expected more than 1 value per channel when training, got input size \(input.shape)")
    var mean = [Float](repeating: 0, count: c), invStd = [Float](repeating: 0, count: c)
    input.storage.withUnsafeBufferPointer { px in
        let x = px.baseAddress!
        for ch in 0..<c {
            if useBatch {
                let s = chunkedSum(n, work: m) { b in simdSum(x + (b * c + ch) * inner, inner) }
                let mu = s / Float(m)
                let v = chunkedSum(n, work: m) { b in simdSumSquaredDeviation(x + (b * c + ch) * inner, inner, mu) }
                mean[ch] = mu
                invStd[ch] = 1 / (v / Float(m) + eps).squareRoot()
                if training, let rm = runningMean, let rv = runningVar {
                    rm.storage[ch] = (1 - momentum) * rm.storage[ch] + momentum * mu
                    let unbiased = m > 1 ? v / Float(m - 1) : v
                    rv.storage[ch] = (1 - momentum) * rv.storage[ch] + momentum * unbiased
                }
            } else {
                mean[ch] = runningMean!.storage[ch]
                invStd[ch] = 1 / (runningVar!.storage[ch] + eps).squareRoot()
            }
        }
    }
    let gamma = weight?.storage, beta = bias?.storage
    let out = input.storage.withUnsafeBufferPointer { x in
        uninitializedFloats(input.count) { y in
            Parallel.forChunks(n, work: input.count * 2) { range in for b in range { for ch in 0..<c {
                let scale = invStd[ch] * (gamma?[ch] ?? 1)
                let shift = (beta?[ch] ?? 0) - mean[ch] * scale
                let p = (b * c + ch) * inner
                simdAffine(y.baseAddress! + p, x.baseAddress! + p, scale, shift, inner)
            } } }
        }
    }
    var inputs = [input]
    if let weight { inputs.append(weight) }
    if let bias { inputs.append(bias) }
    return Tensor.result(out, input.shape, inputs, op: "batchNorm") { g in
        var dgamma = [Float](repeating: 0, count: c), dbeta = [Float](repeating: 0, count: c)
        input.storage.withUnsafeBufferPointer { px in g.withUnsafeBufferPointer { pg in
            let x = px.baseAddress!, gp = pg.baseAddress!
            for ch in 0..<c {
                let sg = chunkedSum(n, work: m) { b in simdSum(gp + (b * c + ch) * inner, inner) }
                let sgx = chunkedSum(n, work: m) { b in simdDot(gp + (b * c + ch) * inner, x + (b * c + ch) * inner, inner) }
                dbeta[ch] = sg
                dgamma[ch] = (sgx - mean[ch] * sg) * invStd[ch]   // Σ g·(x−μ)·σ⁻¹
            }
            let dx = uninitializedFloats(input.count) { d in
                for ch in 0..<c {
                    let gm = gamma?[ch] ?? 1, istd = invStd[ch], mu = mean[ch]
                    // dx = γσ⁻¹/M · (M·g − Σg − x̂·Σg·x̂), written as a·g + k·x + b0
                    let a: Float, k: Float, b0: Float
                    if useBatch {
                        let scale = gm * istd / Float(m)
                        a = scale * Float(m)
                        k = -scale * dgamma[ch] * istd
                        b0 = -scale * dbeta[ch] - k * mu
                    } else {
                        a = gm * istd; k = 0; b0 = 0
                    }
                    Parallel.forChunks(n, work: input.count * 2 / Swift.max(c, 1)) { range in
                        for b in range {
                            let p = (b * c + ch) * inner
                            simdAffine2(d.baseAddress! + p, gp + p, a, x + p, k, b0, inner)
                        }
                    }
                }
            }
            input.accumulate(dx)
        } }
        weight?.accumulate(dgamma)
        bias?.accumulate(dbeta)
    }
}
