import Foundation

// Small dense kernels shared by the ops: uninitialized allocation, SIMD reductions, and a direct
// convolution for layers with few channels (where im2col + GEMM wastes the 8×32 micro-kernel).

/// A Float array whose elements `body` must all write (skips the zero fill).
@inline(__always)
func uninitializedFloats(_ n: Int, _ body: (UnsafeMutableBufferPointer<Float>) -> Void) -> [Float] {
    // Empty: the standard library's shared empty storage would get its count written, a race under
    // ThreadSanitizer when two threads do it (benign, 0 over 0, but it hides real reports).
    guard n > 0 else { return [] }
    return [Float](unsafeUninitializedCapacity: n) { buf, count in
        body(buf)
        count = n
    }
}

/// Copies `n` floats (non-overlapping) with inline 16-wide moves: short rows are too small for a memmove call.
@inline(__always) func copyFloats(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    typealias V = SIMD16<Float>
    if n < 16 {
        // two overlapping 8- or 4-wide moves (rows of 14 or 7: the tutorial models' second layer)
        @inline(__always) func move<T: SIMD>(_ type: T.Type) where T.Scalar == Float {
            let d = UnsafeMutableRawPointer(dst), s = UnsafeRawPointer(src), tail = (n - T.scalarCount) * 4
            let first = s.loadUnaligned(as: T.self), last = s.loadUnaligned(fromByteOffset: tail, as: T.self)
            d.storeBytes(of: first, as: T.self); d.storeBytes(of: last, toByteOffset: tail, as: T.self)
        }
        if n >= 8 { move(SIMD8<Float>.self) } else if n >= 4 { move(SIMD4<Float>.self) } else { for i in 0..<n { dst[i] = src[i] } }
        return
    }
    var i = 0
    while i + 16 <= n {
        UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: V.self), as: V.self)
        i += 16
    }
    if i < n {   // the last 16, overlapping what was already copied
        UnsafeMutableRawPointer(dst + n - 16).storeBytes(of: UnsafeRawPointer(src + n - 16).loadUnaligned(as: V.self), as: V.self)
    }
}

@inline(__always) func simdSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD16<Float>(), i = 0
    while i + 16 <= n { acc += ld(p + i); i += 16 }
    var s = acc.sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

@inline(__always) func simdSumSquaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, _ mean: Float) -> Float {
    var acc = SIMD16<Float>(), i = 0
    let m = SIMD16<Float>(repeating: mean)
    while i + 16 <= n {
        let d = ld(p + i) - m
        acc.addProduct(d, d); i += 16
    }
    var s = acc.sum()
    while i < n { let d = p[i] - mean; s += d * d; i += 1 }
    return s
}

/// Four dot products of `g` with `b0`…`b3` in one pass (`g` loaded once per vector for all four).
@inline(__always) func simdDot4Shared(_ g: UnsafePointer<Float>, _ b0: UnsafePointer<Float>, _ b1: UnsafePointer<Float>,
                                      _ b2: UnsafePointer<Float>, _ b3: UnsafePointer<Float>, _ n: Int)
    -> (Float, Float, Float, Float) {
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>(), i = 0
    while i + 16 <= n {
        let gv = ld(g + i)
        s0.addProduct(gv, ld(b0 + i)); s1.addProduct(gv, ld(b1 + i))
        s2.addProduct(gv, ld(b2 + i)); s3.addProduct(gv, ld(b3 + i))
        i += 16
    }
    var r = (s0.sum(), s1.sum(), s2.sum(), s3.sum())
    while i < n {
        let gi = g[i]
        r.0 += gi * b0[i]; r.1 += gi * b1[i]; r.2 += gi * b2[i]; r.3 += gi * b3[i]
        i += 1
    }
    return r
}

