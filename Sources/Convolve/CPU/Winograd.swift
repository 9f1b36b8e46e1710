import Foundation

// Winograd's F(2×2, 3×3) for 3×3, unit-stride convolutions (Lavin & Gray, 2015) whose channel counts
// are not both multiples of 16 (those use F(4×4, 3×3), Winograd4x4.swift). Each 2×2 block of
// outputs ("tile") is computed from the 4×4 input patch under it:
//
//     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//
// so a layer becomes 16 independent GEMMs, one per element ξ of the 4×4 transformed tile:
// M[ξ] (outC × tiles) = U[ξ] (outC × inC) · V[ξ] (inC × tiles). That is 16 multiplies per tile and
// channel pair instead of 36 (2.25× fewer); the transforms are additions, done 16 tiles at a time
// in SIMD lanes (even/odd input columns are de-interleaved, as in the 2×2 pooling kernel).
// The input gradient is the same forward pass over the output gradient (weights flipped and
// transposed), the weight gradient its adjoint (below). Results differ from the direct sums by
// rounding only (~1e-6 of the tensor's largest value).

/// Which algorithm 3×3 convolutions use.
public enum Winograd {
    /// Whether 3×3, unit-stride, undilated convolutions with at least 16 input and output channels
    /// per group run as Winograd (default `true`): the forward pass, the input gradient (padding ≤ 2)
    /// and the weight gradient as F(4×4, 3×3) when both channel counts are multiples of 16
    /// (`Winograd4Plan`), else as F(2×2, 3×3) (the weight gradient when the input channels are). `false` uses
    /// the GEMM over shifted rows everywhere, whose sums are ordered like a direct convolution's.
    nonisolated(unsafe) public static var isEnabled = true
    /// Overrides `isEnabled` inside `$override.withValue(…)` for the calling task only (tests compare
    /// both algorithms while other tests run). Read where an op is called: ops that `inferInSlices`
    /// runs on the worker pool's threads see `isEnabled`.
    @TaskLocal static var override: Bool?
    static var active: Bool { override ?? isEnabled }
}

/// The layout of one layer's Winograd forward pass on one image and group.
struct WinogradPlan: WinogradWeightTransform {
    let geo: ConvGeometry
    /// Output channels per group.
    let outChannels: Int
    /// Tiles down and across (each tile is 2×2 outputs).
    let th: Int, tw: Int
    /// The padded input plane the transforms read: rows, and a row stride that lets a 16-tile vector
    /// start at any tile (two 32-float loads, at columns 2t and 2t + 2).
    let hs: Int, ws: Int
    /// Tiles per block: a block is a run of consecutive tiles in row-major order, so every block but
    /// the last fills whole 32-column GEMM panels; its V and M stay in L2 while its 16 GEMMs run.
    let blockTiles: Int
    /// Row stride of V and M: whole panels, plus room for a 16-lane store that starts at a block's last tile.
    let bStride: Int
    var ocPanels: Int { (outChannels + 7) / 8 }
    /// Row stride of the full-resolution staging rows (two outputs per tile) and of pooled ones: a
    /// 16-tile vector may start at the last tile.
    var stageStride: Int { (2 * tw + 32 + 15) / 16 * 16 }
    var poolStride: Int { (tw + 16 + 15) / 16 * 16 }

    /// Whether F(2×2, 3×3) computes this layer's forward pass: a 3×3, unit-stride, undilated kernel
    /// and at least 16 input and output channels per group. `ConvAlgorithm` asks this (and
    /// `Winograd.active`) before it makes a plan; the plan's initializer requires it.
    static func handles(_ geo: ConvGeometry, outChannels: Int) -> Bool {
        geo.kh == 3 && geo.kw == 3 && geo.sh == 1 && geo.sw == 1 && geo.dh == 1 && geo.dw == 1
            && geo.c >= 16 && outChannels >= 16
    }

    /// Whether the input gradient of this layer can be computed as a Winograd forward pass over the
    /// output gradient (`init(inputGradientOf:outChannels:)`): the layer itself must be one that
    /// `handles` takes, with padding ≤ 2 (the transposed pass pads by 2 − p).
    static func handlesInputGradient(of geo: ConvGeometry, outChannels: Int) -> Bool {
        handles(geo, outChannels: outChannels) && geo.ph <= 2 && geo.pw <= 2
    }

