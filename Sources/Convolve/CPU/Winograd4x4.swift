// Winograd's F(4×4, 3×3) (Lavin & Gray, 2015; interpolation points 0, ±1, ±2, ∞), channels-last, for
// the forward pass of 3×3, unit-stride convolutions whose channel counts are multiples of 16, and for
// their input gradient (the same pass over the output gradient). Each 4×4 block of outputs ("tile")
// comes from the 6×6 input patch under it:
//
//     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//
// so a layer becomes 36 GEMMs, one per element ξ of the 6×6 transformed tile: Mᵀ[ξ] (tiles × outC) =
// V[ξ] (tiles × inC) · Uᵀ[ξ] (inC × outC) — 36 multiplies per tile and channel pair instead of 144
// (4× fewer; F(2×2, 3×3) saves 2.25×). The image is transposed channels-last first, so both transforms
// work on 16 channels per vector, every lane in use whatever the image's width (a planar version, 16
// tiles of one tile row per vector, left most lanes empty on 24- to 8-wide images and lost its gain to
// the transforms); the GEMMs read V's tile rows in place. The results are written channels-last and
// transposed back into planes. Tiles of several images ("slots") share one pass, so the GEMMs' 8-tile
// panels stay full.
//
// Precision: the transforms' coefficients (4, 5, 8, 1/24) round more than F(2×2, 3×3)'s (3–6e-6 of the
// largest output instead of ~1e-6); `ConvolutionPathTests.winogradPrecisionOnTheZooLayers` bounds it.

/// The layout of one layer's F(4×4, 3×3) forward pass (one group, up to `slots` images).
struct Winograd4Plan: WinogradWeightTransform {
    let geo: ConvGeometry
    /// Output channels per group.
    let outChannels: Int
    /// Tiles down and across (each tile is 4×4 outputs).
    let th: Int, tw: Int
    /// Rows and columns of the padded channels-last image (`[hs][wsp][c]`).
    let hs: Int, wsp: Int
    /// Images whose tiles one pass computes: the fewest (≤ 4) that fill the 8-tile GEMM panels to 95%.
    let slots: Int
    /// Tiles per block (a multiple of 8): the block's V and M stay in L2 while its 36 GEMMs run.
    let blockTiles: Int

    /// Output channels rounded up to whole 32-column GEMM panels.
    var ocRow: Int { (outChannels + 31) / 32 * 32 }
    var tilesPerSlot: Int { th * tw }
    var slotStride: Int { hs * wsp * geo.c }
    /// One ξ plane of V (`[tile][c]`) and of Mᵀ (`[tile][ocRow]`), a cache line more than a block.
    var vPlane: Int { blockTiles * geo.c + 16 }
    var mPlane: Int { blockTiles * ocRow + 16 }
    /// Uᵀ[ξ] packed as the GEMM's B panels: `u[((ξ · ocRow / 32 + oc / 32) · c + ci) · 32 + oc % 32]`.
    var uCount: Int { 36 * geo.c * ocRow }
    /// Channels-last outputs of one slot: `[oh][ow][outC]`, or `[oh/2][ow/2][outC]` pooled.
    var stageCount: Int { geo.oh * geo.ow * outChannels }

    /// Whether this plan computes the layer's forward pass: one `WinogradPlan` takes, with input and
    /// output channels per group multiples of 16. `ConvAlgorithm` asks this (and `Winograd.active`)
    /// before it makes a plan; the plan's initializer requires it.
    static func handles(_ geo: ConvGeometry, outChannels: Int) -> Bool {
        WinogradPlan.handles(geo, outChannels: outChannels) && geo.c % 16 == 0 && outChannels % 16 == 0
    }

    /// Whether the input gradient can be this plan's forward pass over the output gradient (padding ≤ 2).
    static func handlesInputGradient(of geo: ConvGeometry, outChannels: Int) -> Bool {
        handles(geo, outChannels: outChannels) && WinogradPlan.handlesInputGradient(of: geo, outChannels: outChannels)
    }

