/// The 512-bit vector every kernel works in (16 floats; one AVX-512 register with `-march=native`).
typealias V16 = SIMD16<Float>

/// 16 floats from `p`, any alignment.
@inline(__always) func ld(_ p: UnsafePointer<Float>) -> V16 {
    UnsafeRawPointer(p).loadUnaligned(as: V16.self)
}

/// Stores 16 floats at `p`, any alignment.
@inline(__always) func st(_ v: V16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self)
}

/// `max(v, 0)` lane-wise, NaN kept (like `relu`).
@inline(__always) func relu0(_ v: V16) -> V16 { v.replacing(with: 0, where: v .< 0) }

/// The maximum of each lane's 2×2 window (y00 y01 / y10 y11) and which one won (0…3, row-major), with
/// the selects of `maxPool2x2Plane`: ties keep the first, NaN wins. The fused conv + ReLU + pool of
/// both Winograd paths pools with it.
@inline(__always) func windowMax(_ y00: V16, _ y01: V16, _ y10: V16, _ y11: V16) -> (V16, SIMD16<Int32>) {
    let ab = y01 .> y00 .| y01 .!= y01, cd = y11 .> y10 .| y11 .!= y11
    let m1 = y00.replacing(with: y01, where: ab), m2 = y10.replacing(with: y11, where: cd)
    let second = m2 .> m1 .| m2 .!= m2
    let k1 = SIMD16<Int32>(repeating: 0).replacing(with: 1, where: ab)
    let k2 = SIMD16<Int32>(repeating: 2).replacing(with: 3, where: cd)
    return (m1.replacing(with: m2, where: second), k1.replacing(with: k2, where: second))
}

/// (a0, b0, a1, b1, …): the two halves of `a` and `b` interleaved — the inverse of splitting a row
/// into its even and odd columns (`evenHalf` / `oddHalf`); the lane moves compile to permutes here.
/// Used by the F(2×2) output rows and the polyphase input gradient. (The pooling backward keeps its
/// own 64-bit-lane form: measured, either form called from there ran 4× slower than that inline one.)
@inline(__always) func interleave(_ a: V16, _ b: V16) -> (V16, V16) {
    var lo = V16(), hi = V16()
    for i in 0..<8 {
        lo[2 * i] = a[i]; lo[2 * i + 1] = b[i]
        hi[2 * i] = a[8 + i]; hi[2 * i + 1] = b[8 + i]
    }
    return (lo, hi)
}
