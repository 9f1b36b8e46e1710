import Foundation
import Testing
@testable import Convolve
import ConvolveNN

/// Finite-difference checks for every differentiable op, through the shared `gradCheck` harness.
@Suite struct GradCheckTests {
    @Test(arguments: [([3, 1, 4], [2, 4]), ([2, 3], [2, 3]), ([5], []), ([2, 1, 3], [1, 4, 1])])
    func broadcastArithmetic(_ shapes: ([Int], [Int])) {
        let a = rand(shapes.0, seed: 1), b = rand(shapes.1, seed: 2, low: 0.5, high: 2)
        gradCheck([a, b]) { $0[0] + $0[1] }
        gradCheck([a, b]) { $0[0] - $0[1] }
        gradCheck([a, b]) { $0[0] * $0[1] }
        gradCheck([a, b]) { $0[0] / $0[1] }
    }

    @Test func scalarArithmetic() {
        let a = rand([3, 4], seed: 3, low: 0.5, high: 2)
        gradCheck([a]) { 2 - $0[0] * 3 + 1 }
        gradCheck([a]) { 1.5 / $0[0] }
        gradCheck([a]) { -$0[0] / 4 }
    }

    @Test func unaryOps() {
        let a = rand([4, 5], seed: 4)
        let pos = rand([4, 5], seed: 5, low: 0.2, high: 2)
        gradCheck([a], eps: 1e-3) { $0[0].relu() }
        gradCheck([a], eps: 1e-3) { $0[0].leakyRelu(0.1) }
        gradCheck([a]) { $0[0].sigmoid() }
        gradCheck([a]) { $0[0].tanh() }
        gradCheck([a]) { $0[0].exp() }
        gradCheck([pos]) { $0[0].log() }
        gradCheck([pos]) { $0[0].sqrt() }
        gradCheck([a]) { $0[0].square() }
        gradCheck([pos]) { $0[0].pow(1.5) }
        gradCheck([a], eps: 1e-3) { $0[0].abs() }
        gradCheck([a], eps: 1e-3) { $0[0].clamp(min: -0.5, max: 0.5) }
    }

    @Test func reductions() {
        let a = rand([3, 4, 5], seed: 6)
        gradCheck([a]) { $0[0].sum() }
        gradCheck([a]) { $0[0].mean() }
        gradCheck([a]) { $0[0].sum(dim: 1) }
        gradCheck([a]) { $0[0].mean(dim: -1, keepDim: true) }
        gradCheck([a]) { $0[0].sum(dims: [0, 2]) }
        gradCheck([a], eps: 1e-3) { $0[0].max(dim: 2) }
        gradCheck([a], eps: 1e-3) { $0[0].max(dim: 0, keepDim: true) }
    }

    @Test func shapeOps() {
        let a = rand([2, 3, 4], seed: 7)
        gradCheck([a]) { $0[0].permute(2, 0, 1) }
        gradCheck([a]) { $0[0].transpose(0, 2) }
        gradCheck([a]) { $0[0].reshape(4, -1) }
        gradCheck([a]) { $0[0].flatten(startDim: 1) }
        gradCheck([a]) { $0[0][1..<2] }
        gradCheck([a]) { $0[0].unsqueeze(1).squeeze(1) }
        let b = rand([3, 3, 4], seed: 8)
        gradCheck([a, b]) { Tensor.cat([$0[0], $0[1]]) }
    }

    @Test func matmul() {
        gradCheck([rand([3, 5], seed: 9), rand([5, 4], seed: 10)]) { $0[0].matmul($0[1]) }
        gradCheck([rand([2, 3, 5], seed: 11), rand([5, 7], seed: 12)]) { $0[0].matmul($0[1]) }
        gradCheck([rand([2, 3, 5], seed: 13), rand([2, 5, 2], seed: 14)]) { $0[0].matmul($0[1]) }
        gradCheck([rand([17, 33], seed: 15), rand([33, 9], seed: 16)]) { $0[0].matmul($0[1]) }
    }

