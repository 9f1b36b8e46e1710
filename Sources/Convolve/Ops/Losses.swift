import Foundation
import RealModule

/// How a loss combines per-sample values.
public enum Reduction: String, Sendable { case mean, sum, none }

private func reduceLoss(_ per: [Float], _ reduction: Reduction) -> ([Float], [Int]) {
    switch reduction {
    case .none: return (per, [per.count])
    case .sum: return ([per.reduce(0, +)], [])
    case .mean: return ([per.reduce(0, +) / Float(Swift.max(per.count, 1))], [])
    }
}
/// Gradient of the reduced loss with respect to sample `i`.
@inline(__always) private func lossGrad(_ g: [Float], _ i: Int, _ n: Int, _ reduction: Reduction) -> Float {
    switch reduction {
    case .none: return g[i]
    case .sum: return g[0]
    case .mean: return g[0] / Float(n)
    }
}

private func checkTargets(_ targets: [Int], _ n: Int, _ classes: Int) {
    precondition(targets.count == n, "expected \(n) targets, got \(targets.count)")
    precondition(targets.allSatisfy { $0 >= 0 && $0 < classes }, "target out of range 0..<\(classes)")
}

/// Writes softmax of one row of `c` logits into `probs[at...]` and returns its log-sum-exp.
@inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, _ c: Int, into probs: inout [Float], at: Int) -> Float {
    var m = -Float.infinity
    for j in 0..<c { m = Swift.max(m, x[j]) }
    var s: Float = 0
    for j in 0..<c { let e = Float.exp(x[j] - m); probs[at + j] = e; s += e }
    let inv = 1 / s
    for j in 0..<c { probs[at + j] *= inv }
    return m + Float.log(s)
}

/// Cross-entropy between `logits` `[N, C]` and integer class `targets` (`torch.nn.functional.cross_entropy`).
/// Log-softmax and negative log-likelihood are fused: the backward pass is `softmax − onehot`.
///
/// - Parameters:
///   - logits: `[N, C]` unnormalized scores.
///   - targets: `N` class indices in `0..<C`.
///   - reduction: mean, sum, or one value per sample.
///   - labelSmoothing: share of the target mass spread evenly over all classes.
public func crossEntropy(_ logits: Tensor, _ targets: [Int], reduction: Reduction = .mean,
                         labelSmoothing: Float = 0) -> Tensor {
    precondition(logits.rank == 2, "crossEntropy expects [N, C] logits, got \(logits.shape)")
    let n = logits.shape[0], c = logits.shape[1]
    checkTargets(targets, n, c)
    var probs = [Float](repeating: 0, count: n * c)
    var per = [Float](repeating: 0, count: n)
    logits.storage.withUnsafeBufferPointer { x in
        for i in 0..<n {
            let row = i * c
            let lse = softmaxRow(x.baseAddress! + row, c, into: &probs, at: row)
            var loss = lse - x[row + targets[i]]
            if labelSmoothing > 0 {
                var sumLogp: Float = 0
                for j in 0..<c { sumLogp += x[row + j] - lse }
                loss = (1 - labelSmoothing) * loss - labelSmoothing / Float(c) * sumLogp
            }
            per[i] = loss
        }
    }
    let (out, shape) = reduceLoss(per, reduction)
    return Tensor.result(out, shape, [logits], op: "crossEntropy") { g in
        logits.accumulate { d in
            for i in 0..<n {
                let gi = lossGrad(g, i, n, reduction)
                let row = i * c
                for j in 0..<c {
                    var t: Float = j == targets[i] ? 1 - labelSmoothing : 0
                    t += labelSmoothing / Float(c)
                    d[row + j] += gi * (probs[row + j] - t)
                }
            }
        }
    }
}

/// Negative log-likelihood of log-probabilities `[N, C]` at integer `targets` (`nll_loss`).
///
/// - Parameters:
///   - logProbs: `[N, C]` log-probabilities.
///   - targets: `N` class indices.
///   - reduction: mean, sum, or one value per sample.
public func nllLoss(_ logProbs: Tensor, _ targets: [Int], reduction: Reduction = .mean) -> Tensor {
    precondition(logProbs.rank == 2, "nllLoss expects [N, C] input, got \(logProbs.shape)")
    let n = logProbs.shape[0], c = logProbs.shape[1]
    checkTargets(targets, n, c)
    let per = (0..<n).map { -logProbs.storage[$0 * c + targets[$0]] }
    let (out, shape) = reduceLoss(per, reduction)
    return Tensor.result(out, shape, [logProbs], op: "nllLoss") { g in
        logProbs.accumulate { d in
            for i in 0..<n { d[i * c + targets[i]] -= lossGrad(g, i, n, reduction) }
        }
    }
}

