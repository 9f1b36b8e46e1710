import Foundation

/// conv2d's depthwise path (`ConvAlgorithm.Family.depthwise`: one input and one output channel per
/// group, strides 1 or 2, undilated — MobileNet's and EfficientNet's k×k layers), forward and
/// backward over the planes of `DepthwisePlan`: the forward pass and the input gradient in parallel
/// over images × channels, the weight and bias gradients in parallel over channels (each channel's
/// sums over every image on one thread, so no partials need reducing).
func depthwiseConv2d(_ input: Tensor, weight: Tensor, bias: Tensor?, geo: ConvGeometry, fusedReLU: Bool) -> Tensor {
    let plan = DepthwisePlan(geo)
    let (n, channels) = (input.shape[0], input.shape[1])
    let (inPlane, outPlane, taps) = (geo.h * geo.w, geo.oh * geo.ow, geo.kh * geo.kw)
    let planes = n * channels, work = planes * outPlane * taps
    var out = planes * outPlane == 0 ? [] : uninitializedFloats(planes * outPlane) { _ in }
    input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pw in
    out.withUnsafeMutableBufferPointer { po in
        let (x, wt, o) = (px.baseAddress!, pw.baseAddress!, po.baseAddress!)
        let b = bias?.storage
        Profiler.measure("conv fwd depthwise (wall)") {
            Parallel.forChunks(planes, work: work) { range in
                let xp = UnsafeMutablePointer<Float>.allocate(capacity: plan.scratchCount)
                defer { xp.deallocate() }
                for p in range {
                    let c = p % channels
                    plan.load(x + p * inPlane, into: xp)
                    plan.forward(xp, weights: wt + c * taps, bias: b?[c] ?? 0, relu: fusedReLU, o + p * outPlane)
                }
            }
        }
    } } }

    var inputs = [input, weight]
    if let bias { inputs.append(bias) }
    return Tensor.resultOwningGradient(out, [n, channels, geo.oh, geo.ow], inputs, op: "conv2d") { gOut in
        let needX = input.requiresGrad, needW = weight.requiresGrad, needB = bias?.requiresGrad == true
        if !needX && !needW && !needB { return }
        let g = fusedReLU ? reluMask(gOut, out) : gOut
        var weightGradient = needW ? [Float](repeating: 0, count: weight.count) : []
        var biasGradient = needB ? [Float](repeating: 0, count: channels) : []
        func backwardPass(_ dx: UnsafeMutablePointer<Float>?) {
            g.withUnsafeBufferPointer { pg in input.storage.withUnsafeBufferPointer { px in
            weight.storage.withUnsafeBufferPointer { pw in
            weightGradient.withUnsafeMutableBufferPointer { pdw in biasGradient.withUnsafeMutableBufferPointer { pdb in
                let (gp, x, wt) = (pg.baseAddress!, px.baseAddress!, pw.baseAddress!)
                Profiler.measure("conv bwd depthwise (wall)") {
                    Parallel.forChunks(channels, work: 2 * work) { range in
                        let xp = UnsafeMutablePointer<Float>.allocate(capacity: plan.scratchCount)
                        let dxp = UnsafeMutablePointer<Float>.allocate(capacity: dx == nil ? 0 : plan.scratchCount)
                        let sums = UnsafeMutablePointer<V16>.allocate(capacity: taps)
                        defer { xp.deallocate(); dxp.deallocate(); sums.deallocate() }
                        for c in range {
                            sums.initialize(repeating: V16(), count: taps)
                            var biasSum: Float = 0
                            for s in 0..<n {
                                let p = s * channels + c, dy = gp + p * outPlane
                                if needB { biasSum += simdSum(dy, outPlane) }
                                guard dx != nil || needW else { continue }
                                if needW { plan.load(x + p * inPlane, into: xp) }
                                if dx != nil { dxp.initialize(repeating: 0, count: plan.scratchCount) }
                                plan.backward(xp, weights: wt + c * taps, dy, dxp: dx == nil ? nil : dxp, dw: needW ? sums : nil)
                                if let dx { plan.unpadAdd(dxp, into: dx + p * inPlane) }
                            }
                            if needW { for t in 0..<taps { pdw[c * taps + t] = sums[t].sum() } }
                            if needB { pdb[c] = biasSum }
                        }
                    }
                }
            } } } } }
        }
        if needX { input.accumulate { backwardPass($0.baseAddress) } } else { backwardPass(nil) }
        if needW { weight.accumulate(weightGradient) }
        if let bias, needB { bias.accumulate(biasGradient) }
    }
}
