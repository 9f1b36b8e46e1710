// Winograd's F(4×4, 3×3) (Lavin & Gray, 2015; interpolation points 0, ±1, ±2, ∞) for the forward
// pass of 3×3, unit-stride convolutions and for their input gradient (the same pass over the output
// gradient, weights flipped and transposed). Each 4×4 block of outputs ("tile") comes from the 6×6
// input patch under it:
//
//     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//
// so a layer becomes 36 GEMMs, one per element ξ of the 6×6 transformed tile: M[ξ] (outC × tiles) =
// U[ξ] (outC × inC) · V[ξ] (inC × tiles). That is 36 multiplies per tile and channel pair instead of
// 144 (4× fewer; F(2×2, 3×3), which the weight gradient uses, saves 2.25×).
//
// Layout. Each padded input row is stored as its four column phases one after another (column 4i + p
// at phase p, index i), so column j of 16 consecutive tiles is one contiguous load; the transforms
// work on 16 tiles per SIMD vector. Tiles of several images ("slots") go through one set of GEMMs, so
// the GEMMs' 16-column panels stay full however few tiles one image has (24×24 outputs are 36 tiles:
// four images make 144). Outputs are written straight into the compact destination planes; a vector's
// lanes past its run of tiles are never stored.
//
// Precision. The transforms' coefficients (4, 5, 8, 1/24) make the rounding error larger than
// F(2×2, 3×3)'s (~3e-6 of the largest output instead of ~1e-6): `ConvolutionPathTests.winogradPrecisionOnTheZooLayers` bounds it against a float64 definition.

/// The layout of one layer's Winograd F(4×4, 3×3) forward pass (one group, up to `slots` images).
struct WinogradForwardPlan {
    let geo: ConvGeometry
    /// Output channels per group.
    let outChannels: Int
    /// Tiles down and across (each tile is 4×4 outputs).
    let th: Int, tw: Int
    /// Padded rows (4·th + 2) and entries per column phase (tw + 1; a padded row is four phases).
    let hs: Int, phaseLength: Int
    /// Images whose tiles one pass computes together: the fewest (≤ 8) whose tile count wastes at most
    /// 3% of the GEMMs' 16-column panels.
    let slots: Int
    /// Tiles per block: a block's V and M stay in L2 while its 36 GEMMs run.
    let blockTiles: Int
    /// Row stride of V and M: the block, plus room for a 16-lane store that starts at its last tile.
    let bStride: Int

    var ocPanels: Int { (outChannels + 7) / 8 }
    var tilesPerSlot: Int { th * tw }
    var rowStride: Int { 4 * phaseLength }
    var planeStride: Int { hs * rowStride }
    var slotStride: Int { geo.c * planeStride }
    /// The scratch row `load` builds a padded row in: whole 64-float blocks for the phase split.
    var rowScratch: Int { (rowStride + 63) / 64 * 64 }

