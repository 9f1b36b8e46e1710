import Foundation

// Winograd's F(2×2, 3×3) for the weight gradient of 3×3, unit-stride convolutions (Lavin & Gray,
// 2015); the forward pass and the input gradient use F(4×4, 3×3) (WinogradForward.swift). Each 2×2
// block of outputs ("tile") of the forward pass is computed from the 4×4 input patch under it:
//
//     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//
// and the weight gradient is its adjoint (below): 16 GEMMs, one per element ξ of the 4×4 transformed
// tile, with 2.25× fewer multiplies than the direct sums. Results differ from them by rounding only
// (~1e-6 of the tensor's largest value).

/// Which algorithm 3×3 convolutions use.
public enum Winograd {
    /// Whether 3×3, unit-stride, undilated convolutions with at least 16 input and output channels
    /// per group run as Winograd (default `true`): the forward pass and the input gradient (padding
    /// ≤ 2) as F(4×4, 3×3), the weight gradient (input channels per group a multiple of 16) as
    /// F(2×2, 3×3). `false` uses
    /// the GEMM over shifted rows everywhere, whose sums are ordered like a direct convolution's.
    nonisolated(unsafe) public static var isEnabled = true
    /// Overrides `isEnabled` inside `$override.withValue(…)` for the calling task only (tests compare
    /// both algorithms while other tests run). Read where an op is called: ops that `inferInSlices`
    /// runs on the worker pool's threads see `isEnabled`.
    @TaskLocal static var override: Bool?
    static var active: Bool { override ?? isEnabled }
}

/// The layout of one layer's Winograd F(2×2, 3×3) weight gradient on one image and group.
struct WinogradPlan {
    let geo: ConvGeometry
    /// Output channels per group.
    let outChannels: Int
    /// Tiles down and across (each tile is 2×2 outputs).
    let th: Int, tw: Int
    /// Padded rows of the channels-last image.
    let hs: Int
    /// Tiles per block: a run of consecutive tiles in row-major order whose V and dM stay in L2
    /// while its 16 GEMMs run.
    let blockTiles: Int

    /// Whether F(2×2, 3×3) computes this layer's weight gradient: a layer `WinogradForwardPlan`
    /// takes whose input channels per group fill whole 16-lane vectors. `ConvAlgorithm` asks this
    /// (and `Winograd.active`) before it makes a plan; the plan's initializer requires it.
    static func handles(_ geo: ConvGeometry, outChannels: Int) -> Bool {
        WinogradForwardPlan.handles(geo, outChannels: outChannels) && geo.c % 16 == 0
    }

    /// The plan for a layer that `handles` takes (a precondition: `ConvAlgorithm` chooses).
    init(_ geo: ConvGeometry, outChannels: Int) {
        precondition(WinogradPlan.handles(geo, outChannels: outChannels),
                     "Winograd F(2x2, 3x3) cannot compute the weight gradient of a \(geo.kh)x\(geo.kw) convolution "
                        + "with stride (\(geo.sh), \(geo.sw)), dilation (\(geo.dh), \(geo.dw)), \(geo.c) -> \(outChannels) channels")
        self.geo = geo
        self.outChannels = outChannels
        th = (geo.oh + 1) / 2
        tw = (geo.ow + 1) / 2
        hs = 2 * th + 2
        // 64 tiles (32 with many channels, to stay in L2); one block when there are few more.
        let per = geo.c + outChannels <= 192 ? 64 : 32
        blockTiles = th * tw <= per + per / 4 ? th * tw : per
    }
}

// The weight gradient is the adjoint of the forward pass: with Y = Aᵀ (U ⊙ V) A and U = G g Gᵀ,
//     dU[ξ] = Σ_tiles dM[ξ] ⊗ V[ξ],  dM = A dY Aᵀ per tile,  dg = Gᵀ dU G,
// again 16 GEMMs (K = tiles) instead of one with 2.25× the multiplies. The image and the output
// gradient are transposed channels-last first (16×16 blocks in registers), so both transforms work
// on 16 channels per vector and the GEMMs read both operands in place, unpacked.
extension WinogradPlan {
    /// Scratch for the weight gradient on one thread, and the chunk's dU sums for every group.
    struct GradientWorkspace {
        /// Channels-last: the padded image (`[hs][ws2][c]`), V (`[ξ][tile][c]`), the output gradient
        /// (`[2·th][2·tw][ocRow]`, zero past the output), dM (`[ξ][tile][ocRow]`).
        let xcl, vcl, dycl, dm: UnsafeMutablePointer<Float>
        /// Σ dUᵀ per group: `[group][ξ][c][ocRow]`.
        let du: UnsafeMutablePointer<Float>
        let rows: UnsafeMutablePointer<Int>
        init(_ plan: WinogradPlan, groups: Int) {
            xcl = .allocate(capacity: plan.xclCount); xcl.initialize(repeating: 0, count: plan.xclCount)
            vcl = .allocate(capacity: plan.vclCount)
            dycl = .allocate(capacity: plan.dyclCount); dycl.initialize(repeating: 0, count: plan.dyclCount)
            dm = .allocate(capacity: plan.dmclCount)
            du = .allocate(capacity: groups * plan.duCount); du.initialize(repeating: 0, count: groups * plan.duCount)
            rows = .allocate(capacity: plan.blockTiles)
            for t in 0..<plan.blockTiles { rows[t] = t * plan.ocRow }
        }
        func deallocate() {
            xcl.deallocate(); vcl.deallocate(); dycl.deallocate(); dm.deallocate(); du.deallocate(); rows.deallocate()
        }
    }

