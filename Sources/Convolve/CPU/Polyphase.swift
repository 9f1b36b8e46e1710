// The polyphase layout that puts strided layers on the shifted-rows GEMM (no im2col, no col2im).
//
// With stride (sh, sw), output (oy, ox) reads padded pixel (oy·sh + ki, ox·sw + kj) for tap (ki, kj).
// Split the padded image into phase planes — phase (a, b) holds the padded pixels (y·sh + a, x·sw + b),
// Hq = ⌈Hp / sh⌉ rows of Wq = ⌈Wp / sw⌉ — and that pixel is phase (ki mod sh, kj mod sw) at row
// oy + ki / sh, column ox + kj / sw. So over a wide output of OH rows of Wq values, every tap is one
// phase plane read contiguously from (ki / sh)·Wq + kj / sw on, exactly as unit-stride taps read the
// padded plane from ki·Wp + kj on (`tapOffsets`): the GEMM's B rows point into the phases. Only the
// phases some tap reads are stored (a < kh, b < kw: a 1×1 stride-2 layer keeps phase (0, 0), the
// subsampled image, and has no scratch columns). The Wq − OW scratch columns of each wide row are
// dropped (`compactWide`) and get zero output gradient (`widen`), as at unit stride. The input
// gradient is added into the same layout by the GEMM's C rows and interleaved back (`unpadPhases`);
// pixels no tap reads get zero. At unit stride there is one phase and the layout is the padded plane.

extension ConvGeometry {
    // `wideRowStride` (stored, `ConvGeometry.init`): the row stride of the wide layout, the padded width
    // or with stride a phase plane's width ⌈Wp / sw⌉.
    /// Rows of one phase plane: ⌈Hp / sh⌉ (Hp at unit stride).
    @inline(__always) var phaseHeight: Int { (hp + sh - 1) / sh }
    /// Floats in one phase plane.
    @inline(__always) var phasePlane: Int { phaseHeight * wideRowStride }
    /// Phase rows and columns that some kernel tap reads (the layout stores only those).
    @inline(__always) var phaseRows: Int { Swift.min(sh, kh) }
    @inline(__always) var phaseCols: Int { Swift.min(sw, kw) }

    /// `pad` for a strided layer: every float of `c × paddedPlane` is written (zeros around the image,
    /// in phase rows past the image and in the slack), so no scratch column ever reads garbage.
    @inline(never) func padPhases(_ x: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>) {
        let rowStride = wideRowStride, planeStride = phasePlane, phases = phaseRows * phaseCols
        for ci in 0..<c {
            let channel = dst + ci * paddedPlane
            for a in 0..<phaseRows { for yq in 0..<phaseHeight {
                let yp = yq * sh + a, first = channel + a * phaseCols * planeStride + yq * rowStride
                if yp >= ph && yp < ph + h {
                    splitRow(x + (ci * h + yp - ph) * w, into: first)
                } else {
                    for b in 0..<phaseCols { (first + b * planeStride).update(repeating: 0, count: rowStride) }
                }
            } }
            (channel + phases * planeStride).update(repeating: 0, count: paddedPlane - phases * planeStride)
        }
    }

    /// Where image column x goes in its row's column phases: phase (x + pw) mod sw (nil if unstored),
    /// at column (x + pw) / sw. At stride 2 the even columns go to phase pw mod 2 from column pw / 2 on
    /// and the odd ones to the other phase from (pw + 1) / 2 on.
    @inline(__always)
    private func columnPhases(_ first: UnsafeMutablePointer<Float>)
        -> (even: UnsafeMutablePointer<Float>?, odd: UnsafeMutablePointer<Float>?) {
        let evenPhase = pw % 2, oddPhase = 1 - evenPhase
        return (evenPhase < phaseCols ? first + evenPhase * phasePlane + pw / 2 : nil,
                oddPhase < phaseCols ? first + oddPhase * phasePlane + (pw + 1) / 2 : nil)
    }