    @Test func softmaxFamily() {
        let a = rand([3, 4, 5], seed: 17, low: -3, high: 3)
        gradCheck([a]) { $0[0].softmax(dim: 1) }
        gradCheck([a]) { $0[0].softmax(dim: -1) }
        gradCheck([a]) { $0[0].logSoftmax(dim: 0) }
        gradCheck([a]) { $0[0].logSoftmax(dim: -1) }
    }

    static let convCases: [ConvCase] = [
        ConvCase(n: 2, c: 3, h: 7, w: 6, oc: 4, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: true),
        ConvCase(n: 1, c: 2, h: 9, w: 7, oc: 3, groups: 1, k: (3, 3), s: (2, 2), p: (1, 1), d: (1, 1), bias: true),
        ConvCase(n: 2, c: 2, h: 8, w: 5, oc: 2, groups: 1, k: (3, 2), s: (2, 1), p: (0, 1), d: (1, 2), bias: false),
        ConvCase(n: 1, c: 4, h: 5, w: 5, oc: 6, groups: 2, k: (3, 3), s: (1, 1), p: (2, 2), d: (2, 2), bias: true),
        ConvCase(n: 3, c: 5, h: 3, w: 4, oc: 2, groups: 1, k: (1, 1), s: (1, 1), p: (0, 0), d: (1, 1), bias: true),
        // wide enough for the GEMM path that reads shifted rows of the padded image
        ConvCase(n: 2, c: 8, h: 6, w: 5, oc: 12, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: true),
        // 32 channels: the weight gradient reads a channels-last copy of the image
        ConvCase(n: 1, c: 32, h: 4, w: 17, oc: 4, groups: 1, k: (3, 3), s: (1, 1), p: (1, 0), d: (1, 1), bias: true),
        // 16 channels in and out: Winograd forward and input gradient
        ConvCase(n: 1, c: 16, h: 5, w: 6, oc: 16, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: true),
    ]
    @Test(arguments: convCases)
    func conv2dGradients(_ cc: ConvCase) {
        let x = rand([cc.n, cc.c, cc.h, cc.w], seed: 20)
        let w = rand([cc.oc, cc.c / cc.groups, cc.k.0, cc.k.1], seed: 21)
        var inputs = [x, w]
        if cc.bias { inputs.append(rand([cc.oc], seed: 22)) }
        gradCheck(inputs) { t in
            conv2d(t[0], weight: t[1], bias: cc.bias ? t[2] : nil, stride: cc.s, padding: cc.p,
                   dilation: cc.d, groups: cc.groups)
        }
    }

    /// A convolution whose input already holds a gradient (a residual block's shortcut, here `x · r`
    /// back-propagated first) adds its own to it: every path's input gradient, Winograd's and the GEMM's
    /// (W4's strided 3×3 and 1×1 shortcut layers among them), equals the convolution's alone plus `r`.
    @Test(arguments: convCases + [
        ConvCase(n: 2, c: 16, h: 8, w: 8, oc: 32, groups: 1, k: (1, 1), s: (2, 2), p: (0, 0), d: (1, 1), bias: false),
        ConvCase(n: 2, c: 16, h: 8, w: 8, oc: 32, groups: 1, k: (3, 3), s: (2, 2), p: (1, 1), d: (1, 1), bias: false),
        // rows of 48 and 34: the strided layers' vector interleave (32 and 16 wide) and its tail
        ConvCase(n: 2, c: 16, h: 6, w: 48, oc: 32, groups: 1, k: (3, 3), s: (2, 2), p: (1, 1), d: (1, 1), bias: false),
        ConvCase(n: 2, c: 16, h: 5, w: 34, oc: 32, groups: 1, k: (1, 1), s: (2, 2), p: (0, 0), d: (1, 1), bias: false),
        // F(4×4, 3×3)'s input gradient (channels multiples of 16; several slots), F(2×2, 3×3)'s (17 and 20)
        ConvCase(n: 5, c: 16, h: 13, w: 19, oc: 32, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: true),
        ConvCase(n: 2, c: 17, h: 7, w: 9, oc: 20, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: true),
        ConvCase(n: 2, c: 32, h: 26, w: 26, oc: 64, groups: 1, k: (3, 3), s: (1, 1), p: (0, 0), d: (1, 1), bias: true),
    ])
    func convInputGradientAddsToAnExistingOne(_ cc: ConvCase) {
        let x = rand([cc.n, cc.c, cc.h, cc.w], seed: 60)
        let w = rand([cc.oc, cc.c / cc.groups, cc.k.0, cc.k.1], seed: 61), b = cc.bias ? rand([cc.oc], seed: 62) : nil
        let shortcut = rand(x.shape, seed: 63)
        func conv() -> Tensor {
            conv2d(x, weight: w, bias: b, stride: cc.s, padding: cc.p, dilation: cc.d, groups: cc.groups)
        }
        let upstream = rand(withNoGrad { conv() }.shape, seed: 64)
        x.grad = nil
        (conv() * upstream).sum().backward()
        let alone = x.grad!.storage
        x.grad = nil
        // The first summand's gradient reaches x first (the engine visits the last input first).
        ((x * shortcut).sum() + (conv() * upstream).sum()).backward()
        let both = x.grad!.storage
        let worst = (0..<x.count).map { abs(both[$0] - (alone[$0] + shortcut.storage[$0])) }.max() ?? .infinity
        #expect(worst < 1e-4, "\(cc.testDescription): \(worst)")
    }

