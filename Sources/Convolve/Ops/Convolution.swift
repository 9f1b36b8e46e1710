import Foundation
import RealModule


/// Output length of a convolution or pooling window along one axis (PyTorch's formula).
/// - Parameters:
///   - input: input length.
///   - kernel: window length.
///   - stride: step between windows.
///   - padding: padding on each side.
///   - dilation: spacing between window elements.
///   - ceilMode: round up instead of down (pooling).
/// - Returns: the output length (0 when the window does not fit).
public func convOutputSize(_ input: Int, kernel: Int, stride: Int, padding: Int, dilation: Int = 1,
                           ceilMode: Bool = false) -> Int {
    let span = input + 2 * padding - dilation * (kernel - 1) - 1
    if span < 0 { return 0 }
    var out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
    // In ceil mode the last window must start inside the input or the left padding.
    if ceilMode && (out - 1) * stride >= input + padding { out -= 1 }
    return out
}

/// Checks a convolution's shapes (PyTorch's errors) and returns its per-group geometry.
func convGeometry(_ input: Tensor, _ weight: Tensor, _ bias: Tensor?, _ stride: (Int, Int), _ padding: (Int, Int),
                  _ dilation: (Int, Int), _ groups: Int) -> ConvGeometry {
    precondition(input.rank == 4, "conv2d expects NCHW input, got shape \(input.shape)")
    precondition(weight.rank == 4, "conv2d weight must be [out, in/groups, kh, kw], got \(weight.shape)")
    let (cin, h, w) = (input.shape[1], input.shape[2], input.shape[3])
    let (cout, cg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
    precondition(cin == cg * groups && cout % groups == 0,
                 "conv2d: input has \(cin) channels, weight \(weight.shape) with groups \(groups)")
    if let bias { precondition(bias.count == cout, "conv2d bias must have \(cout) elements") }
    let oh = convOutputSize(h, kernel: kh, stride: stride.0, padding: padding.0, dilation: dilation.0)
    let ow = convOutputSize(w, kernel: kw, stride: stride.1, padding: padding.1, dilation: dilation.1)
    precondition(oh > 0 && ow > 0, "conv2d: kernel \(kh)x\(kw) larger than padded input \(h)x\(w)")
    return ConvGeometry(c: cg, h: h, w: w, kh: kh, kw: kw, sh: stride.0, sw: stride.1,
                        ph: padding.0, pw: padding.1, dh: dilation.0, dw: dilation.1, oh: oh, ow: ow)
}

/// How one convolution computes its output and each of its gradients. This is the only place the
/// choice is made (the ops below and the fused conv + ReLU + pool read it); every fast path is entered
/// only with a geometry its own predicate accepts.
///
/// * `direct` — few output channels × taps (≤ 512), unit stride and dilation: the wide-row kernels of
///   `DirectConvolution.swift` for the forward pass and both gradients.
/// * `shiftedRows` — other undilated, non-pointwise layers: GEMM over shifted rows of the padded
///   image (strided layers: the gradients over its polyphase layout, `Polyphase.swift`, the forward
///   pass as im2col — `forwardIm2col`). Within it (and with `Winograd.active`), the forward pass and the input gradient run
///   as Winograd F(4×4, 3×3) channels-last where channel counts are multiples of 16 (`Winograd4Plan`),
///   else as F(2×2, 3×3) (`WinogradPlan`), and the weight gradient as F(2×2, 3×3) wherever the
///   predicates allow; the weight gradient without Winograd reads a channels-last image when a
///   group's channels fill 32-wide panels.
/// * `im2col` — dilated or pointwise layers: im2col (skipped for 1×1) + GEMM per image, both passes.
struct ConvAlgorithm {
    enum Family { case direct, shiftedRows, im2col }
    let family: Family
    /// F(2×2, 3×3) plans for the forward pass, the input gradient and the weight gradient (nil: GEMM,
    /// or the F(4×4, 3×3) plan below).
    let forwardWinograd: WinogradPlan?
    let inputGradientWinograd: WinogradPlan?
    /// F(4×4, 3×3) channels-last plans for the forward pass and the input gradient.
    let forwardWinograd4: Winograd4Plan?
    let inputGradientWinograd4: Winograd4Plan?
    /// The F(4×4, 3×3) weight gradient: the forward plan's adjoint (then `weightGradientWinograd` is nil).
    var weightGradientWinograd4: Winograd4Plan? { forwardWinograd4 }
    let weightGradientWinograd: WinogradPlan?
    /// The shifted-rows weight gradient reads a channels-last copy of the image (no Winograd dW).
    let weightGradientChannelsLast: Bool
    /// A strided layer's forward pass runs as im2col + GEMM although its gradients use the polyphase
    /// layout: there the wide rows' scratch columns (⌈Wp / sw⌉ − OW per row; 6–12% more GEMM columns on
    /// ResNet's stride-2 layers, more once rounded to panels) cost more than the one im2col pass they
    /// would save, while the gradients save both the im2col and the col2im pass (BENCHMARKS-HISTORY.md, session 9).
    let forwardIm2col: Bool

    init(_ geo: ConvGeometry, outChannels: Int) {
        let undilated = geo.dh == 1 && geo.dw == 1, unit = undilated && geo.sh == 1 && geo.sw == 1
        if unit && outChannels * geo.kSize <= 512 {
            family = .direct
        } else if undilated && !geo.isPointwise {
            family = .shiftedRows
        } else {
            family = .im2col
        }
        let winograd = family == .shiftedRows && Winograd.active
        forwardWinograd4 = winograd && Winograd4Plan.handles(geo, outChannels: outChannels)
            ? Winograd4Plan(geo, outChannels: outChannels) : nil
        inputGradientWinograd4 = winograd && Winograd4Plan.handlesInputGradient(of: geo, outChannels: outChannels)
            ? Winograd4Plan(inputGradientOf: geo, outChannels: outChannels) : nil
        let f23 = winograd && WinogradPlan.handles(geo, outChannels: outChannels)
            ? WinogradPlan(geo, outChannels: outChannels) : nil
        forwardWinograd = forwardWinograd4 == nil ? f23 : nil
        inputGradientWinograd = inputGradientWinograd4 == nil && winograd
            && WinogradPlan.handlesInputGradient(of: geo, outChannels: outChannels)
            ? WinogradPlan(inputGradientOf: geo, outChannels: outChannels) : nil
        weightGradientWinograd = forwardWinograd4 == nil ? f23.flatMap { $0.handlesWeightGradient ? $0 : nil } : nil
        weightGradientChannelsLast = family == .shiftedRows && weightGradientWinograd == nil && geo.c % 32 == 0
        forwardIm2col = family == .im2col || (family == .shiftedRows && !unit)
    }
}

/// The untraced body of `conv2d` (see there).
func conv2dUntraced(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                   stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                   dilation: (Int, Int) = (1, 1), groups: Int = 1, fusedReLU: Bool = false) -> Tensor {
    let geo = convGeometry(input, weight, bias, stride, padding, dilation, groups)
    let (n, cin, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (cout, cg, oh, ow) = (weight.shape[0], geo.c, geo.oh, geo.ow)
    let ocg = cout / groups
    let ohw = geo.ohw, kSize = geo.kSize
    let inPer = cin * h * w, outPer = cout * ohw
    // Every output element is written below (bias fill or beta-0 GEMM, or the direct kernel's rows).
    var out = n * outPer == 0 ? [] : [Float](unsafeUninitializedCapacity: n * outPer) { _, count in count = n * outPer }
    let work = n * cout * ohw * kSize
    let algorithm = ConvAlgorithm(geo, outChannels: ocg)
    let direct = algorithm.family == .direct, shifted = algorithm.family == .shiftedRows
    let shiftedForward = shifted && !algorithm.forwardIm2col
    let taps = shifted ? geo.tapOffsets() : []
    let wino = algorithm.forwardWinograd, wino4 = algorithm.forwardWinograd4
    let uBuf = wino.map { plan in weight.withUnsafeBufferPointer { winogradWeights($0, plan, groups: groups) } }
    let u4 = wino4.map { plan in weight.withUnsafeBufferPointer { winogradWeights($0, plan, groups: groups) } }
    defer { uBuf?.deallocate(); u4?.deallocate() }

    input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pw in
    out.withUnsafeMutableBufferPointer { po in
        let x = px.baseAddress!, wt = pw.baseAddress!, o = po.baseAddress!
        let b = bias?.storage
        let family = direct ? "direct" : wino4 != nil ? "winograd4" : wino != nil ? "winograd" : shiftedForward ? "shifted rows" : "im2col"
        Profiler.measure("conv fwd \(family) (wall)") {
        Parallel.forChunks(n, work: work) { range in
            if direct {
                let xp = UnsafeMutablePointer<Float>.allocate(capacity: cg * geo.paddedPlane)
                let wide = UnsafeMutablePointer<Float>.allocate(capacity: 2 * geo.wideCapacity)
                defer { xp.deallocate(); wide.deallocate() }
                b.withUnsafeBufferPointerOrNil { bp in
                    for s in range { for g in 0..<groups {
                        geo.pad(x + s * inPer + g * cg * h * w, into: xp)
                        geo.directForward(xp, wt + g * ocg * kSize, bp.map { $0 + g * ocg },
                                          o + s * outPer + g * ocg * ohw, wide, outChannels: ocg)
                    } }
                    if fusedReLU { reluInPlace(o + range.lowerBound * outPer, range.count * outPer) }
                }
                return
            }
            if let wino4, let u = u4 {
                let ws = Winograd4Plan.Workspace(wino4, pooled: false)
                defer { ws.deallocate() }
                b.withUnsafeBufferPointerOrNil { bp in
                    for g in 0..<groups {
                        wino4.forward(images: range, ws, input: { x + $0 * inPer + g * cg * h * w }, u + g * wino4.uCount,
                                      bias: bp.map { $0 + g * ocg }) {
                            .full(o + $0 * outPer + g * ocg * ohw, slotStride: outPer, relu: fusedReLU)
                        }
                    }
                }
                return
            }
            if let wino, let u = uBuf {
                let ws = WinogradPlan.Workspace(wino)
                let stage = UnsafeMutablePointer<Float>.allocate(capacity: ocg * oh * wino.stageStride)
                defer { ws.deallocate(); stage.deallocate() }
                b.withUnsafeBufferPointerOrNil { bp in
                    for s in range { for g in 0..<groups {
                        wino.load(x + s * inPer + g * cg * h * w, ws)
                        wino.forward(ws, u + g * wino.uCount, bias: bp.map { $0 + g * ocg },
                                     .full(stage, relu: fusedReLU))
                        wino.copyFull(stage, into: o + s * outPer + g * ocg * ohw)
                    } }
                }
                return
            }
            if shiftedForward {
                // GEMM over the wide output with B's rows pointing into the padded image (no im2col);
                // without scratch columns (a wide row is an output row) it stores the output directly.
                let L = geo.wideLength, scratch = L != ohw
                let xp = UnsafeMutablePointer<Float>.allocate(capacity: cg * geo.paddedPlane)
                let wide = UnsafeMutablePointer<Float>.allocate(capacity: scratch ? ocg * L : 0)
                defer { xp.deallocate(); wide.deallocate() }
                taps.withUnsafeBufferPointer { tp in b.withUnsafeBufferPointerOrNil { bp in
                    for s in range { for g in 0..<groups {
                        let os = o + s * outPer + g * ocg * ohw
                        geo.pad(x + s * inPer + g * cg * h * w, into: xp)
                        geo.wideForward(xp, wt + g * ocg * kSize, bp.map { $0 + g * ocg }, scratch ? wide : os,
                                        outChannels: ocg, relu: fusedReLU, taps: tp.baseAddress!)
                        if scratch { geo.compactWide(wide, into: os, channels: ocg) }
                    } }
                } }
                return
            }
            let col = geo.isPointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: kSize * ohw)
            defer { col?.deallocate() }
            for s in range {
                for g in 0..<groups {
                    let xs = x + s * inPer + g * cg * h * w
                    let src: UnsafePointer<Float>
                    if let col { geo.im2col(xs, col); src = UnsafePointer(col) } else { src = xs }
                    let os = o + s * outPer + g * ocg * ohw
                    b.withUnsafeBufferPointerOrNil { bp in
                        sgemm(transA: false, transB: false, m: ocg, n: ohw, k: kSize, a: wt + g * ocg * kSize, lda: kSize,
                              b: src, ldb: ohw, beta: 0, c: os, ldc: ohw, threads: 1,
                              rowBias: bp.map { $0 + g * ocg }, relu: fusedReLU)
                    }
                }
            }
        }
        }
    } } }

    var inputs = [input, weight]
    if let bias { inputs.append(bias) }
    return Tensor.resultOwningGradient(out, [n, cout, oh, ow], inputs, op: "conv2d") { gOut in
        if shifted {
            // The fused ReLU's mask is applied as each image's gradient is copied into wide rows.
            func run(_ g: UnsafeMutablePointer<Float>, reusable: Bool) -> Bool {
                out.withUnsafeBufferPointer { po in
                    shiftedConvBackward(geo, algorithm, input: input, weight: weight, bias: bias, groups: groups,
                                        taps: taps, reusing: reusable ? g : nil) { s, gi, dyw in
                        let off = (s * cout + gi * ocg) * ohw
                        geo.widen(g + off, into: dyw, channels: ocg, reluOutput: fusedReLU ? po.baseAddress! + off : nil)
                    }
                }
            }
            // A layer that keeps its shape (one group) can write the input gradient over the output
            // gradient it owns: each image's region is the same in both and is read before it is written.
            let reusable = groups == 1 && gOut.count == input.count && input.requiresGrad && input.pendingGrad == nil
            if gOut.withBaseAddress(writing: reusable, { run($0, reusable: reusable) }) { input.accumulate(gOut) }
            return
        }
        // A fused ReLU passes the gradient where the output is positive: the direct path masks each
        // image's gradient in a cache-sized buffer, the others up front. The bias gradient is summed
        // per image inside the parallel pass (per-chunk partials, like the weight gradient's).
        let maskInLoop = fusedReLU && direct
        let needB = bias?.requiresGrad == true
        let g = fusedReLU && !maskInLoop ? reluMask(gOut, out) : gOut
        // Per-chunk partials are zeroed by their own chunk, in parallel and in that chunk's cache.
        let chunks = Parallel.chunkCount(n, work: work * 2)
        var biasPartial = uninitializedFloats(needB ? chunks * cout : 0) { _ in }
        g.withUnsafeBufferPointer { pg in out.withUnsafeBufferPointer { po in
            let gp = pg.baseAddress!, op = po.baseAddress!
            let needX = input.requiresGrad, needW = weight.requiresGrad
            if !needX && !needW && !needB { return }
            // Per-chunk weight-gradient partials, reduced after the parallel pass.
            let wCount = weight.count
            var partial = uninitializedFloats(needW ? chunks * wCount : 0) { _ in }
            // Every path adds into the input gradient, so it adds straight into the pending one (zero-filled
            // when new): a residual block's shortcut needs no separate pass adding its gradient to the other's.
            func backwardPass(_ dxBase: UnsafeMutablePointer<Float>?) {
                input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pw in
                partial.withUnsafeMutableBufferPointer { pp in
                biasPartial.withUnsafeMutableBufferPointer { pb in
                    let x = px.baseAddress!, wt = pw.baseAddress!
                    let pBase = pp.baseAddress
                    /// Adds one image's per-channel gradient sums (group `gi`) to chunk `chunk`'s bias partial.
                    func sumBias(_ chunk: Int, _ gi: Int, _ gs: UnsafePointer<Float>) {
                        let db = pb.baseAddress! + chunk * cout + gi * ocg
                        for oc in 0..<ocg { db[oc] += simdSum(gs + oc * ohw, ohw) }
                    }
                    Parallel.forChunksIndexed(n, work: work * 2) { chunk, range in
                        if needW { (pBase! + chunk * wCount).initialize(repeating: 0, count: wCount) }
                        if needB { (pb.baseAddress! + chunk * cout).initialize(repeating: 0, count: cout) }
                        if direct {
                            let xp = UnsafeMutablePointer<Float>.allocate(capacity: cg * geo.paddedPlane)
                            let dxp = UnsafeMutablePointer<Float>.allocate(capacity: cg * geo.paddedPlane)
                            let gbuf = UnsafeMutablePointer<Float>.allocate(capacity: ocg * geo.gradPlane)
                            let gm = UnsafeMutablePointer<Float>.allocate(capacity: maskInLoop ? ocg * ohw : 0)
                            defer { xp.deallocate(); dxp.deallocate(); gbuf.deallocate(); gm.deallocate() }
                            for s in range { for gi in 0..<groups {
                                var gs = UnsafePointer(gp + s * outPer + gi * ocg * ohw)
                                if maskInLoop {
                                    let o = op + s * outPer + gi * ocg * ohw
                                    for i in 0..<(ocg * ohw) { gm[i] = o[i] > 0 ? gs[i] : 0 }
                                    gs = UnsafePointer(gm)
                                }
                                if needB { sumBias(chunk, gi, gs) }
                                if !needX && !needW { continue }
                                if needW { geo.pad(x + s * inPer + gi * cg * h * w, into: xp) }
                                geo.directBackward(xp, wt + gi * ocg * kSize, gs,
                                                   needW ? pBase! + chunk * wCount + gi * ocg * kSize : nil,
                                                   needX ? dxp : nil, gbuf, outChannels: ocg)
                                if needX { geo.unpadAdd(dxp, into: dxBase! + s * inPer + gi * cg * h * w) }
                            } }
                            return
                        }
                        let col = UnsafeMutablePointer<Float>.allocate(capacity: kSize * ohw)
                        defer { col.deallocate() }
                        for s in range {
                            for gi in 0..<groups {
                                let gs = gp + s * outPer + gi * ocg * ohw
                                if needB { sumBias(chunk, gi, gs) }
                                if needW {
                                    let xs = x + s * inPer + gi * cg * h * w
                                    let src: UnsafePointer<Float>
                                    if geo.isPointwise { src = xs } else { Profiler.measure("conv bwd im2col") { geo.im2col(xs, col) }; src = UnsafePointer(col) }
                                    Profiler.measure("conv bwd dW gemm") {
                                    sgemm(transA: false, transB: true, m: ocg, n: kSize, k: ohw, a: gs, lda: ohw,
                                          b: src, ldb: ohw, beta: 1, c: pBase! + chunk * wCount + gi * ocg * kSize,
                                          ldc: kSize, threads: 1) }
                                }
                                if needX {
                                    let dxs = dxBase! + s * inPer + gi * cg * h * w
                                    if geo.isPointwise {
                                        sgemm(transA: true, transB: false, m: kSize, n: ohw, k: ocg, a: wt + gi * ocg * kSize,
                                              lda: kSize, b: gs, ldb: ohw, beta: 1, c: dxs, ldc: ohw, threads: 1)
                                    } else {
                                        Profiler.measure("conv bwd dX gemm") {
                                        sgemm(transA: true, transB: false, m: kSize, n: ohw, k: ocg, a: wt + gi * ocg * kSize,
                                              lda: kSize, b: gs, ldb: ohw, beta: 0, c: col, ldc: ohw, threads: 1) }
                                        Profiler.measure("conv bwd col2im") { geo.col2im(col, dxs) }
                                    }
                                }
                            }
                        }
                    }
                } } } }
            }
            if needX { input.accumulate { backwardPass($0.baseAddress) } } else { backwardPass(nil) }
            if needW { reducePartials(into: weight, partial, chunks: chunks, stride: wCount) }
            if let bias, needB { reducePartials(into: bias, biasPartial, chunks: chunks, stride: cout) }
        } }
    }
}

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

