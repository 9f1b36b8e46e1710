import Foundation

// The shifted-rows path's wide-row forward and backward (conv2d's and the fused conv + ReLU + 2×2
// max-pool op's), and the deterministic reduction of per-chunk partial gradients both use.

extension ConvGeometry {
    /// `wide = relu?(W · shifted rows of xp + bias)` for one padded image and group: the GEMM's B rows
    /// point into `xp` (see `ConvAlgorithm`), the output keeps Wp-wide rows.
    func wideForward(_ xp: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                     _ wide: UnsafeMutablePointer<Float>, outChannels: Int, relu: Bool, taps: UnsafePointer<Int>) {
        sgemm(transA: false, transB: false, m: outChannels, n: wideLength, k: kSize, a: wt, lda: kSize,
              b: xp, ldb: 0, beta: 0, c: wide, ldc: wideLength, threads: 1, rowBias: bias, relu: relu, bRows: taps)
    }
}

/// Gradients of a unit-stride convolution on the shifted-rows path. `fill(image, group, dyw)` writes that
/// image's output gradient for one group in wide rows (zeros in the scratch columns); then dW reads the
/// padded image's shifted rows as Bᵀ, dX adds every tap's row of Wᵀ·dyw straight into the padded input
/// gradient (no im2col, no col2im), and db sums the wide rows. Per-chunk partials keep it deterministic.
/// 3×3 layers that Winograd applies to compute dX and dW with it instead (see `Winograd.swift`).
/// `reusing`: a buffer laid out like the input gradient (the output gradient of a layer that keeps its
/// shape), given only while the input has no gradient yet, that receives it — every image's region is
/// read by `fill` before that image's input gradient is written. Returns whether it did (the caller
/// hands it on).
func shiftedConvBackward(_ geo: ConvGeometry, _ algorithm: ConvAlgorithm, input: Tensor, weight: Tensor,
                         bias: Tensor?, groups: Int, taps: [Int], reusing reusable: UnsafeMutablePointer<Float>? = nil,
                         fill: (Int, Int, UnsafeMutablePointer<Float>) -> Void) -> Bool {
    let needX = input.requiresGrad, needW = weight.requiresGrad, needB = bias?.requiresGrad == true
    if !needX && !needW && !needB { return false }
    let n = input.shape[0], cout = weight.shape[0], ocg = cout / groups, cg = geo.c
    let kSize = geo.kSize, L = geo.wideLength, P = geo.paddedPlane, inPer = cg * groups * geo.h * geo.w
    let work = n * cout * geo.ohw * kSize * 2
    let chunks = Parallel.chunkCount(n, work: work)
    let wCount = needW ? weight.count : 0, partCount = wCount + (needB ? cout : 0)
    var partial = uninitializedFloats(chunks * partCount) { _ in }   // each chunk zeroes its own
    // dW channels-last when a group's channels fill whole 32-column panels: the image is transposed to
    // [position, channel] once (a few K floats), then each panel of B (one kernel tap's 32 channels) is
    // read in place along the output positions, instead of transposing im2col-sized rows into panels;
    // K runs over the real output positions only (no wide scratch columns).
    let winoDW = needW ? algorithm.weightGradientWinograd : nil, winoDW4 = needW ? algorithm.weightGradientWinograd4 : nil
    let hwc = needW && algorithm.weightGradientChannelsLast
    let taps9 = geo.kh * geo.kw, ohw = geo.ohw
    let pRows = hwc ? (0..<ohw).map { (($0 / geo.ow) * geo.sh * geo.wp + ($0 % geo.ow) * geo.sw) * cg } : []
    let panelCols = hwc ? (0..<(kSize / 32)).map { j -> Int in
        let tap = j * 32 / cg, ci0 = j * 32 % cg
        return ((tap / geo.kw) * geo.wp + tap % geo.kw) * cg + ci0
    } : []
    // dX as a Winograd forward pass over the output gradient, where it applies.
    let winoX = needX ? algorithm.inputGradientWinograd : nil, winoX4 = needX ? algorithm.inputGradientWinograd4 : nil
    let uX = winoX.map { plan in weight.withUnsafeBufferPointer { winogradWeights($0, plan, groups: groups, flipped: true) } }
    let uX4 = winoX4.map { plan in weight.withUnsafeBufferPointer { winogradWeights($0, plan, groups: groups, flipped: true) } }
    defer { uX?.deallocate(); uX4?.deallocate() }
    // Every image's input gradient is written exactly once (per group) below: stored into a new buffer
    // (no zero fill), or added where the input already has a gradient (a residual block's input: no
    // separate pass adding the two).
    func backwardPass(_ dxBase: UnsafeMutablePointer<Float>?, addX: Bool) {
        input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pw in
        partial.withUnsafeMutableBufferPointer { pp in
        taps.withUnsafeBufferPointer { tp in pRows.withUnsafeBufferPointer { prow in panelCols.withUnsafeBufferPointer { pcol in
            let x = px.baseAddress!, wt = pw.baseAddress!, pBase = pp.baseAddress
            Parallel.forChunksIndexed(n, work: work) { chunk, range in
                // the GEMM paths' padded image (dW) and padded input gradient (dX)
                let xp = UnsafeMutablePointer<Float>.allocate(capacity: needW && winoDW == nil && winoDW4 == nil && !hwc ? cg * P : 0)
                let dxp = UnsafeMutablePointer<Float>.allocate(capacity: needX && winoX == nil && winoX4 == nil ? cg * P : 0)
                let dyw = UnsafeMutablePointer<Float>.allocate(capacity: ocg * L)
                // channels-last path: the image, the compact output gradient, dW in [oc, tap, channel] order
                let xh = UnsafeMutablePointer<Float>.allocate(capacity: hwc ? geo.hp * geo.wp * cg : 0)
                let dyc = UnsafeMutablePointer<Float>.allocate(capacity: hwc ? ocg * ohw : 0)
                let dwt = UnsafeMutablePointer<Float>.allocate(capacity: hwc ? groups * ocg * kSize : 0)
                if hwc { dwt.initialize(repeating: 0, count: groups * ocg * kSize) }
                defer { xp.deallocate(); dxp.deallocate(); dyw.deallocate(); xh.deallocate(); dyc.deallocate(); dwt.deallocate() }
                let wsW = winoDW.map { WinogradPlan.GradientWorkspace($0, groups: groups) }
                let wsW4 = winoDW4.map { dw in
                    Winograd4Plan.GradientWorkspace(dw, groups: groups, ownGradient: !(winoX4.map { dw.readsGradient(of: $0) } ?? false))
                }
                defer { wsW?.deallocate(); wsW4?.deallocate() }
                let wsX = winoX.map { WinogradPlan.Workspace($0) }
                let stageX = UnsafeMutablePointer<Float>.allocate(capacity: winoX.map { cg * geo.h * $0.stageStride } ?? 0)
                defer { wsX?.deallocate(); stageX.deallocate() }
                let wsX4 = winoX4.map { Winograd4Plan.Workspace($0, pooled: false) }
                defer { wsX4?.deallocate() }
                let part = pBase.map { $0 + chunk * partCount }
                part?.initialize(repeating: 0, count: partCount)
                // Groups outer: F(4×4, 3×3)'s dX and dW run once per batch of consecutive images of one group.
                for gi in 0..<groups { var pendingX = 0, pendingW = 0; for s in range {
                    fill(s, gi, dyw)
                    if needB {
                        let db = part! + wCount + gi * ocg
                        for oc in 0..<ocg { db[oc] += simdSum(dyw + oc * L, L) }
                    }
                    // Images join a batch in the next slot; a full batch, or the chunk's last image, runs it.
                    @inline(__always) func batch(_ pending: inout Int, of size: Int, _ run: (Int) -> Void) {
                        pending += 1
                        if pending == size || s == range.upperBound - 1 { run(pending); pending = 0 }
                    }
                    // F(4×4)'s dX loads the output gradient channels-last first: where its padded image can
                    // serve dW too (`sharedGradientSource`), dW does not transpose it again.
                    var sharedDy: Winograd4Plan.GradientSource?
                    if let winoX4, let wsX4 {
                        winoX4.load(dyw, slot: pendingX, wsX4, rowStride: geo.wp, planeStride: L)
                        sharedDy = winoDW4?.sharedGradientSource(winoX4, wsX4, slot: pendingX)
                    }
                    if let winoDW4, let wsW4 {
                        winoDW4.loadGradient(x + s * inPer + gi * cg * geo.h * geo.w, sharedDy == nil ? dyw : nil,
                                             dyRowStride: geo.wp, dyPlaneStride: L, slot: pendingW, wsW4)
                        batch(&pendingW, of: winoDW4.gradientSlots) { count in
                            Profiler.measure("conv bwd dW winograd4") {
                                winoDW4.accumulateWeightGradient(slots: count, wsW4, source: sharedDy,
                                                                 into: wsW4.du + gi * winoDW4.duCount)
                            }
                        }
                    } else if let winoDW, let wsW {
                        Profiler.measure("conv bwd dW winograd") {
                            winoDW.accumulateWeightGradient(x + s * inPer + gi * cg * geo.h * geo.w, dyw, dyRowStride: geo.wp,
                                                            dyPlaneStride: L, wsW, into: wsW.du + gi * winoDW.duCount)
                        }
                    } else if hwc {
                        geo.padChannelsLast(x + s * inPer + gi * cg * geo.h * geo.w, into: xh)
                        geo.compactWide(dyw, into: dyc, channels: ocg)
                        Profiler.measure("conv bwd dW gemm") {
                            sgemm(transA: false, transB: false, m: ocg, n: kSize, k: ohw, a: dyc, lda: ohw, b: xh, ldb: 0,
                                  beta: 1, c: dwt + gi * ocg * kSize, ldc: kSize, threads: 1, rowBias: nil, relu: false,
                                  bRows: prow.baseAddress, bCols: pcol.baseAddress)
                        }
                    } else if needW {
                        geo.pad(x + s * inPer + gi * cg * geo.h * geo.w, into: xp)
                        Profiler.measure("conv bwd dW gemm") {
                            sgemm(transA: false, transB: true, m: ocg, n: kSize, k: L, a: dyw, lda: L, b: xp, ldb: 0,
                                  beta: 1, c: part! + gi * ocg * kSize, ldc: kSize, threads: 1,
                                  rowBias: nil, relu: false, bRows: tp.baseAddress)
                        }
                    }
                    if let winoX4, let wsX4, let uX4 {
                        batch(&pendingX, of: winoX4.slots) { count in
                            let s0 = s + 1 - count
                            Profiler.measure("conv bwd dX winograd4") {
                                let dx = dxBase! + s0 * inPer + gi * cg * geo.h * geo.w
                                winoX4.forward(wsX4, slots: count, uX4 + gi * winoX4.uCount, bias: nil,
                                               addX ? .add(dx, slotStride: inPer) : .full(dx, slotStride: inPer, relu: false))
                            }
                        }
                    } else if let winoX, let wsX, let uX {
                        Profiler.measure("conv bwd dX winograd") {
                            winoX.load(dyw, wsX, rowStride: geo.wp, planeStride: L)
                            winoX.forward(wsX, uX + gi * winoX.uCount, bias: nil, .full(stageX, relu: false))
                        }
                        winoX.copyFull(stageX, into: dxBase! + s * inPer + gi * cg * geo.h * geo.w, add: addX)
                    } else if needX {
                        dxp.update(repeating: 0, count: cg * P)
                        Profiler.measure("conv bwd dX gemm") {
                            sgemm(transA: true, transB: false, m: kSize, n: L, k: ocg, a: wt + gi * ocg * kSize,
                                  lda: kSize, b: dyw, ldb: L, beta: 1, c: dxp, ldc: 0, threads: 1,
                                  rowBias: nil, relu: false, cRows: tp.baseAddress)
                        }
                        geo.unpad(dxp, into: dxBase! + s * inPer + gi * cg * geo.h * geo.w, add: addX)
                    }
                } }
                if let winoDW4, let wsW4 {
                    for gi in 0..<groups {
                        winoDW4.finishWeightGradient(wsW4.du + gi * winoDW4.duCount, into: part! + gi * ocg * kSize)
                    }
                }
                if let winoDW, let wsW {
                    for gi in 0..<groups {
                        winoDW.finishWeightGradient(wsW.du + gi * winoDW.duCount, into: part! + gi * ocg * kSize)
                    }
                }
                if hwc {
                    // [oc, tap, channel] → the weight's [oc, channel, tap] order
                    for gi in 0..<groups { for oc in 0..<ocg {
                        let src = dwt + (gi * ocg + oc) * kSize, dst = part! + (gi * ocg + oc) * kSize
                        for tap in 0..<taps9 { for ci in 0..<cg { dst[ci * taps9 + tap] += src[tap * cg + ci] } }
                    } }
                }
            }
        } } } } } }
    }
    var reused = false
    if needX, let reusable {
        backwardPass(reusable, addX: false)
        reused = true
    } else if needX {
        input.accumulate(overwriting: { dx, fresh in backwardPass(dx.baseAddress, addX: !fresh) })
    } else {
        backwardPass(nil, addX: false)
    }
    if needW { reducePartials(into: weight, partial, chunks: chunks, stride: partCount) }
    if let bias, needB { reducePartials(into: bias, partial, chunks: chunks, stride: partCount, offset: wCount) }
    return reused
}

/// Adds per-chunk partial gradients (chunk c's at `c * stride + offset`) into `t`'s gradient, in chunk
/// order, so the sum depends only on the thread count.
func reducePartials(into t: Tensor, _ partial: [Float], chunks: Int, stride: Int, offset: Int = 0) {
    let count = t.count
    t.accumulate { d in
        partial.withUnsafeBufferPointer { p in
            // Split by element: each element still adds its partials in chunk order, whichever thread
            // runs it (the same sums as one thread; a big layer's 8 partials no longer wait on one core).
            Parallel.forChunks(count, work: count * chunks, streaming: true) { r in
                for c in 0..<chunks {
                    let src = p.baseAddress! + c * stride + offset
                    for i in r { d[i] += src[i] }
                }
            }
        }
    }
}
