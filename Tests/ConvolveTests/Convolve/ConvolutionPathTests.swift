import Foundation
import Testing
@testable import Convolve

/// Every algorithm path of the convolution and pooling ops over random shapes: a seeded generator draws
/// geometries across every boundary where `ConvAlgorithm` changes its choice (direct / shifted rows /
/// Winograd F(2×2) and F(4×4) forward and input gradient, F(2×2) weight gradient / channels-last
/// weight gradient / strided layers on the polyphase layout / im2col / pointwise / depthwise),
/// and each case is compared, values and all gradients, with a plain float64 reference written here.
/// The test also counts how often each path was taken, so it cannot silently stop covering one.
@Suite struct ConvolutionPathTests {
    /// Draws a geometry; channel counts straddle the direct (ocg·taps ≤ 512), Winograd (≥ 16) and
    /// channels-last (multiple of 16 / 32) boundaries, kernels run 1…5 with 3×3 drawn often.
    static func draw(_ rng: RandomGenerator) -> ConvCase {
        func pick<T>(_ options: [T]) -> T { options[rng.nextInt(options.count)] }
        // One in six: a depthwise layer (one channel in and out per group), kernels 1…5 with 3×3 and 5×5
        // drawn often, strides 1 or 2, rows wider than one 16-lane chunk.
        if rng.nextInt(6) == 0 {
            while true {
                let channels = 1 + rng.nextInt(12)
                let k = pick([(3, 3), (5, 5), (3, 3), (5, 5), (1 + rng.nextInt(5), 1 + rng.nextInt(5))])
                let s = (1 + rng.nextInt(2), 1 + rng.nextInt(2))
                let p = (rng.nextInt(3), rng.nextInt(3))
                let g = ConvCase(n: 1 + rng.nextInt(3), c: channels, h: 1 + rng.nextInt(20), w: 1 + rng.nextInt(40),
                                 oc: channels, groups: channels, k: k, s: s, p: p, d: (1, 1), bias: rng.nextInt(3) != 0)
                if g.oh > 0 && g.ow > 0 { return g }
            }
        }
        while true {
            let groups = pick([1, 1, 1, 1, 2, 3])
            let cg = pick([1, 2, 3, 5, 8, 15, 16, 16, 17, 24, 32, 32])
            let ocg = pick([1, 2, 4, 7, 8, 15, 16, 16, 17, 24, 32])
            let square3 = rng.nextInt(2) == 0
            let k = square3 ? (3, 3) : (1 + rng.nextInt(5), 1 + rng.nextInt(5))
            let unit = rng.nextInt(4) != 0
            let s = unit ? (1, 1) : (1 + rng.nextInt(2), 1 + rng.nextInt(2))
            let d = unit || rng.nextInt(2) == 0 ? (1, 1) : (1 + rng.nextInt(2), 1 + rng.nextInt(2))
            let p = rng.nextInt(3) == 0 ? (0, 0) : (rng.nextInt(4), rng.nextInt(4))
            let g = ConvCase(n: 1 + rng.nextInt(3), c: cg * groups, h: 1 + rng.nextInt(11), w: 1 + rng.nextInt(13),
                             oc: ocg * groups, groups: groups, k: k, s: s, p: p, d: d, bias: rng.nextInt(3) != 0)
            if g.oh > 0 && g.ow > 0 && g.work <= 400_000 { return g }
        }
    }