/// Keras' `categorical_crossentropy` on probabilities `[N, C]` with one-hot (or soft) `targets`:
/// probabilities are renormalized to sum to 1, clipped to `[epsilon, 1 − epsilon]`, and
/// `−Σ y·log p` is averaged over the batch. The gradient is zero where clipping was active.
///
/// - Parameters:
///   - probs: `[N, C]` probabilities.
///   - targets: `[N, C]` one-hot or soft targets.
///   - epsilon: clipping bound.
///   - reduction: mean, sum, or one value per sample.
public func categoricalCrossEntropy(_ probs: Tensor, _ targets: Tensor, epsilon: Float = 1e-7,
                                    reduction: Reduction = .mean) -> Tensor {
    precondition(probs.shape == targets.shape && probs.rank == 2,
                 "categoricalCrossEntropy: predictions \(probs.shape) and targets \(targets.shape) differ")
    let p = (probs / probs.sum(dim: -1, keepDim: true)).clamp(min: epsilon, max: 1 - epsilon)
    let per = -(p.log() * targets).sum(dim: -1)
    switch reduction {
    case .none: return per
    case .sum: return per.sum()
    case .mean: return per.mean()
    }
}

/// Cross-entropy between softmax(`logits`) and one-hot/soft `targets` `[N, C]`, fused (what Keras
/// computes when a softmax output feeds `categorical_crossentropy`).
///
/// - Parameters:
///   - logits: `[N, C]` unnormalized scores.
///   - targets: `[N, C]` one-hot or soft targets.
///   - reduction: mean, sum, or one value per sample.
public func softmaxCrossEntropy(_ logits: Tensor, _ targets: Tensor, reduction: Reduction = .mean) -> Tensor {
    precondition(logits.shape == targets.shape && logits.rank == 2,
                 "softmaxCrossEntropy: logits \(logits.shape) and targets \(targets.shape) differ")
    let n = logits.shape[0], c = logits.shape[1]
    var probs = [Float](repeating: 0, count: n * c)
    var per = [Float](repeating: 0, count: n)
    let y = targets.storage
    logits.storage.withUnsafeBufferPointer { x in
        for i in 0..<n {
            let row = i * c
            let lse = softmaxRow(x.baseAddress! + row, c, into: &probs, at: row)
            var loss: Float = 0
            for j in 0..<c { loss -= y[row + j] * (x[row + j] - lse) }
            per[i] = loss
        }
    }
    let (out, shape) = reduceLoss(per, reduction)
    return Tensor.result(out, shape, [logits], op: "softmaxCrossEntropy") { g in
        logits.accumulate { d in
            for i in 0..<n {
                let gi = lossGrad(g, i, n, reduction), row = i * c
                var ysum: Float = 0
                for j in 0..<c { ysum += y[row + j] }
                for j in 0..<c { d[row + j] += gi * (probs[row + j] * ysum - y[row + j]) }
            }
        }
    }
}

/// Mean squared error (`torch.nn.functional.mse_loss`).
///
/// - Parameters:
///   - input: predictions.
///   - target: targets of the same shape.
///   - reduction: mean, sum, or elementwise.
public func mseLoss(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean) -> Tensor {
    let sq = (input - target).square()
    switch reduction {
    case .none: return sq
    case .sum: return sq.sum()
    case .mean: return sq.mean()
    }
}

/// One-hot encoding of integer labels as `[N, classes]` floats.
///
/// - Parameters:
///   - labels: class indices (out-of-range labels give a row of zeros).
///   - classes: number of columns.
public func oneHot(_ labels: [Int], classes: Int) -> Tensor {
    var out = [Float](repeating: 0, count: labels.count * classes)
    for (i, l) in labels.enumerated() where l >= 0 && l < classes { out[i * classes + l] = 1 }
    return Tensor(out, shape: [labels.count, classes])
}
