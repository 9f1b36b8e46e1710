import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// Everything that defines a training run (saved as `run.json` beside its checkpoints).
public struct RunConfig: Codable, Sendable, Equatable {
    public var model: String
    public var dataset: String
    public var recipe: Recipe
    public var seed: UInt64
    public var threads: Int
    /// Use only the first N training / test images (quick runs and CI).
    public var trainLimit: Int?
    public var testLimit: Int?
    /// Evaluate the seed-tutorial way too: one image at a time with BatchNorm left in training mode.
    public var tutorialEval: Bool = false

    public init(model: ZooModel, dataset: DatasetKind = .mnist, recipe: Recipe? = nil, seed: UInt64 = 0,
                threads: Int = Parallel.threads, trainLimit: Int? = nil, testLimit: Int? = nil) {
        self.model = model.rawValue; self.dataset = dataset.rawValue; self.recipe = recipe ?? model.defaults
        self.seed = seed; self.threads = threads; self.trainLimit = trainLimit; self.testLimit = testLimit
    }
}

/// State written after every epoch so that an interrupted run can resume.
public struct RunState: Codable, Sendable {
    public var config: RunConfig
    public var completedEpochs: Int
    public var bestAccuracy: Double?
    public var history: [[String: Double]]
}

/// Errors of the training driver (bad checkpoint, mismatched resume, …), naming the file.
public struct RunError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Final numbers of a run.
public struct RunResult: Sendable {
    public let testAccuracy: Double
    public let testLoss: Double
    public let epochsRun: Int
    public let history: [[String: Double]]
}

/// Runs `convolve train`: loads data, builds the model, trains with the half-appropriate loop and
/// printing, evaluates on the test set every epoch, and writes into `outputDir`:
/// `model.safetensors` (latest weights, PyTorch `state_dict` keys), `best.safetensors`,
/// `checkpoint.safetensors` (weights + optimizer state, for `--resume`), `metrics.csv`, `run.json`.
public final class TrainingRun {
    public let config: RunConfig
    public let outputDir: String
    public let dataLocation: DataLocation
    let log: (String) -> Void
    let progress: ProgressOutput

    public init(config: RunConfig, outputDir: String, dataLocation: DataLocation = DataLocation(),
                progress: ProgressOutput = .standardOutput, log: @escaping (String) -> Void = { print($0) }) {
        self.config = config; self.outputDir = outputDir; self.dataLocation = dataLocation
        self.log = log; self.progress = progress
    }

    var modelPath: String { outputDir + "/model.safetensors" }
    var bestPath: String { outputDir + "/best.safetensors" }
    var checkpointPath: String { outputDir + "/checkpoint.safetensors" }
    var statePath: String { outputDir + "/run.json" }
    var metricsPath: String { outputDir + "/metrics.csv" }

