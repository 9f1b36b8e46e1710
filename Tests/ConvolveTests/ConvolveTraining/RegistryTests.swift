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
    }

    /// The estimate the memory budget and the checkpoint check rely on equals the built model's
    /// parameter count, for several inputs and class counts.
    @Test(arguments: ZooModel.allCases)
    func estimatedParametersAreExact(_ zoo: ZooModel) throws {
        for (input, classes) in [([1, 28, 28], 10), ([3, 32, 32], 100), ([3, 64, 48], 7)] {
            let model = try zoo.make(input: input, classes: classes)
            let estimate = zoo.estimatedSize(input: input, classes: classes).parameters
            #expect(Int(estimate) == model.parameterCount, "\(zoo) \(input) \(classes)")
        }
    }
}
