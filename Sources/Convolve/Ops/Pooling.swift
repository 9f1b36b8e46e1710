import Foundation
import RealModule

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

/// The untraced body of `maxPool2d` (see there).
func maxPool2dUntraced(_ input: Tensor, kernelSize: (Int, Int), stride: (Int, Int)? = nil,
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

/// The untraced body of `avgPool2d` (see there).
func avgPool2dUntraced(_ input: Tensor, kernelSize: (Int, Int), stride: (Int, Int)? = nil,
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
    return Tensor.result(out, [n, c, oh, ow], [input], op: "avgPool2d") { g in
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

/// The untraced body of `globalAvgPool2d` (see there): `[N, C, H, W]` → `[N, C, 1, 1]`, each plane's
/// mean; the gradient spreads each output's gradient evenly over its plane.
func globalAvgPool2dUntraced(_ input: Tensor) -> Tensor {
    precondition(input.rank == 4, "globalAvgPool2d expects [N, C, H, W], got \(input.shape)")
    let (n, c) = (input.shape[0], input.shape[1]), plane = input.shape[2] * input.shape[3]
    let scale = 1 / Float(Swift.max(plane, 1))
    // One vector sum per (sample, channel) plane, planes split over the threads.
    let out = input.storage.withUnsafeBufferPointer { px in
        uninitializedFloats(n * c) { o in
            Parallel.forChunks(n * c, work: input.count, streaming: true) { range in
                for p in range { o[p] = simdSum(px.baseAddress! + p * plane, plane) * scale }
            }
        }
    }
    return Tensor.result(out, [n, c, 1, 1], [input], op: "globalAvgPool2d") { g in
        // Every element of a plane gets its mean's gradient / plane: stored into a new gradient buffer
        // (no zero fill), added into an existing one.
        input.accumulate(overwriting: { d, fresh in
            g.withUnsafeBufferPointer { pg in
                Parallel.forChunks(n * c, work: n * c * plane, streaming: true) { range in
                    for p in range {
                        let v = pg[p] * scale, dst = d.baseAddress! + p * plane
                        if fresh { dst.update(repeating: v, count: plane) } else { for k in 0..<plane { dst[k] += v } }
                    }
                }
            }
        })
    }
}

/// 2×2, stride-2 max pooling (the common case), with the winner's position in its window (0…3) kept
/// for the backward pass.
func maxPool2x2(_ input: Tensor, _ n: Int, _ c: Int, _ h: Int, _ w: Int) -> Tensor {
    let oh = h / 2, ow = w / 2, planes = n * c, total = planes * oh * ow
    var arg = total == 0 ? [] : [UInt8](unsafeUninitializedCapacity: total) { _, count in count = total }   // every byte is written
    let out = input.storage.withUnsafeBufferPointer { px in
        arg.withUnsafeMutableBufferPointer { pa in
            uninitializedFloats(total) { po in
                Parallel.forChunks(planes, work: total * 8, streaming: true) { range in   // 4 reads, 2 writes, selects per output
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
                Parallel.forChunks(planes, work: total * 8, streaming: true) { range in
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

/// 2-D max pooling over NCHW input, like `torch.nn.functional.max_pool2d`.
///
/// - Parameters:
///   - input: `[N, C, H, W]`.
///   - kernelSize: window height and width.
///   - stride: step between windows (default: the window).
///   - padding: implicit −∞ padding (at most half the window).
///   - dilation: spacing between window elements.
///   - ceilMode: round the output size up.
/// - Returns: `[N, C, OH, OW]`; NaN wins a window, as in PyTorch.
public func maxPool2d(_ input: Tensor, kernelSize: (Int, Int), stride: (Int, Int)? = nil,
                      padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), ceilMode: Bool = false) -> Tensor {
    let y = OpTrace.suppressed {
        maxPool2dUntraced(input, kernelSize: kernelSize, stride: stride, padding: padding, dilation: dilation, ceilMode: ceilMode)
    }
    OpTrace.record("MaxPool", [input], output: y, [("kernel_shape", .pair(kernelSize)), ("strides", .pair(stride ?? kernelSize)),
                                                   ("pads", .pads(padding)), ("dilations", .pair(dilation)),
                                                   ("ceil_mode", .int(ceilMode ? 1 : 0))])
    return y
}

/// 2-D average pooling over NCHW input, like `torch.nn.functional.avg_pool2d`.
///
/// - Parameters:
///   - input: `[N, C, H, W]`.
///   - kernelSize: window height and width.
///   - stride: step between windows (default: the window).
///   - padding: implicit zero padding.
///   - ceilMode: round the output size up.
///   - countIncludePad: divide by the whole window, padding included.
/// - Returns: `[N, C, OH, OW]`.
public func avgPool2d(_ input: Tensor, kernelSize: (Int, Int), stride: (Int, Int)? = nil,
                      padding: (Int, Int) = (0, 0), ceilMode: Bool = false, countIncludePad: Bool = true) -> Tensor {
    let y = OpTrace.suppressed {
        avgPool2dUntraced(input, kernelSize: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode,
                          countIncludePad: countIncludePad)
    }
    OpTrace.record("AveragePool", [input], output: y, [("kernel_shape", .pair(kernelSize)), ("strides", .pair(stride ?? kernelSize)),
                                                       ("pads", .pads(padding)), ("ceil_mode", .int(ceilMode ? 1 : 0)),
                                                       ("count_include_pad", .int(countIncludePad ? 1 : 0))])
    return y
}

/// Global average pooling over NCHW input: each channel's mean, `[N, C, H, W]` → `[N, C, 1, 1]`
/// (`torch.nn.functional.adaptive_avg_pool2d(x, 1)`, Keras' `GlobalAveragePooling2D` before its flatten).
///
/// - Parameter input: `[N, C, H, W]`.
public func globalAvgPool2d(_ input: Tensor) -> Tensor {
    let y = OpTrace.suppressed { globalAvgPool2dUntraced(input) }
    OpTrace.record("GlobalAveragePool", [input], output: y)
    return y
}