    var ws2: Int { 2 * tw + 2 }
    /// Output channels rounded up to whole 32-column GEMM panels.
    var ocRow: Int { (outChannels + 31) / 32 * 32 }
    var xclCount: Int { hs * ws2 * geo.c }
    /// One ξ plane of channels-last V and dM, a cache line more than a block (see `vPlane`).
    var vclPlane: Int { blockTiles * geo.c + 16 }
    var dmclPlane: Int { blockTiles * ocRow + 16 }
    var vclCount: Int { 16 * vclPlane }
    var dmclCount: Int { 16 * dmclPlane }
    var dyclCount: Int { 4 * th * tw * ocRow }
    var duCount: Int { 16 * geo.c * ocRow }

    /// Adds one image's dUᵀ (for one group) into `du`: `x` is the group's `c` input planes (compact),
    /// `dy` its `outChannels` output-gradient planes, rows `dyRowStride` apart, planes `dyPlaneStride`.
    func accumulateWeightGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, dyRowStride: Int,
                                  dyPlaneStride: Int, _ g: GradientWorkspace, into du: UnsafeMutablePointer<Float>) {
        let (c, h, w, oh, ow) = (geo.c, geo.h, geo.w, geo.oh, geo.ow)
        transposeChannelsLast(x, channels: c, planeStride: h * w, rowStride: w, rows: h, cols: w,
                              into: g.xcl + (geo.ph * ws2 + geo.pw) * c, dstRowStride: ws2 * c, dstChannels: c)
        transposeChannelsLast(dy, channels: outChannels, planeStride: dyPlaneStride, rowStride: dyRowStride,
                              rows: oh, cols: ow, into: g.dycl, dstRowStride: 2 * tw * ocRow, dstChannels: ocRow)
        var t0 = 0
        while t0 < th * tw {
            let t1 = Swift.min(th * tw, t0 + blockTiles), nb = t1 - t0
            channelsLastTransforms(g, t0, t1)
            // dUᵀ[ξ] (c × outC) += Vᵀ · dM over the block's tiles: A = V read down its columns.
            for xi in 0..<16 {
                let a = UnsafePointer(g.vcl + xi * vclPlane), b = UnsafePointer(g.dm + xi * dmclPlane)
                let cxi = du + xi * c * ocRow
                for i in stride(from: 0, to: c, by: 8) {
                    for j in stride(from: 0, to: ocRow, by: 32) {
                        microKernel(nb, a + i, b + j, cxi + i * ocRow + j, ocRow, nil, 1, 8, 32,
                                    accumulate: true, bias: nil, relu: false, bRows: UnsafePointer(g.rows), aStride: c)
                    }
                }
            }
            t0 = t1
        }
    }

    /// V[ξ][t][ci] = (Bᵀ d B)[ξ] and dM[ξ][t][oc] = (A dY Aᵀ)[ξ] for the block's tiles, 16 channels
    /// per SIMD vector.
    @inline(__always)
    private func channelsLastTransforms(_ g: GradientWorkspace, _ t0: Int, _ t1: Int) {
        let c = geo.c, rs = ws2 * c, vs = vclPlane, ms = dmclPlane, ys = 2 * tw * ocRow
        for t in t0..<t1 {
            let ty = t / tw, tx = t % tw
            for c0 in stride(from: 0, to: c, by: 16) {
                let p = UnsafePointer(g.xcl + (2 * ty * ws2 + 2 * tx) * c + c0)
                @inline(__always) func row(_ q: UnsafePointer<Float>) -> (V16, V16, V16, V16) {
                    let d0 = ld(q), d1 = ld(q + c), d2 = ld(q + 2 * c), d3 = ld(q + 3 * c)
                    return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
                }
                let r0 = row(p), r1 = row(p + rs), r2 = row(p + 2 * rs), r3 = row(p + 3 * rs)
                storeInputTransform(r0, r1, r2, r3, g.vcl + (t - t0) * c + c0, vs)
            }
            for o0 in stride(from: 0, to: ocRow, by: 16) {
                let q = UnsafePointer(g.dycl + (2 * ty * 2 * tw + 2 * tx) * ocRow + o0)
                let p0 = ld(q), q0 = ld(q + ocRow), p1 = ld(q + ys), q1 = ld(q + ys + ocRow)
                let d = g.dm + (t - t0) * ocRow + o0
                // Rows of A dY: (p0, q0), (p0 + p1, q0 + q1), (p0 − p1, q0 − q1), (−p1, −q1);
                // each row (p, q) times Aᵀ: p, p + q, p − q, −q.
                @inline(__always) func put(_ i: Int, _ p: V16, _ q: V16) {
                    st(p, d + 4 * i * ms); st(p + q, d + (4 * i + 1) * ms)
                    st(p - q, d + (4 * i + 2) * ms); st(-q, d + (4 * i + 3) * ms)
                }
                put(0, p0, q0); put(1, p0 + p1, q0 + q1); put(2, p0 - p1, q0 - q1); put(3, -p1, -q1)
            }
        }
    }

    /// Adds dg = Gᵀ dU G (for every channel pair of one group) into `dw` (`[outC, c, 3, 3]`).
    func finishWeightGradient(_ du: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>) {
        let c = geo.c, xiStride = c * ocRow
        var t = [Float](repeating: 0, count: 12)
        for oc in 0..<outChannels { for ci in 0..<c {
            let u = du + ci * ocRow + oc
            // Gᵀ dU (3×4), then each row times G (3 values).
            for j in 0..<4 {
                let u0 = u[j * xiStride], u1 = u[(4 + j) * xiStride], u2 = u[(8 + j) * xiStride], u3 = u[(12 + j) * xiStride]
                t[j] = u0 + 0.5 * (u1 + u2); t[4 + j] = 0.5 * (u1 - u2); t[8 + j] = 0.5 * (u1 + u2) + u3
            }
            let d = dw + (oc * c + ci) * 9
            for i in 0..<3 {
                let a = t[4 * i], b = t[4 * i + 1], cc = t[4 * i + 2], e = t[4 * i + 3]
                d[3 * i] += a + 0.5 * (b + cc); d[3 * i + 1] += 0.5 * (b - cc); d[3 * i + 2] += 0.5 * (b + cc) + e
            }
        } }
    }
}