    /// The plan for a layer that `handles` takes (a precondition: `ConvAlgorithm` chooses).
    init(_ geo: ConvGeometry, outChannels: Int) {
        precondition(WinogradPlan.handles(geo, outChannels: outChannels), geo.winogradMismatch("F(2x2, 3x3)", outChannels))
        self.geo = geo
        self.outChannels = outChannels
        th = (geo.oh + 1) / 2
        tw = (geo.ow + 1) / 2
        hs = 2 * th + 2
        ws = (2 * tw + 34 + 15) / 16 * 16
        // 64 tiles (32 with many channels, to stay in L2); one block when there are few more.
        let per = geo.c + outChannels <= 192 ? 64 : 32
        blockTiles = th * tw <= per + per / 4 ? th * tw : per
        bStride = (blockTiles + 31) / 32 * 32 + 16
    }

    /// Calls `body(ty, tx0, tx1, column)` for each run of one tile row within tiles `t0..<t1`
    /// (tiles `tx0..<tx1` of row `ty`, starting at `column` of the block), in order.
    @inline(__always)
    func segments(_ t0: Int, _ t1: Int, _ body: (Int, Int, Int, Int) -> Void) {
        var t = t0
        while t < t1 {
            let ty = t / tw, tx0 = t % tw, tx1 = Swift.min(tw, tx0 + t1 - t)
            body(ty, tx0, tx1, t - t0)
            t += tx1 - tx0
        }
    }

    var uCount: Int { 16 * ocPanels * 8 * geo.c }
    /// Distance between the 16 ξ planes of V and of M. The 16 planes are read (or written) together
    /// for each tile: a whole number of 4 KB pages between them would put all 16 streams in one L1
    /// set (measured: the output transform took 17% of the time), so each is one cache line more.
    var vPlane: Int { geo.c * bStride + 16 }
    var mPlane: Int { ocPanels * 8 * bStride + 16 }
    var vCount: Int { 16 * vPlane }
    var mCount: Int { 16 * mPlane }
    var paddedCount: Int { geo.c * hs * ws }

    /// U = G g Gᵀ for every (output, input) channel pair of one group's weights `[outC, inC, 3, 3]`,
    /// packed as the GEMM's A panels: `u[((ξ · ocPanels + oc / 8) · inC + ci) · 8 + oc % 8]`.
    func transformWeights(_ wt: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>) {
        let c = geo.c
        u.update(repeating: 0, count: uCount)
        let xiStride = ocPanels * 8 * c
        for oc in 0..<outChannels { for ci in 0..<c {
            let g = wt + (oc * c + ci) * 9, u0 = u + (oc / 8 * c + ci) * 8 + oc % 8
            // Row i of G g (a 3-vector) times Gᵀ gives U's row i: (a, (a+b+c)/2, (a−b+c)/2, c).
            @inline(__always) func put(_ i: Int, _ a: Float, _ b: Float, _ cc: Float) {
                u0[(4 * i) * xiStride] = a; u0[(4 * i + 1) * xiStride] = 0.5 * (a + b + cc)
                u0[(4 * i + 2) * xiStride] = 0.5 * (a - b + cc); u0[(4 * i + 3) * xiStride] = cc
            }
            // Column j of G g: (g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2) down kernel column j.
            @inline(__always) func gColumn(_ j: Int) -> (Float, Float, Float, Float) {
                let a = g[j], b = g[3 + j], cc = g[6 + j]
                return (a, 0.5 * (a + b + cc), 0.5 * (a - b + cc), cc)
            }
            let c0 = gColumn(0), c1 = gColumn(1), c2 = gColumn(2)
            put(0, c0.0, c1.0, c2.0); put(1, c0.1, c1.1, c2.1); put(2, c0.2, c1.2, c2.2); put(3, c0.3, c1.3, c2.3)
        } }
    }

    /// Scratch buffers for one thread: the padded input (borders zeroed once), V and M.
    struct Workspace {
        let padded: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>
        let rows: UnsafeMutablePointer<Int>
        init(_ plan: WinogradPlan) {
            padded = .allocate(capacity: plan.paddedCount)
            padded.update(repeating: 0, count: plan.paddedCount)
            v = .allocate(capacity: plan.vCount)
            v.update(repeating: 0, count: plan.vCount)   // columns past a block's tiles stay finite
            m = .allocate(capacity: plan.mCount)
            rows = .allocate(capacity: plan.geo.c)
            for ci in 0..<plan.geo.c { rows[ci] = ci * plan.bStride }
        }
        func deallocate() { padded.deallocate(); v.deallocate(); m.deallocate(); rows.deallocate() }
    }