    /// The plan for a layer that `handles` takes (a precondition: `ConvAlgorithm` chooses).
    init(_ geo: ConvGeometry, outChannels: Int) {
        precondition(Winograd4Plan.handles(geo, outChannels: outChannels), geo.winogradMismatch("F(4x4, 3x3)", outChannels))
        self.geo = geo
        self.outChannels = outChannels
        th = (geo.oh + 3) / 4
        tw = (geo.ow + 3) / 4
        hs = 4 * th + 2
        wsp = 4 * tw + 2
        let perSlot = th * tw
        func waste(_ k: Int) -> Double { Double((k * perSlot + 7) / 8 * 8 - k * perSlot) / Double(k * perSlot) }
        slots = (1...4).first { waste($0) <= 0.05 } ?? (1...4).min { waste($0) < waste($1) }!
        // V and Mᵀ take 144 bytes per tile and channel: ~400 KB per block.
        let fit = 400_000 / (144 * (geo.c + (outChannels + 31) / 32 * 32)) / 8 * 8
        blockTiles = Swift.min(64, Swift.max(8, fit))
    }

    /// The plan that computes a 3×3 convolution's input gradient as a forward pass: the output
    /// gradient correlated with the weights flipped in space and transposed in channels, padding 2 − p.
    init(inputGradientOf geo: ConvGeometry, outChannels: Int) {
        precondition(Winograd4Plan.handlesInputGradient(of: geo, outChannels: outChannels),
                     geo.winogradMismatch("F(4x4, 3x3) (input gradient)", outChannels))
        self.init(geo.inputGradientPass(outChannels: outChannels), outChannels: geo.c)
    }

    /// Uᵀ = (G g Gᵀ)ᵀ for every channel pair of one group's weights `[outC, inC, 3, 3]`, 16 output
    /// channels per vector in Float64 (in Float32 the input gradient's worst rounding grew by a
    /// quarter), packed as `uCount` says (zero past `outC`).
    /// Input channels are split over the threads (each writes its own columns of U): done every step,
    /// serially it left the other thread waiting (~0.4 ms per W4 step).
    func transformWeights(_ wt: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>) {
        let c = geo.c, xiStride = ocRow * c
        if outChannels < ocRow { u.update(repeating: 0, count: uCount) }
        Parallel.forChunks(c, work: c * outChannels * 400) { channels in
            withUnsafeTemporaryAllocation(of: SIMD16<Double>.self, capacity: 27) { buffer in
                let g = buffer.baseAddress!, gg = g + 9   // the 3×3 kernel, then G g (6 × 3), in Float64
                for ci in channels { for o0 in stride(from: 0, to: outChannels, by: 16) {
                    for k in 0..<9 { for lane in 0..<16 { g[k][lane] = Double(wt[((o0 + lane) * c + ci) * 9 + k]) } }
                    // G down each kernel column l, then each row of G g times Gᵀ: element ξ = 6i + j.
                    for l in 0..<3 {
                        let r = gColumn(g[l], g[3 + l], g[6 + l])
                        gg[l] = r.0; gg[3 + l] = r.1; gg[6 + l] = r.2; gg[9 + l] = r.3; gg[12 + l] = r.4; gg[15 + l] = r.5
                    }
                    let u0 = u + (o0 / 32 * c + ci) * 32 + o0 % 32
                    for i in 0..<6 {
                        let r = gColumn(gg[3 * i], gg[3 * i + 1], gg[3 * i + 2])
                        let row = u0 + 6 * i * xiStride
                        st(V16(r.0), row); st(V16(r.1), row + xiStride); st(V16(r.2), row + 2 * xiStride)
                        st(V16(r.3), row + 3 * xiStride); st(V16(r.4), row + 4 * xiStride); st(V16(r.5), row + 5 * xiStride)
                    }
                } }
            }
        }
    }

    /// Scratch for one thread: `slots` padded channels-last images (borders zeroed once), V, Mᵀ, the
    /// channels-last outputs, and the output transform's 24 vectors.
    struct Workspace {
        let image, v, m, stage, stageArg, planes, scratch: UnsafeMutablePointer<Float>
        init(_ plan: Winograd4Plan, pooled: Bool) {
            image = .allocate(capacity: plan.slots * plan.slotStride)
            for k in 0..<plan.slots { plan.zeroBorder(image + k * plan.slotStride) }
            v = .allocate(capacity: 36 * plan.vPlane)
            m = .allocate(capacity: 36 * plan.mPlane)
            stage = .allocate(capacity: plan.slots * plan.stageCount)
            // pooled: the winners (Int32 bits) channels-last, then as planes
            stageArg = .allocate(capacity: pooled ? plan.slots * plan.stageCount / 4 : 0)
            planes = .allocate(capacity: pooled ? plan.stageCount / 4 : 0)
            scratch = .allocate(capacity: 24 * 16)
        }
        func deallocate() {
            image.deallocate(); v.deallocate(); m.deallocate(); stage.deallocate(); stageArg.deallocate()
            planes.deallocate(); scratch.deallocate()
        }
    }