    /// Whether Winograd computes this layer's forward pass: a 3×3, unit-stride, undilated kernel and
    /// at least 16 input and output channels per group. `ConvAlgorithm` asks this (and
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
        precondition(WinogradForwardPlan.handles(geo, outChannels: outChannels),
                     "Winograd F(4x4, 3x3) cannot compute a \(geo.kh)x\(geo.kw) convolution with stride "
                        + "(\(geo.sh), \(geo.sw)), dilation (\(geo.dh), \(geo.dw)), \(geo.c) -> \(outChannels) channels")
        self.geo = geo
        self.outChannels = outChannels
        th = (geo.oh + 3) / 4
        tw = (geo.ow + 3) / 4
        hs = 4 * th + 2
        phaseLength = tw + 1
        let perSlot = th * tw
        func waste(_ k: Int) -> Double { Double((k * perSlot + 15) / 16 * 16 - k * perSlot) / Double(k * perSlot) }
        slots = (1...8).first { waste($0) <= 0.03 } ?? (1...8).min { waste($0) < waste($1) }!
        // V and M take 144 bytes per tile and channel: 32 tiles for up to 128 channels in and out.
        blockTiles = geo.c + outChannels <= 128 ? 32 : 16
        bStride = blockTiles + 16
    }

    /// The plan that computes a 3×3 convolution's input gradient as a Winograd forward pass: the
    /// output gradient (`outChannels` planes of oh×ow) correlated with the weights flipped in space
    /// and transposed in channels, with padding 2 − p. Requires `handlesInputGradient(of:)`.
    init(inputGradientOf geo: ConvGeometry, outChannels: Int) {
        precondition(WinogradForwardPlan.handlesInputGradient(of: geo, outChannels: outChannels),
                     "Winograd cannot compute the input gradient of a \(geo.kh)x\(geo.kw) convolution with padding "
                        + "(\(geo.ph), \(geo.pw)), stride (\(geo.sh), \(geo.sw)), \(geo.c) -> \(outChannels) channels")
        let t = ConvGeometry(c: outChannels, h: geo.oh, w: geo.ow, kh: 3, kw: 3, sh: 1, sw: 1,
                             ph: 2 - geo.ph, pw: 2 - geo.pw, dh: 1, dw: 1, oh: geo.h, ow: geo.w)
        self.init(t, outChannels: geo.c)
    }

    /// Calls `body(slot, ty, tx0, tx1, column)` for each run of one tile row within tiles `t0..<t1`
    /// (tiles `tx0..<tx1` of row `ty` of image `slot`, starting at `column` of the block), in order.
    @inline(__always)
    func segments(_ t0: Int, _ t1: Int, _ body: (Int, Int, Int, Int, Int) -> Void) {
        let perSlot = tilesPerSlot
        var t = t0
        while t < t1 {
            let slot = t / perSlot, r = t % perSlot
            let ty = r / tw, tx0 = r % tw, tx1 = Swift.min(tw, tx0 + t1 - t)
            body(slot, ty, tx0, tx1, t - t0)
            t += tx1 - tx0
        }
    }

    var uCount: Int { 36 * ocPanels * 8 * geo.c }
    /// Distance between the 36 ξ planes of V and of M: a cache line more than a whole number of rows,
    /// so that the planes read together for one tile do not share an L1 set.
    var vPlane: Int { geo.c * bStride + 16 }
    var mPlane: Int { ocPanels * 8 * bStride + 16 }

    /// U = G g Gᵀ for every (output, input) channel pair of one group's weights `[outC, inC, 3, 3]`,
    /// packed as the GEMM's A panels: `u[((ξ · ocPanels + oc / 8) · inC + ci) · 8 + oc % 8]`. The
    /// transform runs in Float64.
    func transformWeights(_ wt: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>) {
        let c = geo.c, xiStride = ocPanels * 8 * c
        u.update(repeating: 0, count: uCount)
        // Row i of G applied to (a, b, c).
        @inline(__always) func gRow(_ i: Int, _ a: Double, _ b: Double, _ cc: Double) -> Double {
            switch i {
            case 0: return a / 4
            case 1: return -(a + b + cc) / 6
            case 2: return -(a - b + cc) / 6
            case 3: return a / 24 + b / 12 + cc / 6
            case 4: return a / 24 - b / 12 + cc / 6
            default: return cc
            }
        }
        var gg = [Double](repeating: 0, count: 18)   // G g: 6 rows × 3 kernel columns
        for oc in 0..<outChannels { for ci in 0..<c {
            let g = wt + (oc * c + ci) * 9, u0 = u + (oc / 8 * c + ci) * 8 + oc % 8
            for i in 0..<6 { for l in 0..<3 { gg[3 * i + l] = gRow(i, Double(g[l]), Double(g[3 + l]), Double(g[6 + l])) } }
            for i in 0..<6 { for j in 0..<6 {
                u0[(6 * i + j) * xiStride] = Float(gRow(j, gg[3 * i], gg[3 * i + 1], gg[3 * i + 2]))
            } }
        } }
    }

    /// Scratch buffers for one thread: `slots` padded images (borders zeroed once), V, M, a row, the
    /// output transform's 24 vectors and its interleaved rows.
    struct Workspace {
        let padded, v, m, row, scratch, lanes: UnsafeMutablePointer<Float>
        let argLanes: UnsafeMutablePointer<UInt8>
        let rows: UnsafeMutablePointer<Int>
        init(_ plan: WinogradForwardPlan) {
            // 16-lane loads past the last tile of the last row read up to 16 floats beyond the planes.
            let paddedCount = plan.slots * plan.slotStride + 32
            padded = .allocate(capacity: paddedCount)
            padded.initialize(repeating: 0, count: paddedCount)
            v = .allocate(capacity: 36 * plan.vPlane)
            v.initialize(repeating: 0, count: 36 * plan.vPlane)   // columns past a block's tiles stay finite
            m = .allocate(capacity: 36 * plan.mPlane)
            row = .allocate(capacity: plan.rowScratch)
            row.initialize(repeating: 0, count: plan.rowScratch)
            scratch = .allocate(capacity: 24 * 16)
            // four interleaved rows of 64, and 16-lane reads up to 15 past a row's last value
            lanes = .allocate(capacity: 4 * 64 + 64)
            argLanes = .allocate(capacity: 128)
            rows = .allocate(capacity: plan.geo.c)
            for ci in 0..<plan.geo.c { rows[ci] = ci * plan.bStride }
        }
        func deallocate() {
            padded.deallocate(); v.deallocate(); m.deallocate(); row.deallocate(); scratch.deallocate(); lanes.deallocate()
            argLanes.deallocate(); rows.deallocate()
        }
    }

    /// Copies one image's group of channels into `slot`'s padded planes, split into column phases (the
    /// zero border is never written, so it stays zero). Rows of `x` are `rowStride` apart (default:
    /// compact), planes `planeStride`.
    func load(_ x: UnsafePointer<Float>, slot: Int, _ ws: Workspace, rowStride xRowStride: Int? = nil,
              planeStride xPlaneStride: Int? = nil) {
        let (c, h, w) = (geo.c, geo.h, geo.w)
        let rs = xRowStride ?? w, ps = xPlaneStride ?? h * w, r = phaseLength
        let base = ws.padded + slot * slotStride
        for ci in 0..<c { for y in 0..<h {
            // The padded row in the scratch row (its borders stay zero), then its four phases.
            copyFloats(ws.row + geo.pw, x + ci * ps + y * rs, w)
            let dst = base + ci * planeStride + (y + geo.ph) * rowStride
            var i = 0
            while i < r {
                // Columns 4i … 4i + 63 in two 32-float halves; even/odd twice splits them into phases.
                let a = UnsafeRawPointer(ws.row + 4 * i).loadUnaligned(as: SIMD32<Float>.self)
                let b = UnsafeRawPointer(ws.row + 4 * i + 32).loadUnaligned(as: SIMD32<Float>.self)
                let even = SIMD32(lowHalf: a.evenHalf, highHalf: b.evenHalf)   // phases 0, 2 alternating
                let odd = SIMD32(lowHalf: a.oddHalf, highHalf: b.oddHalf)      // phases 1, 3
                let n = Swift.min(16, r - i)
                storePrefix(even.evenHalf, n, dst + i); storePrefix(odd.evenHalf, n, dst + r + i)
                storePrefix(even.oddHalf, n, dst + 2 * r + i); storePrefix(odd.oddHalf, n, dst + 3 * r + i)
                i += 16
            }
        } }
    }

    /// Where a pass writes its outputs: slot k's planes start `slotStride` floats after slot 0's.
    enum Output {
        /// `relu?(conv + bias)` into compact `[outC][oh][ow]` planes.
        case full(UnsafeMutablePointer<Float>, slotStride: Int, relu: Bool)
        /// `max_pool2d(relu(conv + bias), 2)` into compact `[outC][oh/2][ow/2]` planes, and which of the
        /// four won (0…3, row-major, ties to the first, NaN wins) into bytes of the same layout.
        case reluPool(UnsafeMutablePointer<Float>, UnsafeMutablePointer<UInt8>, slotStride: Int)
    }

    /// The forward pass of the first `count` slots loaded into `ws`, written as `output` says.
    func forward(_ ws: Workspace, slots count: Int, _ u: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 _ output: Output) {
        let total = count * tilesPerSlot
        var t0 = 0
        while t0 < total {
            let t1 = Swift.min(total, t0 + blockTiles)
            inputTransform(ws, t0, t1)
            multiply(ws, u, tiles: t1 - t0)
            outputTransform(ws, t0, t1, bias, output)
            t0 = t1
        }
    }

    /// V[ξ][ci][t] = (Bᵀ d B)[ξ] for the block's tiles t, 16 tiles of a row per SIMD vector.
    @inline(__always)
    private func inputTransform(_ ws: Workspace, _ t0: Int, _ t1: Int) {
        let c = geo.c, vp = vPlane, r = phaseLength, rs = rowStride
        for ci in 0..<c {
            let plane = UnsafePointer(ws.padded + ci * planeStride)
            // Stores run left to right along each V row: lanes past a run's last tile land on
            // columns that are written after them (or on the row's slack).
            segments(t0, t1) { slot, ty, tx0, tx1, col in
                let band = plane + slot * slotStride + 4 * ty * rs
                var tx = tx0
                while tx < tx1 {
                    // Row k of the 16 patches times B: columns 4t + j are phase j % 4 at index t + j / 4.
                    @inline(__always) func row(_ k: Int) -> Six {
                        let p = band + k * rs + tx
                        return bt6(ld(p), ld(p + r), ld(p + 2 * r), ld(p + 3 * r), ld(p + 1), ld(p + r + 1))
                    }
                    let r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3), r4 = row(4), r5 = row(5)
                    let d = ws.v + ci * bStride + col + tx - tx0
                    // Bᵀ down each column j: element ξ = 6i + j.
                    @inline(__always) func put(_ j: Int, _ s: Six) {
                        st(s.0, d + j * vp); st(s.1, d + (6 + j) * vp); st(s.2, d + (12 + j) * vp)
                        st(s.3, d + (18 + j) * vp); st(s.4, d + (24 + j) * vp); st(s.5, d + (30 + j) * vp)
                    }
                    put(0, bt6(r0.0, r1.0, r2.0, r3.0, r4.0, r5.0)); put(1, bt6(r0.1, r1.1, r2.1, r3.1, r4.1, r5.1))
                    put(2, bt6(r0.2, r1.2, r2.2, r3.2, r4.2, r5.2)); put(3, bt6(r0.3, r1.3, r2.3, r3.3, r4.3, r5.3))
                    put(4, bt6(r0.4, r1.4, r2.4, r3.4, r4.4, r5.4)); put(5, bt6(r0.5, r1.5, r2.5, r3.5, r4.5, r5.5))
                    tx += 16
                }
            }
        }
    }

    /// M[ξ] = U[ξ] · V[ξ] for the block's tiles: 36 GEMMs with K = input channels, B rows read in place.
    /// Whole 8×32 (or 8×16) tiles are stored: M has rows for every panel and slack columns.
    @inline(__always)
    private func multiply(_ ws: Workspace, _ u: UnsafePointer<Float>, tiles nb: Int) {
        let c = geo.c
        for xi in 0..<36 {
            let a = u + xi * ocPanels * 8 * c
            let b = UnsafePointer(ws.v + xi * vPlane)
            let m = ws.m + xi * mPlane
            var j = 0
            while j < nb {
                let nr = nb - j <= 16 ? 16 : 32
                for i in stride(from: 0, to: ocPanels * 8, by: 8) {
                    microKernel(c, a + i * c, b + j, m + i * bStride + j, bStride, nil, 1, 8, nr,
                                accumulate: false, bias: nil, relu: false, bRows: UnsafePointer(ws.rows))
                }
                j += 32
            }
        }
    }

    /// Y = Aᵀ M A per tile plus bias, 16 tiles at a time, written as `output` says. (One function per
    /// kind of output: a single one grew past the inliner's budget, and the vector shuffles it calls
    /// became function calls.)
    @inline(__always)
    private func outputTransform(_ ws: Workspace, _ t0: Int, _ t1: Int, _ bias: UnsafePointer<Float>?,
                                 _ output: Output) {
        switch output {
        case .full(let out, let slotStride, let relu):
            storeFull(ws, t0, t1, bias, out, slotStride: slotStride, relu: relu)
        case .reluPool(let out, let arg, let slotStride):
            storePooled(ws, t0, t1, bias, out, arg, slotStride: slotStride)
        }
    }

    /// The four rows of Y (plus bias) for the 16 tiles whose M values start at `s`: Aᵀ down each
    /// column j into `scratch` (24 vectors, in L1), then each row times A.
    @inline(__always)
    private func tileOutputs(_ s: UnsafePointer<Float>, _ bv: V16, _ scratch: UnsafeMutablePointer<Float>) -> (Four, Four, Four, Four) {
        let mp = mPlane
        for j in 0..<6 {
            let q = s + j * mp
            let c = at6(ld(q), ld(q + 6 * mp), ld(q + 12 * mp), ld(q + 18 * mp), ld(q + 24 * mp), ld(q + 30 * mp))
            st(c.0, scratch + 16 * j); st(c.1, scratch + 16 * (6 + j)); st(c.2, scratch + 16 * (12 + j)); st(c.3, scratch + 16 * (18 + j))
        }
        @inline(__always) func row(_ r: Int) -> Four {
            let q = UnsafePointer(scratch + 96 * r)
            return plus(at6(ld(q), ld(q + 16), ld(q + 32), ld(q + 48), ld(q + 64), ld(q + 80)), bv)
        }
        return (row(0), row(1), row(2), row(3))
    }

    // Both outputs run over the block's tiles 16 at a time, in M's dense column order (tiles of
    // several rows and images share a vector); each row of results is interleaved into `ws.lanes`
    // and copied from there in runs of one tile row.

    /// `.full`: rows 4·ty … 4·ty + 3 of each output plane, the four columns of each tile interleaved.
    @inline(never)
    private func storeFull(_ ws: Workspace, _ t0: Int, _ t1: Int, _ bias: UnsafePointer<Float>?,
                           _ out: UnsafeMutablePointer<Float>, slotStride: Int, relu: Bool) {
        let (oh, ow) = (geo.oh, geo.ow), lanes = ws.lanes
        for oc in 0..<outChannels {
            let bv = V16(repeating: bias?[oc] ?? 0)
            for t in stride(from: t0, to: t1, by: 16) {
                var y = tileOutputs(ws.m + oc * bStride + t - t0, bv, ws.scratch)
                if relu { y = (relu4(y.0), relu4(y.1), relu4(y.2), relu4(y.3)) }
                interleave(y.0, into: lanes); interleave(y.1, into: lanes + 64)
                interleave(y.2, into: lanes + 128); interleave(y.3, into: lanes + 192)
                segments(t, Swift.min(t1, t + 16)) { slot, ty, tx0, tx1, lane in
                    let plane = out + slot * slotStride + oc * oh * ow + 4 * tx0
                    let count = Swift.min(4 * (tx1 - tx0), ow - 4 * tx0)
                    for r in 0..<Swift.min(4, oh - 4 * ty) {
                        copyPrefix(plane + (4 * ty + r) * ow, UnsafePointer(lanes + 64 * r + 4 * lane), count)
                    }
                }
            }
        }
    }

    /// `.reluPool`: each 4×4 tile holds four 2×2 pooling windows; pooled rows 2·ty and 2·ty + 1.
    @inline(never)
    private func storePooled(_ ws: Workspace, _ t0: Int, _ t1: Int, _ bias: UnsafePointer<Float>?,
                             _ out: UnsafeMutablePointer<Float>, _ arg: UnsafeMutablePointer<UInt8>, slotStride: Int) {
        let (ph, pw) = (geo.oh / 2, geo.ow / 2), lanes = ws.lanes, argLanes = ws.argLanes
        for oc in 0..<outChannels {
            let bv = V16(repeating: bias?[oc] ?? 0)
            for t in stride(from: t0, to: t1, by: 16) {
                let y = tileOutputs(ws.m + oc * bStride + t - t0, bv, ws.scratch)
                @inline(__always) func pool(_ r: Int, _ a: Four, _ b: Four) {
                    let (v0, k0) = poolWindow(relu0(a.0), relu0(a.1), relu0(b.0), relu0(b.1))
                    let (v1, k1) = poolWindow(relu0(a.2), relu0(a.3), relu0(b.2), relu0(b.3))
                    interleave((v0, v1, k0, k1), into: lanes + 32 * r, argLanes + 32 * r)
                }
                pool(0, y.0, y.1); pool(1, y.2, y.3)
                segments(t, Swift.min(t1, t + 16)) { slot, ty, tx0, tx1, lane in
                    let o = slot * slotStride + oc * ph * pw + 2 * tx0
                    let count = Swift.min(2 * (tx1 - tx0), pw - 2 * tx0)
                    for r in 0..<Swift.max(0, Swift.min(2, ph - 2 * ty)) {
                        let row = o + (2 * ty + r) * pw
                        copyPrefix(out + row, UnsafePointer(lanes + 32 * r + 2 * lane), count)
                        copyPrefix(arg + row, UnsafePointer(argLanes + 32 * r + 2 * lane), count)
                    }
                }
            }
        }
    }
}

