import Foundation

/// Geometry of a 2-D convolution on one image.
struct ConvGeometry {
    let c: Int, h: Int, w: Int, kh: Int, kw: Int, sh: Int, sw: Int, ph: Int, pw: Int, dh: Int, dw: Int
    let oh: Int, ow: Int
    /// Row stride of the wide layout (`Polyphase.swift`) and one channel's padded plane with its slack
    /// (`DirectConvolution.swift`), stored: the direct kernels read them in inner loops.
    let wideRowStride: Int, paddedPlane: Int

    init(c: Int, h: Int, w: Int, kh: Int, kw: Int, sh: Int, sw: Int, ph: Int, pw: Int, dh: Int, dw: Int, oh: Int, ow: Int) {
        (self.c, self.h, self.w, self.kh, self.kw, self.sh, self.sw) = (c, h, w, kh, kw, sh, sw)
        (self.ph, self.pw, self.dh, self.dw, self.oh, self.ow) = (ph, pw, dh, dw, oh, ow)
        let (hp, wp) = (h + 2 * ph, w + 2 * pw)
        wideRowStride = (wp + sw - 1) / sw
        // phases some tap reads (min(stride, kernel) per axis) × phase planes of ⌈Hp/sh⌉ × ⌈Wp/sw⌉
        let phases = Swift.min(sh, kh) * Swift.min(sw, kw), phasePlane = (hp + sh - 1) / sh * wideRowStride
        paddedPlane = (phases * phasePlane + 63) / 64 * 64 + kw + 64
    }
    var kSize: Int { c * kh * kw }
    var ohw: Int { oh * ow }
    var isPointwise: Bool { kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 }

    /// The outputs `[lo, hi)` (of `outSize`) whose input `o * stride + offset` lies inside `0..<size`.
    @inline(__always)
    static func insideRange(offset: Int, stride: Int, size: Int, outSize: Int) -> (lo: Int, hi: Int) {
        let lo = Swift.min(outSize, offset >= 0 ? 0 : (stride - 1 - offset) / stride)
        let hi = Swift.max(lo, Swift.min(outSize, size - offset <= 0 ? 0 : (size - offset + stride - 1) / stride))
        return (lo, hi)
    }

    /// One kernel tap of one channel as im2col and col2im see it: the column-matrix row it fills, the
    /// channel plane it reads, the output rows and columns whose input lies inside the image, and the
    /// input position of output (0, 0) relative to the plane (`rowOffset · w + colOffset`).
    struct TapRun {
        let matrixRow: Int, plane: Int
        let rows: (lo: Int, hi: Int), cols: (lo: Int, hi: Int)
        let rowOffset: Int, colOffset: Int
    }

    /// Calls `body` for every (channel, tap), the bounds worked out once per tap, so the callers' inner
    /// loops only move data.
    @inline(__always)
    func forEachTap(_ body: (TapRun) -> Void) {
        for ki in 0..<kh {
            let rowOffset = ki * dh - ph
            let rows = Self.insideRange(offset: rowOffset, stride: sh, size: h, outSize: oh)
            for kj in 0..<kw {
                let colOffset = kj * dw - pw
                let cols = Self.insideRange(offset: colOffset, stride: sw, size: w, outSize: ow)
                for ci in 0..<c {
                    body(TapRun(matrixRow: (ci * kh + ki) * kw + kj, plane: ci * h * w, rows: rows, cols: cols,
                                rowOffset: rowOffset, colOffset: colOffset))
                }
            }
        }
    }

    /// Unfolds `c` channels of one image into `col[(ci*kh+ki)*kw+kj, oy*ow+ox]`.
    func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>) {
        forEachTap { t in
            let row = col + t.matrixRow * ohw, plane = x + t.plane
            let (rows, cols) = (t.rows, t.cols)
            if rows.lo > 0 { row.update(repeating: 0, count: rows.lo * ow) }
            for oy in rows.lo..<rows.hi {
                let dst = row + oy &* ow
                let src = plane + ((oy &* sh &+ t.rowOffset) &* w &+ t.colOffset)
                if cols.lo > 0 { dst.update(repeating: 0, count: cols.lo) }
                if sw == 1 {
                    dst.advanced(by: cols.lo).update(from: src + cols.lo, count: cols.hi - cols.lo)
                } else {
                    for ox in cols.lo..<cols.hi { dst[ox] = src[ox &* sw] }
                }
                if cols.hi < ow { dst.advanced(by: cols.hi).update(repeating: 0, count: ow - cols.hi) }
            }
            if rows.hi < oh { (row + rows.hi * ow).update(repeating: 0, count: (oh - rows.hi) * ow) }
        }
    }

    /// Adds a column matrix back into image gradients (the adjoint of `im2col`).
    func col2im(_ col: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) {
        forEachTap { t in
            let row = col + t.matrixRow * ohw, plane = dx + t.plane
            for oy in t.rows.lo..<t.rows.hi {
                let src = row + oy &* ow
                let dst = plane + ((oy &* sh &+ t.rowOffset) &* w &+ t.colOffset)
                if sw == 1 {
                    for ox in t.cols.lo..<t.cols.hi { dst[ox] += src[ox] }
                } else {
                    for ox in t.cols.lo..<t.cols.hi { dst[ox &* sw] += src[ox] }
                }
            }
        }
    }
}