    /// Zeroes the padding around the image in one slot's channels-last buffer (`load` writes the rest).
    func zeroBorder(_ image: UnsafeMutablePointer<Float>) {
        let (c, h, w, ph, pw) = (geo.c, geo.h, geo.w, geo.ph, geo.pw), row = wsp * c
        image.update(repeating: 0, count: ph * row)
        (image + (ph + h) * row).update(repeating: 0, count: (hs - ph - h) * row)
        for y in ph..<(ph + h) {
            (image + y * row).update(repeating: 0, count: pw * c)
            (image + y * row + (pw + w) * c).update(repeating: 0, count: (wsp - pw - w) * c)
        }
    }

    /// Transposes one image's group of channels into `slot`'s padded channels-last image (the zero
    /// border is never written). Rows of `x` are `rowStride` apart (default: compact), planes `planeStride`.
    func load(_ x: UnsafePointer<Float>, slot: Int, _ ws: Workspace, rowStride: Int? = nil, planeStride: Int? = nil) {
        let (c, h, w) = (geo.c, geo.h, geo.w)
        transposeChannelsLast(x, channels: c, planeStride: planeStride ?? h * w, rowStride: rowStride ?? w, rows: h,
                              cols: w, into: ws.image + slot * slotStride + (geo.ph * wsp + geo.pw) * c,
                              dstRowStride: wsp * c, dstChannels: c)
    }

    /// Where a pass writes: slot k's planes start `slotStride` floats after slot 0's.
    enum Output {
        /// `relu?(conv + bias)` into compact `[outC][oh][ow]` planes.
        case full(UnsafeMutablePointer<Float>, slotStride: Int, relu: Bool)
        /// `conv + bias` added into compact `[outC][oh][ow]` planes (an input gradient joining one
        /// the tensor already has).
        case add(UnsafeMutablePointer<Float>, slotStride: Int)
        /// `max_pool2d(relu(conv + bias), 2)` into compact `[outC][oh/2][ow/2]` planes, and which of the
        /// four won (0…3, row-major, ties to the first, NaN wins) into bytes of the same layout (unless
        /// nil: no gradient needed).
        case reluPool(UnsafeMutablePointer<Float>, UnsafeMutablePointer<UInt8>?, slotStride: Int)
    }

    /// The forward pass of one group over images `range`, `slots` at a time: image s is read from
    /// `input(s)` and each batch starting at image s0 writes as `output(s0)` says.
    func forward(images range: Range<Int>, _ ws: Workspace, input: (Int) -> UnsafePointer<Float>,
                 _ u: UnsafePointer<Float>, bias: UnsafePointer<Float>?, _ output: (Int) -> Output) {
        for s0 in stride(from: range.lowerBound, to: range.upperBound, by: slots) {
            let count = Swift.min(slots, range.upperBound - s0)
            for k in 0..<count { load(input(s0 + k), slot: k, ws) }
            forward(ws, slots: count, u, bias: bias, output(s0))
        }
    }

