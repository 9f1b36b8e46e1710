import Foundation
import Testing
import Convolve
import ConvolveNN
@testable import ConvolveTraining

/// Freezing (fastai's `freeze`, Keras' `trainable = False`, PyTorch's `requires_grad_(False)`): a frozen
/// part gets no gradients and no optimizer state, never moves — not even under weight decay and
/// momentum —, and runs in inference mode, so its batch norm's running statistics stay put.
@Suite struct FreezingTests {
    @Test func aFrozenBackboneStaysBitIdenticalAndItsBatchNormStill() throws {
        let model = ResNet(channels: 3, classes: 4)   // ResNet-8
        let rng = RandomGenerator(seed: 5)
        let x = Tensor((0..<(8 * 3 * 16 * 16)).map { _ in rng.nextFloat() * 2 - 1 }, shape: [8, 3, 16, 16])
        let labels = (0..<8).map { $0 % 4 }
        for part in [model.conv1, model.bn1, model.layer1, model.layer2, model.layer3] as [Module] { part.freeze() }
        let frozenKeys = Set(model.stateDict().map(\.0).filter { !$0.hasPrefix("fc.") })
        let before = Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.0, $0.1.scalars) })
        let optimizer = SGD(model.parameters(), lr: 0.1, momentum: 0.9, weightDecay: 1e-2)
        model.train()
        #expect(!model.bn1.training && !model.layer2.training && model.training && model.fc.training)
        for _ in 0..<3 {
            optimizer.zeroGrad()
            crossEntropy(model(x), labels).backward()
            optimizer.step()
        }
        for (key, t) in model.stateDict() {
            if frozenKeys.contains(key) {
                #expect(t.scalars == before[key], "\(key) moved while frozen")
            } else if !key.hasSuffix("num_batches_tracked") {
                #expect(t.scalars != before[key], "\(key) did not train")
            }
        }
        for (i, (key, p)) in model.namedParameters().enumerated() where frozenKeys.contains(key) {
            #expect(p.grad == nil && optimizer.state[i].isEmpty, "\(key) has a gradient or optimizer state")
        }
        #expect(model.bn1.numBatchesTracked?.scalars == [0])

        // Unfrozen: everything trains, batch norm on batch statistics again.
        model.unfreeze()
        model.train()
        #expect(model.bn1.training && model.layer2.training)
        optimizer.zeroGrad()
        crossEntropy(model(x), labels).backward()
        optimizer.step()
        for (key, t) in model.stateDict() where frozenKeys.contains(key) && key.hasSuffix("weight") {
            #expect(t.scalars != before[key], "\(key) did not train after unfreezing")
        }
        #expect(model.bn1.numBatchesTracked?.scalars == [1])
    }

    /// Keras style: a pretrained backbone with `trainable = false` under new layers; `fit` moves only
    /// the new layers, and the summary counts the backbone as non-trainable.
    @Test func kerasTrainableFalseFreezesTheBackbone() throws {
        let base = try KerasApplication(.mobilenetV3Small, inputShape: [32, 32, 3])
        base.trainable = false
        let model = Model { base; GlobalAveragePooling2D(); Dense(3, activation: .softmax) }
        model.compile(optimizer: .adam(lr: 1e-2), loss: .sparseCategoricalCrossentropy, metrics: ["accuracy"])
        let rng = RandomGenerator(seed: 8)
        let x = Tensor((0..<(12 * 3 * 32 * 32)).map { _ in rng.nextFloat() }, shape: [12, 3, 32, 32])
        let before = base.stateDict().map(\.1.scalars)
        let head = model.layers[2].stateDict().map(\.1.scalars)
        model.fit(x: x, labels: (0..<12).map { $0 % 3 }, batchSize: 4, epochs: 1, verbose: 0)
        #expect(base.stateDict().map(\.1.scalars) == before, "the frozen backbone moved (weights or running statistics)")
        #expect(model.layers[2].stateDict().map(\.1.scalars) != head, "the new head did not train")
        let frozen = base.parameterCount
        #expect(model.summary().contains("Non-trainable params: \(frozen.formatted())"))
        base.trainable = true
        #expect(model.summary().contains("Non-trainable params: 0"))
    }
}
