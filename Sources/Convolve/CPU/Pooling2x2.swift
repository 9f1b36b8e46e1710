import Foundation

/// 2×2, stride-2 max pooling of one plane whose rows are `rowStride` apart: `out` (oh×ow) and which of
/// each window's four elements won (0…3 in row-major order; ties keep the first and NaN wins — the
/// last NaN — as in PyTorch's loop). Branch-free (selects): random activations make branches mispredict.
@inline(__always)
func maxPool2x2Plane(_ x: UnsafePointer<Float>, rowStride: Int, oh: Int, ow: Int,
                     _ out: UnsafeMutablePointer<Float>, _ arg: UnsafeMutablePointer<UInt8>) {
    for oy in 0..<oh {
        let r0 = x + 2 * oy * rowStride, r1 = r0 + rowStride
        let o = out + oy * ow, k = arg + oy * ow
        // 8 outputs at a time: de-interleave even/odd columns of both rows. A row of at least 8 ends
        // with 8 that overlap the ones before (the same values again) instead of a scalar tail.
        @inline(__always) func eight(_ ox: Int) {
            let v0 = ld(r0 + 2 * ox)
            let v1 = ld(r1 + 2 * ox)
            let a = v0.evenHalf, b = v0.oddHalf, cc = v1.evenHalf, d = v1.oddHalf
            let ab = b .> a .| b .!= b, cd = d .> cc .| d .!= d
            let m1 = a.replacing(with: b, where: ab), m2 = cc.replacing(with: d, where: cd)
            let second = m2 .> m1 .| m2 .!= m2
            UnsafeMutableRawPointer(o + ox).storeBytes(of: m1.replacing(with: m2, where: second), as: SIMD8<Float>.self)
            let k1 = SIMD8<Int32>(repeating: 0).replacing(with: 1, where: ab)
            let k2 = SIMD8<Int32>(repeating: 2).replacing(with: 3, where: cd)
            UnsafeMutableRawPointer(k + ox).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: k1.replacing(with: k2, where: second)),
                                                       as: SIMD8<UInt8>.self)
        }
        // 4 ≤ ow < 8 (the tutorial models' second pools: 7 and 5 wide): two overlapping groups of 4.
        @inline(__always) func four(_ ox: Int) {
            let v0 = UnsafeRawPointer(r0 + 2 * ox).loadUnaligned(as: SIMD8<Float>.self)
            let v1 = UnsafeRawPointer(r1 + 2 * ox).loadUnaligned(as: SIMD8<Float>.self)
            let a = v0.evenHalf, b = v0.oddHalf, cc = v1.evenHalf, d = v1.oddHalf
            let ab = b .> a .| b .!= b, cd = d .> cc .| d .!= d
            let m1 = a.replacing(with: b, where: ab), m2 = cc.replacing(with: d, where: cd)
            let second = m2 .> m1 .| m2 .!= m2
            UnsafeMutableRawPointer(o + ox).storeBytes(of: m1.replacing(with: m2, where: second), as: SIMD4<Float>.self)
            let k1 = SIMD4<Int32>(repeating: 0).replacing(with: 1, where: ab)
            let k2 = SIMD4<Int32>(repeating: 2).replacing(with: 3, where: cd)
            UnsafeMutableRawPointer(k + ox).storeBytes(of: SIMD4<UInt8>(truncatingIfNeeded: k1.replacing(with: k2, where: second)),
                                                       as: SIMD4<UInt8>.self)
        }
        var ox = 0
        while ox + 8 <= ow { eight(ox); ox += 8 }
        if ox < ow && ow >= 8 { eight(ow - 8); ox = ow }
        if ox == 0 && ow >= 4 { four(0); four(ow - 4); ox = ow }
        while ox < ow {
            let a = r0[2 * ox], b = r0[2 * ox + 1], cc = r1[2 * ox], d = r1[2 * ox + 1]
            let ab = b > a || b.isNaN, cd = d > cc || d.isNaN
            let m1 = ab ? b : a, m2 = cd ? d : cc
            let second = m2 > m1 || m2.isNaN
            o[ox] = second ? m2 : m1
            k[ox] = second ? (cd ? 3 : 2) : (ab ? 1 : 0)
            ox += 1
        }
    }
}