    /// The forward pass of the first `count` slots loaded into `ws`, written as `output` says.
    func forward(_ ws: Workspace, slots count: Int, _ u: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 _ output: Output) {
        let total = count * tilesPerSlot
        var pooled = false, relu = true, winners = false
        switch output {
        case .full(_, _, let r): relu = r
        case .add: relu = false
        case .reluPool(_, let arg, _): pooled = true; winners = arg != nil
        }
        var t0 = 0
        while t0 < total {
            let t1 = Swift.min(total, t0 + blockTiles)
            inputTransform(ws, t0, t1)
            multiply(ws, u, tiles: t1 - t0)
            outputTransform(ws, t0, t1, bias, pooled: pooled, relu: relu, winners: winners)
            t0 = t1
        }
        let (oh, ow) = (geo.oh, geo.ow), oc = outChannels
        for k in 0..<count {
            switch output {
            case .full(let out, let slotStride, _):
                transposePlanar(ws.stage + k * stageCount, pixels: oh * ow, channels: oc, into: out + k * slotStride)
            case .add(let out, let slotStride):
                transposePlanar(ws.stage + k * stageCount, pixels: oh * ow, channels: oc, into: out + k * slotStride, add: true)
            case .reluPool(let out, let arg, let slotStride):
                let pixels = (oh / 2) * (ow / 2), o = k * slotStride
                transposePlanar(ws.stage + k * stageCount / 4, pixels: pixels, channels: oc, into: out + o)
                guard let arg else { continue }
                transposePlanar(ws.stageArg + k * stageCount / 4, pixels: pixels, channels: oc, into: ws.planes)
                let bits = UnsafeRawPointer(ws.planes).assumingMemoryBound(to: Int32.self)
                for i in 0..<(pixels * oc) { arg[o + i] = UInt8(truncatingIfNeeded: bits[i]) }
            }
        }
    }

    /// V[ξ][t][ci] = (Bᵀ d B)[ξ] for the block's tiles, 16 channels per vector.
    @inline(never)
    private func inputTransform(_ ws: Workspace, _ t0: Int, _ t1: Int) {
        inputTransform(ws.image, t0, t1, into: ws.v, planeStride: vPlane)
    }

