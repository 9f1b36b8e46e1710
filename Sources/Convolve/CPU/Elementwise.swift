import Foundation

/// `x[i] = max(x[i], 0)` (NaN stays NaN, like `relu`).
func reluInPlace(_ x: UnsafeMutablePointer<Float>, _ count: Int) {
    for i in 0..<count { x[i] = Swift.max(x[i], 0) }
}

/// The gradient of `relu` given its output: `g` where `out > 0`, else 0.
func reluMask(_ g: [Float], _ out: [Float]) -> [Float] {
    let n = g.count
    return uninitializedFloats(n) { d in
        out.withUnsafeBufferPointer { y in g.withUnsafeBufferPointer { gg in
            Parallel.forChunks(n, work: n) { r in for i in r { d[i] = y[i] > 0 ? gg[i] : 0 } }
        } }
    }
}

/// Σ term(i) for i in 0..<count, split across threads by chunks; partial sums are added in chunk
/// order, so the result depends only on the thread count.
@inline(__always)
func chunkedSum(_ count: Int, work: Int, _ term: (Int) -> Float) -> Float {
    let chunks = Parallel.chunkCount(count, work: work)
    if chunks <= 1 {
        var s: Float = 0
        for i in 0..<count { s += term(i) }
        return s
    }
    return withUnsafeTemporaryAllocation(of: Float.self, capacity: chunks) { partial in
        Parallel.forChunksIndexed(count, work: work) { chunk, range in
            var s: Float = 0
            for i in range { s += term(i) }
            partial[chunk] = s
        }
        var s: Float = 0
        for i in 0..<chunks { s += partial[i] }
        return s
    }
}