typealias Six = (V16, V16, V16, V16, V16, V16)
typealias Four = (V16, V16, V16, V16)

/// Bᵀ d for a 6-vector d (rows of Bᵀ: [4 0 −5 0 1 0], [0 −4 −4 1 1 0], [0 4 −4 −1 1 0],
/// [0 −2 −1 2 1 0], [0 2 −1 −2 1 0], [0 4 0 −5 0 1]).
@inline(__always) private func bt6(_ d0: V16, _ d1: V16, _ d2: V16, _ d3: V16, _ d4: V16, _ d5: V16) -> Six {
    let four = V16(repeating: 4), two = V16(repeating: 2)
    let a = d4 - four * d2, b = d3 - four * d1, c = d4 - d2, e = two * (d3 - d1)
    return ((d4 - d2) + four * (d0 - d2), a + b, a - b, c + e, c - e, (d5 - d3) + four * (d1 - d3))
}

/// Aᵀ m for a 6-vector m (rows of Aᵀ: [1 1 1 1 1 0], [0 1 −1 2 −2 0], [0 1 1 4 4 0], [0 1 −1 8 −8 1]).
@inline(__always) private func at6(_ m0: V16, _ m1: V16, _ m2: V16, _ m3: V16, _ m4: V16, _ m5: V16) -> Four {
    let p = m1 + m2, q = m1 - m2, r = m3 + m4, s = m3 - m4
    return (m0 + p + r, q + V16(repeating: 2) * s, p + V16(repeating: 4) * r, q + V16(repeating: 8) * s + m5)
}