    /// `conv2d(fusedReLU: true)` against `conv2d(...).relu()`: values and all three gradients, on every
    /// geometry above plus wide layers that take the GEMM path (bias + ReLU in the GEMM's store).
    @Test(arguments: convCases + [
        ConvCase(n: 3, c: 32, h: 8, w: 7, oc: 40, groups: 1, k: (3, 3), s: (1, 1), p: (0, 0), d: (1, 1), bias: true),
        ConvCase(n: 2, c: 16, h: 6, w: 6, oc: 24, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: false),
    ])
    func fusedReLUMatchesSeparateReLU(_ cc: ConvCase) {
        func run(_ fused: Bool) -> [[Float]] {
            convOutputAndGradients(cc, seed: 30) { x, w, b in
                fused ? conv2d(x, weight: w, bias: b, stride: cc.s, padding: cc.p, dilation: cc.d, groups: cc.groups,
                               fusedReLU: true)
                      : conv2d(x, weight: w, bias: b, stride: cc.s, padding: cc.p, dilation: cc.d, groups: cc.groups).relu()
            }
        }
        let (f, s) = (run(true), run(false))
        #expect(f[0].contains { $0 == 0 } && f[0].contains { $0 > 0 }, "the case must clip some outputs")
        expectSame(f, s, cc.testDescription)
    }

    /// Runs `op` on random input, weight and bias for `cc` (seeds `seed`…`seed + 3`) and back-propagates a
    /// random upstream gradient: the output, then the input, weight (and bias) gradients.
    func convOutputAndGradients(_ cc: ConvCase, seed: UInt64, _ op: (Tensor, Tensor, Tensor?) -> Tensor) -> [[Float]] {
        let x = rand([cc.n, cc.c, cc.h, cc.w], seed: seed)
        let w = rand([cc.oc, cc.c / cc.groups, cc.k.0, cc.k.1], seed: seed + 1)
        let b = cc.bias ? rand([cc.oc], seed: seed + 2) : nil
        let y = op(x, w, b)
        (y * rand(y.shape, seed: seed + 3)).sum().backward()
        return [y.storage, x.grad!.storage, w.grad!.storage] + (b.map { [$0.grad!.storage] } ?? [])
    }

    /// Output, input, weight (and bias) gradients of a fused op and of its separate ops agree.
    func expectSame(_ fused: [[Float]], _ separate: [[Float]], _ label: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(fused.count == separate.count, sourceLocation: sourceLocation)
        for (i, (a, b)) in zip(fused, separate).enumerated() {
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
            #expect(a.count == b.count && worst < 1e-5, "\(label) tensor \(i): \(worst)", sourceLocation: sourceLocation)
        }
    }