    /// Copies one image's group of channels into the workspace's padded planes (the zero border is
    /// never written, so it stays zero). Rows of `x` are `rowStride` apart (default: compact), planes
    /// `planeStride`.
    func load(_ x: UnsafePointer<Float>, _ ws0: Workspace, rowStride: Int? = nil, planeStride: Int? = nil) {
        let (c, h, w) = (geo.c, geo.h, geo.w)
        let rs = rowStride ?? w, ps = planeStride ?? h * w
        for ci in 0..<c { for y in 0..<h {
            copyFloats(ws0.padded + (ci * hs + y + geo.ph) * ws + geo.pw, x + ci * ps + y * rs, w)
        } }
    }

    /// The plan that computes a 3×3 convolution's input gradient as a Winograd forward pass: the
    /// output gradient (`outChannels` planes of oh×ow) correlated with the weights flipped in space
    /// and transposed in channels, with padding 2 − p. Requires `handlesInputGradient(of:)`.
    init(inputGradientOf geo: ConvGeometry, outChannels: Int) {
        precondition(WinogradPlan.handlesInputGradient(of: geo, outChannels: outChannels),
                     geo.winogradMismatch("F(2x2, 3x3) (input gradient)", outChannels))
        self.init(geo.inputGradientPass(outChannels: outChannels), outChannels: geo.c)
    }

    /// How the block's outputs are written.
    enum Output {
        /// `relu?(conv + bias)` at full resolution into staging rows of `stageStride` floats
        /// (`[outC][oh][stageStride]`).
        case full(UnsafeMutablePointer<Float>, relu: Bool)
        /// `max_pool2d(relu(conv + bias), 2)`: each tile is one pooling window. Maxima and which of the
        /// four won (0…3, row-major, ties to the first) into `[outC][oh/2][poolStride]` staging rows.
        case reluPool(UnsafeMutablePointer<Float>, UnsafeMutablePointer<UInt8>)
    }

    /// Copies (with `add`, adds) `.full` staging rows into compact `[outC][oh][ow]` planes.
    func copyFull(_ stage: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, add: Bool = false) {
        for r in 0..<(outChannels * geo.oh) {
            if add {
                let d = out + r * geo.ow, s = stage + r * stageStride
                for x in 0..<geo.ow { d[x] += s[x] }
            } else {
                copyFloats(out + r * geo.ow, stage + r * stageStride, geo.ow)
            }
        }
    }

    /// The forward pass of the image loaded into `ws0`, written as `output` says.
    func forward(_ ws0: Workspace, _ u: UnsafePointer<Float>, bias: UnsafePointer<Float>?, _ output: Output) {
        var t0 = 0
        while t0 < th * tw {
            let t1 = Swift.min(th * tw, t0 + blockTiles)
            inputTransform(ws0, t0, t1)
            multiply(ws0, u, tiles: t1 - t0)
            outputTransform(ws0, t0, t1, bias, output)
            t0 = t1
        }
    }

    /// V[ξ][ci][t] = (Bᵀ d B)[ξ] for the block's tiles t, 16 tiles of a row per SIMD vector.
    @inline(__always)
    private func inputTransform(_ ws0: Workspace, _ t0: Int, _ t1: Int) {
        let c = geo.c, xiStride = vPlane
        @inline(__always) func row(_ p: UnsafePointer<Float>) -> (V16, V16, V16, V16) {
            // Columns 2t, 2t+1, 2t+2, 2t+3 of 16 tiles t: the even/odd halves of two 32-float loads.
            let a = UnsafeRawPointer(p).loadUnaligned(as: SIMD32<Float>.self)
            let b = UnsafeRawPointer(p + 2).loadUnaligned(as: SIMD32<Float>.self)
            let e0 = a.evenHalf, o0 = a.oddHalf, e1 = b.evenHalf, o1 = b.oddHalf
            return (e0 - e1, o0 + e1, e1 - o0, o0 - o1)
        }
        for ci in 0..<c {
            let plane = UnsafePointer(ws0.padded + ci * hs * ws)
            // Stores run left to right along each V row: lanes past a run's last tile land on
            // columns that are written after them (or on the row's slack).
            segments(t0, t1) { ty, tx0, tx1, col in
                var tx = tx0
                while tx < tx1 {
                    let p = plane + 2 * ty * ws + 2 * tx
                    let r0 = row(p), r1 = row(p + ws), r2 = row(p + 2 * ws), r3 = row(p + 3 * ws)
                    storeInputTransform(r0, r1, r2, r3, ws0.v + ci * bStride + col + tx - tx0, xiStride)
                    tx += 16
                }
            }
        }
    }

