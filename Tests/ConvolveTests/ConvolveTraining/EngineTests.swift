import Foundation
import Testing
@testable import Convolve
import ConvolveNN
import ConvolveData
@testable import ConvolveTraining

/// Records every callback event, in order.
final class EventRecorder: Callback {
    var events: [String] = []
    func onTrainBegin(_ trainer: Trainer) { events.append("train_begin") }
    func onTrainEnd(_ trainer: Trainer, logs: Logs) { events.append("train_end") }
    func onEpochBegin(_ epoch: Int, trainer: Trainer) { events.append("epoch_begin \(epoch)") }
    func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {
        events.append("epoch_end \(epoch) " + logs.keys.filter { !$0.hasPrefix("batch_") }.sorted().joined(separator: ","))
    }
    func onBatchBegin(_ batch: Int, inputs: Tensor, labels: [Int], trainer: Trainer) { events.append("batch_begin \(batch)") }
    func onBatchEnd(_ batch: Int, logs: Logs, trainer: Trainer) { events.append("batch_end \(batch)") }
    func onTestBegin(batches: Int) { events.append("test_begin \(batches)") }
    func onTestBatchEnd(_ batch: Int, logs: Logs) { events.append("test_batch_end \(batch)") }
    func onTestEnd(_ evaluation: Evaluation, logs: Logs) { events.append("test_end") }
}

/// Stops a run after a given batch of a given epoch (what a kill after that batch's checkpoint leaves).
final class StopAfter: Callback {
    let epoch: Int, batch: Int
    init(epoch: Int, batch: Int) { self.epoch = epoch; self.batch = batch }
    func onBatchEnd(_ b: Int, logs: Logs, trainer: Trainer) {
        if trainer.epoch == epoch && b == batch { trainer.stopTraining = true }
    }
}

@Suite struct EngineTests {
    /// The events a two-epoch run of `batches` batches with one validation batch produces.
    static func expectedEvents(epochs: Int, batches: Int, metrics: String) -> [String] {
        var e = ["train_begin"]
        for epoch in 0..<epochs {
            e.append("epoch_begin \(epoch)")
            for b in 0..<batches { e += ["batch_begin \(b)", "batch_end \(b)"] }
            e += ["test_begin 1", "test_batch_end 0", "test_end", "epoch_end \(epoch) \(metrics)"]
        }
        return e + ["train_end"]
    }

    @Test func fitCallsEveryEventInOrder() {
        let x = Tensor.uniform([20, 4], generator: RandomGenerator(seed: 1)), y = oneHot((0..<20).map { $0 % 2 }, classes: 2)
        let model = Model(inputShape: [4]) { Dense(2, activation: .softmax) }
        model.compile(optimizer: .sgd(lr: 0.1), loss: .categoricalCrossentropy, metrics: ["accuracy"])
        let recorder = EventRecorder()
        model.fit(x: x, y: y, batchSize: 5, epochs: 2, validationData: (x, y), callbacks: [recorder], verbose: 0)
        #expect(recorder.events == Self.expectedEvents(epochs: 2, batches: 4, metrics: "accuracy,loss,val_accuracy,val_loss"))
    }

    @Test func trainerCallsEveryEventInOrderAndTheHookAfterEachBackward() {
        let net = Sequential { Linear(4, 3) }
        let data = TensorDataset(Tensor.uniform([12, 4], generator: RandomGenerator(seed: 2)), (0..<12).map { $0 % 3 })
        let recorder = EventRecorder()
        let trainer = Trainer(model: net, optimizer: SGD(net.parameters(), lr: 0.1), callbacks: [recorder])
        var hooked: [Bool] = []
        trainer.afterBackward.append { t in hooked.append(t.model.parameters().allSatisfy { $0.grad != nil }) }
        let history = trainer.fit(DataLoader(data, batchSize: 4), epochs: 2, validation: data)
        #expect(recorder.events == Self.expectedEvents(epochs: 2, batches: 3, metrics: "accuracy,loss,val_accuracy,val_loss"))
        #expect(hooked == [Bool](repeating: true, count: 6), "the hook runs after every backward pass, with gradients")
        #expect(history.epochs == [0, 1] && trainer.globalStep == 6)
    }

    /// A stop inside an epoch ends training after that batch: no validation, no epoch end.
    @Test func stopInsideAnEpochEndsItAtOnce() {
        let net = Sequential { Linear(4, 3) }
        let data = TensorDataset(Tensor.uniform([12, 4], generator: RandomGenerator(seed: 2)), (0..<12).map { $0 % 3 })
        let recorder = EventRecorder()
        let trainer = Trainer(model: net, optimizer: SGD(net.parameters(), lr: 0.1), callbacks: [StopAfter(epoch: 1, batch: 0), recorder])
        trainer.fit(DataLoader(data, batchSize: 4), epochs: 3, validation: data)
        #expect(Array(recorder.events.suffix(4)) == ["epoch_begin 1", "batch_begin 0", "batch_end 0", "train_end"])
    }

