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

    /// Fine-tuning in the run driver (`convolve train --pretrained --freeze-epochs`): the backbone
    /// starts from the file, keeps its weights and batch-norm statistics bit for bit through the
    /// frozen epoch while the new head (the dataset's 2 classes) trains, then trains itself; with
    /// `--linear-probe` it never moves. Inputs are normalized with the weights' mean and std. Resuming
    /// inside the frozen epoch gives the uninterrupted run's weights.
    @Test func fineTuningFreezesThenTrainsTheBackbone() throws {
        let dir = TempDir()
        let rng = RandomGenerator(seed: 21)
        for (c, name) in ["cat", "dog"].enumerated() {
            try FileManager.default.createDirectory(atPath: dir.path + "/photos/" + name, withIntermediateDirectories: true)
            for i in 0..<8 {
                var pixels = (0..<(40 * 48 * 3)).map { _ in UInt8(rng.nextInt(256)) }
                for j in stride(from: c, to: pixels.count, by: 3) { pixels[j] /= 3 }
                _ = dir.write("photos/\(name)/\(i).png", PNG.encode(Image(width: 48, height: 40, channels: 3, pixels: pixels)))
            }
        }
        let weights = dir.path + "/pretrained.safetensors"
        let source = MobileNetV3(.small)
        try SafeTensors.write(source.stateDict(), to: weights)
        let original = Dictionary(uniqueKeysWithValues: source.stateDict().map { ($0.0, $0.1.scalars) })
        func config(freeze: Int?, probe: Bool) -> RunConfig {
            var recipe = ZooModel.mobilenetV3Small.defaults
            recipe.epochs = 2; recipe.batchSize = 4
            // The pool's own thread count: a run sets it, and other tests share the pool.
            var c = RunConfig(model: .mobilenetV3Small, dataset: dir.path + "/photos", recipe: recipe, seed: 3, threads: Parallel.threads,
                              imageSize: 32, channels: 3, centerCrop: true, validationSplit: 0.25)
            c.pretrained = weights; c.freezeEpochs = freeze; c.linearProbe = probe ? true : nil
            return c
        }
        final class Snapshot: Callback {
            var afterFirstEpoch: [String: [Float]] = [:]
            func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {
                if epoch == 0 { afterFirstEpoch = Dictionary(uniqueKeysWithValues: trainer.model.stateDict().map { ($0.0, $0.1.scalars) }) }
            }
        }
        let run = TrainingRun(config: config(freeze: 1, probe: false), outputDir: dir.path + "/run", progress: .silent, log: { _ in })
        let snapshot = Snapshot()
        run.callbacks = [snapshot]
        try run.run()
        let backboneKeys = original.keys.filter { !$0.hasPrefix("classifier.") && !$0.hasSuffix("num_batches_tracked") }
        #expect(backboneKeys.count > 100)
        for key in backboneKeys { #expect(snapshot.afterFirstEpoch[key] == original[key], "\(key) moved in the frozen epoch") }
        #expect(snapshot.afterFirstEpoch["classifier.3.weight"]?.count == 2 * 1024)
        let final = try SafeTensors.read(dir.path + "/run/model.safetensors")
        #expect(backboneKeys.filter { $0.hasSuffix("weight") }.contains { final.tensors[$0]?.scalars != original[$0] }, "the backbone never trained")
        let spec = try #require(run.inputSpec)
        #expect(spec.mean == ImageNet.mean && spec.std == ImageNet.std && spec.classNames == ["cat", "dog"])

        // Stopped inside the frozen epoch and resumed: the same weights as the uninterrupted run.
        let split = TrainingRun(config: config(freeze: 1, probe: false), outputDir: dir.path + "/split", checkpointInterval: .batches(1),
                                progress: .silent, log: { _ in })
        split.callbacks = [StopAfter(epoch: 0, batch: 1)]
        try split.run()
        try TrainingRun(config: config(freeze: 1, probe: false), outputDir: dir.path + "/split", progress: .silent, log: { _ in })
            .run(resume: true)
        let resumed = try SafeTensors.read(dir.path + "/split/model.safetensors")
        for (key, t) in final.tensors { #expect(resumed.tensors[key]?.scalars == t.scalars, "resumed: \(key) differs") }

        // A linear probe: the backbone never moves.
        try TrainingRun(config: config(freeze: nil, probe: true), outputDir: dir.path + "/probe", progress: .silent, log: { _ in }).run()
        let probe = try SafeTensors.read(dir.path + "/probe/model.safetensors")
        for key in backboneKeys { #expect(probe.tensors[key]?.scalars == original[key], "\(key) moved in a linear probe") }

        // Weights of another architecture: refused before training, naming the file and the keys.
        try SafeTensors.write(ResNet.resnet18().stateDict(), to: dir.path + "/r18.safetensors")
        var wrong = config(freeze: 1, probe: false)
        wrong.pretrained = dir.path + "/r18.safetensors"
        #expect {
            try TrainingRun(config: wrong, outputDir: dir.path + "/wrong", progress: .silent, log: { _ in }).run()
        } throws: { "\($0)".contains("r18.safetensors") && "\($0)".contains("features.0.0.weight") }
    }
}