    /// M[ξ] = U[ξ] · V[ξ] for the block's tiles: 16 GEMMs with K = input channels, B rows read in place.
    /// Whole 8×32 (or 8×16) tiles are stored: M has rows for every panel and slack columns.
    @inline(__always)
    private func multiply(_ ws0: Workspace, _ u: UnsafePointer<Float>, tiles nb: Int) {
        let c = geo.c
        for xi in 0..<16 {
            let a = u + xi * ocPanels * 8 * c
            let b = UnsafePointer(ws0.v + xi * vPlane)
            let m = ws0.m + xi * mPlane
            var j = 0
            while j < nb {
                let nr = nb - j <= 16 ? 16 : 32
                for i in stride(from: 0, to: ocPanels * 8, by: 8) {
                    microKernel(c, a + i * c, b + j, m + i * bStride + j, bStride, nil, 1, 8, nr,
                                accumulate: false, bias: nil, relu: false, bRows: UnsafePointer(ws0.rows))
                }
                j += 32
            }
        }
    }

    /// Y = Aᵀ M A per tile plus bias, 16 tiles at a time, written as `output` says.
    @inline(__always)
    private func outputTransform(_ ws0: Workspace, _ t0: Int, _ t1: Int, _ bias: UnsafePointer<Float>?,
                                 _ output: Output) {
        let ocg = outChannels, xiStride = mPlane
        let (oh, ph) = (geo.oh, geo.oh / 2)
        for oc in 0..<ocg {
            let bv = V16(repeating: bias?[oc] ?? 0)
            segments(t0, t1) { ty, tx0, tx1, col in
                if case .reluPool = output, ty >= ph { return }
                var tx = tx0
                while tx < tx1 {
                    let s = UnsafePointer(ws0.m + oc * bStride + col + tx - tx0)
                    @inline(__always) func m(_ xi: Int) -> V16 { ld(s + xi * xiStride) }
                    // Rows of Aᵀ M (2×4), then each row times A.
                    let s00 = m(0) + m(4) + m(8), s01 = m(1) + m(5) + m(9)
                    let s02 = m(2) + m(6) + m(10), s03 = m(3) + m(7) + m(11)
                    let s10 = m(4) - m(8) - m(12), s11 = m(5) - m(9) - m(13)
                    let s12 = m(6) - m(10) - m(14), s13 = m(7) - m(11) - m(15)
                    var y00 = s00 + s01 + s02 + bv, y01 = s01 - s02 - s03 + bv
                    var y10 = s10 + s11 + s12 + bv, y11 = s11 - s12 - s13 + bv
                    // Lanes past the run's last tile land on staging columns written later (or slack).
                    switch output {
                    case .full(let out, let relu):
                        if relu { y00 = relu0(y00); y01 = relu0(y01); y10 = relu0(y10); y11 = relu0(y11) }
                        let r = out + (oc * oh + 2 * ty) * stageStride + 2 * tx
                        let (a0, a1) = interleave(y00, y01)
                        st(a0, r); st(a1, r + 16)
                        if 2 * ty + 1 < oh {
                            let (b0, b1) = interleave(y10, y11)
                            st(b0, r + stageStride); st(b1, r + stageStride + 16)
                        }
                    case .reluPool(let out, let arg):
                        let (m, k) = windowMax(relu0(y00), relu0(y01), relu0(y10), relu0(y11))
                        let o = (oc * ph + ty) * poolStride + tx
                        st(m, out + o)
                        UnsafeMutableRawPointer(arg + o).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: k),
                                                                    as: SIMD16<UInt8>.self)
                    }
                    tx += 16
                }
            }
        }
    }
}

// The weight gradient is the adjoint of the forward pass: with Y = Aᵀ (U ⊙ V) A and U = G g Gᵀ,
//     dU[ξ] = Σ_tiles dM[ξ] ⊗ V[ξ],  dM = A dY Aᵀ per tile,  dg = Gᵀ dU G,
// again 16 GEMMs (K = tiles) instead of one with 2.25× the multiplies. The image and the output
// gradient are transposed channels-last first (16×16 blocks in registers), so both transforms work
// on 16 channels per vector and the GEMMs read both operands in place, unpacked.
extension WinogradPlan {
    /// Whether the weight gradient can use this plan (input channels in whole 16-lane vectors).
    var handlesWeightGradient: Bool { geo.c % 16 == 0 }

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

extension ConvGeometry {
    /// The 3×3 unit-stride pass that computes this layer's input gradient as a forward convolution:
    /// `outChannels` output-gradient planes of oh×ow correlated (weights flipped and transposed) with
    /// padding 2 − p into the h×w input planes.
    func inputGradientPass(outChannels: Int) -> ConvGeometry {
        ConvGeometry(c: outChannels, h: oh, w: ow, kh: 3, kw: 3, sh: 1, sw: 1, ph: 2 - ph, pw: 2 - pw, dh: 1, dw: 1,
                     oh: h, ow: w)
    }