@inline(__always) private func plus(_ y: Four, _ b: V16) -> Four { (y.0 + b, y.1 + b, y.2 + b, y.3 + b) }
@inline(__always) private func relu4(_ y: Four) -> Four { (relu0(y.0), relu0(y.1), relu0(y.2), relu0(y.3)) }

/// `max(v, 0)` lane-wise, NaN kept (like `relu`).
@inline(__always) func relu0(_ v: V16) -> V16 { v.replacing(with: 0, where: v .< 0) }

/// The maximum of each lane's 2×2 window (y00 y01 / y10 y11) and which one won, with the selects of
/// `maxPool2x2Plane`: ties keep the first in row-major order, NaN wins. The index (0…3) comes as
/// `Int32` lanes in the bits of a float vector, so that it interleaves like the values.
@inline(__always) private func poolWindow(_ y00: V16, _ y01: V16, _ y10: V16, _ y11: V16) -> (V16, V16) {
    let ab = y01 .> y00 .| y01 .!= y01, cd = y11 .> y10 .| y11 .!= y11
    let m1 = y00.replacing(with: y01, where: ab), m2 = y10.replacing(with: y11, where: cd)
    let second = m2 .> m1 .| m2 .!= m2
    let k1 = SIMD16<Int32>(repeating: 0).replacing(with: 1, where: ab)
    let k2 = SIMD16<Int32>(repeating: 2).replacing(with: 3, where: cd)
    return (m1.replacing(with: m2, where: second), unsafeBitCast(k1.replacing(with: k2, where: second), to: V16.self))
}