    /// V[ξ][t][ci] of tiles `t0..<t1` of the channels-last images at `image` into `v` (ξ planes
    /// `planeStride` apart), 16 channels per vector.
    @inline(__always)
    private func inputTransform(_ image: UnsafeMutablePointer<Float>, _ t0: Int, _ t1: Int,
                                into v: UnsafeMutablePointer<Float>, planeStride vp: Int) {
        let c = geo.c, rs = wsp * c, perSlot = tilesPerSlot
        for t in t0..<t1 {
            let slot = t / perSlot, ty = t % perSlot / tw, tx = t % tw
            let patch = UnsafePointer(image + slot * slotStride + (4 * ty * wsp + 4 * tx) * c)
            for c0 in stride(from: 0, to: c, by: 16) {
                // Row k of the patch times B, then Bᵀ down each column j: element ξ = 6i + j.
                @inline(__always) func row(_ k: Int) -> Six {
                    let p = patch + k * rs + c0
                    return bt6(ld(p), ld(p + c), ld(p + 2 * c), ld(p + 3 * c), ld(p + 4 * c), ld(p + 5 * c))
                }
                let r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3), r4 = row(4), r5 = row(5)
                let d = v + (t - t0) * c + c0
                @inline(__always) func put(_ j: Int, _ s: Six) {
                    st(s.0, d + j * vp); st(s.1, d + (6 + j) * vp); st(s.2, d + (12 + j) * vp)
                    st(s.3, d + (18 + j) * vp); st(s.4, d + (24 + j) * vp); st(s.5, d + (30 + j) * vp)
                }
                put(0, bt6(r0.0, r1.0, r2.0, r3.0, r4.0, r5.0)); put(1, bt6(r0.1, r1.1, r2.1, r3.1, r4.1, r5.1))
                put(2, bt6(r0.2, r1.2, r2.2, r3.2, r4.2, r5.2)); put(3, bt6(r0.3, r1.3, r2.3, r3.3, r4.3, r5.3))
                put(4, bt6(r0.4, r1.4, r2.4, r3.4, r4.4, r5.4)); put(5, bt6(r0.5, r1.5, r2.5, r3.5, r4.5, r5.5))
            }
        }
    }

    /// Mᵀ[ξ] = V[ξ] · Uᵀ[ξ] for the block's tiles (rounded up to 8): 36 GEMMs with K = input channels,
    /// A (the tiles' V rows) read in place, B packed.
    @inline(never)
    private func multiply(_ ws: Workspace, _ u: UnsafePointer<Float>, tiles nb: Int) {
        let c = geo.c, panels = ocRow / 32
        for xi in 0..<36 {
            // The last panel's rows past the block's tiles: finite values (their outputs are not read).
            (ws.v + xi * vPlane + nb * c).update(repeating: 0, count: ((nb + 7) / 8 * 8 - nb) * c)
            let a = UnsafePointer(ws.v + xi * vPlane), b = u + xi * panels * c * 32
            let m = ws.m + xi * mPlane
            for i in stride(from: 0, to: nb, by: 8) {
                for j in 0..<panels {
                    // A last panel half past the output channels (16 of 32) skips its FMAs.
                    let nr = Swift.min(32, outChannels - 32 * j) <= 16 ? 16 : 32
                    microKernel(c, a + i * c, b + j * c * 32, m + i * ocRow + j * 32, ocRow, nil, 1, 8, nr,
                                accumulate: false, bias: nil, relu: false, aStride: 1, aRowStride: c)
                }
            }
        }
    }

    /// Y = Aᵀ M A (+ bias, ReLU) per tile and 16 output channels, into the channels-last stage;
    /// pooled, the 2×2 maxima and their winners.
    @inline(never)
    private func outputTransform(_ ws: Workspace, _ t0: Int, _ t1: Int, _ bias: UnsafePointer<Float>?,
                                 pooled: Bool, relu: Bool, winners: Bool) {
        let (oh, ow, oc) = (geo.oh, geo.ow, outChannels), (ph, pw) = (oh / 2, ow / 2), perSlot = tilesPerSlot
        let mp = mPlane, scratch = ws.scratch
        for t in t0..<t1 {
            let slot = t / perSlot, ty = t % perSlot / tw, tx = t % tw
            for o0 in stride(from: 0, to: oc, by: 16) {
                let bv = bias.map { ld($0 + o0) } ?? V16()
                // Aᵀ down each column j into the scratch, then each of the four rows times A.
                let s = UnsafePointer(ws.m + (t - t0) * ocRow + o0)
                for j in 0..<6 {
                    let q = s + j * mp
                    let cj = at6(ld(q), ld(q + 6 * mp), ld(q + 12 * mp), ld(q + 18 * mp), ld(q + 24 * mp), ld(q + 30 * mp))
                    st(cj.0, scratch + 16 * j); st(cj.1, scratch + 16 * (6 + j))
                    st(cj.2, scratch + 16 * (12 + j)); st(cj.3, scratch + 16 * (18 + j))
                }
                @inline(__always) func row(_ r: Int) -> Four {
                    let q = UnsafePointer(scratch + 96 * r)
                    let y = at6(ld(q), ld(q + 16), ld(q + 32), ld(q + 48), ld(q + 64), ld(q + 80))
                    return (y.0 + bv, y.1 + bv, y.2 + bv, y.3 + bv)
                }
                if pooled {
                    let stage = ws.stage + slot * stageCount / 4, stageArg = ws.stageArg + slot * stageCount / 4
                    for pr in 0..<2 where 2 * ty + pr < ph {
                        let a = row(2 * pr), b = row(2 * pr + 1), py = 2 * ty + pr
                        if 2 * tx < pw {
                            let (v, k) = windowMax(relu0(a.0), relu0(a.1), relu0(b.0), relu0(b.1))
                            let o = (py * pw + 2 * tx) * oc + o0
                            st(v, stage + o); if winners { st(unsafeBitCast(k, to: V16.self), stageArg + o) }
                        }
                        if 2 * tx + 1 < pw {
                            let (v, k) = windowMax(relu0(a.2), relu0(a.3), relu0(b.2), relu0(b.3))
                            let o = (py * pw + 2 * tx + 1) * oc + o0
                            st(v, stage + o); if winners { st(unsafeBitCast(k, to: V16.self), stageArg + o) }
                        }
                    }
                } else {
                    let stage = ws.stage + slot * stageCount
                    for r in 0..<4 where 4 * ty + r < oh {
                        var y = row(r)
                        if relu { y = (relu0(y.0), relu0(y.1), relu0(y.2), relu0(y.3)) }
                        let p = stage + ((4 * ty + r) * ow + 4 * tx) * oc + o0
                        let n = Swift.min(4, ow - 4 * tx)
                        st(y.0, p)
                        if n > 1 { st(y.1, p + oc) }
                        if n > 2 { st(y.2, p + 2 * oc) }
                        if n > 3 { st(y.3, p + 3 * oc) }
                    }
                }
            }
        }
    }
}