/// Copies `channels` planes (rows `rowStride`, planes `planeStride` apart; `rows`×`cols` values) into
/// channels-last rows: `dst[y · dstRowStride + x · dstChannels + ch]`. Whole 16×16 blocks are
/// transposed in registers (the last block of a row overlaps the one before); the rest element by element.
func transposeChannelsLast(_ src: UnsafePointer<Float>, channels: Int, planeStride: Int, rowStride: Int,
                           rows: Int, cols: Int, into dst: UnsafeMutablePointer<Float>, dstRowStride: Int,
                           dstChannels: Int) {
    let c16 = channels / 16 * 16
    for y in 0..<rows {
        let row = dst + y * dstRowStride
        if cols >= 16 {
            var x0 = 0
            while x0 < cols {
                let x = Swift.min(x0, cols - 16)
                for c0 in stride(from: 0, to: c16, by: 16) {
                    let s = src + c0 * planeStride + y * rowStride + x
                    transpose16x16({ s + $0 * planeStride }, row + x * dstChannels + c0, dstChannels)
                }
                x0 += 16
            }
            for ch in c16..<channels { for x in 0..<cols { row[x * dstChannels + ch] = src[ch * planeStride + y * rowStride + x] } }
        } else {
            for ch in 0..<channels { for x in 0..<cols { row[x * dstChannels + ch] = src[ch * planeStride + y * rowStride + x] } }
        }
    }
}

/// Stores Bᵀ d B given the four rows of d already multiplied by B (`r_i = (d_i B)`, four vectors
/// each): element ξ = 4i + j of the 4×4 result goes to `d + ξ · planeStride`.
@inline(__always)
private func storeInputTransform(_ r0: (V16, V16, V16, V16), _ r1: (V16, V16, V16, V16), _ r2: (V16, V16, V16, V16),
                                 _ r3: (V16, V16, V16, V16), _ d: UnsafeMutablePointer<Float>, _ planeStride: Int) {
    let s = planeStride
    st(r0.0 - r2.0, d); st(r0.1 - r2.1, d + s); st(r0.2 - r2.2, d + 2 * s); st(r0.3 - r2.3, d + 3 * s)
    st(r1.0 + r2.0, d + 4 * s); st(r1.1 + r2.1, d + 5 * s); st(r1.2 + r2.2, d + 6 * s); st(r1.3 + r2.3, d + 7 * s)
    st(r2.0 - r1.0, d + 8 * s); st(r2.1 - r1.1, d + 9 * s); st(r2.2 - r1.2, d + 10 * s); st(r2.3 - r1.3, d + 11 * s)
    st(r1.0 - r3.0, d + 12 * s); st(r1.1 - r3.1, d + 13 * s); st(r1.2 - r3.2, d + 14 * s); st(r1.3 - r3.3, d + 15 * s)
}
