import Foundation
import Testing
import Convolve
import ConvolveNN
@testable import ConvolveTraining

/// The model registry: one entry per model, found by name, and sizes known before building.
@Suite struct RegistryTests {
    @Test func namesAreUniqueAndRoundTrip() {
        let names = ZooModel.allCases.map(\.rawValue)
        #expect(Set(names).count == names.count && names.count == ZooModel.registry.count)
        for zoo in ZooModel.allCases { #expect(ZooModel(rawValue: zoo.rawValue) == zoo) }
        #expect(ZooModel(rawValue: "lenet") == nil)
        // `-` and `_` alike, as the and torchvision's spellings both appear.
        #expect(ZooModel(rawValue: "efficientnet-lite0") == .efficientnetLite0)
        #expect(ZooModel(rawValue: "mobilenet-v2") == .mobilenetV2 && ZooModel(rawValue: "fast_cnn") == .fastCNN)
    }

    /// The estimate the memory budget and the checkpoint check rely on equals the built model's
    /// parameter count, for several inputs and class counts.
    @Test(arguments: ZooModel.allCases)
    func estimatedParametersAreExact(_ zoo: ZooModel) throws {
        let side = max(zoo.minimumSize, 28)
        for (input, classes) in [([1, side, side], 10), ([3, max(32, side), max(32, side)], 100), ([3, 64, 48], 7)] {
            let model = try zoo.make(input: input, classes: classes)
            let estimate = zoo.estimatedSize(input: input, classes: classes).parameters
            #expect(Int(estimate) == model.parameterCount, "\(zoo) \(input) \(classes)")
        }
    }

    /// The activations one training sample keeps, as the estimate says, are between half and three
    /// times those a training forward pass actually makes (every op's output, counted by the trace):
    /// the memory budget may be cautious, never blind.
    @Test(arguments: ZooModel.allCases)
    func estimatedActivationsAreNearThoseMade(_ zoo: ZooModel) throws {
        let input = [3, 64, 64]
        let model = try zoo.make(input: input, classes: 10)
        model.train()
        let parameters = Set(model.parameters().map(ObjectIdentifier.init))
        let x = Tensor.zeros([2] + input)
        let (_, trace) = OpTrace.recording { model(x) }
        let made = trace.tensors.values.filter { !parameters.contains(ObjectIdentifier($0)) && $0 !== x }
            .reduce(0.0) { $0 + Double($1.count) } / 2
        let estimate = zoo.estimatedSize(input: input, classes: 10).activationsPerSample
        #expect(estimate >= made / 2 && estimate <= made * 3, "\(zoo): estimate \(Int(estimate)), counted \(Int(made)) (\(made / 4096) per pixel)")
    }
}