// The weight gradient is the adjoint of the forward pass: with Y = Aᵀ (U ⊙ V) A and U = G g Gᵀ,
//     dUᵀ[ξ] = Σ_tiles V[ξ]ᵀ ⊗ dM[ξ],  dM = A dY Aᵀ per tile,  dg = Gᵀ dU G,
// 36 GEMMs with K = tiles, over up to 64 tiles of several images at once (`gradientSlots`). The
// image goes through the forward pass's channels-last load and input transform; the output
// gradient is transposed channels-last and transformed 16 output channels per vector.
extension Winograd4Plan {
    /// Images whose tiles one weight-gradient pass sums (so that K reaches ~64 tiles).
    var gradientSlots: Int { Swift.max(1, Swift.min(8, 64 / tilesPerSlot)) }
    /// Tiles per weight-gradient block and the ξ plane strides of its V and dM.
    var gradientBlock: Int { Swift.min(64, gradientSlots * tilesPerSlot) }
    var gradientVPlane: Int { gradientBlock * geo.c + 16 }
    var gradientMPlane: Int { gradientBlock * ocRow + 16 }
    /// Σ dUᵀ for one group: `[ξ][c][ocRow]`.
    var duCount: Int { 36 * geo.c * ocRow }
    /// One slot of the channels-last output gradient: `[4·th][4·tw][ocRow]`, zero past the output.
    var dyStride: Int { 16 * th * tw * ocRow }

    /// Scratch for the weight gradient on one thread, and the chunk's dU sums for every group. Without
    /// `ownGradient` (dX's images serve: `sharedGradientSource`) the output gradient gets no copy here.
    struct GradientWorkspace {
        let image, v, dy, dm, du: UnsafeMutablePointer<Float>
        let rows: UnsafeMutablePointer<Int>
        init(_ plan: Winograd4Plan, groups: Int, ownGradient: Bool = true) {
            let k = plan.gradientSlots, dyCount = ownGradient ? k * plan.dyStride : 0
            image = .allocate(capacity: k * plan.slotStride)
            for s in 0..<k { plan.zeroBorder(image + s * plan.slotStride) }
            v = .allocate(capacity: 36 * plan.gradientVPlane)
            dy = .allocate(capacity: dyCount); dy.initialize(repeating: 0, count: dyCount)
            dm = .allocate(capacity: 36 * plan.gradientMPlane)
            du = .allocate(capacity: groups * plan.duCount); du.initialize(repeating: 0, count: groups * plan.duCount)
            rows = .allocate(capacity: plan.gradientBlock)
            for t in 0..<plan.gradientBlock { rows[t] = t * plan.ocRow }
        }
        func deallocate() {
            image.deallocate(); v.deallocate(); dy.deallocate(); dm.deallocate(); du.deallocate(); rows.deallocate()
        }
    }

    /// Where the weight gradient reads the channels-last output gradient `[4·th][4·tw][ocRow]` (zero
    /// past the output): slot k's at `base + k · slotStride`, rows `rowStride` apart.
    struct GradientSource {
        let base: UnsafePointer<Float>
        let rowStride: Int, slotStride: Int
    }

    /// The workspace's own transposed copy of the output gradient.
    func ownGradientSource(_ g: GradientWorkspace) -> GradientSource {
        GradientSource(base: g.dy, rowStride: 4 * tw * ocRow, slotStride: dyStride)
    }

    /// The input-gradient pass's padded channels-last image of the output gradient in `slot` of `ws`,
    /// where it can stand in for the weight gradient's own copy (one transpose instead of two): one
    /// image per weight-gradient pass (so the slot is read before the input-gradient pass reuses it),
    /// as many channels as `ocRow`, and a zero border that covers the tiles past the output.
    func sharedGradientSource(_ dxPlan: Winograd4Plan, _ ws: Workspace, slot: Int) -> GradientSource? {
        guard readsGradient(of: dxPlan) else { return nil }
        let dg = dxPlan.geo
        return GradientSource(base: ws.image + slot * dxPlan.slotStride + (dg.ph * dxPlan.wsp + dg.pw) * dg.c,
                              rowStride: dxPlan.wsp * dg.c, slotStride: dxPlan.slotStride)
    }

    /// Whether `sharedGradientSource` can use `dxPlan`'s images (see there).
    func readsGradient(of dxPlan: Winograd4Plan) -> Bool {
        let dg = dxPlan.geo
        return gradientSlots == 1 && dg.c == ocRow && dg.h == geo.oh && dg.w == geo.ow
            && dg.ph + 4 * th <= dxPlan.hs && dg.pw + 4 * tw <= dxPlan.wsp
    }

