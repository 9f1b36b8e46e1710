import Foundation

// Small dense kernels shared by the ops: uninitialized allocation, SIMD reductions, and a direct
// convolution for layers with few channels (where im2col + GEMM wastes the 8×32 micro-kernel).

/// A Float array whose elements `body` must all write (skips the zero fill).
@inline(__always)
func uninitializedFloats(_ n: Int, _ body: (UnsafeMutableBufferPointer<Float>) -> Void) -> [Float] {
    [Float](unsafeUninitializedCapacity: n) { buf, count in
        body(buf)
        count = n
    }
}

@inline(__always) func simdSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD16<Float>(), i = 0
    while i + 16 <= n { acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self); i += 16 }
    var s = acc.sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

@inline(__always) func simdSumSquaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, _ mean: Float) -> Float {
    var acc = SIMD16<Float>(), i = 0
    let m = SIMD16<Float>(repeating: mean)
    while i + 16 <= n {
        let d = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self) - m
        acc.addProduct(d, d); i += 16
    }
    var s = acc.sum()
    while i < n { let d = p[i] - mean; s += d * d; i += 1 }
    return s
}

@inline(__always) func simdDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD16<Float>(), i = 0
    while i + 16 <= n {
        acc.addProduct(UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self),
                       UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self))
        i += 16
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

@inline(__always) func simdAxpy(_ y: UnsafeMutablePointer<Float>, _ a: Float, _ x: UnsafePointer<Float>, _ n: Int) {
    let av = SIMD16<Float>(repeating: a)
    var i = 0
    while i + 16 <= n {
        var v = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
        v.addProduct(av, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self))
        UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] += a * x[i]; i += 1 }
}

extension ConvGeometry {
    /// Whether the direct convolution suits this layer: unit stride and dilation, few output
    /// channels × kernel taps (where im2col + GEMM would waste the 8×32 micro-kernel).
    func prefersDirect(outChannels: Int) -> Bool {
        sh == 1 && sw == 1 && dh == 1 && dw == 1 && outChannels * kSize <= 512
    }

    // The direct convolution works on "wide" rows: each input plane is zero-padded to Hp×Wp (plus
    // kw floats of slack), and an output plane is computed as OH rows of Wp values, so that every
    // kernel tap is one long contiguous multiply-add over OH·Wp floats (the last Wp−OW values of
    // each row are scratch and dropped).
    var wp: Int { w + 2 * pw }
    var hp: Int { h + 2 * ph }
    var paddedPlane: Int { hp * wp + kw }
    var wideLength: Int { oh * wp }

    /// Copies one image's channels into the zero-padded layout (`dst` holds c × paddedPlane floats).
    func pad(_ x: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>) {
        dst.update(repeating: 0, count: c * paddedPlane)
        for ci in 0..<c {
            for y in 0..<h {
                (dst + ci * paddedPlane + (y + ph) * wp + pw).update(from: x + ci * h * w + y * w, count: w)
            }
        }
    }

    /// out[oc] = bias[oc] + Σ w[oc, c, ki, kj] · x[c, shifted] for one padded image.
    func directForward(_ xp: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                       _ out: UnsafeMutablePointer<Float>, _ wide: UnsafeMutablePointer<Float>, outChannels: Int) {
        let L = wideLength
        for oc in 0..<outChannels {
            wide.update(repeating: bias?[oc] ?? 0, count: L)
            for ci in 0..<c { for ki in 0..<kh { for kj in 0..<kw {
                simdAxpy(wide, wt[((oc * c + ci) * kh + ki) * kw + kj], xp + ci * paddedPlane + ki * wp + kj, L)
            } } }
            let o = out + oc * ohw
            for oy in 0..<oh { (o + oy * ow).update(from: wide + oy * wp, count: ow) }
        }
    }

    /// Adds one image's weight gradient into `dw` and, if `dxp` is given, its padded input gradient.
    func directBackward(_ xp: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: UnsafePointer<Float>,
                        _ dw: UnsafeMutablePointer<Float>?, _ dxp: UnsafeMutablePointer<Float>?,
                        _ wide: UnsafeMutablePointer<Float>, outChannels: Int) {
        let L = wideLength
        for oc in 0..<outChannels {
            // Output gradient in the wide layout, zero in the scratch columns.
            wide.update(repeating: 0, count: L)
            for oy in 0..<oh { (wide + oy * wp).update(from: g + oc * ohw + oy * ow, count: ow) }
            for ci in 0..<c { for ki in 0..<kh { for kj in 0..<kw {
                let widx = ((oc * c + ci) * kh + ki) * kw + kj
                let off = ci * paddedPlane + ki * wp + kj
                if let dw { dw[widx] += simdDot(wide, xp + off, L) }
                if let dxp { simdAxpy(dxp + off, wt[widx], wide, L) }
            } } }
        }
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
