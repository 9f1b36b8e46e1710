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
}