/// Eight dot products of `g[0..<n]` with `row(0)…row(7)`, each in its own accumulator (the gradient
/// vector is loaded once for the eight).
@inline(__always) func simdDot8Shared(_ g: UnsafePointer<Float>, _ row: (Int) -> UnsafePointer<Float>, _ n: Int)
    -> SIMD8<Float> {
    let b0 = row(0), b1 = row(1), b2 = row(2), b3 = row(3), b4 = row(4), b5 = row(5), b6 = row(6), b7 = row(7)
    var s0 = SIMD16<Float>(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0, i = 0
    while i + 16 <= n {
        let gv = ld(g + i)
        s0.addProduct(gv, ld(b0 + i)); s1.addProduct(gv, ld(b1 + i)); s2.addProduct(gv, ld(b2 + i)); s3.addProduct(gv, ld(b3 + i))
        s4.addProduct(gv, ld(b4 + i)); s5.addProduct(gv, ld(b5 + i)); s6.addProduct(gv, ld(b6 + i)); s7.addProduct(gv, ld(b7 + i))
        i += 16
    }
    var r = SIMD8<Float>(s0.sum(), s1.sum(), s2.sum(), s3.sum(), s4.sum(), s5.sum(), s6.sum(), s7.sum())
    while i < n {
        let gi = g[i]
        r += gi * SIMD8<Float>(b0[i], b1[i], b2[i], b3[i], b4[i], b5[i], b6[i], b7[i])
        i += 1
    }
    return r
}

/// Dot product with four independent accumulators (hides the multiply-add latency).
@inline(__always) func simdDot4(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>(), i = 0
    while i + 64 <= n {
        s0.addProduct(ld(a + i), ld(b + i)); s1.addProduct(ld(a + i + 16), ld(b + i + 16))
        s2.addProduct(ld(a + i + 32), ld(b + i + 32)); s3.addProduct(ld(a + i + 48), ld(b + i + 48))
        i += 64
    }
    while i + 16 <= n { s0.addProduct(ld(a + i), ld(b + i)); i += 16 }
    var s = ((s0 + s1) + (s2 + s3)).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// dst[i] = src[i]·scale + shift.
@inline(__always) func simdAffine(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ scale: Float,
                                  _ shift: Float, _ n: Int) {
    let sv = SIMD16<Float>(repeating: scale), bv = SIMD16<Float>(repeating: shift)
    var i = 0
    while i + 16 <= n {
        var v = bv
        v.addProduct(sv, ld(src + i))
        st(v, dst + i)
        i += 16
    }
    while i < n { dst[i] = src[i] * scale + shift; i += 1 }
}

/// 64 consecutive output floats held in four SIMD16 registers: independent multiply-add chains hide
/// the FMA latency in the direct convolution's forward and gathered input-gradient loops.
/// Two `Accumulator64`s fed from the same source: `add(w0, w1, src)` loads `src[0..<64]` once for
/// two weights, eight independent chains.
struct Accumulator64Pair {
    var first: Accumulator64, second: Accumulator64
    @inline(__always) init(_ start0: SIMD16<Float>, _ start1: SIMD16<Float>) {
        first = Accumulator64(start0); second = Accumulator64(start1)
    }
    @inline(__always) mutating func add(_ w0: Float, _ w1: Float, _ src: UnsafePointer<Float>) {
        let a = SIMD16<Float>(repeating: w0), b = SIMD16<Float>(repeating: w1), r = UnsafeRawPointer(src)
        let v0 = r.loadUnaligned(as: SIMD16<Float>.self), v1 = r.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        let v2 = r.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self)
        let v3 = r.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self)
        first.a0.addProduct(a, v0); first.a1.addProduct(a, v1); first.a2.addProduct(a, v2); first.a3.addProduct(a, v3)
        second.a0.addProduct(b, v0); second.a1.addProduct(b, v1); second.a2.addProduct(b, v2); second.a3.addProduct(b, v3)
    }
    @inline(__always) func store(_ dst0: UnsafeMutablePointer<Float>, _ dst1: UnsafeMutablePointer<Float>) {
        first.store(dst0); second.store(dst1)
    }
}

struct Accumulator64 {
    var a0, a1, a2, a3: SIMD16<Float>
    @inline(__always) init(_ start: SIMD16<Float>) { a0 = start; a1 = start; a2 = start; a3 = start }
    /// Adds `weight · src[0..<64]`.
    @inline(__always) mutating func add(_ weight: Float, _ src: UnsafePointer<Float>) {
        let wv = SIMD16<Float>(repeating: weight), r = UnsafeRawPointer(src)
        a0.addProduct(wv, r.loadUnaligned(as: SIMD16<Float>.self))
        a1.addProduct(wv, r.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
        a2.addProduct(wv, r.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self))
        a3.addProduct(wv, r.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self))
    }
    @inline(__always) func store(_ dst: UnsafeMutablePointer<Float>) {
        let o = UnsafeMutableRawPointer(dst)
        o.storeBytes(of: a0, as: SIMD16<Float>.self); o.storeBytes(of: a1, toByteOffset: 64, as: SIMD16<Float>.self)
        o.storeBytes(of: a2, toByteOffset: 128, as: SIMD16<Float>.self); o.storeBytes(of: a3, toByteOffset: 192, as: SIMD16<Float>.self)
    }
}