    /// The trainer's step is PyTorch's loop: the same weights as the hand-written one.
    @Test func trainStepEqualsTheHandWrittenLoop() {
        func run(_ engine: Bool) -> [Float] {
            let net = RandomGenerator.global.exclusively { manualSeed(5); return SeedNet() }
            let optimizer = Adam(net.parameters(), lr: 0.01)
            let trainer = Trainer(model: net, optimizer: optimizer)
            let x = rand([8, 1, 28, 28], seed: 6, grad: false), y = (0..<8).map { $0 % 10 }
            for _ in 0..<3 {
                if engine { trainer.trainStep(x, y) } else {
                    optimizer.zeroGrad(); let loss = crossEntropy(net(x), y); loss.backward(); optimizer.step()
                }
            }
            return net.parameters().flatMap(\.storage)
        }
        #expect(run(true) == run(false))
    }

    /// Each validation pass of `fit` reaches the callbacks with the mistakes they asked for: the last
    /// one has the same mistakes as a fresh evaluation of the final weights (what TensorBoard's
    /// mistakes grid reuses instead of a second pass over the test set).
    @Test func validationGivesCallbacksTheMistakesTheyWant() {
        final class Watcher: Callback {
            var evaluations: [Evaluation] = []
            var mistakesWanted: Int { 6 }
            func onTestEnd(_ evaluation: Evaluation, logs: Logs) { evaluations.append(evaluation) }
        }
        let net = RandomGenerator.global.exclusively { manualSeed(5); return Sequential { Linear(4, 3) } }
        let x = Tensor.uniform([40, 4], generator: RandomGenerator(seed: 6)), labels = (0..<40).map { ($0 * 7) % 3 }
        let data = TensorDataset(x, labels)
        let watcher = Watcher()
        let trainer = Trainer(model: net, optimizer: SGD(net.parameters(), lr: 0.1), callbacks: [watcher])
        trainer.fit(DataLoader(data, batchSize: 8, shuffle: true, seed: 1), epochs: 2, validation: data)
        let fresh = Evaluator(net, batchSize: 7).evaluate(data, keepMistakes: 6)
        #expect(watcher.evaluations.count == 2 && trainer.globalStep == 10)
        #expect(watcher.evaluations.last?.mistakes == fresh.mistakes)
        #expect(fresh.mistakes.count == 6, "the test needs a model that still errs")
    }

    /// One evaluator: accuracy, loss, per-class accuracy and confusion matrix agree with a direct count.
    @Test func evaluatorCountsLikeTheDefinition() {
        let net = Sequential { Linear(4, 3) }
        let x = Tensor.uniform([30, 4], generator: RandomGenerator(seed: 3)), labels = (0..<30).map { $0 % 3 }
        let result = Evaluator(net, batchSize: 7).evaluate(TensorDataset(x, labels))
        let logits = withNoGrad { net(x) }
        let predicted = logits.argmax(dim: 1)
        let correct = zip(predicted, labels).filter { $0 == $1 }.count
        #expect(result.count == 30 && result.accuracy == Double(correct) / 30)
        #expect(abs(result.loss - Double(crossEntropy(logits, labels).item)) < 1e-5)
        #expect(result.confusion.flatMap { $0 }.reduce(0, +) == 30)
        let withMistakes = Evaluator(net, batchSize: 7).evaluate(TensorDataset(x, labels), keepMistakes: 4)
        let wrong = (0..<30).filter { predicted[$0] != labels[$0] }
        #expect(withMistakes.mistakes.map(\.index) == Array(wrong.prefix(4)))
        #expect(withMistakes.mistakes.allSatisfy { labels[$0.index] == $0.label && predicted[$0.index] == $0.predicted })
        for c in 0..<3 {
            let mine = (0..<30).filter { labels[$0] == c }
            let right = mine.filter { predicted[$0] == c }.count
            #expect(result.perClassAccuracy[c] == Double(right) / Double(mine.count))
        }
    }

    @Test func monitorInfersTheDirectionAndHonoursMinDelta() {
        #expect(Monitor("val_accuracy").mode == .max && Monitor("val_loss").mode == .min)
        let m = Monitor("val_loss", minDelta: 0.1)
        #expect(m.isImprovement(1.0, over: nil) && m.isImprovement(0.8, over: 1.0) && !m.isImprovement(0.95, over: 1.0))
        #expect(Monitor("acc", mode: .min).mode == .min)
    }

    /// A schedule restored from its step count sets the rate from its own initial rate, not from the
    /// optimizer's already-decayed one (what made resumed scheduled recipes diverge).
    @Test func schedulersRestoreFromTheirStepCount() {
        let p = [Tensor([1], shape: [1], requiresGrad: true)]
        for make in [{ (o: Optimizer) -> any LRScheduler in StepLR(o, stepSize: 1, gamma: 0.7) },
                     { CosineAnnealingLR($0, tMax: 5, etaMin: 0.001) },
                     { OneCycleLR($0, maxLR: 0.1, totalSteps: 10) }] {
            let a = SGD(p, lr: 0.05), sa = make(a)
            for _ in 0..<3 { sa.step() }
            let b = SGD(p, lr: 0.05), sb = make(b)
            b.lr = 123   // whatever a checkpoint held
            sb.restore(stepsTaken: 3)
            #expect(b.lr == a.lr && sb.stepsTaken == 3)
            sa.step(); sb.step()
            #expect(b.lr == a.lr)
        }
    }
}

