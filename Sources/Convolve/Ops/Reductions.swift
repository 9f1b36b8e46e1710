import Foundation
import RealModule

// MARK: - Reductions

extension Tensor {
    /// (outer, n, inner) sizes for reducing along `dim`.
    func splitAt(_ dim: Int) -> (Int, Int, Int) {
        let d = normalizeDim(dim, rank)
        return (shape[..<d].reduce(1, *), shape[d], shape[(d + 1)...].reduce(1, *))
    }
    func reducedShape(_ dim: Int, keepDim: Bool) -> [Int] {
        var s = shape
        let d = normalizeDim(dim, rank)
        if keepDim { s[d] = 1 } else { s.remove(at: d) }
        return s
    }

    /// Sum of all elements (a scalar).
    public func sum() -> Tensor {
        var s: Float = 0
        storage.withUnsafeBufferPointer { for v in $0 { s += v } }
        let input = self
        return Tensor.result([s], [], [self], op: "sum") { g in
            input.accumulate { d in for i in 0..<d.count { d[i] += g[0] } }
        }
    }
    /// Mean of all elements (a scalar).
    public func mean() -> Tensor { sum() / Float(Swift.max(count, 1)) }

    /// Sum along `dim`.
    ///
    /// - Parameters:
    ///   - dim: the dimension summed over.
    ///   - keepDim: keep it with size 1.
    public func sum(dim: Int, keepDim: Bool = false) -> Tensor {
        let (outer, n, inner) = splitAt(dim)
        var out = [Float](repeating: 0, count: outer * inner)
        storage.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in
            for o in 0..<outer { for r in 0..<n { let base = (o * n + r) * inner
                for i in 0..<inner { y[o * inner + i] += x[base + i] } } }
        } }
        let input = self
        return Tensor.result(out, reducedShape(dim, keepDim: keepDim), [self], op: "sum(dim:)") { g in
            input.accumulate { d in
                for o in 0..<outer { for r in 0..<n { let base = (o * n + r) * inner
                    for i in 0..<inner { d[base + i] += g[o * inner + i] } } }
            }
        }
    }
    /// Sum over several dimensions.
    ///
    /// - Parameters:
    ///   - dims: the dimensions summed over.
    ///   - keepDim: keep them with size 1.
    public func sum(dims: [Int], keepDim: Bool = false) -> Tensor {
        let ds = dims.map { normalizeDim($0, rank) }.sorted(by: >)
        var t = self
        for d in ds { t = t.sum(dim: d, keepDim: keepDim) }
        return t
    }
    /// Mean along `dim`.
    ///
    /// - Parameters:
    ///   - dim: the dimension averaged over.
    ///   - keepDim: keep it with size 1.
    public func mean(dim: Int, keepDim: Bool = false) -> Tensor {
        sum(dim: dim, keepDim: keepDim) / Float(shape[normalizeDim(dim, rank)])
    }
    /// Mean over several dimensions.
    ///
    /// - Parameters:
    ///   - dims: the dimensions averaged over.
    ///   - keepDim: keep them with size 1.
    public func mean(dims: [Int], keepDim: Bool = false) -> Tensor {
        let n = dims.map { shape[normalizeDim($0, rank)] }.reduce(1, *)
        return sum(dims: dims, keepDim: keepDim) / Float(n)
    }

    /// Maximum along `dim`; the gradient flows to the (first) maximal element.
    ///
    /// - Parameters:
    ///   - dim: the dimension reduced.
    ///   - keepDim: keep it with size 1.
    public func max(dim: Int, keepDim: Bool = false) -> Tensor {
        let (outer, n, inner) = splitAt(dim)
        precondition(n > 0, "max over an empty dimension")
        let (out, arg) = maxScan(dim)
        let input = self
        return Tensor.result(out, reducedShape(dim, keepDim: keepDim), [self], op: "max(dim:)") { g in
            input.accumulate { d in
                for o in 0..<outer { for i in 0..<inner {
                    d[(o * n + arg[o * inner + i]) * inner + i] += g[o * inner + i]
                } }
            }
        }
    }
    /// Maximum of all elements.
    public func max() -> Tensor { reshape([count]).max(dim: 0) }

    /// Index of the maximum along `dim` (the first on ties; the first NaN, as in PyTorch), as integers.
    ///
    /// - Parameter dim: the dimension searched (default: the last).
    public func argmax(dim: Int = -1) -> [Int] { maxScan(dim).indices }

    /// The maximum along `dim` and its index: the first maximum on ties, the first NaN when there is
    /// one (NaN is the maximum, as in PyTorch's `max` and `argmax`).
    private func maxScan(_ dim: Int) -> (values: [Float], indices: [Int]) {
        let (outer, n, inner) = splitAt(dim)
        var values = [Float](repeating: 0, count: outer * inner)
        var indices = [Int](repeating: 0, count: outer * inner)
        guard n > 0 else { return (values, indices) }
        storage.withUnsafeBufferPointer { x in
            for o in 0..<outer { for i in 0..<inner {
                var best = x[o * n * inner + i], bi = 0
                for r in 1..<n where !best.isNaN {
                    let v = x[(o * n + r) * inner + i]
                    if v > best || v.isNaN { best = v; bi = r }
                }
                values[o * inner + i] = best; indices[o * inner + i] = bi
            } }
        }
        return (values, indices)
    }

    /// Elementwise equality as 0/1 values (no gradient).
    ///
    /// - Parameter other: a tensor of the same shape.
    public func eq(_ other: Tensor) -> Tensor {
        Tensor(broadcastMap(storage, shape, other.storage, other.shape) { $0 == $1 ? 1 : 0 }.0,
               shape: broadcastShape(shape, other.shape)!)
    }
    /// Whether every element is within `atol + rtol * |other|` of `other`.
    ///
    /// - Parameters:
    ///   - other: a tensor of the same shape.
    ///   - rtol: allowed difference relative to `other`.
    ///   - atol: allowed absolute difference.
    public func allClose(_ other: Tensor, rtol: Float = 1e-5, atol: Float = 1e-8) -> Bool {
        shape == other.shape && zip(storage, other.storage).allSatisfy { Swift.abs($0 - $1) <= atol + rtol * Swift.abs($1) }
    }
}