/// The untraced body of `conv2dReLUMaxPool2x2` (see there).
func conv2dReLUMaxPool2x2Untraced(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                                 padding: (Int, Int) = (0, 0), groups: Int = 1) -> Tensor {
    let geo = convGeometry(input, weight, bias, (1, 1), padding, (1, 1), groups)
    let n = input.shape[0], cout = weight.shape[0], ocg = cout / groups, cg = geo.c
    let algorithm = ConvAlgorithm(geo, outChannels: ocg)
    guard algorithm.family == .shiftedRows && geo.oh >= 2 && geo.ow >= 2 else {
        return maxPool2d(conv2d(input, weight: weight, bias: bias, padding: padding, groups: groups, fusedReLU: true),
                         kernelSize: (2, 2))
    }
    let (ph, pw) = (geo.oh / 2, geo.ow / 2), pooled = ph * pw, outPer = cout * pooled
    let L = geo.wideLength, inPer = cg * groups * geo.h * geo.w, kSize = geo.kSize
    let taps = geo.tapOffsets()
    let wino = algorithm.forwardWinograd, wino4 = algorithm.forwardWinograd4
    let uBuf = wino.map { plan in weight.withUnsafeBufferPointer { winogradWeights($0, plan, groups: groups) } }
    let u4 = wino4.map { plan in weight.withUnsafeBufferPointer { winogradWeights($0, plan, groups: groups) } }
    defer { uBuf?.deallocate(); u4?.deallocate() }
    var out = n * outPer == 0 ? [] : [Float](unsafeUninitializedCapacity: n * outPer) { _, c in c = n * outPer }
    var arg = n * outPer == 0 ? [] : [UInt8](unsafeUninitializedCapacity: n * outPer) { _, c in c = n * outPer }
    // Without a gradient to route, the F(4×4, 3×3) path skips the winners (evaluation).
    let needsWinners = GradMode.isEnabled && ([input, weight] + (bias.map { [$0] } ?? [])).contains { $0.requiresGrad }
    input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pwt in
    out.withUnsafeMutableBufferPointer { po in arg.withUnsafeMutableBufferPointer { pa in
    taps.withUnsafeBufferPointer { tp in (bias?.storage).withUnsafeBufferPointerOrNil { bp in
        Parallel.forChunks(n, work: n * cout * geo.ohw * kSize) { range in
            if let wino4, let u = u4 {
                // Each 4×4 tile holds four pooling windows.
                let ws = Winograd4Plan.Workspace(wino4, pooled: true)
                defer { ws.deallocate() }
                for g in 0..<groups {
                    wino4.forward(images: range, ws, input: { px.baseAddress! + $0 * inPer + g * cg * geo.h * geo.w },
                                  u + g * wino4.uCount, bias: bp.map { $0 + g * ocg }) {
                        let o = ($0 * cout + g * ocg) * pooled
                        return .reluPool(po.baseAddress! + o, needsWinners ? pa.baseAddress! + o : nil, slotStride: outPer)
                    }
                }
                return
            }
            if let wino, let u = uBuf {
                // Each Winograd tile is one pooling window: pooled rows go to staging, then compact rows.
                let ws = WinogradPlan.Workspace(wino), stride = wino.poolStride
                let stage = UnsafeMutablePointer<Float>.allocate(capacity: ocg * ph * stride)
                let stageArg = UnsafeMutablePointer<UInt8>.allocate(capacity: ocg * ph * stride)
                defer { ws.deallocate(); stage.deallocate(); stageArg.deallocate() }
                for s in range { for g in 0..<groups {
                    wino.load(px.baseAddress! + s * inPer + g * cg * geo.h * geo.w, ws)
                    wino.forward(ws, u + g * wino.uCount, bias: bp.map { $0 + g * ocg }, .reluPool(stage, stageArg))
                    let o = (s * cout + g * ocg) * pooled
                    for r in 0..<(ocg * ph) {
                        copyFloats(po.baseAddress! + o + r * pw, stage + r * stride, pw)
                        (pa.baseAddress! + o + r * pw).update(from: stageArg + r * stride, count: pw)
                    }
                } }
                return
            }
            let xp = UnsafeMutablePointer<Float>.allocate(capacity: cg * geo.paddedPlane)
            let wide = UnsafeMutablePointer<Float>.allocate(capacity: ocg * L)
            defer { xp.deallocate(); wide.deallocate() }
            for s in range { for g in 0..<groups {
                geo.pad(px.baseAddress! + s * inPer + g * cg * geo.h * geo.w, into: xp)
                geo.wideForward(xp, pwt.baseAddress! + g * ocg * kSize, bp.map { $0 + g * ocg }, wide,
                                outChannels: ocg, relu: true, taps: tp.baseAddress!)
                for oc in 0..<ocg {
                    let o = (s * cout + g * ocg + oc) * pooled
                    maxPool2x2Plane(wide + oc * L, rowStride: geo.wp, oh: ph, ow: pw,
                                    po.baseAddress! + o, pa.baseAddress! + o)
                }
            } }
        }
    } } } } } }
    var inputs = [input, weight]
    if let bias { inputs.append(bias) }
    return Tensor.result(out, [n, cout, ph, pw], inputs, op: "conv2dReLUMaxPool2x2") { g in
        g.withUnsafeBufferPointer { pg in out.withUnsafeBufferPointer { po in arg.withUnsafeBufferPointer { pa in
            _ = shiftedConvBackward(geo, algorithm, input: input, weight: weight, bias: bias, groups: groups,
                                    taps: taps) { s, gi, dyw in
                for oc in 0..<ocg {
                    let o = (s * cout + gi * ocg + oc) * pooled
                    // The winner gets the gradient where the pooled (ReLU) output is positive.
                    unpool2x2Plane(pg.baseAddress! + o, pa.baseAddress! + o, mask: po.baseAddress! + o, oh: ph, ow: pw,
                                   rows: geo.oh, rowStride: geo.wp, into: dyw + oc * L)
                }
            }
        } } }
    }
}
