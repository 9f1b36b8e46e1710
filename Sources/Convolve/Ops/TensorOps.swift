import Foundation
import RealModule

// MARK: - Broadcasting machinery

/// The shape two shapes broadcast to (NumPy/PyTorch rules), or nil if they are incompatible.
///
/// - Parameters:
///   - a: one shape.
///   - b: the other.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let r = Swift.max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
    }
    return out
}

/// Element strides of `shape` viewed as `target` (right-aligned), with 0 for broadcast dimensions.
func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
    var strides = [Int](repeating: 0, count: target.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        let ti = i + target.count - shape.count
        strides[ti] = shape[i] == 1 && target[ti] != 1 ? 0 : s
        s *= shape[i]
    }
    return strides
}

/// Visits `shape` row by row (last dimension innermost), passing the row's start offsets in the
/// output and in two strided operands plus the operands' innermost strides.
@inline(__always)
func forEachRow(_ shape: [Int], _ sa: [Int], _ sb: [Int],
                _ body: (_ o: Int, _ a: Int, _ b: Int, _ n: Int, _ ia: Int, _ ib: Int) -> Void) {
    let r = shape.count
    if r == 0 { body(0, 0, 0, 1, 0, 0); return }
    let n = shape[r - 1]
    let rows = shape.reduce(1, *) / Swift.max(n, 1)
    if n == 0 { return }
    var idx = [Int](repeating: 0, count: r)
    var oa = 0, ob = 0
    for row in 0..<rows {
        body(row * n, oa, ob, n, sa[r - 1], sb[r - 1])
        var d = r - 2
        while d >= 0 {
            idx[d] += 1; oa += sa[d]; ob += sb[d]
            if idx[d] < shape[d] { break }
            oa -= sa[d] * shape[d]; ob -= sb[d] * shape[d]; idx[d] = 0
            d -= 1
        }
    }
}

/// Applies `f` elementwise over two broadcast operands.
@inline(__always)
func broadcastMap(_ a: [Float], _ ashape: [Int], _ b: [Float], _ bshape: [Int],
                  _ f: (Float, Float) -> Float) -> ([Float], [Int]) {
    if ashape == bshape {
        var out = [Float](repeating: 0, count: a.count)
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { po in
            for i in 0..<po.count { po[i] = f(pa[i], pb[i]) }
        } } }
        return (out, ashape)
    }
    guard let shape = broadcastShape(ashape, bshape) else {
        preconditionFailure("shapes \(ashape) and \(bshape) do not broadcast")
    }
    let count = shape.reduce(1, *)
    var out = [Float](repeating: 0, count: count)
    if b.count == 1 && ashape == shape {
        let s = b[0]
        a.withUnsafeBufferPointer { pa in out.withUnsafeMutableBufferPointer { po in
            for i in 0..<count { po[i] = f(pa[i], s) }
        } }
        return (out, shape)
    }
    let sa = broadcastStrides(ashape, to: shape), sb = broadcastStrides(bshape, to: shape)
    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { po in
        forEachRow(shape, sa, sb) { o, ao, bo, n, ia, ib in
            for j in 0..<n { po[o + j] = f(pa[ao + j * ia], pb[bo + j * ib]) }
        }
    } } }
    return (out, shape)
}

/// Sums a gradient of shape `from` down to `to` (the inverse of broadcasting).
func sumTo(_ g: [Float], from: [Int], to: [Int]) -> [Float] {
    if from == to { return g }
    let toCount = to.reduce(1, *)
    var out = [Float](repeating: 0, count: toCount)
    if toCount == 1 {
        var s: Float = 0
        for v in g { s += v }
        out[0] = s
        return out
    }
    let st = broadcastStrides(to, to: from)
    let zero = [Int](repeating: 0, count: from.count)
    g.withUnsafeBufferPointer { pg in out.withUnsafeMutableBufferPointer { po in
        forEachRow(from, st, zero) { o, t, _, n, it, _ in
            if it == 0 {
                var s: Float = 0
                for j in 0..<n { s += pg[o + j] }
                po[t] += s
            } else {
                for j in 0..<n { po[t + j * it] += pg[o + j] }
            }
        }
    } }
    return out
}

// MARK: - Elementwise binary operations

