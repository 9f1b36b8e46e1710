import Foundation

/// Geometry of a 2-D convolution on one image.
struct ConvGeometry {
    let c: Int, h: Int, w: Int, kh: Int, kw: Int, sh: Int, sw: Int, ph: Int, pw: Int, dh: Int, dw: Int
    let oh: Int, ow: Int
    var kSize: Int { c * kh * kw }
    var ohw: Int { oh * ow }
    var isPointwise: Bool { kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 }

    /// Unfolds `c` channels of one image into `col[(ci*kh+ki)*kw+kj, oy*ow+ox]`.
    func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>) {
        for ci in 0..<c { for ki in 0..<kh { for kj in 0..<kw {
            let row = col + ((ci * kh + ki) * kw + kj) * ohw
            let xc = x + ci * h * w
            for oy in 0..<oh {
                let iy = oy * sh - ph + ki * dh
                let dst = row + oy * ow
                if iy < 0 || iy >= h { dst.update(repeating: 0, count: ow); continue }
                let src = xc + iy * w
                let x0 = kj * dw - pw
                if sw == 1 {
                    // contiguous run: ox in [lo, hi) maps inside the row
                    let lo = Swift.min(ow, Swift.max(0, -x0)), hi = Swift.max(lo, Swift.min(ow, w - x0))
                    if lo > 0 { dst.update(repeating: 0, count: lo) }
                    if hi > lo { dst.advanced(by: lo).update(from: src + x0 + lo, count: hi - lo) }
                    if hi < ow { dst.advanced(by: hi).update(repeating: 0, count: ow - hi) }
                } else {
                    for ox in 0..<ow {
                        let ix = ox * sw + x0
                        dst[ox] = (ix >= 0 && ix < w) ? src[ix] : 0
                    }
                }
            }
        } } }
    }

    /// Adds a column matrix back into image gradients (the adjoint of `im2col`).
    func col2im(_ col: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) {
        for ci in 0..<c { for ki in 0..<kh { for kj in 0..<kw {
            let row = col + ((ci * kh + ki) * kw + kj) * ohw
            let xc = dx + ci * h * w
            for oy in 0..<oh {
                let iy = oy * sh - ph + ki * dh
                if iy < 0 || iy >= h { continue }
                let src = row + oy * ow
                let dst = xc + iy * w
                let x0 = kj * dw - pw
                if sw == 1 {
                    // contiguous run: ox in [lo, hi) maps inside the row
                    let lo = Swift.min(ow, Swift.max(0, -x0)), hi = Swift.max(lo, Swift.min(ow, w - x0))
                    let d = dst + x0
                    for ox in lo..<hi { d[ox] += src[ox] }
                } else {
                    for ox in 0..<ow {
                        let ix = ox * sw + x0
                        if ix >= 0 && ix < w { dst[ix] += src[ox] }
                    }
                }
            }
        } } }
    }
}
