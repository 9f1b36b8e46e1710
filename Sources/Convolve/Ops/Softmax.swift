import Foundation
import RealModule

// MARK: - Softmax family

extension Tensor {
    /// Softmax along `dim` (numerically stable).
    ///
    /// - Parameter dim: the dimension normalized (negative counts from the end).
    public func softmax(dim: Int = -1) -> Tensor {
        let (outer, n, inner) = splitAt(dim)
        var out = [Float](repeating: 0, count: count)
        storage.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in
            forEachRowWithMax(x, outer: outer, n: n, inner: inner) { base, m in
                var s: Float = 0
                for r in 0..<n { let e = Float.exp(x[base + r * inner] - m); y[base + r * inner] = e; s += e }
                let inv = 1 / s
                for r in 0..<n { y[base + r * inner] *= inv }
            }
        } }
        let input = self, y = out
        return traced("Softmax", Tensor.result(out, shape, [self], op: "softmax") { g in
            input.accumulate { d in
                for o in 0..<outer { for i in 0..<inner {
                    let base = o * n * inner + i
                    var dot: Float = 0
                    for r in 0..<n { dot += g[base + r * inner] * y[base + r * inner] }
                    for r in 0..<n { let j = base + r * inner; d[j] += y[j] * (g[j] - dot) }
                } }
            }
        }, [("axis", .int(normalizeDim(dim, rank)))])
    }

    /// Log-softmax along `dim` (numerically stable).
    ///
    /// - Parameter dim: the dimension normalized (negative counts from the end).
    public func logSoftmax(dim: Int = -1) -> Tensor {
        let (outer, n, inner) = splitAt(dim)
        var out = [Float](repeating: 0, count: count)
        storage.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in
            forEachRowWithMax(x, outer: outer, n: n, inner: inner) { base, m in
                var s: Float = 0
                for r in 0..<n { s += Float.exp(x[base + r * inner] - m) }
                let lse = m + Float.log(s)
                for r in 0..<n { y[base + r * inner] = x[base + r * inner] - lse }
            }
        } }
        let input = self, y = out
        return traced("LogSoftmax", Tensor.result(out, shape, [self], op: "logSoftmax") { g in
            input.accumulate { d in
                for o in 0..<outer { for i in 0..<inner {
                    let base = o * n * inner + i
                    var gs: Float = 0
                    for r in 0..<n { gs += g[base + r * inner] }
                    for r in 0..<n { let j = base + r * inner; d[j] += g[j] - Float.exp(y[j]) * gs }
                } }
            }
        }, [("axis", .int(normalizeDim(dim, rank)))])
    }
}

/// Visits every row along a split dimension (`outer × inner` rows of `n` values `inner` apart, the row
/// starting at `base`) with its maximum: the shared first pass of the numerically stable softmaxes.
@inline(__always)
private func forEachRowWithMax(_ x: UnsafeBufferPointer<Float>, outer: Int, n: Int, inner: Int, _ body: (Int, Float) -> Void) {
    for o in 0..<outer { for i in 0..<inner {
        let base = o * n * inner + i
        var m = -Float.infinity
        for r in 0..<n { m = Swift.max(m, x[base + r * inner]) }
        body(base, m)
    } }
}