// Interleaving is the inverse of de-interleaving: one round of a perfect unshuffle (even lanes of each
// pair of vectors, then odd ones) rotates the bits of every element's index right by one, so the
// 5-bit index of two vectors (16j + t → 2t + j) takes four rounds and the 6-bit index of four
// vectors (16j + t → 4t + j) also four (a rotation right by four is one left by two).

@inline(__always) private func unshuffle(_ a: V16, _ b: V16) -> (V16, V16) {
    (V16(lowHalf: a.evenHalf, highHalf: b.evenHalf), V16(lowHalf: a.oddHalf, highHalf: b.oddHalf))
}

/// The 64 floats (y0₀, y1₀, y2₀, y3₀, y0₁, …) at `p`: four vectors interleaved lane by lane. Kept
/// out of line, so that the standard library's shuffles inline into it (inside the large output
/// loops they became calls).
@inline(never)
private func interleave(_ y: Four, into p: UnsafeMutablePointer<Float>) {
    var v = y
    for _ in 0..<4 {
        let (e0, o0) = unshuffle(v.0, v.1), (e1, o1) = unshuffle(v.2, v.3)
        v = (e0, e1, o0, o1)
    }
    st(v.0, p); st(v.1, p + 16); st(v.2, p + 32); st(v.3, p + 48)
}

