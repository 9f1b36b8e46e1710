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
/// * `depthwise` — one input and one output channel per group (MobileNet's and EfficientNet's k×k
///   layers), strides 1 or 2, undilated: `DepthwisePlan`'s plane kernels (`CPU/DepthwiseConvolution.swift`), all passes.
struct ConvAlgorithm {
    enum Family { case direct, shiftedRows, im2col, depthwise }
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
        if geo.c == 1 && outChannels == 1 && !geo.isPointwise && DepthwisePlan.handles(geo) {
            family = .depthwise
        } else if unit && outChannels * geo.kSize <= 512 {
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

/// 2-D convolution (cross-correlation) of NCHW `input` with `weight` `[out, in/groups, kh, kw]`
/// and optional `bias` `[out]`, like `torch.nn.functional.conv2d`. Bias is fused into the GEMM output pass.
/// With `fusedReLU` the result is `relu(conv2d(...))`, the ReLU applied as the output is written (one
/// tensor and one pass fewer than `conv2d(...).relu()`, same values and gradients).
///
/// - Parameters:
///   - input: `[N, C, H, W]`.
///   - weight: `[outC, C / groups, kh, kw]`.
///   - bias: `[outC]`, or nil.
///   - stride: step between windows, down and across.
///   - padding: zeros added on each side, down and across.
///   - dilation: spacing between kernel taps.
///   - groups: independent channel groups.
///   - fusedReLU: apply a ReLU as the output is written.
/// - Returns: `[N, outC, OH, OW]`.
///
/// ### See Also
/// - ``conv2dReLUMaxPool2x2(_:weight:bias:padding:groups:)``
public func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                   stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                   dilation: (Int, Int) = (1, 1), groups: Int = 1, fusedReLU: Bool = false) -> Tensor {
    let y = OpTrace.suppressed {
        conv2dUntraced(input, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                       groups: groups, fusedReLU: fusedReLU)
    }
    if let trace = OpTrace.current {
        let attributes: [(String, OpTrace.Attribute)] = [("kernel_shape", .ints([weight.shape[2], weight.shape[3]])),
            ("strides", .pair(stride)), ("pads", .pads(padding)), ("dilations", .pair(dilation)), ("group", .int(groups))]
        let ins = [trace.id(input), trace.id(weight), bias.map { trace.id($0) }]
        trace.count(multiplyAdds: y.count * (weight.count / weight.shape[0]))
        if fusedReLU {
            let c = trace.add("Conv", ins, attributes)
            trace.add("Relu", [c], output: y)
        } else {
            trace.add("Conv", ins, output: y, attributes)
        }
    }
    return y
}

/// `conv2d` with different zeros before and after (TensorFlow's "same" padding of a strided or
/// even-sized kernel is one more after than before): the input is padded, then convolved without
/// padding; exported as one ONNX Conv with asymmetric `pads`.
///
/// - Parameters:
///   - input: `[N, C, H, W]`.
///   - weight: `[outC, C / groups, kh, kw]`.
///   - bias: `[outC]`, or nil.
///   - stride: step between windows, down and across.
///   - padding: zeros above, left, below and right.
///   - dilation: spacing between kernel taps.
///   - groups: independent channel groups.
/// - Returns: `[N, outC, OH, OW]`.
public func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                   padding: (top: Int, left: Int, bottom: Int, right: Int), dilation: (Int, Int) = (1, 1),
                   groups: Int = 1) -> Tensor {
    if padding.top == padding.bottom && padding.left == padding.right {
        return conv2d(input, weight: weight, bias: bias, stride: stride, padding: (padding.top, padding.left),
                      dilation: dilation, groups: groups)
    }
    let y = OpTrace.suppressed {
        conv2dUntraced(pad2d(input, top: padding.top, left: padding.left, bottom: padding.bottom, right: padding.right),
                       weight: weight, bias: bias, stride: stride, padding: (0, 0), dilation: dilation, groups: groups,
                       fusedReLU: false)
    }
    if let trace = OpTrace.current {
        trace.count(multiplyAdds: y.count * (weight.count / weight.shape[0]))
        trace.add("Conv", [trace.id(input), trace.id(weight), bias.map { trace.id($0) }], output: y,
                  [("kernel_shape", .ints([weight.shape[2], weight.shape[3]])), ("strides", .pair(stride)),
                   ("pads", .ints([padding.top, padding.left, padding.bottom, padding.right])),
                   ("dilations", .pair(dilation)), ("group", .int(groups))])
    }
    return y
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
    let algorithm = ConvAlgorithm(geo, outChannels: ocg)
    if algorithm.family == .depthwise {
        return depthwiseConv2d(input, weight: weight, bias: bias, geo: geo, fusedReLU: fusedReLU)
    }
    // Every output element is written below (bias fill or beta-0 GEMM, or the direct kernel's rows).
    var out = n * outPer == 0 ? [] : [Float](unsafeUninitializedCapacity: n * outPer) { _, count in count = n * outPer }
    let work = n * cout * ohw * kSize
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
