import Foundation
import Testing
@testable import Convolve
import ConvolveNN
@testable import ConvolveTraining

/// A layer whose op has no ONNX form.
final class ExpLayer: Module, Layer {
    func callAsFunction(_ x: Tensor) -> Tensor { x.exp() }
}

@Suite struct ExportTests {
    /// Every zoo model exports (ONNX Runtime runs them in CI and matches Convolve's outputs); the graph
    /// holds the ops and the weights under their state_dict names.
    @Test(arguments: ZooModel.allCases)
    func zooModelsExport(_ zoo: ZooModel) throws {
        let model = RandomGenerator.global.exclusively { manualSeed(2); return zoo.make() }
        let bytes = try ONNXExport.export(model, inputShape: zoo.inputShape)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("Conv") && text.contains("Gemm") && text.contains("batch"))
        for (key, _) in model.stateDict() where !key.hasSuffix("num_batches_tracked") {
            #expect(text.contains(key), "\(zoo.rawValue): initializer \(key)")
        }
        #expect(model.training == true, "the model's mode is restored")
    }

    /// The traced graph is the forward pass: its nodes in order for the tutorial's model.
    @Test func traceRecordsTheForwardPass() {
        let net = SeedNet()
        net.eval()
        let x = Tensor.uniform([2, 1, 28, 28], generator: RandomGenerator(seed: 3))
        let (_, trace) = withNoGrad { OpTrace.recording { net(x) } }
        #expect(trace.nodes.map(\.op) == ["Conv", "BatchNormalization", "Relu", "MaxPool", "Conv", "BatchNormalization", "Relu",
                                          "MaxPool", "Reshape", "Gemm"])
        #expect(trace.unexported.isEmpty)
    }

    @Test func anOpWithoutAnONNXFormIsRefusedByName() {
        let model = Sequential { Linear(4, 3); ExpLayer() }
        #expect { try ONNXExport.export(model, inputShape: [4]) } throws: {
            "\($0)".contains("exp in layer 1: ExpLayer: this op has no ONNX form")
        }
    }
}