    /// Reads a previous run's `run.json`.
    public static func loadState(_ dir: String) throws -> RunState {
        let path = dir + "/run.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RunError("\(path): cannot resume: no run.json in \(dir)")
        }
        do { return try JSONDecoder().decode(RunState.self, from: data) }
        catch { throw RunError("\(path): not a Convolve run file (\(error))") }
    }

    /// Loads datasets for the config, applying the recipe's normalization.
    public func loadData() throws -> (train: ImageDataset, test: ImageDataset) {
        guard let kind = DatasetKind(rawValue: config.dataset) else { throw RunError("unknown dataset \(config.dataset)") }
        var train = try dataLocation.load(kind, train: true)
        var test = try dataLocation.load(kind, train: false)
        if let n = config.trainLimit { train = train.prefix(n) }
        if let n = config.testLimit { test = test.prefix(n) }
        let t: any Transform = config.recipe.normalizeMean.map {
            Compose(ToTensor(), Normalize(mean: [Float($0)], std: [Float(config.recipe.normalizeStd ?? 1)]))
        } ?? ToTensor()
        return (train.with(transform: t), test.with(transform: t))
    }

    /// Builds the optimizer the recipe names.
    public static func makeOptimizer(_ recipe: Recipe, _ params: [Tensor], keras: Bool) throws -> Optimizer {
        switch recipe.optimizer.lowercased() {
        case "adam": return Adam(params, lr: recipe.lr, eps: keras ? 1e-7 : 1e-8, epsilonStyle: keras ? .keras : .pytorch)
        case "adamw": return AdamW(params, lr: recipe.lr)
        case "sgd": return SGD(params, lr: recipe.lr, momentum: 0.9)
        case "rmsprop": return RMSprop(params, lr: recipe.lr)
        case "adadelta": return Adadelta(params, lr: recipe.lr)
        default: throw RunError("unknown optimizer \(recipe.optimizer) (use adam, adamw, sgd, rmsprop or adadelta)")
        }
    }

    /// Trains (or resumes) and returns the final test metrics.
    @discardableResult
    public func run(resume: Bool = false) throws -> RunResult {
        guard let zoo = ZooModel(rawValue: config.model) else { throw RunError("unknown model \(config.model)") }
        Parallel.threads = Swift.max(1, config.threads)
        let (train, test) = try loadData()   // before creating anything: bad data leaves no output behind
        do { try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true) }
        catch { throw RunError("\(outputDir): cannot create output directory: \(error.localizedDescription)") }
        manualSeed(config.seed)
        let model = zoo.make()
        let optimizer = try Self.makeOptimizer(config.recipe, model.parameters(), keras: zoo.isKeras)
        var state = RunState(config: config, completedEpochs: 0, bestAccuracy: nil, history: [])
        if resume {
            let previous = try Self.loadState(outputDir)
            var a = previous.config, b = config
            a.recipe.epochs = 0; b.recipe.epochs = 0
            guard a == b else { throw RunError("\(statePath): settings differ from the run being resumed; resume with the same model, data, recipe, seed and threads") }
            try restore(model: model, optimizer: optimizer)
            state.completedEpochs = previous.completedEpochs
            state.bestAccuracy = previous.bestAccuracy
            state.history = previous.history
        }
        let scheduler = config.recipe.stepLRGamma.map { StepLR(optimizer, stepSize: 1, gamma: $0) }
        if resume, let scheduler { for _ in 0..<state.completedEpochs { scheduler.step() } }

        let loader = DataLoader(train, batchSize: config.recipe.batchSize, shuffle: true, seed: config.seed)
        for _ in 0..<state.completedEpochs { _ = loader.nextEpochOrder() }
        let epochs = config.recipe.epochs
        let keras = model as? Model
        if let keras { keras.compile(optimizer: optimizer, loss: .categoricalCrossentropy, metrics: ["accuracy"]) }

        var epoch = state.completedEpochs
        while epoch < epochs {
            manualSeed(config.seed &+ UInt64(epoch + 1) &* 0x9E3779B9)  // dropout masks: reproducible per epoch
            let start = Date()
            var logs: [String: Double]
            if let keras {
                let h = keras.fit(train, batchSize: config.recipe.batchSize, epochs: epoch + 1, initialEpoch: epoch,
                                  validation: test, shuffle: true, verbose: progress == .silent ? 0 : 1,
                                  seed: nil, output: progress, loader: loader)
                logs = h.history.mapValues { $0.last ?? 0 }
            } else {
                model.train()
                var running = 0.0, batches = 0, correct = 0, seen = 0
                for (x, y) in loader {
                    optimizer.zeroGrad()
                    let out = model(x)
                    let loss = crossEntropy(out, y)
                    loss.backward()
                    optimizer.step()
                    running += Double(loss.item); batches += 1
                    correct += zip(out.argmax(dim: 1), y).filter { $0 == $1 }.count; seen += y.count
                }
                scheduler?.step()
                log("Epoch \(epoch + 1) - Training loss: \(running / Double(Swift.max(batches, 1)))")
                let (tl, ta) = Self.evaluate(model, test)
                logs = ["loss": running / Double(Swift.max(batches, 1)), "accuracy": Double(correct) / Double(Swift.max(seen, 1)),
                        "val_loss": tl, "val_accuracy": ta]
            }
            logs["seconds"] = Date().timeIntervalSince(start)
            epoch += 1
            state.completedEpochs = epoch
            state.history.append(logs)
            try saveEpoch(model: model, optimizer: optimizer, state: &state, logs: logs)
        }
        let (testLoss, testAcc) = Self.evaluate(model, test)
        if keras == nil {
            log("Number Of Images Tested = \(test.count)")
            log("\nModel Accuracy = \(testAcc)")
        }
        return RunResult(testAccuracy: testAcc, testLoss: testLoss, epochsRun: epoch, history: state.history)
    }

    /// Test loss and accuracy in eval mode, batches of 1000.
    public static func evaluate<S: BatchSource>(_ model: Module & Layer, _ data: S) -> (Double, Double) {
        if let keras = model as? Model { return keras.evaluate(data, batchSize: 1000) }
        let was = model.training
        model.eval()
        defer { model.train(was) }
        var lossSum = 0.0, correct = 0
        releaseUnusedMemory()   // after training's buffers: evaluation's slices should not raise the peak
        withNoGrad {
            for (x, y) in DataLoader(data, batchSize: 1000, prefetch: false) {
                let out = inferInSlices(x) { model($0) }
                lossSum += Double(crossEntropy(out, y, reduction: .sum).item)
                correct += zip(out.argmax(dim: 1), y).filter { $0 == $1 }.count
            }
        }
        return (lossSum / Double(Swift.max(data.count, 1)), Double(correct) / Double(Swift.max(data.count, 1)))
    }

    func metadata(_ state: RunState) -> [String: String] {
        let cfg = (try? JSONEncoder().encode(state.config)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return ["format": "convolve", "model": config.model, "dataset": config.dataset,
                "epoch": String(state.completedEpochs), "config": cfg]
    }

    func saveEpoch(model: Module, optimizer: Optimizer, state: inout RunState, logs: [String: Double]) throws {
        let meta = metadata(state)
        let weights = model.stateDict()
        try SafeTensors.write(weights, metadata: meta, to: modelPath)
        let acc = logs["val_accuracy"] ?? 0
        if acc > (state.bestAccuracy ?? -1) {
            state.bestAccuracy = acc
            try SafeTensors.write(weights, metadata: meta.merging(["val_accuracy": String(acc)]) { $1 }, to: bestPath)
        }
        try SafeTensors.write(weights + optimizer.stateDict().map { ("optimizer." + $0.0, $0.1) }, metadata: meta,
                              to: checkpointPath)
        let cols = ["loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
        var csv = "epoch," + cols.joined(separator: ",") + "\n"
        for (i, h) in state.history.enumerated() {
            csv += "\(i + 1)," + cols.map { h[$0].map { String($0) } ?? "" }.joined(separator: ",") + "\n"
        }
        try writeAtomically(Data(csv.utf8), to: metricsPath)
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try enc.encode(state), to: statePath)
    }

    func restore(model: Module, optimizer: Optimizer) throws {
        let (tensors, _, _) = try SafeTensors.read(checkpointPath)
        var weights: [String: Tensor] = [:], opt: [String: Tensor] = [:]
        for (k, v) in tensors {
            if k.hasPrefix("optimizer.") { opt[String(k.dropFirst("optimizer.".count))] = v } else { weights[k] = v }
        }
        do {
            try model.loadStateDict(weights)
            try optimizer.loadStateDict(opt)
        } catch { throw RunError("\(checkpointPath): \(error)") }
    }
}

extension ProgressOutput: Equatable {}

/// Loads a checkpoint written by `convolve train` (or any safetensors file with the model's keys)
/// into a fresh zoo model, strictly. The model name comes from the file's metadata unless given.
public func loadCheckpoint(_ path: String, model name: String? = nil) throws -> (ZooModel, Module & Layer, [String: String]) {
    let (tensors, meta, _) = try SafeTensors.read(path)
    guard let modelName = name ?? meta["model"] else {
        throw RunError("\(path): no model name in the file's metadata; pass --model")
    }
    guard let zoo = ZooModel(rawValue: modelName) else { throw RunError("\(path): unknown model \"\(modelName)\"") }
    let model = zoo.make()
    let weights = tensors.filter { !$0.key.hasPrefix("optimizer.") }
    do { try model.loadStateDict(weights) } catch { throw RunError("\(path): \(error)") }
    model.eval()
    return (zoo, model, meta)
}
