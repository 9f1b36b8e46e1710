import Foundation
import RealModule

/// Output length of a convolution or pooling window along one axis (PyTorch's formula).
public func convOutputSize(_ input: Int, kernel: Int, stride: Int, padding: Int, dilation: Int = 1,
                           ceilMode: Bool = false) -> Int {
    let span = input + 2 * padding - dilation * (kernel - 1) - 1
    if span < 0 { return 0 }
    var out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
    // In ceil mode the last window must start inside the input or the left padding.
    if ceilMode && (out - 1) * stride >= input + padding { out -= 1 }
    return out
}

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
///   `Kernels.swift` for the forward pass and both gradients.
/// * `shiftedRows` — other unit-stride, undilated, non-pointwise layers: GEMM over shifted rows of the
///   padded image. Within it, Winograd F(2×2, 3×3) takes the forward pass, the input gradient and the
///   weight gradient wherever `WinogradPlan`'s predicates allow (and `Winograd.active`); the weight
///   gradient without Winograd reads a channels-last image when a group's channels fill 32-wide panels.
/// * `im2col` — strided, dilated or pointwise layers: im2col (skipped for 1×1) + GEMM per image.
struct ConvAlgorithm {
    enum Family { case direct, shiftedRows, im2col }
    let family: Family
    /// Winograd plans for the forward pass, the input gradient and the weight gradient (nil: GEMM).
    let forwardWinograd: WinogradPlan?
    let inputGradientWinograd: WinogradPlan?
    let weightGradientWinograd: WinogradPlan?
    /// The shifted-rows weight gradient reads a channels-last copy of the image (no Winograd dW).
    let weightGradientChannelsLast: Bool

    init(_ geo: ConvGeometry, outChannels: Int) {
        let unit = geo.sh == 1 && geo.sw == 1 && geo.dh == 1 && geo.dw == 1
        if unit && outChannels * geo.kSize <= 512 {
            family = .direct
        } else if unit && !geo.isPointwise {
            family = .shiftedRows
        } else {
            family = .im2col
        }
        let winograd = family == .shiftedRows && Winograd.active
        forwardWinograd = winograd && WinogradPlan.handles(geo, outChannels: outChannels)
            ? WinogradPlan(geo, outChannels: outChannels) : nil
        inputGradientWinograd = winograd && WinogradPlan.handlesInputGradient(of: geo, outChannels: outChannels)
            ? WinogradPlan(inputGradientOf: geo, outChannels: outChannels) : nil
        weightGradientWinograd = forwardWinograd.flatMap { $0.handlesWeightGradient ? $0 : nil }
        weightGradientChannelsLast = family == .shiftedRows && weightGradientWinograd == nil && geo.c % 32 == 0
    }
}

