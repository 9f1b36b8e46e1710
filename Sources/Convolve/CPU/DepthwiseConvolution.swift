/// Depthwise convolution, one plane at a time: one k×k filter per channel (MobileNet's and
/// EfficientNet's 3×3 and 5×5 layers), stride 1 or 2 on each axis, undilated. The plane is copied,
/// padded, into a scratch buffer whose rows — at stride 2 across — hold their even columns and then
/// their odd ones, so every tap of 16 neighbouring outputs reads 16 neighbouring floats: the forward
/// pass keeps 16 outputs in a register over all k² taps, the input gradient adds each tap's 16
/// products into the padded gradient, the weight gradient keeps one 16-lane sum per tap. The last
/// chunk of a row computes past the row's end into the scratch's slack and keeps only its own lanes.
struct DepthwisePlan {
    let h: Int, w: Int, kh: Int, kw: Int, sh: Int, sw: Int, ph: Int, pw: Int, oh: Int, ow: Int
    /// Padded rows, the floats each takes (both halves at stride 2), and where a row's odd half begins.
    let rows: Int, rowLength: Int, half: Int
    /// Floats of one padded plane with the slack the last chunk of the last row reads.
    let scratchCount: Int

    /// Whether the plan computes this geometry (undilated, strides 1 or 2).
    static func handles(_ geo: ConvGeometry) -> Bool {
        geo.dh == 1 && geo.dw == 1 && (1...2).contains(geo.sh) && (1...2).contains(geo.sw)
    }

    init(_ geo: ConvGeometry) {
        (h, w, kh, kw, sh, sw, ph, pw, oh, ow) = (geo.h, geo.w, geo.kh, geo.kw, geo.sh, geo.sw, geo.ph, geo.pw, geo.oh, geo.ow)
        let paddedWidth = w + 2 * pw
        rows = h + 2 * ph
        half = sw == 1 ? paddedWidth : (paddedWidth + 1) / 2
        rowLength = sw == 1 ? paddedWidth : 2 * half
        scratchCount = rows * rowLength + 2 * kw + 32
    }

    /// Where padded column `c` of a row lives in the scratch row.
    @inline(__always) func column(_ c: Int) -> Int { sw == 1 ? c : (c & 1) * half + (c >> 1) }

    /// The scratch offset of tap column `j` for output column 0 (output `x` reads `x` floats on).
    @inline(__always) func tap(_ j: Int) -> Int { column(j) }

    /// Copies one `h × w` plane into `xp` padded with zeros (and zeroes the slack).
    func load(_ x: UnsafePointer<Float>, into xp: UnsafeMutablePointer<Float>) {
        xp.initialize(repeating: 0, count: scratchCount)
        for r in 0..<h {
            let src = x + r * w, dst = xp + (r + ph) * rowLength
            if sw == 1 {
                (dst + pw).update(from: src, count: w)
            } else {
                for c in 0..<w { dst[column(c + pw)] = src[c] }
            }
        }
    }

    /// Adds the padded gradient `dxp`'s image part into `dx` (`h × w`).
    func unpadAdd(_ dxp: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>) {
        for r in 0..<h {
            let src = dxp + (r + ph) * rowLength, dst = dx + r * w
            for c in 0..<w { dst[c] += src[column(c + pw)] }
        }
    }

    /// Lanes `0..<count` set.
    @inline(__always) static func lanes(_ count: Int) -> SIMDMask<SIMD16<Int32>> {
        SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) .< SIMD16<Int32>(repeating: Int32(count))
    }

    /// One plane's output: `out[y, x] = bias + Σ weights[i, j] · xp[y·sh + i, x·sw + j]`, ReLU'd if asked.
    func forward(_ xp: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: Float, relu: Bool,
                 _ out: UnsafeMutablePointer<Float>) {
        for y in 0..<oh {
            let o = out + y * ow
            var x = 0
            while x < ow {
                var acc = V16(repeating: bias)
                for i in 0..<kh {
                    let row = xp + (y * sh + i) * rowLength + x
                    for j in 0..<kw { acc.addProduct(V16(repeating: weights[i * kw + j]), ld(row + tap(j))) }
                }
                if relu { acc = relu0(acc) }
                if x + 16 <= ow { st(acc, o + x) } else { for l in 0..<(ow - x) { o[x + l] = acc[l] } }
                x += 16
            }
        }
    }

    /// One plane's gradients from its output gradient `dy`: adds into the padded input gradient `dxp`
    /// (zeroed by the caller) if given, and into the per-tap sums `dw` (16 lanes per tap) if given.
    func backward(_ xp: UnsafePointer<Float>, weights: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                  dxp: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<V16>?) {
        for y in 0..<oh {
            let g = dy + y * ow
            var x = 0
            while x < ow {
                let full = x + 16 <= ow
                var gv = V16()
                if full { gv = ld(g + x) } else { for l in 0..<(ow - x) { gv[l] = g[x + l] } }
                let keep = full ? nil : Self.lanes(ow - x)
                for i in 0..<kh {
                    let offset = (y * sh + i) * rowLength + x
                    for j in 0..<kw {
                        if let dxp {
                            var product = V16(repeating: weights[i * kw + j]) * gv
                            if let keep { product = product.replacing(with: 0, where: .!keep) }
                            let p = dxp + offset + tap(j)
                            st(ld(p) + product, p)
                        }
                        if let dw {
                            var product = gv * ld(xp + offset + tap(j))
                            if let keep { product = product.replacing(with: 0, where: .!keep) }
                            dw[i * kw + j] += product
                        }
                    }
                }
                x += 16
            }
        }
    }
}
