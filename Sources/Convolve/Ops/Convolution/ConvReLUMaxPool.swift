import Foundation

/// `max_pool2d(relu(conv2d(input, ...)), 2)` as one op: each image's convolution output stays in a
/// cache-sized wide buffer and only the pooled maxima (and which of the four won) are kept, so the
/// full-size activation and its gradient never exist. Same values and gradients as the three ops
/// (ties go to the first maximum, as in PyTorch); layers the shifted-rows GEMM path does not take
/// (strided, dilated, pointwise or few-channel ones) run as the separate ops.
///
/// - Parameters:
///   - input: `[N, C, H, W]`.
///   - weight: `[outC, C / groups, kh, kw]` (unit stride and dilation).
///   - bias: `[outC]`, or nil.
///   - padding: zeros added on each side, down and across.
///   - groups: independent channel groups.
/// - Returns: `[N, outC, OH / 2, OW / 2]`.
public func conv2dReLUMaxPool2x2(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                                 padding: (Int, Int) = (0, 0), groups: Int = 1) -> Tensor {
    let y = OpTrace.suppressed { conv2dReLUMaxPool2x2Untraced(input, weight: weight, bias: bias, padding: padding, groups: groups) }
    if let trace = OpTrace.current {
        let rows = input.shape[2] + 2 * padding.0 - weight.shape[2] + 1, columns = input.shape[3] + 2 * padding.1 - weight.shape[3] + 1
        trace.count(multiplyAdds: input.shape[0] * weight.count * rows * columns)
        let c = trace.add("Conv", [trace.id(input), trace.id(weight), bias.map { trace.id($0) }],
                          [("kernel_shape", .ints([weight.shape[2], weight.shape[3]])), ("strides", .ints([1, 1])),
                           ("pads", .pads(padding)), ("dilations", .ints([1, 1])), ("group", .int(groups))])
        let r = trace.add("Relu", [c])
        trace.add("MaxPool", [r], output: y, [("kernel_shape", .ints([2, 2])), ("strides", .ints([2, 2]))])
    }
    return y
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