    /// One image row into its phase rows starting at `first` (phase b's row at b·phasePlane), whole
    /// rows written: zeros before and after the image's columns.
    private func splitRow(_ src: UnsafePointer<Float>, into first: UnsafeMutablePointer<Float>) {
        let rowStride = wideRowStride, planeStride = phasePlane
        if sw == 1 {
            first.update(repeating: 0, count: pw)
            copyFloats(first + pw, src, w)
            (first + pw + w).update(repeating: 0, count: rowStride - pw - w)
            return
        }
        for b in 0..<phaseCols { (first + b * planeStride).update(repeating: 0, count: rowStride) }
        guard sw == 2 else {
            for x in 0..<w {
                let xp = x + pw, b = xp % sw
                if b < phaseCols { first[b * planeStride + xp / sw] = src[x] }
            }
            return
        }
        let (even, odd) = columnPhases(first)
        // 32 image columns → 16 of each phase (the unshuffles compile to vpermt2ps).
        var j = 0
        while 2 * j + 32 <= w {
            let v0 = ld(src + 2 * j), v1 = ld(src + 2 * j + 16)
            if let even { st(V16(lowHalf: v0.evenHalf, highHalf: v1.evenHalf), even + j) }
            if let odd { st(V16(lowHalf: v0.oddHalf, highHalf: v1.oddHalf), odd + j) }
            j += 16
        }
        if 2 * j + 16 <= w {
            let v = ld(src + 2 * j)
            if let even { st8(v.evenHalf, even + j) }
            if let odd { st8(v.oddHalf, odd + j) }
            j += 8
        }
        for x in (2 * j)..<w {
            if x % 2 == 0 { even?[x / 2] = src[x] } else { odd?[x / 2] = src[x] }
        }
    }

    /// `unpad` for a strided layer: interleaves the phases' rows back into image rows of `dx` (which
    /// may be uninitialized); pixels in phases no tap reads get zero. With `add`, adds into `dx`.
    @inline(never) func unpadPhases(_ dxp: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, add: Bool = false) {
        let rowStride = wideRowStride, planeStride = phasePlane
        for ci in 0..<c {
            let channel = UnsafeMutablePointer(mutating: dxp + ci * paddedPlane)
            for y in 0..<h {
                let yp = y + ph, a = yp % sh, out = dx + (ci * h + y) * w
                guard a < phaseRows else { if !add { out.update(repeating: 0, count: w) }; continue }
                let first = channel + a * phaseCols * planeStride + (yp / sh) * rowStride
                // stored, or added into what `dx` holds
                @inline(__always) func put(_ v: V16, _ p: UnsafeMutablePointer<Float>) { st(add ? v + ld(p) : v, p) }
                @inline(__always) func put(_ v: Float, at x: Int) { if add { out[x] += v } else { out[x] = v } }
                if sw == 1 {
                    if add { for x in 0..<w { out[x] += first[pw + x] } } else { copyFloats(out, first + pw, w) }
                    continue
                }
                guard sw == 2 else {
                    for x in 0..<w {
                        let xp = x + pw, b = xp % sw
                        put(b < phaseCols ? first[b * planeStride + xp / sw] : 0, at: x)
                    }
                    continue
                }
                let (even, odd) = columnPhases(first)
                var j = 0
                while 2 * j + 32 <= w {
                    let e = even.map { ld($0 + j) } ?? V16(), o = odd.map { ld($0 + j) } ?? V16()
                    let (lo, hi) = interleave(e, o)
                    put(lo, out + 2 * j); put(hi, out + 2 * j + 16)
                    j += 16
                }
                if 2 * j + 16 <= w {
                    let e = even.map { ld8($0 + j) } ?? SIMD8(), o = odd.map { ld8($0 + j) } ?? SIMD8()
                    put(interleave(V16(lowHalf: e, highHalf: e), V16(lowHalf: o, highHalf: o)).0, out + 2 * j)
                    j += 8
                }
                for x in (2 * j)..<w { put((x % 2 == 0 ? even?[x / 2] : odd?[x / 2]) ?? 0, at: x) }
            }
        }
    }
}

@inline(__always) private func ld8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) private func st8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