    /// The convolution and its three gradients for upstream gradient `gy`, by the definition, in float64.
    static func reference(_ g: ConvCase, x: [Float], w: [Float], b: [Float]?, gy: [Float])
        -> (y: [Float], dx: [Float], dw: [Float], db: [Float]) {
        let (cg, ocg, oh, ow) = (g.c / g.groups, g.oc / g.groups, g.oh, g.ow)
        var y = [Double](repeating: 0, count: g.n * g.oc * oh * ow)
        var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: w.count)
        var db = [Double](repeating: 0, count: g.oc)
        for s in 0..<g.n { for oc in 0..<g.oc {
            let group = oc / ocg
            for oy in 0..<oh { for ox in 0..<ow {
                let yi = ((s * g.oc + oc) * oh + oy) * ow + ox
                var acc = Double(b?[oc] ?? 0)
                let up = Double(gy[yi])
                db[oc] += up
                for ci in 0..<cg { for ki in 0..<g.k.0 { for kj in 0..<g.k.1 {
                    let iy = oy * g.s.0 - g.p.0 + ki * g.d.0, ix = ox * g.s.1 - g.p.1 + kj * g.d.1
                    guard iy >= 0 && iy < g.h && ix >= 0 && ix < g.w else { continue }
                    let xi = ((s * g.c + group * cg + ci) * g.h + iy) * g.w + ix
                    let wi = ((oc * cg + ci) * g.k.0 + ki) * g.k.1 + kj
                    acc += Double(x[xi]) * Double(w[wi])
                    dx[xi] += Double(w[wi]) * up
                    dw[wi] += Double(x[xi]) * up
                } } }
                y[yi] = acc
            } }
        } }
        func f(_ a: [Double]) -> [Float] { a.map { Float($0) } }
        return (f(y), f(dx), f(dw), f(db))
    }

    /// Largest difference, allowed relative to the tensor's largest magnitude (Winograd and long float32
    /// sums round relative to the size of the terms, not of each result).
    static func expectNear(_ a: [Float], _ b: [Float], _ what: String, _ g: ConvCase,
                           sourceLocation: SourceLocation = #_sourceLocation) {
        let scale = b.map(abs).max() ?? 0
        let worst = a.count == b.count ? zip(a, b).map { abs($0 - $1) }.max() ?? 0 : .infinity
        #expect(worst.isFinite && worst <= 2e-5 * scale + 1e-5,
                "\(g.testDescription) \(what): off by \(worst) (scale \(scale))", sourceLocation: sourceLocation)
    }

    /// Which of `ConvAlgorithm`'s paths a geometry takes.
    static func paths(_ g: ConvCase) -> [String] {
        let geo = ConvGeometry(c: g.c / g.groups, h: g.h, w: g.w, kh: g.k.0, kw: g.k.1, sh: g.s.0, sw: g.s.1,
                               ph: g.p.0, pw: g.p.1, dh: g.d.0, dw: g.d.1, oh: g.oh, ow: g.ow)
        let a = ConvAlgorithm(geo, outChannels: g.oc / g.groups)
        var names = ["\(a.family)"]
        if geo.isPointwise { names.append("pointwise") }
        if a.forwardWinograd != nil { names.append("winograd forward") }
        if a.inputGradientWinograd != nil { names.append("winograd dX") }
        if a.forwardWinograd4 != nil { names.append("winograd4 forward") }
        if a.inputGradientWinograd4 != nil { names.append("winograd4 dX") }
        if a.weightGradientWinograd4 != nil { names.append("winograd4 dW") }
        if let dw = a.weightGradientWinograd4, let dx = a.inputGradientWinograd4, dw.readsGradient(of: dx) {
            names.append("winograd4 dW reads dX's dy")
        }
        if a.weightGradientWinograd != nil { names.append("winograd dW") }
        if a.weightGradientChannelsLast { names.append("channels-last dW") }
        if a.family == .depthwise {
            if g.s != (1, 1) { names.append("strided depthwise") }
            if g.ow >= 16 { names.append("depthwise full chunks") }
        }
        if a.family == .shiftedRows && g.s != (1, 1) {
            names.append("strided shifted rows")   // the polyphase layout
            if a.weightGradientChannelsLast { names.append("strided channels-last dW") }
            if g.k.0 < g.s.0 || g.k.1 < g.s.1 { names.append("unread phases") }
        }
        if a.family == .shiftedRows && (g.c / g.groups) >= 16 && (g.oc / g.groups) >= 16 && g.k != (3, 3) {
            names.append("non-3x3 wide")   // the layers of the Winograd input-gradient defect
        }
        return names
    }

    /// Runs conv2d (plain, fused ReLU, fused ReLU + 2×2 pool) on `g` and checks every output and
    /// gradient against the reference.
    static func check(_ g: ConvCase, seed: UInt64) {
        let rng = RandomGenerator(seed: seed)
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in rng.nextFloat() * 2 - 1 } }
        let xv = values(g.n * g.c * g.h * g.w), wv = values(g.oc * (g.c / g.groups) * g.k.0 * g.k.1)
        let bv = g.bias ? values(g.oc) : nil
        let gy = values(g.n * g.oc * g.oh * g.ow)
        let ref = reference(g, x: xv, w: wv, b: bv, gy: gy)

        // Plain convolution: every gradient against the reference.
        let x = Tensor(xv, shape: [g.n, g.c, g.h, g.w], requiresGrad: true)
        let w = Tensor(wv, shape: [g.oc, g.c / g.groups, g.k.0, g.k.1], requiresGrad: true)
        let b = bv.map { Tensor($0, shape: [g.oc], requiresGrad: true) }
        let y = conv2d(x, weight: w, bias: b, stride: g.s, padding: g.p, dilation: g.d, groups: g.groups)
        y.backward(Tensor(gy, shape: y.shape))
        expectNear(y.storage, ref.y, "y", g)
        expectNear(x.grad?.storage ?? [], ref.dx, "dx", g)
        expectNear(w.grad?.storage ?? [], ref.dw, "dw", g)
        if let b { expectNear(b.grad?.storage ?? [], ref.db, "db", g) }

        // Fused ReLU: the gradient passes where the reference output is positive.
        let mask = ref.y.map { $0 > 0 ? Float(1) : 0 }
        let gyMasked = zip(gy, mask).map { $0 * $1 }
        let refMasked = reference(g, x: xv, w: wv, b: bv, gy: gyMasked)
        for t in [x, w] + (b.map { [$0] } ?? []) { t.grad = nil }
        let yr = conv2d(x, weight: w, bias: b, stride: g.s, padding: g.p, dilation: g.d, groups: g.groups,
                        fusedReLU: true)
        yr.backward(Tensor(gy, shape: yr.shape))
        expectNear(yr.storage, ref.y.map { max($0, 0) }, "relu y", g)
        expectNear(x.grad?.storage ?? [], refMasked.dx, "relu dx", g)
        expectNear(w.grad?.storage ?? [], refMasked.dw, "relu dw", g)
        if let b { expectNear(b.grad?.storage ?? [], refMasked.db, "relu db", g) }

        // Fused ReLU + 2×2 max-pool (unit stride and dilation), against the separate ops.
        guard g.s == (1, 1) && g.d == (1, 1) && g.oh >= 2 && g.ow >= 2 else { return }
        func pooled(_ fused: Bool) -> [[Float]] {
            for t in [x, w] + (b.map { [$0] } ?? []) { t.grad = nil }
            let out = fused ? conv2dReLUMaxPool2x2(x, weight: w, bias: b, padding: g.p, groups: g.groups)
                : maxPool2d(conv2d(x, weight: w, bias: b, padding: g.p, groups: g.groups).relu(), kernelSize: (2, 2))
            let up = Tensor((0..<out.count).map { Float($0 % 7) - 3 }, shape: out.shape)
            out.backward(up)
            return [out.storage, x.grad?.storage ?? [], w.grad?.storage ?? []] + (b.map { [$0.grad?.storage ?? []] } ?? [])
        }
        let (fusedPool, separatePool) = (pooled(true), pooled(false))
        let refPool = withNoGrad { maxPool2d(Tensor(ref.y, shape: [g.n, g.oc, g.oh, g.ow]).relu(), kernelSize: (2, 2)) }
        expectNear(fusedPool[0], refPool.storage, "relu+pool y", g)
        for (i, name) in ["relu+pool y", "relu+pool dx", "relu+pool dw", "relu+pool db"].enumerated()
        where i < fusedPool.count {
            expectNear(fusedPool[i], separatePool[i], name + " (fused vs separate)", g)
        }
    }

    @Test func randomGeometriesMatchTheDefinition() {
        let rng = RandomGenerator(seed: 2026_12_01)
        var seen: [String: Int] = [:]
        for i in 0..<1000 {
            let g = Self.draw(rng)
            for name in Self.paths(g) { seen[name, default: 0] += 1 }
            Self.check(g, seed: UInt64(i))
        }
        // Winograd off: the same kind of layers on the GEMM paths alone.
        Winograd.$override.withValue(false) {
            for i in 0..<200 { Self.check(Self.draw(rng), seed: 1000 + UInt64(i)) }
        }
        for name in ["direct", "shiftedRows", "im2col", "depthwise", "strided depthwise", "depthwise full chunks", "pointwise", "winograd forward", "winograd dX",
                     "winograd4 forward", "winograd4 dX", "winograd4 dW", "winograd dW", "channels-last dW", "non-3x3 wide",
                     "strided shifted rows", "strided channels-last dW", "unread phases"] {
            #expect(seen[name, default: 0] >= 3, "path \(name) drawn \(seen[name, default: 0]) times: \(seen)")
        }
    }

    /// Winograd F(4×4, 3×3)'s rounding error on the zoo's 3×3 layers (mnist-cnn's conv2, ResNet's first
    /// and last stage), with activations, weights and upstream gradients of realistic size
    /// (non-negative inputs as after a ReLU, Kaiming-scaled weights): the forward pass, the input and
    /// the weight gradient stay within 1e-5 of the tensor's largest value at worst and 1e-6 on average
    /// against a float64 definition (measured: y 3.0–3.7e-6, dx 5.1–6.4e-6, dw 1.3–3.2e-6 worst;
    /// 1.0–2.5e-7 mean). Five images: full batches of several images' tiles and a partial one.
    @Test(arguments: [
        ConvCase(n: 5, c: 32, h: 26, w: 26, oc: 64, groups: 1, k: (3, 3), s: (1, 1), p: (0, 0), d: (1, 1), bias: true),
        ConvCase(n: 5, c: 16, h: 32, w: 32, oc: 16, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: false),
        ConvCase(n: 5, c: 64, h: 8, w: 8, oc: 64, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: false),
    ])
    func winogradPrecisionOnTheZooLayers(_ g: ConvCase) {
        let paths = Self.paths(g)
        #expect(paths.contains("winograd4 forward") && paths.contains("winograd4 dX") && paths.contains("winograd4 dW"), "\(paths)")
        // mnist-cnn's conv2 (24×24 outputs, one image per dW pass): dW reads dX's channels-last dy.
        #expect(paths.contains("winograd4 dW reads dX's dy") == (g.h == 26), "\(paths)")
        let rng = RandomGenerator(seed: 15)
        let bound = 1 / Float(9 * g.c).squareRoot()
        let xv = (0..<(g.n * g.c * g.h * g.w)).map { _ in max(0, rng.nextFloat() * 2 - 1) }
        let wv = (0..<(g.oc * g.c * 9)).map { _ in (rng.nextFloat() * 2 - 1) * bound }
        let bv = g.bias ? (0..<g.oc).map { _ in (rng.nextFloat() * 2 - 1) * bound } : nil
        let gy = (0..<(g.n * g.oc * g.oh * g.ow)).map { _ in rng.nextFloat() * 2 - 1 }
        let ref = Self.reference(g, x: xv, w: wv, b: bv, gy: gy)
        let x = Tensor(xv, shape: [g.n, g.c, g.h, g.w], requiresGrad: true)
        let w = Tensor(wv, shape: [g.oc, g.c, 3, 3], requiresGrad: true)
        let b = bv.map { Tensor($0, shape: [g.oc], requiresGrad: true) }
        let y = Winograd.$override.withValue(true) {
            let y = conv2d(x, weight: w, bias: b, padding: g.p)
            y.backward(Tensor(gy, shape: y.shape))
            return y
        }
        for (name, got, want) in [("y", y.storage, ref.y), ("dx", x.grad?.storage ?? [], ref.dx),
                                  ("dw", w.grad?.storage ?? [], ref.dw)] {
            let scale = want.map(abs).max() ?? 0
            let errors = zip(got, want).map { abs($0 - $1) / scale }
            let worst = errors.max() ?? .infinity, mean = errors.reduce(0, +) / Float(errors.count)
            #expect(got.count == want.count && worst <= 1e-5 && mean <= 1e-6,
                    "\(g.testDescription) \(name): worst \(worst), mean \(mean) of the largest value \(scale)")
        }
    }

    /// The layers of the input-gradient defect (issue 17): stride 1, non-3×3 kernels, ≥ 16 channels.
    @Test(arguments: [
        ConvCase(n: 3, c: 32, h: 10, w: 9, oc: 16, groups: 1, k: (5, 5), s: (1, 1), p: (2, 2), d: (1, 1), bias: true),
        ConvCase(n: 1, c: 16, h: 2, w: 2, oc: 16, groups: 1, k: (2, 2), s: (1, 1), p: (0, 0), d: (1, 1), bias: false),
        ConvCase(n: 2, c: 16, h: 6, w: 7, oc: 16, groups: 1, k: (1, 3), s: (1, 1), p: (0, 1), d: (1, 1), bias: true),
        ConvCase(n: 2, c: 16, h: 7, w: 6, oc: 32, groups: 1, k: (3, 1), s: (1, 1), p: (1, 0), d: (1, 1), bias: true),
        ConvCase(n: 1, c: 32, h: 8, w: 8, oc: 32, groups: 2, k: (4, 4), s: (1, 1), p: (1, 2), d: (1, 1), bias: true),
        ConvCase(n: 1, c: 16, h: 9, w: 9, oc: 16, groups: 1, k: (5, 3), s: (1, 1), p: (2, 1), d: (1, 1), bias: false),
    ])
    func nonSquareKernelsWithManyChannels(_ g: ConvCase) {
        Self.check(g, seed: 17)
    }

    /// Strided layers on the polyphase layout at the sizes where its vector paths run (rows of 16 phase
    /// columns or more): ResNet's stride-2 3×3 and 1×1 layers (32×32 and 16×16 inputs), odd widths and
    /// paddings (phases of unequal width), stride on one axis only, stride 3 and a kernel narrower
    /// than the stride (phases no tap reads). The random draw above keeps images small.
    @Test(arguments: [
        ConvCase(n: 2, c: 16, h: 32, w: 32, oc: 32, groups: 1, k: (3, 3), s: (2, 2), p: (1, 1), d: (1, 1), bias: false),
        ConvCase(n: 2, c: 16, h: 32, w: 32, oc: 32, groups: 1, k: (1, 1), s: (2, 2), p: (0, 0), d: (1, 1), bias: false),
        ConvCase(n: 2, c: 32, h: 16, w: 16, oc: 64, groups: 1, k: (3, 3), s: (2, 2), p: (1, 1), d: (1, 1), bias: true),
        ConvCase(n: 1, c: 8, h: 35, w: 37, oc: 16, groups: 1, k: (3, 3), s: (2, 2), p: (0, 0), d: (1, 1), bias: true),
        ConvCase(n: 1, c: 3, h: 20, w: 41, oc: 24, groups: 1, k: (5, 4), s: (2, 2), p: (2, 1), d: (1, 1), bias: true),
        ConvCase(n: 2, c: 32, h: 9, w: 40, oc: 16, groups: 1, k: (3, 3), s: (1, 2), p: (1, 1), d: (1, 1), bias: false),
        ConvCase(n: 1, c: 16, h: 33, w: 12, oc: 16, groups: 1, k: (3, 3), s: (2, 1), p: (1, 1), d: (1, 1), bias: true),
        ConvCase(n: 1, c: 4, h: 50, w: 52, oc: 20, groups: 2, k: (2, 2), s: (3, 3), p: (1, 2), d: (1, 1), bias: true),
    ])
    func stridedLayersOnThePolyphaseLayout(_ g: ConvCase) {
        #expect(Self.paths(g).contains("strided shifted rows"), "\(Self.paths(g))")
        Self.check(g, seed: 23)
    }

    /// Finite differences on a few drawn geometries of each family (the reference above is itself checked).
    @Test func finiteDifferencesOnDrawnGeometries() {
        let rng = RandomGenerator(seed: 77)
        var families: [String: Int] = [:]
        var checked = 0
        while checked < 12 {
            let g = Self.draw(rng)
            let family = Self.paths(g)[0]
            guard g.work <= 60_000, families[family, default: 0] < 4 else { continue }
            families[family, default: 0] += 1
            checked += 1
            let x = rand([g.n, g.c, g.h, g.w], seed: 1), w = rand([g.oc, g.c / g.groups, g.k.0, g.k.1], seed: 2)
            var inputs = [x, w]
            if g.bias { inputs.append(rand([g.oc], seed: 3)) }
            gradCheck(inputs, maxElements: 40) { t in
                conv2d(t[0], weight: t[1], bias: g.bias ? t[2] : nil, stride: g.s, padding: g.p, dilation: g.d,
                       groups: g.groups)
            }
        }
        #expect(families.count == 3, "families checked: \(families)")
    }

    /// Max-pooling over random shapes (the 2×2 fast path, its vector blocks and tails, the general path)
    /// against the definition; ties cannot occur with random floats.
    @Test func randomPoolingMatchesTheDefinition() {
        let rng = RandomGenerator(seed: 5)
        for i in 0..<200 {
            let k = rng.nextInt(3) == 0 ? (1 + rng.nextInt(3), 1 + rng.nextInt(3)) : (2, 2)
            let s = rng.nextInt(3) == 0 ? (1 + rng.nextInt(3), 1 + rng.nextInt(3)) : k
            let (n, c, h, w) = (1 + rng.nextInt(3), 1 + rng.nextInt(5), k.0 + rng.nextInt(30), k.1 + rng.nextInt(40))
            let x = rand([n, c, h, w], seed: UInt64(i))
            let y = maxPool2d(x, kernelSize: k, stride: s)
            let (oh, ow) = ((h - k.0) / s.0 + 1, (w - k.1) / s.1 + 1)
            #expect(y.shape == [n, c, oh, ow])
            let gy = rand(y.shape, seed: UInt64(i) + 999, grad: false)
            y.backward(gy)
            var ry = [Float](repeating: 0, count: n * c * oh * ow), rdx = [Float](repeating: 0, count: x.count)
            for p in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
                var best = -Float.infinity, at = 0
                for ki in 0..<k.0 { for kj in 0..<k.1 {
                    let xi = (p * h + oy * s.0 + ki) * w + ox * s.1 + kj
                    if x.storage[xi] > best { best = x.storage[xi]; at = xi }
                } }
                let yi = (p * oh + oy) * ow + ox
                ry[yi] = best
                rdx[at] += gy.storage[yi]
            } } }
            #expect(y.storage == ry, "pool \(k) stride \(s) on \(h)x\(w)")
            #expect(x.grad?.storage == rdx, "pool gradient \(k) stride \(s) on \(h)x\(w)")
        }
    }

    /// Sliced inference (`inferInSlices`) equals one forward pass over the whole batch, for batch sizes
    /// around the slice boundaries.
    @Test(arguments: [1, 63, 64, 65, 129, 200])
    func slicedInferenceEqualsOneForwardPass(_ n: Int) {
        let x = rand([n, 3, 9, 9], seed: 8, grad: false)
        let w = rand([16, 3, 3, 3], seed: 9, grad: false), w2 = rand([16, 16, 3, 3], seed: 10, grad: false)
        func net(_ t: Tensor) -> Tensor {
            conv2dReLUMaxPool2x2(conv2d(t, weight: w, padding: (1, 1), fusedReLU: true), weight: w2, padding: (1, 1))
        }
        let whole = withNoGrad { net(x) }
        let sliced = inferInSlices(x) { net($0) }
        #expect(sliced.shape == whole.shape && sliced.storage == whole.storage)
    }
}