/// The adjoint of `maxPool2x2Plane`: writes every position of a `rows`-row plane (rows `rowStride`
/// apart) — the window's winner gets the pooled gradient, everything else 0 — so the destination needs
/// no zero fill. With `mask` (a fused ReLU's pooled output) the gradient passes only where it is > 0.
@inline(__always)
func unpool2x2Plane(_ g: UnsafePointer<Float>, _ arg: UnsafePointer<UInt8>, mask: UnsafePointer<Float>?,
                    oh: Int, ow: Int, rows: Int, rowStride: Int, into d: UnsafeMutablePointer<Float>) {
    for oy in 0..<oh {
        let r0 = d + 2 * oy * rowStride, r1 = r0 + rowStride
        // Eight (or, 4 ≤ ow < 8, four) windows at a time by selects where the row allows (the last
        // group overlaps the ones before and rewrites the same values), the rest one by one.
        var first = 0
        if ow >= 8 {
            let i0 = oy * ow
            var ox = 0
            while ox < ow {
                let at = Swift.min(ox, ow - 8)
                unpoolEight(g + i0 + at, arg + i0 + at, mask.map { $0 + i0 + at }, r0 + 2 * at, r1 + 2 * at)
                ox = at + 8
            }
            first = ow
        } else if ow >= 4 {
            let i0 = oy * ow
            unpoolFour(g + i0, arg + i0, mask.map { $0 + i0 }, r0, r1)
            unpoolFour(g + i0 + ow - 4, arg + i0 + ow - 4, mask.map { $0 + i0 + ow - 4 }, r0 + 2 * (ow - 4), r1 + 2 * (ow - 4))
            first = ow
        }
        for ox in first..<ow {
            let i = oy * ow + ox, k = arg[i]
            var v = g[i]
            if let mask { v = mask[i] > 0 ? v : 0 }
            r0[2 * ox] = k == 0 ? v : 0
            r0[2 * ox + 1] = k == 1 ? v : 0
            r1[2 * ox] = k == 2 ? v : 0
            r1[2 * ox + 1] = k == 3 ? v : 0
        }
        for x in (2 * ow)..<rowStride { r0[x] = 0; r1[x] = 0 }
    }
    for y in (2 * oh)..<rows { (d + y * rowStride).update(repeating: 0, count: rowStride) }
}

/// Eight windows of `unpool2x2Plane`: 16 floats of each of the two rows. The pairs of a row are
/// interleaved as 64-bit lanes (the zero-extended first float | the second shifted up), which compiles
/// to widening moves, shifts and ors rather than lane-by-lane inserts.
@inline(__always)
private func unpoolEight(_ g: UnsafePointer<Float>, _ arg: UnsafePointer<UInt8>, _ mask: UnsafePointer<Float>?,
                         _ r0: UnsafeMutablePointer<Float>, _ r1: UnsafeMutablePointer<Float>) {
    var v = UnsafeRawPointer(g).loadUnaligned(as: SIMD8<Float>.self)
    if let mask {
        v = SIMD8<Float>().replacing(with: v, where: UnsafeRawPointer(mask).loadUnaligned(as: SIMD8<Float>.self) .> 0)
    }
    // the winners as floats: float compares compile to one instruction, SIMD8<Int32> .== scalar to a lane loop
    let k = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: UnsafeRawPointer(arg).loadUnaligned(as: SIMD8<UInt8>.self)))
    let zero = SIMD8<Float>()
    @inline(__always) func pairs(_ even: SIMD8<Float>, _ odd: SIMD8<Float>) -> SIMD16<Float> {
        let lo = SIMD8<UInt64>(truncatingIfNeeded: unsafeBitCast(even, to: SIMD8<UInt32>.self))
        let hi = SIMD8<UInt64>(truncatingIfNeeded: unsafeBitCast(odd, to: SIMD8<UInt32>.self))
        return unsafeBitCast(lo | (hi &<< 32), to: SIMD16<Float>.self)
    }
    st(pairs(zero.replacing(with: v, where: k .== 0), zero.replacing(with: v, where: k .== 1)), r0)
    st(pairs(zero.replacing(with: v, where: k .== 2), zero.replacing(with: v, where: k .== 3)), r1)
}

/// Four windows of `unpool2x2Plane` (rows 4–7 windows wide): 8 floats of each of the two rows.
@inline(__always)
private func unpoolFour(_ g: UnsafePointer<Float>, _ arg: UnsafePointer<UInt8>, _ mask: UnsafePointer<Float>?,
                        _ r0: UnsafeMutablePointer<Float>, _ r1: UnsafeMutablePointer<Float>) {
    var v = UnsafeRawPointer(g).loadUnaligned(as: SIMD4<Float>.self)
    if let mask {
        v = SIMD4<Float>().replacing(with: v, where: UnsafeRawPointer(mask).loadUnaligned(as: SIMD4<Float>.self) .> 0)
    }
    let k = SIMD4<Float>(SIMD4<Int32>(truncatingIfNeeded: UnsafeRawPointer(arg).loadUnaligned(as: SIMD4<UInt8>.self)))
    let zero = SIMD4<Float>()
    @inline(__always) func pairs(_ even: SIMD4<Float>, _ odd: SIMD4<Float>) -> SIMD8<Float> {
        let lo = SIMD4<UInt64>(truncatingIfNeeded: unsafeBitCast(even, to: SIMD4<UInt32>.self))
        let hi = SIMD4<UInt64>(truncatingIfNeeded: unsafeBitCast(odd, to: SIMD4<UInt32>.self))
        return unsafeBitCast(lo | (hi &<< 32), to: SIMD8<Float>.self)
    }
    UnsafeMutableRawPointer(r0).storeBytes(of: pairs(zero.replacing(with: v, where: k .== 0), zero.replacing(with: v, where: k .== 1)),
                                           as: SIMD8<Float>.self)
    UnsafeMutableRawPointer(r1).storeBytes(of: pairs(zero.replacing(with: v, where: k .== 2), zero.replacing(with: v, where: k .== 3)),
                                           as: SIMD8<Float>.self)
}