    /// Loads one image (`x`: the group's `c` compact input planes) and, unless nil (a shared source
    /// holds it), its output gradient (`dy`: `outChannels` planes, rows `dyRowStride` apart, planes
    /// `dyPlaneStride`) into `slot`.
    func loadGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>?, dyRowStride: Int, dyPlaneStride: Int,
                      slot: Int, _ g: GradientWorkspace) {
        let (c, h, w) = (geo.c, geo.h, geo.w)
        transposeChannelsLast(x, channels: c, planeStride: h * w, rowStride: w, rows: h, cols: w,
                              into: g.image + slot * slotStride + (geo.ph * wsp + geo.pw) * c,
                              dstRowStride: wsp * c, dstChannels: c)
        guard let dy else { return }
        transposeChannelsLast(dy, channels: outChannels, planeStride: dyPlaneStride, rowStride: dyRowStride,
                              rows: geo.oh, cols: geo.ow, into: g.dy + slot * dyStride, dstRowStride: 4 * tw * ocRow,
                              dstChannels: ocRow)
    }

    /// Adds the first `count` loaded slots' dUᵀ into `du` (one group's `duCount` floats), reading the
    /// output gradient from `source` (default: the workspace's own copy).
    func accumulateWeightGradient(slots count: Int, _ g: GradientWorkspace, source: GradientSource? = nil,
                                  into du: UnsafeMutablePointer<Float>) {
        let source = source ?? ownGradientSource(g)
        let c = geo.c, total = count * tilesPerSlot, block = gradientBlock
        var t0 = 0
        while t0 < total {
            let t1 = Swift.min(total, t0 + block), nb = t1 - t0
            inputTransform(g.image, t0, t1, into: g.v, planeStride: gradientVPlane)
            outputGradientTransform(g, source, t0, t1)
            // dUᵀ[ξ] (c × ocRow) += Vᵀ · dM over the block's tiles: A = V read down its columns.
            for xi in 0..<36 {
                let a = UnsafePointer(g.v + xi * gradientVPlane), b = UnsafePointer(g.dm + xi * gradientMPlane)
                let cxi = du + xi * c * ocRow
                for i in stride(from: 0, to: c, by: 8) {
                    for j in stride(from: 0, to: ocRow, by: 32) {
                        let nr = Swift.min(32, outChannels - j) <= 16 ? 16 : 32
                        microKernel(nb, a + i, b + j, cxi + i * ocRow + j, ocRow, nil, 1, 8, nr,
                                    accumulate: true, bias: nil, relu: false, bRows: UnsafePointer(g.rows), aStride: c)
                    }
                }
            }
            t0 = t1
        }
    }

    /// dM[ξ][t][oc] = (A dY Aᵀ)[ξ] for tiles `t0..<t1`, 16 output channels per vector.
    @inline(never)
    private func outputGradientTransform(_ g: GradientWorkspace, _ source: GradientSource, _ t0: Int, _ t1: Int) {
        let rs = source.rowStride, mp = gradientMPlane, perSlot = tilesPerSlot
        for t in t0..<t1 {
            let slot = t / perSlot, ty = t % perSlot / tw, tx = t % tw
            let q = source.base + slot * source.slotStride + 4 * ty * rs + 4 * tx * ocRow
            for o0 in stride(from: 0, to: ocRow, by: 16) {
                // Each row of dY times Aᵀ (six columns), then A down each column: element ξ = 6i + j.
                @inline(__always) func row(_ r: Int) -> Six {
                    let p = q + r * rs + o0
                    return a6(ld(p), ld(p + ocRow), ld(p + 2 * ocRow), ld(p + 3 * ocRow))
                }
                let r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3)
                let d = g.dm + (t - t0) * ocRow + o0
                @inline(__always) func put(_ j: Int, _ s: Six) {
                    st(s.0, d + j * mp); st(s.1, d + (6 + j) * mp); st(s.2, d + (12 + j) * mp)
                    st(s.3, d + (18 + j) * mp); st(s.4, d + (24 + j) * mp); st(s.5, d + (30 + j) * mp)
                }
                put(0, a6(r0.0, r1.0, r2.0, r3.0)); put(1, a6(r0.1, r1.1, r2.1, r3.1)); put(2, a6(r0.2, r1.2, r2.2, r3.2))
                put(3, a6(r0.3, r1.3, r2.3, r3.3)); put(4, a6(r0.4, r1.4, r2.4, r3.4)); put(5, a6(r0.5, r1.5, r2.5, r3.5))
            }
        }
    }

    /// Adds dg = Gᵀ dU G (for every channel pair of one group) into `dw` (`[outC, c, 3, 3]`), 16 output
    /// channels per vector.
    func finishWeightGradient(_ du: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>) {
        let c = geo.c, xiStride = c * ocRow
        withUnsafeTemporaryAllocation(of: V16.self, capacity: 27) { buffer in
            let t = buffer.baseAddress!, dg = t + 18   // Gᵀ dU (3 × 6), then dg (3 × 3)
            for ci in 0..<c { for o0 in stride(from: 0, to: outChannels, by: 16) {
                let u = du + ci * ocRow + o0
                // Gᵀ down each column j (three rows), then each row times G.
                for j in 0..<6 {
                    let r = gTransposed(ld(u + j * xiStride), ld(u + (6 + j) * xiStride), ld(u + (12 + j) * xiStride),
                                        ld(u + (18 + j) * xiStride), ld(u + (24 + j) * xiStride), ld(u + (30 + j) * xiStride))
                    t[j] = r.0; t[6 + j] = r.1; t[12 + j] = r.2
                }
                for l in 0..<3 {
                    let r = gTransposed(t[6 * l], t[6 * l + 1], t[6 * l + 2], t[6 * l + 3], t[6 * l + 4], t[6 * l + 5])
                    dg[3 * l] = r.0; dg[3 * l + 1] = r.1; dg[3 * l + 2] = r.2
                }
                for lane in 0..<16 {
                    let d = dw + ((o0 + lane) * c + ci) * 9
                    for k in 0..<9 { d[k] += dg[k][lane] }
                }
            } }
        }
    }
}