extension ConvGeometry {
    // The direct convolution suits layers with unit stride and dilation and few output channels ×
    // kernel taps, where im2col + GEMM would waste the 8×32 micro-kernel (`ConvAlgorithm` chooses).
    // The direct convolution works on "wide" rows: each input plane is zero-padded to Hp×Wp (plus
    // kw floats of slack), and an output plane is computed as OH rows of Wp values, so that every
    // kernel tap is one long contiguous multiply-add over OH·Wp floats (the last Wp−OW values of
    // each row are scratch and dropped).
    var wp: Int { w + 2 * pw }
    var hp: Int { h + 2 * ph }
    // `paddedPlane` (stored, `ConvGeometry.init`): one channel's padded plane — with stride its phase
    // planes, `Polyphase.swift` — plus slack so whole SIMD16 vectors and 32-column GEMM windows past
    // the wide length stay in bounds.
    /// OH wide rows of `wideRowStride` (= Wp at unit stride) values.
    @inline(__always) var wideLength: Int { oh * wideRowStride }
    /// Wide length rounded up to whole SIMD16 vectors (the scratch buffer's size).
    var wideCapacity: Int { (wideLength + 63) / 64 * 64 }

    // The shifted-rows GEMM path reads rows of the padded image instead of im2col columns: with
    // unit stride and dilation, kernel tap (ci, ki, kj) over the wide output is the padded plane
    // read from `ci·P + ki·Wp + kj` on, so GEMM rows can point straight into the image. A strided
    // layer reads phase (ki mod sh, kj mod sw) of its polyphase layout from (ki / sh)·Wq + kj / sw on
    // (`Polyphase.swift`).

    /// Start of each kernel tap's row, `k = (ci·kh + ki)·kw + kj`, in the padded (polyphase) layout.
    func tapOffsets() -> [Int] {
        var t: [Int] = []; t.reserveCapacity(kSize)
        for ci in 0..<c { for ki in 0..<kh { for kj in 0..<kw {
            let phase = (ki % sh) * phaseCols + kj % sw
            t.append(ci * paddedPlane + phase * phasePlane + (ki / sh) * wideRowStride + kj / sw)
        } } }
        return t
    }

    /// Drops the scratch columns of `channels` wide output planes (`wide` rows of Wp, `out` rows of OW).
    func compactWide(_ wide: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, channels: Int) {
        let L = wideLength, rowStride = wideRowStride
        if rowStride == ow { copyFloats(out, wide, channels * ohw); return }   // no scratch columns
        for ch in 0..<channels { for oy in 0..<oh {
            copyFloats(out + ch * ohw + oy * ow, wide + ch * L + oy * rowStride, ow)
        } }
    }

    /// The inverse of `compactWide`, with zeros in the scratch columns (so they contribute nothing).
    /// With `reluOutput` (a fused ReLU's output), only gradients where that output is positive pass.
    func widen(_ g: UnsafePointer<Float>, into wide: UnsafeMutablePointer<Float>, channels: Int,
               reluOutput: UnsafePointer<Float>? = nil) {
        let L = wideLength, rowStride = wideRowStride
        if rowStride == ow && reluOutput == nil { copyFloats(wide, g, channels * ohw); return }
        for ch in 0..<channels { for oy in 0..<oh {
            let d = wide + ch * L + oy * rowStride, src = g + ch * ohw + oy * ow
            if let y = reluOutput.map({ $0 + ch * ohw + oy * ow }) {
                for i in 0..<ow { d[i] = y[i] > 0 ? src[i] : 0 }
            } else {
                copyFloats(d, src, ow)
            }
            for i in ow..<rowStride { d[i] = 0 }
        } }
    }

    /// Copies one image's channels into the zero-padded layout (`dst` holds c × paddedPlane floats,
    /// every one written); a strided layer's into its polyphase layout.
    func pad(_ x: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>) {
        if sh > 1 || sw > 1 { padPhases(x, into: dst); return }
        if ph == 0 && pw == 0 {
            // Rows are contiguous: copy each plane whole, zero only the slack after it.
            for ci in 0..<c {
                let d = dst + ci * paddedPlane
                copyFloats(d, x + ci * h * w, h * w)
                (d + h * w).update(repeating: 0, count: paddedPlane - h * w)
            }
            return
        }
        dst.update(repeating: 0, count: c * paddedPlane)
        for ci in 0..<c {
            for y in 0..<h {
                copyFloats(dst + ci * paddedPlane + (y + ph) * wp + pw, x + ci * h * w + y * w, w)
            }
        }
    }

