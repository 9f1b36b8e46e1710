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
            Parallel.forChunks(n, work: n, streaming: true) { r in for i in r { d[i] = y[i] > 0 ? gg[i] : 0 } }
        } }
    }
}

/// dst[i] = max(src[i]·scale + shift (+ residual[i]), 0): batch norm with a fused ReLU, and with the
/// residual add that ends a residual block when `residual` is given. NaN stays NaN.
@inline(__always) func simdAffineReLU(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ scale: Float,
                                      _ shift: Float, adding residual: UnsafePointer<Float>? = nil, _ n: Int) {
    let sv = V16(repeating: scale), bv = V16(repeating: shift), zero = V16()
    var i = 0
    while i + 16 <= n {
        var v = bv
        v.addProduct(sv, ld(src + i))
        if let residual { v += ld(residual + i) }
        st(v.replacing(with: zero, where: v .< zero), dst + i)
        i += 16
    }
    while i < n {
        var v = src[i] * scale + shift
        if let residual { v += residual[i] }
        dst[i] = v < 0 ? 0 : v; i += 1
    }
}

/// gated[i] = g[i] where `output[i] > 0`, else 0 (a ReLU's gradient), and (Σ gated, Σ gated·(x − center)) —
/// one pass over a plane for the backward sums of batch norm ending a residual block. Centering on the
/// channel's mean first keeps the dot product exact where the mean dwarfs the spread (Σ g·x − μ·Σ g
/// would cancel away the digits that matter).
@inline(__always) func simdGateSumAndDot(_ gated: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
                                         output: UnsafePointer<Float>, _ x: UnsafePointer<Float>, center: Float,
                                         _ n: Int) -> (Float, Float) {
    var sum = V16(), dot = V16(), i = 0
    let zero = V16(), c = V16(repeating: center)
    while i + 16 <= n {
        let gv = ld(g + i).replacing(with: zero, where: .!(ld(output + i) .> zero))
        st(gv, gated + i)
        sum += gv; dot.addProduct(gv, ld(x + i) - c); i += 16
    }
    var s = sum.sum(), d = dot.sum()
    while i < n {
        let gi = output[i] > 0 ? g[i] : 0
        gated[i] = gi; s += gi; d += gi * (x[i] - center); i += 1
    }
    return (s, d)
}

/// Where the fused ReLU passed its input: `x·scale + shift > 0`, computed exactly as
/// `simdAffineReLU` computed the output (so the mask equals `out > 0` without reading `out`).
struct ReLUMaskFromInput {
    let scale: Float, shift: Float
    @inline(__always) func vector(_ x: V16) -> SIMDMask<SIMD16<Int32>> {
        var v = V16(repeating: shift)
        v.addProduct(V16(repeating: scale), x)
        return .!(v .> V16())
    }
    @inline(__always) func scalar(_ x: Float) -> Bool { !(x * scale + shift > 0) }
}

/// (Σ g'[i], Σ g'[i]·(x[i] − center)) with g' = g, zeroed where `mask` says the fused ReLU blocked (no
/// mask: g): one pass over a plane for batch norm's backward sums, centered on the channel's mean (see
/// `simdGateSumAndDot`).
@inline(__always) func simdMaskedSumAndDot(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, center: Float,
                                           mask: ReLUMaskFromInput?, _ n: Int) -> (Float, Float) {
    var sum = V16(), dot = V16(), i = 0
    let zero = V16(), c = V16(repeating: center)
    if let mask {
        while i + 16 <= n {
            let xv = ld(x + i)
            let gv = ld(g + i).replacing(with: zero, where: mask.vector(xv))
            sum += gv; dot.addProduct(gv, xv - c); i += 16
        }
    } else {
        while i + 16 <= n { let gv = ld(g + i); sum += gv; dot.addProduct(gv, ld(x + i) - c); i += 16 }
    }
    var s = sum.sum(), d = dot.sum()
    while i < n {
        let gi = mask.map { $0.scalar(x[i]) ? 0 : g[i] } ?? g[i]
        s += gi; d += gi * (x[i] - center); i += 1
    }
    return (s, d)
}

/// dst[i] = a·g'[i] + k·(x[i] − center) + b with g' = g, zeroed where `mask` says the fused ReLU blocked.
@inline(__always) func simdMaskedAffine2(_ dst: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ a: Float,
                                         _ x: UnsafePointer<Float>, center: Float, _ k: Float, _ b: Float,
                                         mask: ReLUMaskFromInput?, _ n: Int) {
    let av = V16(repeating: a), kv = V16(repeating: k), bv = V16(repeating: b), cv = V16(repeating: center), zero = V16()
    var i = 0
    while i + 16 <= n {
        let xv = ld(x + i)
        var gv = ld(g + i)
        if let mask { gv = gv.replacing(with: zero, where: mask.vector(xv)) }
        var v = bv
        v.addProduct(av, gv)
        v.addProduct(kv, xv - cv)
        st(v, dst + i)
        i += 16
    }
    while i < n {
        let gi = mask.map { $0.scalar(x[i]) ? 0 : g[i] } ?? g[i]
        dst[i] = a * gi + k * (x[i] - center) + b; i += 1
    }
}

/// `e^x` on 16 lanes (Cephes' `expf`: `x = n·ln 2 + r` with |r| ≤ ln 2 / 2 and ln 2 split in two,
/// a degree-6 polynomial in r, `2^n` built in the exponent bits): within 2 ulp of `Float.exp` from
/// −87.3 to 88.37; below it gives 0, above infinity (a little early: e^88.72 is the largest float,
/// and SiLU and the sigmoid only divide by it), NaN stays NaN.
@inline(__always) func vexp(_ x: V16) -> V16 {
    let clamped = x.replacing(with: -87.3, where: x .< -87.3).replacing(with: 88.37, where: x .> 88.37)
    // n = round(x / ln 2) by the 1.5·2²³ trick: adding it leaves n in the low mantissa bits (no
    // conversion instructions; Swift's lane-wise rounding and Int32 conversion do not vectorize).
    let magic = V16(repeating: 12_582_912)
    let shifted = clamped * 1.44269504088896341 + magic
    let n = shifted - magic
    let r = clamped - n * 0.693359375 + n * 2.12194440e-4
    var p = V16(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r * r + r + 1
    let bits = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    var e = p * unsafeBitCast(bits, to: V16.self)
    e = e.replacing(with: 0, where: x .< -87.3).replacing(with: .infinity, where: x .> 88.37)
    return e.replacing(with: x, where: x .!= x)
}

/// SiLU's forward pass, `y = x / (1 + e^−x)`, 16 lanes at a time (the tail through `Float.exp`).
func siluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
    var i = 0
    while i + 16 <= count { let v = ld(x + i); st(v / (1 + vexp(-v)), y + i); i += 16 }
    while i < count { y[i] = x[i] / (1 + Float.exp(-x[i])); i += 1 }
}

/// SiLU's input gradient added into `dx`: `g · σ(x) · (1 + x · (1 − σ(x)))`.
func siluBackward(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ count: Int) {
    var i = 0
    while i + 16 <= count {
        let v = ld(x + i), s = 1 / (1 + vexp(-v))
        st(ld(dx + i) + ld(g + i) * s * (1 + v * (1 - s)), dx + i)
        i += 16
    }
    while i < count {
        let s = 1 / (1 + Float.exp(-x[i]))
        dx[i] += g[i] * s * (1 + x[i] * (1 - s))
        i += 1
    }
}