/// Pooled values (v0, v1) and winners (k0, k1, `Int32` bits): the 32 values (v0₀, v1₀, v0₁, …) at
/// `p` and the 32 winners, as bytes, at `arg`.
@inline(never)
private func interleave(_ pooled: Four, into p: UnsafeMutablePointer<Float>, _ arg: UnsafeMutablePointer<UInt8>) {
    var v = (pooled.0, pooled.1), k = (pooled.2, pooled.3)
    for _ in 0..<4 { v = unshuffle(v.0, v.1); k = unshuffle(k.0, k.1) }
    st(v.0, p); st(v.1, p + 16)
    let raw = UnsafeMutableRawPointer(arg)
    raw.storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: unsafeBitCast(k.0, to: SIMD16<Int32>.self)), as: SIMD16<UInt8>.self)
    (raw + 16).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: unsafeBitCast(k.1, to: SIMD16<Int32>.self)), as: SIMD16<UInt8>.self)
}

/// Copies `count` values from `src` to `dst` in 16-lane pieces (reading up to 15 past `src + count`).
@inline(__always) private func copyPrefix<T: SIMDScalar>(_ dst: UnsafeMutablePointer<T>, _ src: UnsafePointer<T>, _ count: Int) {
    var i = 0
    while i < count {
        storePrefix(UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<T>.self), Swift.min(16, count - i), dst + i)
        i += 16
    }
}