    /// out[oc] = bias[oc] + Σ w[oc, c, ki, kj] · x[c, shifted] for one padded image: each 16-wide
    /// block of the wide output row accumulates every tap in a register and is stored once. Output
    /// channels go in pairs: each tap's input vectors are loaded once for both, and the eight
    /// independent multiply-add chains (2 channels × 64 outputs) keep both FMA pipes busy where four
    /// chains waited on the FMA latency. `wide` holds `2 × wideCapacity` floats.
    func directForward(_ xp: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                       _ out: UnsafeMutablePointer<Float>, _ wide: UnsafeMutablePointer<Float>, outChannels: Int) {
        let L = wideLength, P = paddedPlane, taps = kh * kw, W = wideCapacity
        var oc = 0
        while oc < outChannels {
            // An odd last channel pairs with itself: both halves compute the same values into one buffer.
            let oc1 = Swift.min(oc + 1, outChannels - 1), wide1 = oc1 == oc ? wide : wide + W
            let b0 = SIMD16<Float>(repeating: bias?[oc] ?? 0), b1 = SIMD16<Float>(repeating: bias?[oc1] ?? 0)
            let wo0 = wt + oc * c * taps, wo1 = wt + oc1 * c * taps
            var i = 0
            while i + 64 <= L {
                var acc = Accumulator64Pair(b0, b1)
                for ci in 0..<c {
                    let plane = xp + ci * P + i, w0 = wo0 + ci * taps, w1 = wo1 + ci * taps
                    for ki in 0..<kh {
                        let row = plane + ki * wp
                        for kj in 0..<kw { acc.add(w0[ki * kw + kj], w1[ki * kw + kj], row + kj) }
                    }
                }
                acc.store(wide + i, wide1 + i)
                i += 64
            }
            while i < L {
                var acc0 = b0, acc1 = b1
                for ci in 0..<c {
                    let plane = xp + ci * P + i, w0 = wo0 + ci * taps, w1 = wo1 + ci * taps
                    for ki in 0..<kh {
                        let row = plane + ki * wp
                        for kj in 0..<kw {
                            let v = ld(row + kj)
                            acc0.addProduct(SIMD16<Float>(repeating: w0[ki * kw + kj]), v)
                            acc1.addProduct(SIMD16<Float>(repeating: w1[ki * kw + kj]), v)
                        }
                    }
                }
                st(acc0, wide + i); st(acc1, wide1 + i)
                i += 16
            }
            let o0 = out + oc * ohw, o1 = out + oc1 * ohw
            for oy in 0..<oh { copyFloats(o0 + oy * ow, wide + oy * wp, ow) }
            if oc1 != oc { for oy in 0..<oh { copyFloats(o1 + oy * ow, wide1 + oy * wp, ow) } }
            oc += 2
        }
    }

    /// Front padding of a gradient plane in `directBackward`'s gather layout: the largest tap offset.
    var gradFront: Int { (kh - 1) * wp + (kw - 1) }
    /// One output-gradient plane in the gather layout: front zeros, OH wide rows, tail zeros.
    var gradPlane: Int { gradFront + wideLength + (kh - 1) * wp + 128 }