extension Tensor {
    static func binary(_ op: StaticString, _ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float,
                       _ grads: @escaping (_ g: [Float], _ shape: [Int]) -> ([Float]?, [Float]?)) -> Tensor {
        let (data, shape) = broadcastMap(a.storage, a.shape, b.storage, b.shape, f)
        let y = result(data, shape, [a, b], op: op) { g in
            let (ga, gb) = grads(g, shape)
            if let ga { a.accumulate(sumTo(ga, from: shape, to: a.shape)) }
            if let gb { b.accumulate(sumTo(gb, from: shape, to: b.shape)) }
        }
        let names: [String: String] = ["add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"]
        OpTrace.record(names["\(op)"] ?? "\(op)", [a, b], output: y)
        return y
    }

    /// Elementwise sum with broadcasting.
    ///
    /// - Parameters:
    ///   - a: a tensor.
    ///   - b: a tensor whose shape broadcasts with `a`'s.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        binary("add", a, b, +) { g, _ in (a.requiresGrad ? g : nil, b.requiresGrad ? g : nil) }
    }
    /// Elementwise difference with broadcasting.
    ///
    /// - Parameters:
    ///   - a: a tensor.
    ///   - b: a tensor whose shape broadcasts with `a`'s.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        binary("sub", a, b, -) { g, _ in (a.requiresGrad ? g : nil, b.requiresGrad ? g.map { -$0 } : nil) }
    }
    /// Elementwise product with broadcasting.
    ///
    /// - Parameters:
    ///   - a: a tensor.
    ///   - b: a tensor whose shape broadcasts with `a`'s.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        binary("mul", a, b, *) { g, shape in
            (a.requiresGrad ? broadcastMap(g, shape, b.storage, b.shape, *).0 : nil,
             b.requiresGrad ? broadcastMap(g, shape, a.storage, a.shape, *).0 : nil)
        }
    }
    /// Elementwise quotient with broadcasting.
    ///
    /// - Parameters:
    ///   - a: the dividend.
    ///   - b: the divisor, broadcasting with `a`.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        binary("div", a, b, /) { g, shape in
            let ga = a.requiresGrad ? broadcastMap(g, shape, b.storage, b.shape, /).0 : nil
            var gb: [Float]? = nil
            if b.requiresGrad {
                // d(a/b)/db = -a/b² = -(a/b)/b
                let q = broadcastMap(a.storage, a.shape, b.storage, b.shape, /).0
                let t = broadcastMap(q, shape, b.storage, b.shape, /).0
                gb = zip(g, t).map { -$0 * $1 }
            }
            return (ga, gb)
        }
    }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func + (a: Tensor, s: Float) -> Tensor { a.unary({ $0 + s }, op: "addScalar") { g, _, _ in g } }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func - (s: Float, a: Tensor) -> Tensor { a.unary({ s - $0 }, op: "rsubScalar") { g, _, _ in -g } }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func * (a: Tensor, s: Float) -> Tensor { a.unary({ $0 * s }, op: "mulScalar") { g, _, _ in g * s } }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func / (s: Float, a: Tensor) -> Tensor {
        a.unary({ s / $0 }, op: "rdivScalar") { g, x, _ in -g * s / (x * x) }
    }
    /// Elementwise negation.
    public static prefix func - (a: Tensor) -> Tensor { a * -1 }
}

// MARK: - Elementwise unary operations