/// Stores the first `n` (0…16) lanes of `v` at `p`.
@inline(__always) func storePrefix<T: SIMDScalar>(_ v: SIMD16<T>, _ n: Int, _ p: UnsafeMutablePointer<T>) {
    let raw = UnsafeMutableRawPointer(p)
    if n >= 16 { raw.storeBytes(of: v, as: SIMD16<T>.self); return }
    var offset = 0, rest = n
    var v8 = v.lowHalf
    if rest >= 8 {
        raw.storeBytes(of: v8, as: SIMD8<T>.self); offset = 8; rest -= 8; v8 = v.highHalf
    }
    var v4 = v8.lowHalf
    if rest >= 4 {
        (raw + offset * MemoryLayout<T>.stride).storeBytes(of: v4, as: SIMD4<T>.self); offset += 4; rest -= 4; v4 = v8.highHalf
    }
    var v2 = v4.lowHalf
    if rest >= 2 {
        (raw + offset * MemoryLayout<T>.stride).storeBytes(of: v2, as: SIMD2<T>.self); offset += 2; rest -= 2; v2 = v4.highHalf
    }
    if rest == 1 { p[offset] = v2[0] }
}

extension Tensor {
    /// Every group's transformed weights for `plan`, one after another (`plan.uCount` floats each).
    /// With `flipped`, those of the input-gradient convolution (`WinogradForwardPlan(inputGradientOf:)`):
    /// each group's `[out, in, 3, 3]` weights as `[in, out, 3, 3]`, rotated 180° in space.
    func winogradWeights(_ plan: WinogradForwardPlan, groups: Int, flipped: Bool = false) -> UnsafeMutablePointer<Float> {
        let u = UnsafeMutablePointer<Float>.allocate(capacity: groups * plan.uCount)
        let per = plan.outChannels * plan.geo.c * 9
        storage.withUnsafeBufferPointer { w in
            if !flipped {
                for g in 0..<groups { plan.transformWeights(w.baseAddress! + g * per, into: u + g * plan.uCount) }
                return
            }
            let f = UnsafeMutablePointer<Float>.allocate(capacity: per)
            defer { f.deallocate() }
            let (co, ci) = (plan.geo.c, plan.outChannels)   // the forward's out and in channels
            for g in 0..<groups {
                let src = w.baseAddress! + g * per
                for o in 0..<co { for i in 0..<ci { for k in 0..<9 { f[(i * co + o) * 9 + k] = src[(o * ci + i) * 9 + 8 - k] } } }
                plan.transformWeights(f, into: u + g * plan.uCount)
            }
        }
        return u
    }
}