/// 2-D convolution (cross-correlation) of NCHW `input` with `weight` `[out, in/groups, kh, kw]`
/// and optional `bias` `[out]`, like `torch.nn.functional.conv2d`. Bias is fused into the GEMM output pass.
/// With `fusedReLU` the result is `relu(conv2d(...))`, the ReLU applied as the output is written (one
/// tensor and one pass fewer than `conv2d(...).relu()`, same values and gradients).
public func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                   stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                   dilation: (Int, Int) = (1, 1), groups: Int = 1, fusedReLU: Bool = false) -> Tensor {
    let geo = convGeometry(input, weight, bias, stride, padding, dilation, groups)
    let (n, cin, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (cout, cg, oh, ow) = (weight.shape[0], geo.c, geo.oh, geo.ow)
    let ocg = cout / groups
    let ohw = geo.ohw, kSize = geo.kSize
    let inPer = cin * h * w, outPer = cout * ohw
    // Every output element is written below (bias fill or beta-0 GEMM, or the direct kernel's rows).
    var out = [Float](unsafeUninitializedCapacity: n * outPer) { _, count in count = n * outPer }
    let work = n * cout * ohw * kSize
    let algorithm = ConvAlgorithm(geo, outChannels: ocg)
    let direct = algorithm.family == .direct, shifted = algorithm.family == .shiftedRows
    let taps = shifted ? geo.tapOffsets() : []
    let wino = algorithm.forwardWinograd
    let uBuf = wino.map { weight.winogradWeights($0, groups: groups) }
    defer { uBuf?.deallocate() }

    input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pw in
    out.withUnsafeMutableBufferPointer { po in
        let x = px.baseAddress!, wt = pw.baseAddress!, o = po.baseAddress!
        let b = bias?.storage
        Parallel.forChunks(n, work: work) { range in
            if direct {
                let xp = UnsafeMutablePointer<Float>.allocate(capacity: cg * geo.paddedPlane)
                let wide = UnsafeMutablePointer<Float>.allocate(capacity: geo.wideCapacity)
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
            if shifted {
                // GEMM over the wide output with B's rows pointing into the padded image (no im2col).
                let L = geo.wideLength
                let xp = UnsafeMutablePointer<Float>.allocate(capacity: cg * geo.paddedPlane)
                let wide = UnsafeMutablePointer<Float>.allocate(capacity: ocg * L)
                defer { xp.deallocate(); wide.deallocate() }
                taps.withUnsafeBufferPointer { tp in b.withUnsafeBufferPointerOrNil { bp in
                    for s in range { for g in 0..<groups {
                        geo.pad(x + s * inPer + g * cg * h * w, into: xp)
                        geo.wideForward(xp, wt + g * ocg * kSize, bp.map { $0 + g * ocg }, wide, outChannels: ocg,
                                        relu: fusedReLU, taps: tp.baseAddress!)
                        geo.compactWide(wide, into: o + s * outPer + g * ocg * ohw, channels: ocg)
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
    } } }

    var inputs = [input, weight]
    if let bias { inputs.append(bias) }
    return Tensor.result(out, [n, cout, oh, ow], inputs, op: "conv2d") { gOut in
        if shifted {
            // The fused ReLU's mask is applied as each image's gradient is copied into wide rows.
            gOut.withUnsafeBufferPointer { pg in out.withUnsafeBufferPointer { po in
                shiftedConvBackward(geo, algorithm, input: input, weight: weight, bias: bias, groups: groups,
                                    taps: taps) { s, gi, dyw in
                    let off = (s * cout + gi * ocg) * ohw
                    geo.widen(pg.baseAddress! + off, into: dyw, channels: ocg,
                              reluOutput: fusedReLU ? po.baseAddress! + off : nil)
                }
            } }
            return
        }
        // A fused ReLU passes the gradient where the output is positive: the direct path masks each
        // image's gradient (and sums the bias gradient) in a cache-sized buffer, the others up front.
        let maskInLoop = fusedReLU && direct
        let needB = maskInLoop && bias?.requiresGrad == true
        let g = fusedReLU && !maskInLoop ? reluMask(gOut, out) : gOut
        var biasPartial = [Float](repeating: 0, count: needB ? Parallel.chunkCount(n, work: work * 2) * cout : 0)
        g.withUnsafeBufferPointer { pg in out.withUnsafeBufferPointer { po in
            let gp = pg.baseAddress!, op = po.baseAddress!
            if let bias, bias.requiresGrad, !maskInLoop {
                bias.accumulate { db in
                    for s in 0..<n { for oc in 0..<cout {
                        db[oc] += simdSum(gp + s * outPer + oc * ohw, ohw)   // vector lanes: no serial add chain
                    } }
                }
            }
            let needX = input.requiresGrad, needW = weight.requiresGrad
            if !needX && !needW && !needB { return }
            let chunks = Parallel.chunkCount(n, work: work * 2)
            // Per-chunk weight-gradient partials, reduced after the parallel pass.
            let wCount = weight.count
            var partial = [Float](repeating: 0, count: needW ? chunks * wCount : 0)
            var dxBuf = [Float](repeating: 0, count: needX ? input.count : 0)
            input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pw in
            partial.withUnsafeMutableBufferPointer { pp in dxBuf.withUnsafeMutableBufferPointer { pdx in
            biasPartial.withUnsafeMutableBufferPointer { pb in
                let x = px.baseAddress!, wt = pw.baseAddress!
                let pBase = pp.baseAddress, dxBase = pdx.baseAddress
                Parallel.forChunksIndexed(n, work: work * 2) { chunk, range in
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
                                if needB {
                                    let db = pb.baseAddress! + chunk * cout + gi * ocg
                                    for oc in 0..<ocg { db[oc] += simdSum(gm + oc * ohw, ohw) }
                                }
                            }
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
            } } } } }
            if needX { input.accumulate(dxBuf) }
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
func shiftedConvBackward(_ geo: ConvGeometry, _ algorithm: ConvAlgorithm, input: Tensor, weight: Tensor,
                         bias: Tensor?, groups: Int,
                         taps: [Int], fill: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
    let needX = input.requiresGrad, needW = weight.requiresGrad, needB = bias?.requiresGrad == true
    if !needX && !needW && !needB { return }
    let n = input.shape[0], cout = weight.shape[0], ocg = cout / groups, cg = geo.c
    let kSize = geo.kSize, L = geo.wideLength, P = geo.paddedPlane, inPer = cg * groups * geo.h * geo.w
    let work = n * cout * geo.ohw * kSize * 2
    let chunks = Parallel.chunkCount(n, work: work)
    let wCount = needW ? weight.count : 0, partCount = wCount + (needB ? cout : 0)
    var partial = [Float](repeating: 0, count: chunks * partCount)
    // dW channels-last when a group's channels fill whole 32-column panels: the image is transposed to
    // [position, channel] once (a few K floats), then each panel of B (one kernel tap's 32 channels) is
    // read in place along the output positions, instead of transposing im2col-sized rows into panels;
    // K runs over the real output positions only (no wide scratch columns).
    let winoDW = needW ? algorithm.weightGradientWinograd : nil
    let hwc = needW && algorithm.weightGradientChannelsLast
    let taps9 = geo.kh * geo.kw, ohw = geo.ohw
    let pRows = hwc ? (0..<ohw).map { (($0 / geo.ow) * geo.wp + $0 % geo.ow) * cg } : []
    let panelCols = hwc ? (0..<(kSize / 32)).map { j -> Int in
        let tap = j * 32 / cg, ci0 = j * 32 % cg
        return ((tap / geo.kw) * geo.wp + tap % geo.kw) * cg + ci0
    } : []
    // dX as a Winograd forward pass over the output gradient, where it applies.
    let winoX = needX ? algorithm.inputGradientWinograd : nil
    let uX = winoX.map { weight.winogradWeights($0, groups: groups, flipped: true) }
    defer { uX?.deallocate() }
    // Every image's input gradient is stored exactly once (per group) below: no zero fill.
    var dxBuf = [Float](unsafeUninitializedCapacity: needX ? input.count : 0) { _, c in c = needX ? input.count : 0 }
    input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pw in
    partial.withUnsafeMutableBufferPointer { pp in dxBuf.withUnsafeMutableBufferPointer { pdx in
    taps.withUnsafeBufferPointer { tp in pRows.withUnsafeBufferPointer { prow in panelCols.withUnsafeBufferPointer { pcol in
        let x = px.baseAddress!, wt = pw.baseAddress!, pBase = pp.baseAddress, dxBase = pdx.baseAddress
        Parallel.forChunksIndexed(n, work: work) { chunk, range in
            // the GEMM paths' padded image (dW) and padded input gradient (dX)
            let xp = UnsafeMutablePointer<Float>.allocate(capacity: needW && winoDW == nil && !hwc ? cg * P : 0)
            let dxp = UnsafeMutablePointer<Float>.allocate(capacity: needX && winoX == nil ? cg * P : 0)
            let dyw = UnsafeMutablePointer<Float>.allocate(capacity: ocg * L)
            // channels-last path: the image, the compact output gradient, dW in [oc, tap, channel] order
            let xh = UnsafeMutablePointer<Float>.allocate(capacity: hwc ? geo.hp * geo.wp * cg : 0)
            let dyc = UnsafeMutablePointer<Float>.allocate(capacity: hwc ? ocg * ohw : 0)
            let dwt = UnsafeMutablePointer<Float>.allocate(capacity: hwc ? groups * ocg * kSize : 0)
            if hwc { dwt.initialize(repeating: 0, count: groups * ocg * kSize) }
            defer { xp.deallocate(); dxp.deallocate(); dyw.deallocate(); xh.deallocate(); dyc.deallocate(); dwt.deallocate() }
            let wsW = winoDW.map { WinogradPlan.GradientWorkspace($0, groups: groups) }
            defer { wsW?.deallocate() }
            let wsX = winoX.map { WinogradPlan.Workspace($0) }
            let stageX = UnsafeMutablePointer<Float>.allocate(capacity: winoX.map { cg * geo.h * $0.stageStride } ?? 0)
            defer { wsX?.deallocate(); stageX.deallocate() }
            let part = pBase.map { $0 + chunk * partCount }
            for s in range { for gi in 0..<groups {
                fill(s, gi, dyw)
                if needB {
                    let db = part! + wCount + gi * ocg
                    for oc in 0..<ocg { db[oc] += simdSum(dyw + oc * L, L) }
                }
                if let winoDW, let wsW {
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
                if let winoX, let wsX, let uX {
                    Profiler.measure("conv bwd dX winograd") {
                        winoX.load(dyw, wsX, rowStride: geo.wp, planeStride: L)
                        winoX.forward(wsX, uX + gi * winoX.uCount, bias: nil, .full(stageX, relu: false))
                    }
                    winoX.copyFull(stageX, into: dxBase! + s * inPer + gi * cg * geo.h * geo.w)
                } else if needX {
                    dxp.update(repeating: 0, count: cg * P)
                    Profiler.measure("conv bwd dX gemm") {
                        sgemm(transA: true, transB: false, m: kSize, n: L, k: ocg, a: wt + gi * ocg * kSize,
                              lda: kSize, b: dyw, ldb: L, beta: 1, c: dxp, ldc: 0, threads: 1,
                              rowBias: nil, relu: false, cRows: tp.baseAddress)
                    }
                    geo.unpad(dxp, into: dxBase! + s * inPer + gi * cg * geo.h * geo.w)
                }
            } }
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
    } } } } } } }
    if needX { input.accumulate(dxBuf) }
    if needW { reducePartials(into: weight, partial, chunks: chunks, stride: partCount) }
    if let bias, needB { reducePartials(into: bias, partial, chunks: chunks, stride: partCount, offset: wCount) }
}

/// Adds per-chunk partial gradients (chunk c's at `c * stride + offset`) into `t`'s gradient, in chunk
/// order, so the sum depends only on the thread count.
func reducePartials(into t: Tensor, _ partial: [Float], chunks: Int, stride: Int, offset: Int = 0) {
    let count = t.count
    t.accumulate { d in
        for c in 0..<chunks { for i in 0..<count { d[i] += partial[c * stride + offset + i] } }
    }
}

/// `max_pool2d(relu(conv2d(input, ...)), 2)` as one op: each image's convolution output stays in a
/// cache-sized wide buffer and only the pooled maxima (and which of the four won) are kept, so the
/// full-size activation and its gradient never exist. Same values and gradients as the three ops
/// (ties go to the first maximum, as in PyTorch); layers the shifted-rows GEMM path does not take
/// (strided, dilated, pointwise or few-channel ones) run as the separate ops.
public func conv2dReLUMaxPool2x2(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
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
    let wino = algorithm.forwardWinograd
    let uBuf = wino.map { weight.winogradWeights($0, groups: groups) }
    defer { uBuf?.deallocate() }
    var out = [Float](unsafeUninitializedCapacity: n * outPer) { _, c in c = n * outPer }
    var arg = [UInt8](unsafeUninitializedCapacity: n * outPer) { _, c in c = n * outPer }
    input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pwt in
    out.withUnsafeMutableBufferPointer { po in arg.withUnsafeMutableBufferPointer { pa in
    taps.withUnsafeBufferPointer { tp in (bias?.storage).withUnsafeBufferPointerOrNil { bp in
        Parallel.forChunks(n, work: n * cout * geo.ohw * kSize) { range in
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
            shiftedConvBackward(geo, algorithm, input: input, weight: weight, bias: bias, groups: groups,
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

extension Tensor {
    /// Per-row setup shared by the 2-D pooling ops.
    fileprivate func poolDims(_ k: (Int, Int), _ s: (Int, Int), _ p: (Int, Int), _ d: (Int, Int), _ ceil: Bool)
        -> (n: Int, c: Int, h: Int, w: Int, oh: Int, ow: Int) {
        precondition(rank == 4, "2-D pooling expects NCHW input, got shape \(shape)")
        precondition(p.0 * 2 <= k.0 && p.1 * 2 <= k.1, "pad should be at most half of the kernel size")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let oh = convOutputSize(h, kernel: k.0, stride: s.0, padding: p.0, dilation: d.0, ceilMode: ceil)
        let ow = convOutputSize(w, kernel: k.1, stride: s.1, padding: p.1, dilation: d.1, ceilMode: ceil)
        precondition(oh > 0 && ow > 0, "pooling window larger than input \(h)x\(w)")
        return (n, c, h, w, oh, ow)
    }
}

/// 2-D max pooling over NCHW input, like `torch.nn.functional.max_pool2d`.
public func maxPool2d(_ input: Tensor, kernelSize: (Int, Int), stride: (Int, Int)? = nil,
                      padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), ceilMode: Bool = false) -> Tensor {
    let s = stride ?? kernelSize
    let (n, c, h, w, oh, ow) = input.poolDims(kernelSize, s, padding, dilation, ceilMode)
    let planes = n * c
    if kernelSize == (2, 2) && s == (2, 2) && padding == (0, 0) && dilation == (1, 1) && oh == h / 2 && ow == w / 2 {
        return maxPool2x2(input, n, c, h, w)
    }
    var out = [Float](repeating: 0, count: planes * oh * ow)
    var arg = [Int32](repeating: -1, count: planes * oh * ow)
    let (kh, kw) = kernelSize
    input.storage.withUnsafeBufferPointer { px in out.withUnsafeMutableBufferPointer { po in
    arg.withUnsafeMutableBufferPointer { pa in
        let x = px.baseAddress!, o = po.baseAddress!, a = pa.baseAddress!
        Parallel.forChunks(planes, work: planes * oh * ow * kh * kw) { range in
            for pl in range {
                let xp = x + pl * h * w
                for oy in 0..<oh { for ox in 0..<ow {
                    var best = -Float.infinity, bi: Int32 = -1
                    for i in 0..<kh {
                        let iy = oy * s.0 - padding.0 + i * dilation.0
                        if iy < 0 || iy >= h { continue }
                        for j in 0..<kw {
                            let ix = ox * s.1 - padding.1 + j * dilation.1
                            if ix < 0 || ix >= w { continue }
                            let v = xp[iy * w + ix]
                            if v > best || v.isNaN || bi < 0 { best = v; bi = Int32(iy * w + ix) }
                        }
                    }
                    let oi = (pl * oh + oy) * ow + ox
                    o[oi] = best; a[oi] = bi
                } }
            }
        }
    } } }
    return Tensor.result(out, [n, c, oh, ow], [input], op: "maxPool2d") { g in
        input.accumulate { d in
            for pl in 0..<planes {
                let base = pl * h * w
                for i in 0..<(oh * ow) {
                    let oi = pl * oh * ow + i
                    if arg[oi] >= 0 { d[base + Int(arg[oi])] += g[oi] }
                }
            }
        }
    }
}

/// 2-D average pooling over NCHW input, like `torch.nn.functional.avg_pool2d`.
public func avgPool2d(_ input: Tensor, kernelSize: (Int, Int), stride: (Int, Int)? = nil,
                      padding: (Int, Int) = (0, 0), ceilMode: Bool = false, countIncludePad: Bool = true) -> Tensor {
    let s = stride ?? kernelSize
    let (n, c, h, w, oh, ow) = input.poolDims(kernelSize, s, padding, (1, 1), ceilMode)
    let (kh, kw) = kernelSize
    let planes = n * c
    // Window bounds and divisor per output position (same for every plane).
    var windows = [(Int, Int, Int, Int, Float)]()
    windows.reserveCapacity(oh * ow)
    for oy in 0..<oh { for ox in 0..<ow {
        var y0 = oy * s.0 - padding.0, x0 = ox * s.1 - padding.1
        var y1 = Swift.min(y0 + kh, h + padding.0), x1 = Swift.min(x0 + kw, w + padding.1)
        let padded = (y1 - y0) * (x1 - x0)
        y0 = Swift.max(y0, 0); x0 = Swift.max(x0, 0); y1 = Swift.min(y1, h); x1 = Swift.min(x1, w)
        let div = countIncludePad ? padded : (y1 - y0) * (x1 - x0)
        windows.append((y0, y1, x0, x1, 1 / Float(Swift.max(div, 1))))
    } }
    var out = [Float](repeating: 0, count: planes * oh * ow)
    input.storage.withUnsafeBufferPointer { x in
        for pl in 0..<planes {
            for (i, win) in windows.enumerated() {
                var acc: Float = 0
                for y in win.0..<win.1 { for xx in win.2..<win.3 { acc += x[pl * h * w + y * w + xx] } }
                out[pl * oh * ow + i] = acc * win.4
            }
        }
    }
    return Tensor.result(out, [n, c, oh, ow], [input]) { g in
        input.accumulate { d in
            for pl in 0..<planes {
                for (i, win) in windows.enumerated() {
                    let v = g[pl * oh * ow + i] * win.4
                    for y in win.0..<win.1 { for xx in win.2..<win.3 { d[pl * h * w + y * w + xx] += v } }
                }
            }
        }
    }
}

/// Batch normalization over the channel dimension (dim 1) of `[N, C]` or `[N, C, ...]` input,
/// like `torch.nn.functional.batch_norm`. In training it normalizes with the batch's statistics and
/// updates `runningMean`/`runningVar` in place (`momentum`, unbiased variance); otherwise it uses them.
public func batchNorm(_ input: Tensor, runningMean: Tensor?, runningVar: Tensor?, weight: Tensor?, bias: Tensor?,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5) -> Tensor {
    precondition(input.rank >= 2, "batch norm expects [N, C, ...] input, got \(input.shape)")
    let n = input.shape[0], c = input.shape[1]
    let inner = input.count / Swift.max(n * c, 1)
    let m = n * inner
    let useBatch = training || runningMean == nil
    precondition(!useBatch || m > 1 || !training,
                 "expected more than 1 value per channel when training, got input size \(input.shape)")
    var mean = [Float](repeating: 0, count: c), invStd = [Float](repeating: 0, count: c)
    input.storage.withUnsafeBufferPointer { px in
        let x = px.baseAddress!
        for ch in 0..<c {
            if useBatch {
                let s = chunkedSum(n, work: m) { b in simdSum(x + (b * c + ch) * inner, inner) }
                let mu = s / Float(m)
                let v = chunkedSum(n, work: m) { b in simdSumSquaredDeviation(x + (b * c + ch) * inner, inner, mu) }
                mean[ch] = mu
                invStd[ch] = 1 / (v / Float(m) + eps).squareRoot()
                if training, let rm = runningMean, let rv = runningVar {
                    rm.storage[ch] = (1 - momentum) * rm.storage[ch] + momentum * mu
                    let unbiased = m > 1 ? v / Float(m - 1) : v
                    rv.storage[ch] = (1 - momentum) * rv.storage[ch] + momentum * unbiased
                }
            } else {
                mean[ch] = runningMean!.storage[ch]
                invStd[ch] = 1 / (runningVar!.storage[ch] + eps).squareRoot()
            }
        }
    }
    let gamma = weight?.storage, beta = bias?.storage
    let out = input.storage.withUnsafeBufferPointer { x in
        uninitializedFloats(input.count) { y in
            Parallel.forChunks(n, work: input.count * 2) { range in for b in range { for ch in 0..<c {
                let scale = invStd[ch] * (gamma?[ch] ?? 1)
                let shift = (beta?[ch] ?? 0) - mean[ch] * scale
                let p = (b * c + ch) * inner
                simdAffine(y.baseAddress! + p, x.baseAddress! + p, scale, shift, inner)
            } } }
        }
    }
    var inputs = [input]
    if let weight { inputs.append(weight) }
    if let bias { inputs.append(bias) }
    return Tensor.result(out, input.shape, inputs, op: "batchNorm") { g in
        var dgamma = [Float](repeating: 0, count: c), dbeta = [Float](repeating: 0, count: c)
        input.storage.withUnsafeBufferPointer { px in g.withUnsafeBufferPointer { pg in
            let x = px.baseAddress!, gp = pg.baseAddress!
            for ch in 0..<c {
                let sg = chunkedSum(n, work: m) { b in simdSum(gp + (b * c + ch) * inner, inner) }
                let sgx = chunkedSum(n, work: m) { b in simdDot(gp + (b * c + ch) * inner, x + (b * c + ch) * inner, inner) }
                dbeta[ch] = sg
                dgamma[ch] = (sgx - mean[ch] * sg) * invStd[ch]   // Σ g·(x−μ)·σ⁻¹
            }
            let dx = uninitializedFloats(input.count) { d in
                for ch in 0..<c {
                    let gm = gamma?[ch] ?? 1, istd = invStd[ch], mu = mean[ch]
                    // dx = γσ⁻¹/M · (M·g − Σg − x̂·Σg·x̂), written as a·g + k·x + b0
                    let a: Float, k: Float, b0: Float
                    if useBatch {
                        let scale = gm * istd / Float(m)
                        a = scale * Float(m)
                        k = -scale * dgamma[ch] * istd
                        b0 = -scale * dbeta[ch] - k * mu
                    } else {
                        a = gm * istd; k = 0; b0 = 0
                    }
                    Parallel.forChunks(n, work: input.count * 2 / Swift.max(c, 1)) { range in
                        for b in range {
                            let p = (b * c + ch) * inner
                            simdAffine2(d.baseAddress! + p, gp + p, a, x + p, k, b0, inner)
                        }
                    }
                }
            }
            input.accumulate(dx)
        } }
        weight?.accumulate(dgamma)
        bias?.accumulate(dbeta)
    }
}

/// Randomly zeroes elements with probability `p` and scales the rest by `1/(1-p)` when `training`.
public func dropout(_ input: Tensor, p: Float, training: Bool, generator: RandomGenerator = .global) -> Tensor {
    precondition(p >= 0 && p <= 1, "dropout probability must be in [0, 1], got \(p)")
    if !training || p == 0 { return input }
    let scale: Float = p < 1 ? 1 / (1 - p) : 0
    let n = input.count
    // One byte per element (kept = 1): a quarter of a float mask's memory. Blocks of 32K elements draw
    // from their own generators, seeded in order from `generator`, so the mask is built in parallel and
    // depends only on the seed (not on the thread count).
    let block = 1 << 15, blocks = (n + block - 1) / block
    let seeds = generator.withState { rng in (0..<blocks).map { _ in rng.next() } }
    let mask = [UInt8](unsafeUninitializedCapacity: n) { m, c in
        Parallel.forChunks(blocks, work: n * 8) { r in
            for bi in r {
                var rng = Xoshiro256StarStar(seed: seeds[bi])
                for i in (bi * block)..<Swift.min(n, (bi + 1) * block) { m[i] = rng.nextFloat() >= p ? 1 : 0 }
            }
        }
        c = n
    }
    let out = input.storage.withUnsafeBufferPointer { x in mask.withUnsafeBufferPointer { m in
        uninitializedFloats(n) { o in for i in 0..<n { o[i] = x[i] * (m[i] != 0 ? scale : 0) } }
    } }
    return Tensor.result(out, input.shape, [input]) { g in
        mask.withUnsafeBufferPointer { m in
            input.accumulate(overwriting: { d, fresh in
                if fresh { for i in 0..<n { d[i] = g[i] * (m[i] != 0 ? scale : 0) } }
                else { for i in 0..<n { d[i] += g[i] * (m[i] != 0 ? scale : 0) } }
            })
        }
    }
}

/// `input · weightᵀ + bias` for `input` `[..., in]`, `weight` `[out, in]`, `bias` `[out]`
/// (`torch.nn.functional.linear`), with the bias fused into the output pass.
public func linear(_ input: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let k = weight.shape[1], nOut = weight.shape[0]
    precondition(input.rank >= 1 && input.shape[input.rank - 1] == k,
                 "linear: input \(input.shape) does not end in \(k) features")
    let m = input.count / k
    var out = [Float](repeating: 0, count: m * nOut)
    if let b = bias?.storage {
        for r in 0..<m { for j in 0..<nOut { out[r * nOut + j] = b[j] } }
    }
    input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pw in
    out.withUnsafeMutableBufferPointer { po in
        sgemm(transA: false, transB: true, m: m, n: nOut, k: k, a: px.baseAddress!, lda: k,
              b: pw.baseAddress!, ldb: k, beta: bias == nil ? 0 : 1, c: po.baseAddress!, ldc: nOut)
    } } }
    var inputs = [input, weight]
    if let bias { inputs.append(bias) }
    return Tensor.result(out, Array(input.shape.dropLast()) + [nOut], inputs, op: "linear") { g in
        g.withUnsafeBufferPointer { pg in
            input.accumulate(overwriting: { dx, fresh in weight.storage.withUnsafeBufferPointer { pw in
                sgemm(transA: false, transB: false, m: m, n: k, k: nOut, a: pg.baseAddress!, lda: nOut,
                      b: pw.baseAddress!, ldb: k, beta: fresh ? 0 : 1, c: dx.baseAddress!, ldc: k)
            } })
            weight.accumulate(overwriting: { dw, fresh in input.storage.withUnsafeBufferPointer { px in
                sgemm(transA: true, transB: false, m: nOut, n: k, k: m, a: pg.baseAddress!, lda: nOut,
                      b: px.baseAddress!, ldb: k, beta: fresh ? 0 : 1, c: dw.baseAddress!, ldc: k)
            } })
            bias?.accumulate { db in
                for r in 0..<m { for j in 0..<nOut { db[j] += pg[r * nOut + j] } }
            }
        }
    }
}

/// How a loss combines per-sample values.
public enum Reduction: String, Sendable { case mean, sum, none }

private func reduceLoss(_ per: [Float], _ reduction: Reduction) -> ([Float], [Int]) {
    switch reduction {
    case .none: return (per, [per.count])
    case .sum: return ([per.reduce(0, +)], [])
    case .mean: return ([per.reduce(0, +) / Float(Swift.max(per.count, 1))], [])
    }
}
/// Gradient of the reduced loss with respect to sample `i`.
@inline(__always) private func lossGrad(_ g: [Float], _ i: Int, _ n: Int, _ reduction: Reduction) -> Float {
    switch reduction {
    case .none: return g[i]
    case .sum: return g[0]
    case .mean: return g[0] / Float(n)
    }
}

private func checkTargets(_ targets: [Int], _ n: Int, _ classes: Int) {
    precondition(targets.count == n, "expected \(n) targets, got \(targets.count)")
    precondition(targets.allSatisfy { $0 >= 0 && $0 < classes }, "target out of range 0..<\(classes)")
}

/// Writes softmax of one row of `c` logits into `probs[at...]` and returns its log-sum-exp.
@inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, _ c: Int, into probs: inout [Float], at: Int) -> Float {
    var m = -Float.infinity
    for j in 0..<c { m = Swift.max(m, x[j]) }
    var s: Float = 0
    for j in 0..<c { let e = Float.exp(x[j] - m); probs[at + j] = e; s += e }
    let inv = 1 / s
    for j in 0..<c { probs[at + j] *= inv }
    return m + Float.log(s)
}

/// Cross-entropy between `logits` `[N, C]` and integer class `targets` (`torch.nn.functional.cross_entropy`).
/// Log-softmax and negative log-likelihood are fused: the backward pass is `softmax − onehot`.
public func crossEntropy(_ logits: Tensor, _ targets: [Int], reduction: Reduction = .mean,
                         labelSmoothing: Float = 0) -> Tensor {
    precondition(logits.rank == 2, "crossEntropy expects [N, C] logits, got \(logits.shape)")
    let n = logits.shape[0], c = logits.shape[1]
    checkTargets(targets, n, c)
    var probs = [Float](repeating: 0, count: n * c)
    var per = [Float](repeating: 0, count: n)
    logits.storage.withUnsafeBufferPointer { x in
        for i in 0..<n {
            let row = i * c
            let lse = softmaxRow(x.baseAddress! + row, c, into: &probs, at: row)
            var loss = lse - x[row + targets[i]]
            if labelSmoothing > 0 {
                var sumLogp: Float = 0
                for j in 0..<c { sumLogp += x[row + j] - lse }
                loss = (1 - labelSmoothing) * loss - labelSmoothing / Float(c) * sumLogp
            }
            per[i] = loss
        }
    }
    let (out, shape) = reduceLoss(per, reduction)
    return Tensor.result(out, shape, [logits], op: "crossEntropy") { g in
        logits.accumulate { d in
            for i in 0..<n {
                let gi = lossGrad(g, i, n, reduction)
                let row = i * c
                for j in 0..<c {
                    var t: Float = j == targets[i] ? 1 - labelSmoothing : 0
                    t += labelSmoothing / Float(c)
                    d[row + j] += gi * (probs[row + j] - t)
                }
            }
        }
    }
}

/// Negative log-likelihood of log-probabilities `[N, C]` at integer `targets` (`nll_loss`).
public func nllLoss(_ logProbs: Tensor, _ targets: [Int], reduction: Reduction = .mean) -> Tensor {
    precondition(logProbs.rank == 2, "nllLoss expects [N, C] input, got \(logProbs.shape)")
    let n = logProbs.shape[0], c = logProbs.shape[1]
    checkTargets(targets, n, c)
    let per = (0..<n).map { -logProbs.storage[$0 * c + targets[$0]] }
    let (out, shape) = reduceLoss(per, reduction)
    return Tensor.result(out, shape, [logProbs]) { g in
        logProbs.accumulate { d in
            for i in 0..<n { d[i * c + targets[i]] -= lossGrad(g, i, n, reduction) }
        }
    }
}

/// Keras' `categorical_crossentropy` on probabilities `[N, C]` with one-hot (or soft) `targets`:
/// probabilities are renormalized to sum to 1, clipped to `[epsilon, 1 − epsilon]`, and
/// `−Σ y·log p` is averaged over the batch. The gradient is zero where clipping was active.
public func categoricalCrossEntropy(_ probs: Tensor, _ targets: Tensor, epsilon: Float = 1e-7,
                                    reduction: Reduction = .mean) -> Tensor {
    precondition(probs.shape == targets.shape && probs.rank == 2,
                 "categoricalCrossEntropy: predictions \(probs.shape) and targets \(targets.shape) differ")
    let p = (probs / probs.sum(dim: -1, keepDim: true)).clamp(min: epsilon, max: 1 - epsilon)
    let per = -(p.log() * targets).sum(dim: -1)
    switch reduction {
    case .none: return per
    case .sum: return per.sum()
    case .mean: return per.mean()
    }
}

/// Cross-entropy between softmax(`logits`) and one-hot/soft `targets` `[N, C]`, fused (what Keras
/// computes when a softmax output feeds `categorical_crossentropy`).
public func softmaxCrossEntropy(_ logits: Tensor, _ targets: Tensor, reduction: Reduction = .mean) -> Tensor {
    precondition(logits.shape == targets.shape && logits.rank == 2,
                 "softmaxCrossEntropy: logits \(logits.shape) and targets \(targets.shape) differ")
    let n = logits.shape[0], c = logits.shape[1]
    var probs = [Float](repeating: 0, count: n * c)
    var per = [Float](repeating: 0, count: n)
    let y = targets.storage
    logits.storage.withUnsafeBufferPointer { x in
        for i in 0..<n {
            let row = i * c
            let lse = softmaxRow(x.baseAddress! + row, c, into: &probs, at: row)
            var loss: Float = 0
            for j in 0..<c { loss -= y[row + j] * (x[row + j] - lse) }
            per[i] = loss
        }
    }
    let (out, shape) = reduceLoss(per, reduction)
    return Tensor.result(out, shape, [logits]) { g in
        logits.accumulate { d in
            for i in 0..<n {
                let gi = lossGrad(g, i, n, reduction), row = i * c
                var ysum: Float = 0
                for j in 0..<c { ysum += y[row + j] }
                for j in 0..<c { d[row + j] += gi * (probs[row + j] * ysum - y[row + j]) }
            }
        }
    }
}

/// Mean squared error (`torch.nn.functional.mse_loss`).
public func mseLoss(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean) -> Tensor {
    let sq = (input - target).square()
    switch reduction {
    case .none: return sq
    case .sum: return sq.sum()
    case .mean: return sq.mean()
    }
}

/// One-hot encoding of integer labels as `[N, classes]` floats.
public func oneHot(_ labels: [Int], classes: Int) -> Tensor {
    var out = [Float](repeating: 0, count: labels.count * classes)
    for (i, l) in labels.enumerated() where l >= 0 && l < classes { out[i * classes + l] = 1 }
    return Tensor(out, shape: [labels.count, classes])
}

/// 2×2, stride-2 max pooling (the common case), with the winner's position in its window (0…3) kept
/// for the backward pass.
func maxPool2x2(_ input: Tensor, _ n: Int, _ c: Int, _ h: Int, _ w: Int) -> Tensor {
    let oh = h / 2, ow = w / 2, planes = n * c, total = planes * oh * ow
    var arg = [UInt8](unsafeUninitializedCapacity: total) { _, count in count = total }   // every byte is written
    let out = input.storage.withUnsafeBufferPointer { px in
        arg.withUnsafeMutableBufferPointer { pa in
            uninitializedFloats(total) { po in
                Parallel.forChunks(planes, work: total * 8) { range in   // 4 reads, 2 writes, selects per output
                    for pl in range {
                        maxPool2x2Plane(px.baseAddress! + pl * h * w, rowStride: w, oh: oh, ow: ow,
                                        po.baseAddress! + pl * oh * ow, pa.baseAddress! + pl * oh * ow)
                    }
                }
            }
        }
    }
    return Tensor.result(out, [n, c, oh, ow], [input], op: "maxPool2d") { g in
        let dx = arg.withUnsafeBufferPointer { pa in g.withUnsafeBufferPointer { pg in
            uninitializedFloats(planes * h * w) { d in
                Parallel.forChunks(planes, work: total * 8) { range in
                    for pl in range {
                        unpool2x2Plane(pg.baseAddress! + pl * oh * ow, pa.baseAddress! + pl * oh * ow, mask: nil,
                                       oh: oh, ow: ow, rows: h, rowStride: w, into: d.baseAddress! + pl * h * w)
                    }
                }
            }
        } }
        input.accumulate(dx)
    }
}

/// 2×2, stride-2 max pooling of one plane whose rows are `rowStride` apart: `out` (oh×ow) and which of
/// each window's four elements won (0…3 in row-major order; ties keep the first and NaN wins — the
/// last NaN — as in PyTorch's loop). Branch-free (selects): random activations make branches mispredict.
@inline(__always)
func maxPool2x2Plane(_ x: UnsafePointer<Float>, rowStride: Int, oh: Int, ow: Int,
                     _ out: UnsafeMutablePointer<Float>, _ arg: UnsafeMutablePointer<UInt8>) {
    for oy in 0..<oh {
        let r0 = x + 2 * oy * rowStride, r1 = r0 + rowStride
        let o = out + oy * ow, k = arg + oy * ow
        // 8 outputs at a time: de-interleave even/odd columns of both rows. A row of at least 8 ends
        // with 8 that overlap the ones before (the same values again) instead of a scalar tail.
        @inline(__always) func eight(_ ox: Int) {
            let v0 = UnsafeRawPointer(r0 + 2 * ox).loadUnaligned(as: SIMD16<Float>.self)
            let v1 = UnsafeRawPointer(r1 + 2 * ox).loadUnaligned(as: SIMD16<Float>.self)
            let a = v0.evenHalf, b = v0.oddHalf, cc = v1.evenHalf, d = v1.oddHalf
            let ab = b .> a .| b .!= b, cd = d .> cc .| d .!= d
            let m1 = a.replacing(with: b, where: ab), m2 = cc.replacing(with: d, where: cd)
            let second = m2 .> m1 .| m2 .!= m2
            UnsafeMutableRawPointer(o + ox).storeBytes(of: m1.replacing(with: m2, where: second), as: SIMD8<Float>.self)
            let k1 = SIMD8<Int32>(repeating: 0).replacing(with: 1, where: ab)
            let k2 = SIMD8<Int32>(repeating: 2).replacing(with: 3, where: cd)
            UnsafeMutableRawPointer(k + ox).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: k1.replacing(with: k2, where: second)),
                                                       as: SIMD8<UInt8>.self)
        }
        var ox = 0
        while ox + 8 <= ow { eight(ox); ox += 8 }
        if ox < ow && ow >= 8 { eight(ow - 8); ox = ow }
        while ox < ow {
            let a = r0[2 * ox], b = r0[2 * ox + 1], cc = r1[2 * ox], d = r1[2 * ox + 1]
            let ab = b > a || b.isNaN, cd = d > cc || d.isNaN
            let m1 = ab ? b : a, m2 = cd ? d : cc
            let second = m2 > m1 || m2.isNaN
            o[ox] = second ? m2 : m1
            k[ox] = second ? (cd ? 3 : 2) : (ab ? 1 : 0)
            ox += 1
        }
    }
}

/// The adjoint of `maxPool2x2Plane`: writes every position of a `rows`-row plane (rows `rowStride`
/// apart) — the window's winner gets the pooled gradient, everything else 0 — so the destination needs
/// no zero fill. With `mask` (a fused ReLU's pooled output) the gradient passes only where it is > 0.
@inline(__always)
func unpool2x2Plane(_ g: UnsafePointer<Float>, _ arg: UnsafePointer<UInt8>, mask: UnsafePointer<Float>?,
                    oh: Int, ow: Int, rows: Int, rowStride: Int, into d: UnsafeMutablePointer<Float>) {
    for oy in 0..<oh {
        let r0 = d + 2 * oy * rowStride, r1 = r0 + rowStride
        for ox in 0..<ow {
            let i = oy * ow + ox, k = arg[i]
            var v = g[i]
            if let mask { v = mask[i] > 0 ? v : 0 }
            r0[2 * ox] = k == 0 ? v : 0
            r0[2 * ox + 1] = k == 1 ? v : 0
            r1[2 * ox] = k == 2 ? v : 0
            r1[2 * ox + 1] = k == 3 ? v : 0
        }
        for x in (2 * ow)..<rowStride { r0[x] = 0; r1[x] = 0 }
    }
    for y in (2 * oh)..<rows { (d + y * rowStride).update(repeating: 0, count: rowStride) }
}

/// `x[i] = max(x[i], 0)` (NaN stays NaN, like `relu`).
func reluInPlace(_ x: UnsafeMutablePointer<Float>, _ count: Int) {
    for i in 0..<count { x[i] = Swift.max(x[i], 0) }
}

/// The gradient of `relu` given its output: `g` where `out > 0`, else 0.
func reluMask(_ g: [Float], _ out: [Float]) -> [Float] {
    let n = g.count
    return uninitializedFloats(n) { d in
        out.withUnsafeBufferPointer { y in g.withUnsafeBufferPointer { gg in
            Parallel.forChunks(n, work: n) { r in for i in r { d[i] = y[i] > 0 ? gg[i] : 0 } }
        } }
    }
}

/// Σ term(i) for i in 0..<count, split across threads by chunks; partial sums are added in chunk
/// order, so the result depends only on the thread count.
@inline(__always)
func chunkedSum(_ count: Int, work: Int, _ term: (Int) -> Float) -> Float {
    let chunks = Parallel.chunkCount(count, work: work)
    if chunks <= 1 {
        var s: Float = 0
        for i in 0..<count { s += term(i) }
        return s
    }
    return withUnsafeTemporaryAllocation(of: Float.self, capacity: chunks) { partial in
        Parallel.forChunksIndexed(count, work: work) { chunk, range in
            var s: Float = 0
            for i in range { s += term(i) }
            partial[chunk] = s
        }
        var s: Float = 0
        for i in 0..<chunks { s += partial[i] }
        return s
    }
}
