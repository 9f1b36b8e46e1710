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