    /// Adds one image's weight gradient into `dw` and, if `dxp` is given, writes its padded input
    /// gradient (every element of `c × paddedPlane`). `gbuf` holds `outChannels × gradPlane` floats.
    /// Both run with register accumulators only (no read-modify-write chains through memory):
    /// dW[oc, ci, tap] is a 4-accumulator dot product of the wide gradient with the shifted input, and
    /// dX is gathered: dxp[ci][p] = Σ_oc Σ_tap w[oc, ci, tap] · g[oc][p − offset(tap)].
    func directBackward(_ xp: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: UnsafePointer<Float>,
                        _ dw: UnsafeMutablePointer<Float>?, _ dxp: UnsafeMutablePointer<Float>?,
                        _ gbuf: UnsafeMutablePointer<Float>, outChannels: Int) {
        let L = wideLength, taps = kh * kw, F = gradFront, G = gradPlane
        gbuf.update(repeating: 0, count: outChannels * G)
        for oc in 0..<outChannels {
            let gw = gbuf + oc * G + F
            for oy in 0..<oh { copyFloats(gw + oy * wp, g + oc * ohw + oy * ow, ow) }
        }
        if let dw {
            for oc in 0..<outChannels {
                let gw = UnsafePointer(gbuf + oc * G + F)
                for ci in 0..<c {
                    let plane = xp + ci * paddedPlane, base = (oc * c + ci) * taps
                    // eight taps per pass (eight independent chains, the gradient row loaded once for
                    // eight dot products), then four, then one
                    var t = 0
                    while t + 8 <= taps {
                        let d = simdDot8Shared(gw, { plane + ((t + $0) / kw) * wp + (t + $0) % kw }, L)
                        for k in 0..<8 { dw[base + t + k] += d[k] }
                        t += 8
                    }
                    while t + 4 <= taps {
                        let d = simdDot4Shared(gw, plane + (t / kw) * wp + t % kw, plane + ((t + 1) / kw) * wp + (t + 1) % kw,
                                               plane + ((t + 2) / kw) * wp + (t + 2) % kw,
                                               plane + ((t + 3) / kw) * wp + (t + 3) % kw, L)
                        dw[base + t] += d.0; dw[base + t + 1] += d.1; dw[base + t + 2] += d.2; dw[base + t + 3] += d.3
                        t += 4
                    }
                    while t < taps {
                        dw[base + t] += simdDot4(gw, plane + (t / kw) * wp + t % kw, L)
                        t += 1
                    }
                }
            }
        }
        guard let dxp else { return }
        let total = hp * wp
        // input channels in pairs: each shifted gradient row is loaded once for both (eight chains);
        // an odd last channel pairs with itself (both halves store the same values to one place)
        var ci = 0
        while ci < c {
            let ci1 = Swift.min(ci + 1, c - 1)
            let dst0 = dxp + ci * paddedPlane, dst1 = dxp + ci1 * paddedPlane
            var p = 0
            while p < total {
                var acc = Accumulator64Pair(SIMD16<Float>(), SIMD16<Float>())
                for oc in 0..<outChannels {
                    let gw = UnsafePointer(gbuf + oc * G + F + p)
                    let w0 = wt + (oc * c + ci) * taps, w1 = wt + (oc * c + ci1) * taps
                    for ki in 0..<kh { for kj in 0..<kw { acc.add(w0[ki * kw + kj], w1[ki * kw + kj], gw - (ki * wp + kj)) } }
                }
                acc.store(dst0 + p, dst1 + p)
                p += 64
            }
            ci += 2
        }
    }

    /// One image's channels, zero-padded, channels-last: `dst[(y·Wp + x)·c + ci]` (hp·wp·c floats).
    /// 16×16 blocks are transposed in registers when the channel count allows.
    func padChannelsLast(_ x: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>) {
        if ph > 0 || pw > 0 { dst.update(repeating: 0, count: hp * wp * c) }
        let c16 = c % 16 == 0 ? c : 0
        for y in 0..<h {
            let row = dst + ((y + ph) * wp + pw) * c
            var x0 = 0
            while x0 + 16 <= w && c16 > 0 {
                var c0 = 0
                while c0 < c16 {
                    let src = x + c0 * h * w + y * w + x0
                    transpose16x16({ src + $0 * h * w }, row + x0 * c + c0, c)
                    c0 += 16
                }
                x0 += 16
            }
            for xx in x0..<w { for ci in 0..<c { row[xx * c + ci] = x[ci * h * w + y * w + xx] } }
        }
    }

    /// Copies the image region of the padded (polyphase) layout into `dx` (which may be uninitialized;
    /// with `add`, adds into it).
    func unpad(_ dxp: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, add: Bool = false) {
        if sh > 1 || sw > 1 { unpadPhases(dxp, into: dx, add: add); return }
        if add { unpadAdd(dxp, into: dx); return }
        for ci in 0..<c { for y in 0..<h {
            copyFloats(dx + ci * h * w + y * w, dxp + ci * paddedPlane + (y + ph) * wp + pw, w)
        } }
    }

    /// Adds the interior of a padded gradient back into an image gradient.
    func unpadAdd(_ dxp: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>) {
        for ci in 0..<c { for y in 0..<h {
            let s = dxp + ci * paddedPlane + (y + ph) * wp + pw, d = dx + ci * h * w + y * w
            for x in 0..<w { d[x] += s[x] }
        } }
    }
}

extension Optional where Wrapped == [Float] {
    /// Runs `body` with a pointer to the array's elements, or nil.
    @inline(__always)
    func withUnsafeBufferPointerOrNil<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let a = self else { return body(nil) }
        return a.withUnsafeBufferPointer { body($0.baseAddress) }
    }
}