/// Real-data runs of the engine: its faces agree, and every recipe resumes exactly.
@Suite(.serialized) struct EngineRealDataTests {
    /// `Model.fit`, the run driver and `convolve train` give the same weights for the same seed.
    @Test(needsMNIST) func fitRunDriverAndCLIGiveTheSameWeights() throws {
        guard let data = mnistDirectory(), let (train, test) = requireMNIST() else { return }
        let threads = Parallel.threads
        var recipe = ZooModel.kerasSeed.defaults; recipe.epochs = 1
        let config = RunConfig(model: .kerasSeed, recipe: recipe, seed: 3, threads: threads, trainLimit: 960, testLimit: 200)
        let dir = TempDir()
        try TrainingRun(config: config, outputDir: dir.path + "/driver", dataLocation: DataLocation(directory: data),
                        progress: .silent, log: { _ in }).run()
        let cli = try runCLI(["train", "--model", "keras-seed", "--epochs", "1", "--train-limit", "960", "--test-limit", "200",
                              "--seed", "3", "--threads", String(threads), "--data-dir", data, "--output", dir.path + "/cli", "--quiet"])
        #expect(cli.status == 0, "\(cli.err)")
        let model = RandomGenerator.global.exclusively { manualSeed(3); return kerasSeedModel() }
        model.compile(optimizer: .adam(lr: 1e-3), loss: .categoricalCrossentropy, metrics: ["accuracy"])
        model.fit(train.prefix(960).with(transform: recipe.transform), batchSize: 32, epochs: 1,
                  validation: test.prefix(200).with(transform: recipe.transform), verbose: 0, seed: 3)
        let fitted = Dictionary(uniqueKeysWithValues: model.stateDict())
        for run in ["driver", "cli"] {
            let saved = try SafeTensors.read(dir.path + "/\(run)/model.safetensors").tensors
            #expect(saved.keys.sorted() == fitted.keys.sorted())
            for (k, t) in saved { #expect(t.storage == fitted[k]?.storage, "\(run): \(k) differs from Model.fit") }
        }
    }

    /// Every zoo recipe (three with a learning-rate schedule, one with dropout, two with augmentation — digits
    /// for resnet8, crops and flips for lenet5), stopped inside epoch 1,
    /// at its end, and inside epoch 2 right after a mid-epoch checkpoint, then resumed: the same
    /// weights, history and metrics as one uninterrupted run. A stray temporary file, as a kill during
    /// a checkpoint write leaves, changes nothing.
    @Test(needsMNIST, arguments: ZooModel.allCases.filter { $0.minimumSize <= 28 })   // the ImageNet networks share the engine
    func everyRecipeResumesExactly(_ zoo: ZooModel) throws {
        guard let data = mnistDirectory() else { _ = requireMNIST(); return }
        var recipe = zoo.defaults; recipe.epochs = 2
        recipe.augmentation = zoo == .resnet8 ? .digits : zoo == .lenet5 ? .crops : nil
        let config = RunConfig(model: zoo, recipe: recipe, seed: 11, threads: Parallel.threads,
                               trainLimit: zoo == .mnistCNN || zoo == .resnet20 ? 640 : 1280, testLimit: 200)
        let loc = DataLocation(directory: data)
        func run(_ dir: String, stop: (epoch: Int, batch: Int)? = nil, resume: Bool = false) throws -> RunResult {
            let r = TrainingRun(config: config, outputDir: dir, dataLocation: loc, checkpointInterval: .batches(3),
                                progress: .silent, log: { _ in })
            if let stop { r.callbacks = [StopAfter(epoch: stop.epoch, batch: stop.batch)] }
            return try r.run(resume: resume)
        }
        let full = TempDir()
        let reference = try run(full.path)
        let batches = (config.trainLimit! + recipe.batchSize - 1) / recipe.batchSize
        for stop in [(epoch: 0, batch: 5), (epoch: 0, batch: batches - 1), (epoch: 1, batch: 2)] {
            let split = TempDir()
            _ = try run(split.path, stop: stop)
            FileManager.default.createFile(atPath: split.path + "/.checkpoint.safetensors.tmp-1-2", contents: Data([1, 2, 3]))
            let resumed = try run(split.path, resume: true)
            let a = try SafeTensors.read(full.path + "/checkpoint.safetensors").tensors
            let b = try SafeTensors.read(split.path + "/checkpoint.safetensors").tensors
            #expect(a.keys.sorted() == b.keys.sorted())
            for (k, t) in a { #expect(t.storage == b[k]?.storage, "\(zoo.rawValue) stopped at \(stop): \(k) differs") }
            #expect(resumed.testAccuracy == reference.testAccuracy)
            let strip = { (h: [[String: Double]]) in h.map { $0.filter { $0.key != "seconds" } } }
            #expect(strip(resumed.history) == strip(reference.history), "\(zoo.rawValue) stopped at \(stop)")
        }
    }
}
