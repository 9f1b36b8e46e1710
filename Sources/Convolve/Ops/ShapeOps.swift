import Foundation
import RealModule

// MARK: - Shape operations

extension Tensor {
    /// The same data with a new shape; one dimension may be -1 (inferred). Shares storage.
    ///
    /// - Parameter newShape: the dimensions, with as many elements.
    public func reshape(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            s[i] = count / known
        }
        precondition(s.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        let input = self
        let y = Tensor.result(storage, s, [self], op: "reshape") { g in input.accumulate(g) }
        if let trace = OpTrace.current {
            // The batch dimension stays dynamic (0 = copy it from the input).
            let target = s.enumerated().map { $0.offset == 0 && rank > 0 && $0.element == shape[0] ? 0 : $0.element }
            trace.add("Reshape", [trace.id(self), trace.int64Constant(target)], output: y)
        }
        return y
    }
    /// PyTorch's `view`: same as `reshape` (storage is always contiguous here).
    ///
    /// - Parameter newShape: the dimensions (one may be -1).
    public func view(_ newShape: Int...) -> Tensor { reshape(newShape) }
    /// Reshape with variadic sizes.
    ///
    /// - Parameter newShape: the dimensions (one may be -1).
    public func reshape(_ newShape: Int...) -> Tensor { reshape(newShape) }

    /// Merges dimensions `startDim...endDim` into one (PyTorch `flatten`).
    ///
    /// - Parameters:
    ///   - startDim: the first dimension merged.
    ///   - endDim: the last dimension merged (negative counts from the end).
    public func flatten(startDim: Int = 0, endDim: Int = -1) -> Tensor {
        if rank == 0 { return reshape([1]) }
        let s = normalizeDim(startDim, rank), e = normalizeDim(endDim, rank)
        let merged = shape[s...e].reduce(1, *)
        return reshape(Array(shape[..<s]) + [merged] + Array(shape[(e + 1)...]))
    }
    /// Inserts a dimension of size 1 at `dim`.
    ///
    /// - Parameter dim: where the new dimension goes.
    public func unsqueeze(_ dim: Int) -> Tensor {
        let d = dim < 0 ? dim + rank + 1 : dim
        var s = shape; s.insert(1, at: d)
        return reshape(s)
    }
    /// Removes dimensions of size 1 (all of them, or just `dim`).
    ///
    /// - Parameter dim: the dimension to remove, or nil for every size-1 dimension.
    public func squeeze(_ dim: Int? = nil) -> Tensor {
        if let dim {
            let d = normalizeDim(dim, rank)
            guard shape[d] == 1 else { return self }
            var s = shape; s.remove(at: d); return reshape(s)
        }
        return reshape(shape.filter { $0 != 1 })
    }

    /// Reorders dimensions (copies the data into the new order).
    ///
    /// - Parameter dims: the new order of the dimensions.
    public func permute(_ dims: [Int]) -> Tensor {
        precondition(dims.count == rank && Set(dims.map { normalizeDim($0, rank) }).count == rank,
                     "permute \(dims) is not a permutation of \(rank) dimensions")
        let p = dims.map { normalizeDim($0, rank) }
        let newShape = p.map { shape[$0] }
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let sa = p.map { inStrides[$0] }
        let zero = [Int](repeating: 0, count: rank)
        var out = [Float](repeating: 0, count: count)
        storage.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in
            forEachRow(newShape, sa, zero) { o, a, _, n, ia, _ in
                for j in 0..<n { y[o + j] = x[a + j * ia] }
            }
        } }
        let input = self
        return traced("Transpose", Tensor.result(out, newShape, [self], op: "permute") { g in
            input.accumulate { d in
                forEachRow(newShape, sa, zero) { o, a, _, n, ia, _ in
                    for j in 0..<n { d[a + j * ia] += g[o + j] }
                }
            }
        }, [("perm", .ints(p))])
    }
    /// Reorders dimensions (variadic form).
    /// - Parameter dims: the new order of the dimensions.
    public func permute(_ dims: Int...) -> Tensor { permute(dims) }
    /// Swaps two dimensions.
    ///
    /// - Parameters:
    ///   - d0: one dimension.
    ///   - d1: the dimension it swaps with.
    public func transpose(_ d0: Int, _ d1: Int) -> Tensor {
        var p = Array(0..<rank)
        p.swapAt(normalizeDim(d0, rank), normalizeDim(d1, rank))
        return permute(p)
    }
    /// The transpose of a 2-D tensor.
    public var T: Tensor { transpose(0, 1) }

    /// Rows `range` along the first (batch) dimension, copied.
    public subscript(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0],
                     "slice \(range) out of bounds for shape \(shape)")
        let inner = count / Swift.max(shape[0], 1)
        let lo = range.lowerBound * inner, hi = range.upperBound * inner
        var s = shape; s[0] = range.count
        let input = self
        return Tensor.result(Array(storage[lo..<hi]), s, [self], op: "slice") { g in
            input.accumulate { d in for i in 0..<(hi - lo) { d[lo + i] += g[i] } }
        }
    }
    /// Item `i` along the first dimension, with that dimension removed.
    public subscript(_ i: Int) -> Tensor { self[i..<(i + 1)].squeeze(0) }

    /// Concatenates tensors along dimension 0 (all other dimensions equal).
    ///
    /// - Parameter tensors: tensors that agree in every dimension but the first.
    public static func cat(_ tensors: [Tensor]) -> Tensor {
        precondition(!tensors.isEmpty, "cat of no tensors")
        let tail = Array(tensors[0].shape.dropFirst())
        precondition(tensors.allSatisfy { Array($0.shape.dropFirst()) == tail }, "cat: shapes differ")
        var data = [Float](); data.reserveCapacity(tensors.reduce(0) { $0 + $1.count })
        for t in tensors { data.append(contentsOf: t.storage) }
        let n = tensors.reduce(0) { $0 + $1.shape[0] }
        let counts = tensors.map(\.count)
        return result(data, [n] + tail, tensors, op: "cat") { g in
            var off = 0
            for (t, c) in zip(tensors, counts) { t.accumulate(Array(g[off..<(off + c)])); off += c }
        }
    }
}