/// G g for a 3-vector g (rows of G: [1/4 0 0], [−1/6 −1/6 −1/6], [−1/6 1/6 −1/6], [1/24 1/12 1/6],
/// [1/24 −1/12 1/6], [0 0 1]).
@inline(__always) private func gColumn(_ a: SIMD16<Double>, _ b: SIMD16<Double>, _ c: SIMD16<Double>)
    -> (SIMD16<Double>, SIMD16<Double>, SIMD16<Double>, SIMD16<Double>, SIMD16<Double>, SIMD16<Double>) {
    let ac = a + c, outer = a / 24 + c / 6, middle = b / 12
    return (a / 4, -(ac + b) / 6, (b - ac) / 6, outer + middle, outer - middle, c)
}

/// Gᵀ v for a 6-vector v (rows of Gᵀ: [1/4 −1/6 −1/6 1/24 1/24 0], [0 −1/6 1/6 1/12 −1/12 0],
/// [0 −1/6 −1/6 1/6 1/6 1]).
@inline(__always) private func gTransposed(_ v0: V16, _ v1: V16, _ v2: V16, _ v3: V16, _ v4: V16, _ v5: V16)
    -> (V16, V16, V16) {
    let sixth = V16(repeating: 1.0 / 6), twelfth = V16(repeating: 1.0 / 12), p = v1 + v2, q = v3 + v4
    return (V16(repeating: 0.25) * v0 - sixth * p + V16(repeating: 1.0 / 24) * q,
            sixth * (v2 - v1) + twelfth * (v3 - v4),
            sixth * (q - p) + v5)
}

/// A y for a 4-vector y (A = (Aᵀ)ᵀ, rows [1 0 0 0], [1 1 1 1], [1 −1 1 −1], [1 2 4 8], [1 −2 4 −8], [0 0 0 1]).
@inline(__always) private func a6(_ y0: V16, _ y1: V16, _ y2: V16, _ y3: V16) -> Six {
    let p = y0 + y2, q = y1 + y3, r = y0 + V16(repeating: 4) * y2, s = V16(repeating: 2) * y1 + V16(repeating: 8) * y3
    return (y0, p + q, p - q, r + s, r - s, y3)
}

/// What `winogradWeights` needs of a plan.
protocol WinogradWeightTransform {
    var geo: ConvGeometry { get }
    var outChannels: Int { get }
    var uCount: Int { get }
    func transformWeights(_ wt: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>)
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

