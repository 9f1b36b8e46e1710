import Foundation
import Testing
@testable import Convolve
import ConvolveNN

/// ReLU6, SiLU, hard-swish and hard-sigmoid: values and input gradients equal PyTorch's (including at
/// the kinks, where PyTorch's conventions decide), finite differences away from the kinks, their
/// modules, and their ONNX nodes.
@Suite struct ActivationTests {
    let ops: [(String, (Tensor) -> Tensor)] = [
        ("relu6", { $0.relu6() }), ("silu", { $0.silu() }), ("hardswish", { $0.hardswish() }), ("hardsigmoid", { $0.hardsigmoid() }),
    ]

    @Test func valuesAndGradientsMatchPyTorch() throws {
        let f = try fixture("activations") as! [String: Any]
        for (name, op) in ops {
            let x = tensor(f["x"], requiresGrad: true)
            let y = op(x)
            let want = f[name] as! [String: Any]
            expectClose(y, tensor(want["y"]), rtol: 1e-6, atol: 1e-6, name)
            y.backward(tensor(f["gy"]))
            expectClose(x.grad!, tensor(want["dx"]), rtol: 1e-6, atol: 1e-6, "\(name) gradient")
        }
    }

    @Test func finiteDifferences() {
        // Inputs over [−8, 8], none within 0.05 of a kink (−3, 0, 3, 6).
        let values = (0..<60).map { i -> Float in
            let v = Float(i) * 0.27 - 8.1
            return [-3, 0, 3, 6].contains { Swift.abs(v - $0) < 0.05 } ? v + 0.1 : v
        }
        for (name, op) in ops {
            let x = Tensor(values, shape: [6, 10], requiresGrad: true)
            gradCheck([x], eps: 1e-3) { op($0[0]) }
            _ = name
        }
    }

    @Test func modulesAndTheirONNXNodes() {
        let layers: [(Module & Layer, [String])] = [
            (ReLU6(), ["Clip"]), (SiLU(), ["Sigmoid", "Mul"]), (Hardswish(), ["HardSwish"]), (Hardsigmoid(), ["HardSigmoid"]),
        ]
        let x = Tensor.uniform([2, 5], low: -5, high: 8, generator: RandomGenerator(seed: 1))
        for ((layer, nodes), (name, op)) in zip(layers, ops) {
            let (y, trace) = withNoGrad { OpTrace.recording { layer(x) } }
            #expect(y.scalars == op(x).scalars, "\(name) module")
            #expect(trace.nodes.map(\.op) == nodes, "\(name) nodes")
            #expect(trace.unexported.isEmpty)
        }
        let (_, hs) = OpTrace.recording { x.hardsigmoid() }
        #expect(hs.nodes.first?.attributes.map(\.0) == ["alpha", "beta"])
        #expect("\(ReLU6(inplace: true))" == "ReLU6(inplace=True)" && "\(SiLU())" == "SiLU()")
    }

    /// The vector `exp` behind SiLU is within 2 ulp of `Float.exp` from −87.3 to 88.37, 0 below,
    /// infinity above, and keeps NaN; SiLU on a tensor long enough
    /// for its 16-lane path equals the float64 formula, values and gradients.
    @Test func vectorExpAndSiLUOnLongTensors() {
        var worst: Float = 0
        var x = V16()
        for start in stride(from: -90.0 as Float, to: 90, by: 0.0131 * 16) {
            for l in 0..<16 { x[l] = start + Float(l) * 0.0131 }
            let e = vexp(x)
            for l in 0..<16 where x[l] > -87.3 && x[l] < 88.37 {
                let want = Float.exp(x[l])
                worst = Swift.max(worst, Swift.abs(e[l] - want) / want)
            }
        }
        #expect(worst <= 2 * Float.ulpOfOne, "vexp is off by \(worst / Float.ulpOfOne) ulp")
        var special = V16(repeating: 1)
        special[0] = -100; special[1] = 100; special[2] = .nan; special[3] = -.infinity; special[4] = .infinity; special[5] = 0
        let e = vexp(special)
        #expect(e[0] == 0 && e[1] == .infinity && e[2].isNaN && e[3] == 0 && e[4] == .infinity && e[5] == 1)

        let values = (0..<1000).map { Float($0) * 0.037 - 18.5 }
        let t = Tensor(values, shape: [1000], requiresGrad: true)
        let y = t.silu()
        y.backward(Tensor((0..<1000).map { Float($0 % 7) - 3 }, shape: [1000]))
        for (i, v) in values.enumerated() {
            let s = 1 / (1 + Foundation.exp(-Double(v)))
            let (wantY, wantDx) = (Double(v) * s, Double(i % 7 - 3) * s * (1 + Double(v) * (1 - s)))
            #expect(Swift.abs(Double(y.scalars[i]) - wantY) <= 1e-6 * Swift.max(1, Swift.abs(wantY)), "silu(\(v))")
            #expect(Swift.abs(Double(t.grad!.scalars[i]) - wantDx) <= 1e-6 * Swift.max(1, Swift.abs(wantDx)), "silu'(\(v))")
        }
    }

    /// Squeeze-and-excitation's per-channel scale: the broadcast product's values exactly, its
    /// gradients to float32 rounding, finite differences, and an ONNX `Mul`.
    @Test func perChannelScaleIsTheBroadcastProduct() {
        let rng = RandomGenerator(seed: 9)
        let xv = (0..<(2 * 3 * 5 * 7)).map { _ in rng.nextFloat() * 2 - 1 }, sv = (0..<6).map { _ in rng.nextFloat() * 2 - 1 }
        let gv = (0..<xv.count).map { _ in rng.nextFloat() * 2 - 1 }
        func run(_ fused: Bool) -> ([Float], [Float], [Float]) {
            let x = Tensor(xv, shape: [2, 3, 5, 7], requiresGrad: true), s = Tensor(sv, shape: [2, 3, 1, 1], requiresGrad: true)
            let y = fused ? x.scaledPerChannel(by: s) : x * s
            y.backward(Tensor(gv, shape: y.shape))
            return (y.scalars, x.grad!.scalars, s.grad!.scalars)
        }
        let (a, b) = (run(true), run(false))
        #expect(a.0 == b.0 && a.1 == b.1)
        #expect(zip(a.2, b.2).allSatisfy { Swift.abs($0 - $1) <= 1e-5 })
        gradCheck([Tensor(xv, shape: [2, 3, 5, 7], requiresGrad: true), Tensor(sv, shape: [2, 3, 1, 1], requiresGrad: true)]) {
            $0[0].scaledPerChannel(by: $0[1])
        }
        let (_, trace) = OpTrace.recording { Tensor(xv, shape: [2, 3, 5, 7]).scaledPerChannel(by: Tensor(sv, shape: [2, 3, 1, 1])) }
        #expect(trace.nodes.map(\.op) == ["Mul"])
    }
}