extension Tensor {
    /// Applies `f` elementwise; `df(g, x, y)` is the input gradient given output gradient `g`,
    /// input `x` and output `y`.
    @inline(__always)
    func unary(_ f: (Float) -> Float, op: StaticString, _ df: @escaping (Float, Float, Float) -> Float) -> Tensor {
        var out = [Float](repeating: 0, count: count)
        storage.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in
            for i in 0..<y.count { y[i] = f(x[i]) }
        } }
        let input = self
        let y = out
        return Tensor.result(out, shape, [self], op: op) { g in
            input.accumulate { d in
                input.storage.withUnsafeBufferPointer { x in
                    for i in 0..<d.count { d[i] += df(g[i], x[i], y[i]) }
                }
            }
        }
    }

    /// `x` for positive values, `slope * x` otherwise.
    ///
    /// - Parameter slope: the factor for negative values.
    public func leakyRelu(_ slope: Float = 0.01) -> Tensor {
        unary({ $0 > 0 ? $0 : slope * $0 }, op: "leakyRelu") { g, x, _ in x > 0 ? g : slope * g }
    }
    /// The logistic function `1 / (1 + e^-x)`.
    public func sigmoid() -> Tensor {
        traced("Sigmoid", unary({ 1 / (1 + Float.exp(-$0)) }, op: "sigmoid") { g, _, y in g * y * (1 - y) })
    }
    /// Hyperbolic tangent.
    public func tanh() -> Tensor { traced("Tanh", unary({ Float.tanh($0) }, op: "tanh") { g, _, y in g * (1 - y * y) }) }
    /// `e^x` elementwise.
    public func exp() -> Tensor { unary({ Float.exp($0) }, op: "exp") { g, _, y in g * y } }
    /// Natural logarithm elementwise.
    public func log() -> Tensor { unary({ Float.log($0) }, op: "log") { g, x, _ in g / x } }
    /// Square root elementwise.
    public func sqrt() -> Tensor { unary({ $0.squareRoot() }, op: "sqrt") { g, _, y in g / (2 * y) } }
    /// `x²` elementwise.
    public func square() -> Tensor { unary({ $0 * $0 }, op: "square") { g, x, _ in 2 * x * g } }
    /// `x^p` elementwise for a constant exponent.
    ///
    /// - Parameter p: the exponent.
    public func pow(_ p: Float) -> Tensor {
        unary({ Float.pow($0, p) }, op: "pow") { g, x, _ in g * p * Float.pow(x, p - 1) }
    }
    /// Absolute value elementwise.
    public func abs() -> Tensor { unary({ Swift.abs($0) }, op: "abs") { g, x, _ in x > 0 ? g : (x < 0 ? -g : 0) } }
    /// Clamps values to `[low, high]`; the gradient passes only inside the range.
    ///
    /// - Parameters:
    ///   - low: the smallest value kept.
    ///   - high: the largest value kept.
    public func clamp(min low: Float, max high: Float) -> Tensor {
        unary({ Swift.min(Swift.max($0, low), high) }, op: "clamp") { g, x, _ in (x >= low && x <= high) ? g : 0 }
    }
}

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
        var out = [Float](repeating: 0, count: outer * inner)
        var arg = [Int](repeating: 0, count: outer * inner)
        storage.withUnsafeBufferPointer { x in
            for o in 0..<outer { for i in 0..<inner {
                var best = x[o * n * inner + i], bi = 0
                for r in 1..<Swift.max(n, 1) {
                    let v = x[(o * n + r) * inner + i]
                    if v > best || v.isNaN { best = v; bi = r }
                }
                out[o * inner + i] = best; arg[o * inner + i] = bi
            } }
        }
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

    /// Index of the maximum along `dim` (first one on ties), as integers.
    ///
    /// - Parameter dim: the dimension searched (default: the last).
    public func argmax(dim: Int = -1) -> [Int] {
        let (outer, n, inner) = splitAt(dim)
        var arg = [Int](repeating: 0, count: outer * inner)
        storage.withUnsafeBufferPointer { x in
            for o in 0..<outer { for i in 0..<inner {
                var best = x[o * n * inner + i], bi = 0
                for r in 1..<Swift.max(n, 1) {
                    let v = x[(o * n + r) * inner + i]
                    if v > best { best = v; bi = r }
                }
                arg[o * inner + i] = bi
            } }
        }
        return arg
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

// MARK: - Matrix multiply

extension Tensor {
    /// Matrix product. `a` is `[..., M, K]` (leading dimensions flattened into rows) and `b` is `[K, N]`,
    /// or both are `[B, M, K]` / `[B, K, N]` for a batched product.
    ///
    /// - Parameter b: `[k, n]` (or batched `[batch, k, n]`) for this `[m, k]` (or `[batch, m, k]`).
    public func matmul(_ b: Tensor) -> Tensor {
        let a = self
        precondition(a.rank >= 1 && b.rank >= 1, "matmul of scalars")
        if a.rank == 3 && b.rank == 3 {
            let (bs, m, k, n) = (a.shape[0], a.shape[1], a.shape[2], b.shape[2])
            precondition(b.shape[0] == bs && b.shape[1] == k, "matmul shapes \(a.shape) and \(b.shape)")
            var out = [Float](repeating: 0, count: bs * m * n)
            a.storage.withUnsafeBufferPointer { pa in b.storage.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { pc in
                for i in 0..<bs {
                    sgemm(transA: false, transB: false, m: m, n: n, k: k, a: pa.baseAddress! + i * m * k, lda: k,
                          b: pb.baseAddress! + i * k * n, ldb: n, c: pc.baseAddress! + i * m * n, ldc: n)
                }
            } } }
            return Tensor.result(out, [bs, m, n], [a, b], op: "bmm") { g in
                g.withUnsafeBufferPointer { pg in
                    a.accumulate { da in b.storage.withUnsafeBufferPointer { pb in
                        for i in 0..<bs {
                            sgemm(transA: false, transB: true, m: m, n: k, k: n, a: pg.baseAddress! + i * m * n, lda: n,
                                  b: pb.baseAddress! + i * k * n, ldb: n, beta: 1, c: da.baseAddress! + i * m * k, ldc: k)
                        }
                    } }
                    b.accumulate { db in a.storage.withUnsafeBufferPointer { pa in
                        for i in 0..<bs {
                            sgemm(transA: true, transB: false, m: k, n: n, k: m, a: pa.baseAddress! + i * m * k, lda: k,
                                  b: pg.baseAddress! + i * m * n, ldb: n, beta: 1, c: db.baseAddress! + i * k * n, ldc: n)
                        }
                    } }
                }
            }
        }
        let k = a.shape[a.rank - 1]
        let m = a.count / Swift.max(k, 1)
        let bMat = b.rank == 1 ? 1 : b.shape[1]
        precondition(b.rank <= 2 && b.shape[0] == k, "matmul shapes \(a.shape) and \(b.shape)")
        let n = bMat
        var out = [Float](repeating: 0, count: m * n)
        a.storage.withUnsafeBufferPointer { pa in b.storage.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { pc in
            sgemm(transA: false, transB: false, m: m, n: n, k: k, a: pa.baseAddress!, lda: k,
                  b: pb.baseAddress!, ldb: n, c: pc.baseAddress!, ldc: n)
        } } }
        var outShape = Array(a.shape.dropLast())
        if b.rank == 2 { outShape.append(n) }
        return Tensor.result(out, outShape, [a, b], op: "matmul") { g in
            g.withUnsafeBufferPointer { pg in
                a.accumulate { da in b.storage.withUnsafeBufferPointer { pb in
                    sgemm(transA: false, transB: true, m: m, n: k, k: n, a: pg.baseAddress!, lda: n,
                          b: pb.baseAddress!, ldb: n, beta: 1, c: da.baseAddress!, ldc: k)
                } }
                b.accumulate { db in a.storage.withUnsafeBufferPointer { pa in
                    sgemm(transA: true, transB: false, m: k, n: n, k: m, a: pa.baseAddress!, lda: k,
                          b: pg.baseAddress!, ldb: n, beta: 1, c: db.baseAddress!, ldc: n)
                } }
            }
        }
    }
}

// MARK: - Softmax family

extension Tensor {
    /// Softmax along `dim` (numerically stable).
    ///
    /// - Parameter dim: the dimension normalized (negative counts from the end).
    public func softmax(dim: Int = -1) -> Tensor {
        let (outer, n, inner) = splitAt(dim)
        var out = [Float](repeating: 0, count: count)
        storage.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in
            for o in 0..<outer { for i in 0..<inner {
                let base = o * n * inner + i
                var m = -Float.infinity
                for r in 0..<n { m = Swift.max(m, x[base + r * inner]) }
                var s: Float = 0
                for r in 0..<n { let e = Float.exp(x[base + r * inner] - m); y[base + r * inner] = e; s += e }
                let inv = 1 / s
                for r in 0..<n { y[base + r * inner] *= inv }
            } }
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
            for o in 0..<outer { for i in 0..<inner {
                let base = o * n * inner + i
                var m = -Float.infinity
                for r in 0..<n { m = Swift.max(m, x[base + r * inner]) }
                var s: Float = 0
                for r in 0..<n { s += Float.exp(x[base + r * inner] - m) }
                let lse = m + Float.log(s)
                for r in 0..<n { y[base + r * inner] = x[base + r * inner] - lse }
            } }
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