    /// A Winograd plan's precondition message for a layer it cannot compute.
    func winogradMismatch(_ algorithm: String, _ outChannels: Int) -> String {
        "Winograd \(algorithm) cannot compute a \(kh)x\(kw) convolution with stride (\(sh), \(sw)), dilation "
            + "(\(dh), \(dw)), padding (\(ph), \(pw)), \(c) -> \(outChannels) channels"
    }
}

/// The inverse for compact planes: `[pixel][channels]` → `[channels][pixels]`, 16×16 blocks in
/// registers (the last block overlaps the one before; fewer than 16 pixels element by element).
/// With `add`, adds into `dst` instead (whole blocks only; the pixels past them element by element).
func transposePlanar(_ src: UnsafePointer<Float>, pixels: Int, channels: Int, into dst: UnsafeMutablePointer<Float>,
                     add: Bool = false) {
    let blocked = pixels < 16 ? 0 : add ? pixels / 16 * 16 : pixels
    for p0 in stride(from: 0, to: blocked, by: 16) {
        let p = Swift.min(p0, pixels - 16)
        for c0 in stride(from: 0, to: channels, by: 16) {
            transpose16x16({ src + (p + $0) * channels + c0 }, dst + c0 * pixels + p, pixels, add: add)
        }
    }
    if blocked == pixels { return }
    for ch in 0..<channels { for p in blocked..<pixels {
        if add { dst[ch * pixels + p] += src[p * channels + ch] } else { dst[ch * pixels + p] = src[p * channels + ch] }
    } }
}

/// Copies `channels` planes (rows `rowStride`, planes `planeStride` apart; `rows`×`cols` values) into
/// channels-last rows: `dst[y · dstRowStride + x · dstChannels + ch]`. Whole 16×16 blocks are
/// transposed in registers (the last block of a row overlaps the one before). Rows narrower than 16
/// read 16 values per channel that run into the row below (first row) or start in the row above
/// (the others), staying inside the plane, and store only the row's own pixels; the rest element by element.
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
            let start = y * rowStride, planeEnd = (rows - 1) * rowStride + cols
            // 16 values from `x0` (relative to the row's start) lie inside the plane; pixel 0 is value `skip`.
            let (x0, skip) = start + 16 <= planeEnd ? (0, 0) : start + cols >= 16 ? (cols - 16, 16 - cols) : (1, -1)
            let vector = skip >= 0 ? c16 : 0
            for c0 in stride(from: 0, to: vector, by: 16) {
                let s = src + c0 * planeStride + start + x0
                transpose16x16({ s + $0 * planeStride }, row + c0, dstChannels, rows: skip..<(skip + cols))
            }
            for ch in vector..<channels { for x in 0..<cols { row[x * dstChannels + ch] = src[ch * planeStride + start + x] } }
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


/// Every group's transformed weights for `plan`, one after another (`plan.uCount` floats each), from
/// `weights` (`[out, in / groups, 3, 3]`, row-major). With `flipped`, those of the input-gradient
/// convolution (`WinogradPlan.inputGradient`): each group's `[out, in, 3, 3]` weights as
/// `[in, out, 3, 3]`, rotated 180° in space. The caller deallocates the result.
func winogradWeights<Plan: WinogradWeightTransform>(_ weights: UnsafeBufferPointer<Float>, _ plan: Plan, groups: Int,
                                                    flipped: Bool = false) -> UnsafeMutablePointer<Float> {
    let u = UnsafeMutablePointer<Float>.allocate(capacity: groups * plan.uCount)
    let per = plan.outChannels * plan.geo.c * 9
    if !flipped {
        for g in 0..<groups { plan.transformWeights(weights.baseAddress! + g * per, into: u + g * plan.uCount) }
        return u
    }
    let f = UnsafeMutablePointer<Float>.allocate(capacity: per)
    defer { f.deallocate() }
    let (co, ci) = (plan.geo.c, plan.outChannels)   // the forward's out and in channels
    for g in 0..<groups {
        let src = weights.baseAddress! + g * per
        for o in 0..<co { for i in 0..<ci { for k in 0..<9 { f[(i * co + o) * 9 + k] = src[(o * ci + i) * 9 + 8 - k] } } }
        plan.transformWeights(f, into: u + g * plan.uCount)
    }
    return u
}