    /// `conv2dReLUMaxPool2x2` against the three separate ops: values and all gradients (odd sizes
    /// drop the last row/column; other geometries fall back to the separate ops).
    @Test(arguments: convCases.filter { $0.s == (1, 1) && $0.d == (1, 1) } + [
        ConvCase(n: 3, c: 32, h: 9, w: 8, oc: 40, groups: 1, k: (3, 3), s: (1, 1), p: (0, 0), d: (1, 1), bias: true),
        ConvCase(n: 2, c: 16, h: 7, w: 9, oc: 24, groups: 2, k: (3, 2), s: (1, 1), p: (1, 1), d: (1, 1), bias: false),
    ])
    func fusedReLUMaxPoolMatchesSeparateOps(_ cc: ConvCase) {
        func run(_ fused: Bool) -> [[Float]] {
            convOutputAndGradients(cc, seed: 40) { x, w, b in
                fused ? conv2dReLUMaxPool2x2(x, weight: w, bias: b, padding: cc.p, groups: cc.groups)
                      : maxPool2d(conv2d(x, weight: w, bias: b, padding: cc.p, groups: cc.groups).relu(), kernelSize: (2, 2))
            }
        }
        expectSame(run(true), run(false), cc.testDescription)
    }

    /// Winograd (F(4×4, 3×3) forward and dX, F(2×2, 3×3) dW) against the shifted-rows GEMM (whose sums run like a direct convolution's):
    /// conv2d with and without the fused ReLU, and the fused ReLU + pool, with all gradients. Cases
    /// cover odd output sizes, rows of more than 16 tiles, several tile blocks, channel counts that
    /// are not multiples of 8, groups, padding 0–2 (input gradient by Winograd) and 3 (by GEMM), and
    /// F(4×4, 3×3)'s batches of images.
    @Test(arguments: [
        ConvCase(n: 2, c: 16, h: 9, w: 37, oc: 20, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: true),
        ConvCase(n: 3, c: 17, h: 30, w: 11, oc: 16, groups: 1, k: (3, 3), s: (1, 1), p: (0, 2), d: (1, 1), bias: true),
        ConvCase(n: 2, c: 32, h: 8, w: 8, oc: 48, groups: 2, k: (3, 3), s: (1, 1), p: (2, 2), d: (1, 1), bias: false),
        ConvCase(n: 1, c: 24, h: 6, w: 7, oc: 16, groups: 1, k: (3, 3), s: (1, 1), p: (3, 1), d: (1, 1), bias: true),
        // one output (a single, mostly padded tile), and a 2×3 image with uneven padding
        ConvCase(n: 2, c: 16, h: 1, w: 1, oc: 16, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: true),
        ConvCase(n: 3, c: 16, h: 2, w: 3, oc: 17, groups: 1, k: (3, 3), s: (1, 1), p: (1, 2), d: (1, 1), bias: false),
        // F(4×4, 3×3) (channels multiples of 16): several slots and blocks with a partial last batch,
        // groups with padding 2, and outputs of fewer than 16 pixels
        ConvCase(n: 5, c: 16, h: 13, w: 19, oc: 32, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: true),
        ConvCase(n: 3, c: 32, h: 10, w: 10, oc: 32, groups: 2, k: (3, 3), s: (1, 1), p: (2, 2), d: (1, 1), bias: true),
        ConvCase(n: 2, c: 16, h: 2, w: 3, oc: 16, groups: 1, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1), bias: true),
    ])
    func winogradMatchesGEMM(_ cc: ConvCase) {
        let ops: [(String, (Tensor, Tensor, Tensor?) -> Tensor)] = [
            ("conv", { conv2d($0, weight: $1, bias: $2, padding: cc.p, groups: cc.groups) }),
            ("conv+relu", { conv2d($0, weight: $1, bias: $2, padding: cc.p, groups: cc.groups, fusedReLU: true) }),
            ("conv+relu+pool", { conv2dReLUMaxPool2x2($0, weight: $1, bias: $2, padding: cc.p, groups: cc.groups) }),
        ]
        let (oh, ow) = (cc.h + 2 * cc.p.0 - 2, cc.w + 2 * cc.p.1 - 2)
        for (name, op) in ops where name != "conv+relu+pool" || (oh >= 2 && ow >= 2) {
            let wino = Winograd.$override.withValue(true) { convOutputAndGradients(cc, seed: 50, op) }
            let gemm = Winograd.$override.withValue(false) { convOutputAndGradients(cc, seed: 50, op) }
            for (i, (a, b)) in zip(wino, gemm).enumerated() {
                // Winograd's rounding error scales with the size of the terms, not of each result:
                // F(4×4, 3×3) (forward, dX) reaches ~5e-6 of the largest value, F(2×2, 3×3) (dW) ~1e-6.
                let scale = b.map(abs).max() ?? 0
                let worst = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
                #expect(a.count == b.count && worst <= 1e-5 * scale + 1e-6,
                        "\(cc.testDescription) \(name) tensor \(i): \(worst) (scale \(scale))")
            }
        }
    }

    /// NaN wins a max-pool window, as in PyTorch (the last NaN in row-major order gets the gradient):
    /// the 2×2 fast path's vector blocks and scalar tail, and the fused conv + ReLU + pool (Winograd
    /// and GEMM) against the separate ops.
    @Test func maxPoolPropagatesNaN() {
        var v = rand([1, 1, 4, 36], seed: 60).storage
        // windows: (0,0) one NaN; (0,5) two NaNs (last wins); (1,17) in the scalar tail
        for i in [1, 10, 11 + 36, 2 * 36 + 34 + 36] { v[i] = .nan }
        let x = Tensor(v, shape: [1, 1, 4, 36], requiresGrad: true)
        let y = maxPool2d(x, kernelSize: (2, 2))
        let nanOut = (0..<y.count).filter { y.storage[$0].isNaN }
        #expect(nanOut == [0, 5, 18 + 17], "NaN windows: \(nanOut)")
        y.backward(Tensor([Float](repeating: 1, count: y.count), shape: y.shape))
        for i in [1, 11 + 36, 2 * 36 + 34 + 36] { #expect(x.grad!.storage[i] == 1, "gradient to the last NaN at \(i)") }
        #expect(x.grad!.storage[10] == 0)

        var xv = rand([2, 16, 8, 9], seed: 61).storage
        xv[3 * 9 + 4] = .nan
        let xc = Tensor(xv, shape: [2, 16, 8, 9]), w = rand([16, 16, 3, 3], seed: 62)
        for wino in [true, false] {
            Winograd.$override.withValue(wino) {
                let fused = conv2dReLUMaxPool2x2(xc, weight: w)
                let separate = maxPool2d(conv2d(xc, weight: w).relu(), kernelSize: (2, 2))
                let fusedNaN = fused.storage.map(\.isNaN), separateNaN = separate.storage.map(\.isNaN)
                #expect(fusedNaN.contains(true) && fusedNaN == separateNaN, "Winograd \(wino)")
            }
        }
    }

    @Test func pooling() {
        let x = rand([2, 3, 7, 6], seed: 23)
        gradCheck([x], eps: 1e-3) { maxPool2d($0[0], kernelSize: (2, 2)) }
        let wide = rand([1, 2, 5, 35], seed: 44)   // 2x2 fast path: 8-wide vector blocks, a tail, odd edges
        gradCheck([wide], eps: 1e-4, atol: 1e-3) { maxPool2d($0[0], kernelSize: (2, 2)) }
        gradCheck([x], eps: 1e-3) { maxPool2d($0[0], kernelSize: (3, 3), stride: (2, 2), padding: (1, 1), ceilMode: true) }
        gradCheck([x], eps: 1e-3) { maxPool2d($0[0], kernelSize: (2, 3), stride: (1, 2), dilation: (2, 1)) }
        gradCheck([x]) { avgPool2d($0[0], kernelSize: (3, 3), stride: (2, 2), padding: (1, 1)) }
        gradCheck([x]) { avgPool2d($0[0], kernelSize: (2, 2), ceilMode: true, countIncludePad: false) }
        gradCheck([x]) { globalAvgPool2d($0[0]) }
        // The input's gradient stored by the first use, added to by the second.
        gradCheck([x]) { globalAvgPool2d($0[0]) + globalAvgPool2d($0[0]) * 2 }
    }

    @Test func batchNormTrainAndEval() {
        let x = rand([4, 3, 3, 5], seed: 24, low: -2, high: 2)
        let gamma = rand([3], seed: 25, low: 0.5, high: 1.5), beta = rand([3], seed: 26)
        gradCheck([x, gamma, beta], eps: 1e-2, rtol: 2e-2, atol: 5e-3) {
            batchNorm($0[0], runningMean: nil, runningVar: nil, weight: $0[1], bias: $0[2], training: true)
        }
        let rm = Tensor([0.1, -0.2, 0.3]), rv = Tensor([1.5, 0.7, 1.1])
        gradCheck([x, gamma, beta]) {
            batchNorm($0[0], runningMean: rm, runningVar: rv, weight: $0[1], bias: $0[2], training: false)
        }
        let flat = rand([6, 4], seed: 27)
        gradCheck([flat], rtol: 2e-2, atol: 5e-3) {
            batchNorm($0[0], runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true)
        }
    }

    /// `batchNorm(fusedReLU: true)` is `relu(batchNorm(...))`: the same output and the same gradients for
    /// the input, scale and shift, in training and eval mode, on planes shorter than, equal to and longer
    /// than a vector (the masked SIMD loops and their scalar tails); and it passes a finite-difference check.
    @Test(arguments: [[3, 2, 3, 5], [2, 3, 4, 4], [5, 4, 7, 9]])
    func batchNormWithFusedReLUIsReLUOfBatchNorm(_ shape: [Int]) {
        let c = shape[1]
        let x = rand(shape, seed: 31, low: -2, high: 2)
        let gamma = rand([c], seed: 32, low: 0.5, high: 1.5), beta = rand([c], seed: 33, low: -0.5, high: 0.5)
        let gy = rand(shape, seed: 34)
        for training in [true, false] {
            func run(fused: Bool) -> (y: [Float], grads: [[Float]], running: [Float]) {
                let rm = Tensor([Float](repeating: 0.1, count: c)), rv = Tensor([Float](repeating: 1.2, count: c))
                for t in [x, gamma, beta] { t.grad = nil }
                let y = fused
                    ? batchNorm(x, runningMean: rm, runningVar: rv, weight: gamma, bias: beta, training: training, fusedReLU: true)
                    : batchNorm(x, runningMean: rm, runningVar: rv, weight: gamma, bias: beta, training: training).relu()
                (y * gy).sum().backward()
                return (y.storage, [x, gamma, beta].map { $0.grad!.storage }, rm.storage + rv.storage)
            }
            let (fused, plain) = (run(fused: true), run(fused: false))
            #expect(fused.y == plain.y, "output, training \(training)")
            #expect(fused.running == plain.running, "running statistics, training \(training)")
            for (i, name) in ["dx", "dgamma", "dbeta"].enumerated() {
                let worst = zip(fused.grads[i], plain.grads[i]).map { abs($0 - $1) }.max() ?? 0
                #expect(worst <= 1e-5, "\(name), training \(training): worst difference \(worst)")
            }
        }
        gradCheck([x, gamma, beta], eps: 1e-2, rtol: 2e-2, atol: 5e-3, kinkTolerant: true) {
            batchNorm($0[0], runningMean: nil, runningVar: nil, weight: $0[1], bias: $0[2], training: true, fusedReLU: true)
        }
    }

    /// `batchNormAddReLU(x, residual: r)` is `addReLU(batchNorm(x), r)`: the same output, running
    /// statistics and gradients (input, scale, shift, residual), in training and eval mode, on planes
    /// shorter than, equal to and longer than a vector; one tensor as input and residual gets both
    /// gradients; and it passes a finite-difference check.
    @Test(arguments: [[3, 2, 3, 5], [2, 3, 4, 4], [5, 4, 7, 9]])
    func batchNormAddReLUIsAddReLUOfBatchNorm(_ shape: [Int]) {
        let c = shape[1]
        let x = rand(shape, seed: 51, low: -2, high: 2), r = rand(shape, seed: 52, low: -1, high: 1)
        let gamma = rand([c], seed: 53, low: 0.5, high: 1.5), beta = rand([c], seed: 54, low: -0.5, high: 0.5)
        let gy = rand(shape, seed: 55)
        for training in [true, false] {
            func run(fused: Bool, residual: Tensor) -> (y: [Float], grads: [[Float]], running: [Float]) {
                let rm = Tensor([Float](repeating: 0.1, count: c)), rv = Tensor([Float](repeating: 1.2, count: c))
                for t in [x, r, gamma, beta] { t.grad = nil }
                let y = fused
                    ? batchNormAddReLU(x, residual: residual, runningMean: rm, runningVar: rv, weight: gamma, bias: beta,
                                       training: training)
                    : addReLU(batchNorm(x, runningMean: rm, runningVar: rv, weight: gamma, bias: beta, training: training),
                              residual)
                (y * gy).sum().backward()
                return (y.storage, [x, r, gamma, beta].map { $0.grad?.storage ?? [] }, rm.storage + rv.storage)
            }
            for residual in [r, x] {
                let (fused, plain) = (run(fused: true, residual: residual), run(fused: false, residual: residual))
                let which = "training \(training), residual \(residual === x ? "the input" : "another tensor")"
                #expect(fused.y == plain.y, "output, \(which)")
                #expect(fused.running == plain.running, "running statistics, \(which)")
                for (i, name) in ["dx", "dresidual", "dgamma", "dbeta"].enumerated() {
                    let worst = zip(fused.grads[i], plain.grads[i]).map { abs($0 - $1) }.max() ?? 0
                    #expect(fused.grads[i].count == plain.grads[i].count && worst == 0,
                            "\(name), \(which): worst difference \(worst)")
                }
            }
        }
        gradCheck([x, r, gamma, beta], eps: 1e-2, rtol: 2e-2, atol: 5e-3, kinkTolerant: true) {
            batchNormAddReLU($0[0], residual: $0[1], runningMean: nil, runningVar: nil, weight: $0[2], bias: $0[3],
                             training: true)
        }
    }

    /// Batch norm writes its input gradient over its output gradient's buffer: where that buffer is shared
    /// (`addReLU` hands one masked gradient to both summands) the other holder's gradient must stay as it
    /// was — two batch norms joined by `addReLU`, against finite differences.
    @Test func batchNormInPlaceGradientLeavesASharedBufferAlone() {
        let a = rand([3, 2, 4, 4], seed: 61, low: -2, high: 2), b = rand([3, 2, 4, 4], seed: 62, low: -2, high: 2)
        gradCheck([a, b], eps: 1e-2, rtol: 2e-2, atol: 5e-3, kinkTolerant: true) {
            addReLU(batchNorm($0[0], runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true),
                    batchNorm($0[1], runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true))
        }
    }

    /// A convolution that keeps its shape writes its input gradient over the output gradient it was given:
    /// where that buffer is shared (`addReLU` hands one masked gradient to both summands) the other
    /// holder's must stay as it was — two such convolutions joined by `addReLU`, against finite
    /// differences: 3×3 with 16 channels (Winograd F(4×4)), with 24 (F(2×2)), 5×5 with 8 (shifted-rows GEMM).
    @Test(arguments: [(16, 3), (24, 3), (8, 5)]) func convInPlaceGradientLeavesASharedBufferAlone(_ channels: Int, _ kernel: Int) {
        let a = rand([2, channels, 6, 6], seed: 63), b = rand([2, channels, 6, 6], seed: 64)
        let w1 = rand([channels, channels, kernel, kernel], seed: 65, low: -0.2, high: 0.2, grad: false)
        let w2 = rand([channels, channels, kernel, kernel], seed: 66, low: -0.2, high: 0.2, grad: false)
        let pad = (kernel / 2, kernel / 2)
        gradCheck([a, b], eps: 1e-2, rtol: 2e-2, atol: 5e-3, kinkTolerant: true) {
            addReLU(conv2d($0[0], weight: w1, padding: pad), conv2d($0[1], weight: w2, padding: pad))
        }
    }

    /// `addReLU(a, b)` is `(a + b).relu()`: the same output and gradients (also when one tensor is both
    /// summands), and a finite-difference check.
    @Test func addReLUIsReLUOfTheSum() {
        let a = rand([3, 4, 5], seed: 41), b = rand([3, 4, 5], seed: 42), gy = rand([3, 4, 5], seed: 43, grad: false)
        func grads(_ f: () -> Tensor) -> [[Float]] {
            a.grad = nil; b.grad = nil
            let y = f()
            (y * gy).sum().backward()
            return [y.storage, a.grad!.storage, b.grad!.storage]
        }
        #expect(grads { addReLU(a, b) } == grads { (a + b).relu() })
        a.grad = nil
        (addReLU(a, a) * gy).sum().backward()
        let twice = a.grad!.storage
        a.grad = nil
        ((a + a).relu() * gy).sum().backward()
        #expect(twice == a.grad!.storage, "one tensor as both summands gets both gradients")
        gradCheck([a, b], kinkTolerant: true) { addReLU($0[0], $0[1]) }
    }

    @Test func dropoutUsesItsMask() {
        let x = rand([4, 6], seed: 28)
        gradCheck([x]) { dropout($0[0], p: 0.4, training: true, generator: RandomGenerator(seed: 5)) }
    }

    @Test func dropoutOnManyBlocksKeepsTheRightShareAndIsSeeded() {
        let n = 200_003   // 25 blocks of 8K elements built in parallel, the last one short and not a multiple of 16
        let x = Tensor([Float](repeating: 2, count: n), shape: [n])
        let a = dropout(x, p: 0.25, training: true, generator: RandomGenerator(seed: 9))
        let b = dropout(x, p: 0.25, training: true, generator: RandomGenerator(seed: 9))
        #expect(a.storage == b.storage, "same seed, same mask")
        let kept = a.storage.filter { $0 != 0 }
        #expect(kept.allSatisfy { abs($0 - 2 / 0.75) < 1e-6 }, "kept values are scaled by 1/(1-p)")
        #expect(abs(Double(kept.count) / Double(n) - 0.75) < 0.01, "kept share \(Double(kept.count) / Double(n))")
        // Every block draws independently: the last block is not a copy of the first.
        #expect(Array(a.storage[0..<64]) != Array(a.storage[(24 * 8192)..<(24 * 8192 + 64)]))
        // Neighbours share one 64-bit draw (two 24-bit halves): each half keeps 3/4, independently.
        let pairs = n / 2
        let even = (0..<pairs).filter { a.storage[2 * $0] != 0 }.count
        let odd = (0..<pairs).filter { a.storage[2 * $0 + 1] != 0 }.count
        let both = (0..<pairs).filter { a.storage[2 * $0] != 0 && a.storage[2 * $0 + 1] != 0 }.count
        #expect(abs(Double(even) / Double(pairs) - 0.75) < 0.01 && abs(Double(odd) / Double(pairs) - 0.75) < 0.01)
        #expect(abs(Double(both) / Double(pairs) - 0.5625) < 0.01, "both halves kept: \(Double(both) / Double(pairs))")
        #expect(dropout(x, p: 1, training: true).storage.allSatisfy { $0 == 0 })
    }

    @Test func linearLayer() {
        gradCheck([rand([5, 7], seed: 29), rand([3, 7], seed: 30), rand([3], seed: 31)]) {
            linear($0[0], weight: $0[1], bias: $0[2])
        }
        gradCheck([rand([2, 4, 7], seed: 32), rand([3, 7], seed: 33)]) { linear($0[0], weight: $0[1]) }
    }

    @Test func losses() {
        let logits = rand([5, 4], seed: 34, low: -2, high: 2)
        let targets = [0, 3, 1, 1, 2]
        gradCheck([logits]) { crossEntropy($0[0], targets) }
        gradCheck([logits]) { crossEntropy($0[0], targets, reduction: .sum) }
        gradCheck([logits]) { crossEntropy($0[0], targets, reduction: .none) }
        gradCheck([logits]) { crossEntropy($0[0], targets, labelSmoothing: 0.2) }
        gradCheck([logits]) { nllLoss($0[0].logSoftmax(dim: 1), targets) }
        let y = oneHot(targets, classes: 4)
        gradCheck([logits]) { softmaxCrossEntropy($0[0], y) }
        let probs = rand([5, 4], seed: 35, low: 0.05, high: 1)
        gradCheck([probs]) { categoricalCrossEntropy($0[0], y) }
        gradCheck([logits, rand([5, 4], seed: 36)]) { mseLoss($0[0], $0[1]) }
    }
}
