import Foundation

/// Adam's elementwise update in one pass (PyTorch's `fused=True` Adam): for each element,
/// `g += coupledDecay·w`, `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`,
/// `w −= stepSize·m / (√v·invSqrtBiasCorrection2 + eps)`. Seven streaming passes as separate
/// in-place ops; one here, 16 lanes at a time (the same operations in the same order as the scalar
/// tail, so every element's result is identical whichever loop computes it).
func adamKernel(weights w: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>,
                firstMoment m: UnsafeMutablePointer<Float>, secondMoment v: UnsafeMutablePointer<Float>, count: Int,
                beta1 b1: Float, beta2 b2: Float, stepSize: Float, invSqrtBiasCorrection2 invSqrtBc2: Float,
                eps: Float, coupledDecay wd: Float) {
    Parallel.forChunks(count, work: count * 8, streaming: true) { range in
        var j = range.lowerBound
        while j + 16 <= range.upperBound {
            let wj = ld(w + j)
            let gj = ld(g + j) + wd * wj
            let mj = b1 * ld(m + j) + (1 - b1) * gj
            let vj = b2 * ld(v + j) + (1 - b2) * gj * gj
            st(mj, m + j); st(vj, v + j)
            st(wj - stepSize * mj / (vj.squareRoot() * invSqrtBc2 + eps), w + j)
            j += 16
        }
        while j < range.upperBound {
            let gj = g[j] + wd * w[j]
            m[j] = b1 * m[j] + (1 - b1) * gj
            v[j] = b2 * v[j] + (1 - b2) * gj * gj
            w[j] -= stepSize * m[j] / (v[j].squareRoot() * invSqrtBc2 + eps)
            j += 1
        }
    }
}
