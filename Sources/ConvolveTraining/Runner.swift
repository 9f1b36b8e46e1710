import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// Everything needed to continue a run exactly: written into every checkpoint's metadata (and, for
/// people and `--resume`'s settings check, as `run.json`).
public struct RunState: Codable, Sendable {
    public var config: RunConfig
    public var completedEpochs: Int
    public var bestAccuracy: Double?
    public var history: [[String: Double]]
    /// Steps the learning-rate schedule has taken.
    public var schedulerSteps: Int?
    /// The loader's shuffle generator, ready to draw the next epoch's order.
    public var shuffleState: [UInt64]?
    /// The run's dropout generator at a mid-epoch checkpoint.
    public var randomState: [UInt64]?
    /// Set when the checkpoint was taken inside an epoch: that epoch's order, batches done, tally.
    public var position: EpochPosition?
    /// The Convolve version that wrote this state.
    public var version: String? = convolveVersion
    /// Where the run found its dataset (an absolute path), so `convolve plot` needs no `--data-dir`;
    /// nil when it came from the environment or the cache.
    public var dataDirectory: String?

    /// Decodes a run state from JSON and validates it (what `--resume` does with a checkpoint's metadata).
    /// - Parameters:
    ///   - data: the JSON.
    ///   - path: the file it came from, for messages.
    ///   - trainCount: training images of the run.
    ///   - batches: batches per epoch of the run.
    public static func decodeAndValidate(_ data: Data, path: String, trainCount: Int, batches: Int) throws -> RunState {
        let state: RunState
        do { state = try JSONDecoder().decode(RunState.self, from: data) }
        catch { throw RunError("\(path): the run state in its metadata is unreadable (\(error))") }
        try state.config.validate(path)
        try state.validateHistory(path)
        try state.validate(path, trainCount: trainCount, batches: batches)
        return state
    }

    /// Checks values read from a file before they are used; `trainCount` and `batches` are the
    /// run's training images and batches per epoch.
    func validate(_ path: String, trainCount: Int, batches: Int) throws {
        func bad(_ what: String) -> RunError { RunError("\(path): cannot resume: \(what)") }
        guard Bounds.epochs.contains(completedEpochs) || completedEpochs == 0 else { throw bad("completedEpochs is \(completedEpochs)") }
        guard history.count == completedEpochs else {
            throw bad("\(history.count) epochs of history for \(completedEpochs) completed epochs")
        }
        if let s = schedulerSteps, s < 0 { throw bad("schedulerSteps is \(s)") }
        if let w = shuffleState, Xoshiro256StarStar(words: w) == nil { throw bad("shuffleState is not a generator state") }
        if let w = randomState, Xoshiro256StarStar(words: w) == nil { throw bad("randomState is not a generator state") }
        if let p = position {
            guard p.batch > 0 && p.batch < batches else { throw bad("position.batch \(p.batch) is outside 1..<\(batches)") }
            guard p.order.count == trainCount, Set(p.order).count == trainCount,
                  p.order.allSatisfy({ $0 >= 0 && $0 < trainCount }) else {
                throw bad("position.order is not an order of the \(trainCount) training images")
            }
            let t = p.tally
            guard t.count >= 0, t.correct >= 0, t.correct <= t.count, t.batches == p.batch,
                  t.lossSum.isFinite, t.batchLossSum.isFinite else { throw bad("position.tally is inconsistent") }
        }
    }
}

/// Errors of the training driver (bad checkpoint, mismatched resume, …), naming the file.
public struct RunError: Error, CustomStringConvertible {
    public let message: String
    /// - Parameter message: names the file and what is wrong.
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

/// How often `convolve train` checkpoints inside an epoch (it always does at every epoch's end).
public enum CheckpointInterval: Sendable, Equatable {
    case never
    case seconds(Double)
    case batches(Int)
}

/// Runs `convolve train`: loads data, builds the model and the recipe's optimizer and schedule, and
/// trains it with the `Trainer`, printing in the style of its tutorial half and evaluating on the test
/// set every epoch. Writes into `outputDir` (every file through a temporary name and a rename):
/// `model.safetensors` (latest weights, PyTorch `state_dict` keys), `best.safetensors`,
/// `checkpoint.safetensors` (weights, optimizer state and, in its metadata, the whole `RunState`:
/// schedule, generators, position in the epoch — what `--resume` needs), `metrics.csv`, `run.json`.
/// One run at a time may write a directory (`.lock`, released by the system if the run dies).
public final class TrainingRun {
    public let config: RunConfig
    public let outputDir: String
    public let dataLocation: DataLocation
    public var checkpointInterval: CheckpointInterval
    /// Write TensorBoard event files into `outputDir/tensorboard` (default on).
    public var tensorBoard = true
    /// More callbacks for the run's `Trainer` (after the progress output, before the run's own
    /// checkpointing, which always comes last).
    public var callbacks: [Callback] = []
    /// Data-parallel training over these ranks (`convolve train --distributed` under `mpirun`): each
    /// trains on its shard of every global batch; only rank 0 writes (checkpoints, metrics, TensorBoard)
    /// and prints; `--resume` reads the checkpoint on rank 0 and sends it to the others.
    public var communicator: Communicator?
    var isRoot: Bool { (communicator?.rank ?? 0) == 0 }
    let log: (String) -> Void
    let progress: ProgressOutput
    /// The input the model was built for (set by `run`; saved in every checkpoint).
    public private(set) var inputSpec: InputSpec?

    /// - Parameters:
    ///   - config: what to train.
    ///   - outputDir: where checkpoints and metrics go (created if needed).
    ///   - dataLocation: where datasets are found or cached.
    ///   - checkpointInterval: mid-epoch checkpoints (default every 5 minutes).
    ///   - progress: Keras-style progress lines to stdout, or none.
    ///   - log: where the PyTorch-style lines go.
    public init(config: RunConfig, outputDir: String, dataLocation: DataLocation = DataLocation(),
                checkpointInterval: CheckpointInterval = .seconds(300),
                progress: ProgressOutput = .standardOutput, log: @escaping (String) -> Void = { print($0) }) {
        self.config = config; self.outputDir = outputDir; self.dataLocation = dataLocation
        self.checkpointInterval = checkpointInterval
        self.log = log; self.progress = progress
    }

    var modelPath: String { outputDir + "/model.safetensors" }
    var bestPath: String { outputDir + "/best.safetensors" }
    var checkpointPath: String { outputDir + "/checkpoint.safetensors" }
    var statePath: String { outputDir + "/run.json" }
    var metricsPath: String { outputDir + "/metrics.csv" }

    /// Reads a previous run's `run.json` (its settings; the exact resume state is in the checkpoint).
    /// Data-parallel: rank 0 reads it and sends it to the others (their machines need no copy).
    /// - Parameters:
    ///   - dir: the run's output directory.
    ///   - communicator: the ranks of a data-parallel run, or nil.
    public static func loadState(_ dir: String, communicator: Communicator? = nil) throws -> RunState {
        let path = dir + "/run.json"
        var contents: [UInt8]?
        var readError: Error?
        if (communicator?.rank ?? 0) == 0 {
            do { contents = [UInt8](try readRegularFile(path, maxBytes: 64 << 20, what: "a run file")) }
            catch let e as IOError where e.reason.hasSuffix("no such file") { contents = nil }
            catch { readError = error }
        }
        if let communicator {
            let sent = try communicator.broadcast(contents.map { [1] + $0 } ?? [0])
            contents = sent.first == 1 ? Array(sent.dropFirst()) : nil
        }
        if let readError { throw RunError("cannot resume: \(readError)") }
        guard let data = contents.map({ Data($0) }) else {
            throw RunError("\(path): cannot resume: no run.json in \(dir)")
        }
        let state: RunState
        do { state = try JSONDecoder().decode(RunState.self, from: data) }
        catch { throw RunError("\(path): not a Convolve run file (\(error))") }
        try state.config.validate(path)
        guard Bounds.epochs.contains(state.completedEpochs) || state.completedEpochs == 0,
              state.history.count == state.completedEpochs else {
            throw RunError("\(path): \(state.history.count) epochs of history for \(state.completedEpochs) completed epochs")
        }
        return state   // its history may hold values a chart cannot draw: `plot` reports them
    }

    /// Loads datasets for the config: the training set with the recipe's augmentation (if any) and
    /// the input spec's transform, the test set with the transform only. Image folders print their
    /// summary line (classes, images, size, files ignored).
    public func loadData() throws -> (train: ImageDataset, test: ImageDataset, spec: InputSpec) {
        let provider = try DatasetCatalog.resolve(config.dataset, options: config.folderOptions)
        let progress = isatty(STDERR_FILENO) != 0
        var train = try provider.load(train: true, from: dataLocation, progress: progress)
        var test = try provider.load(train: false, from: dataLocation, progress: progress)
        if let folder = provider as? ImageFolder, isRoot { log(try folder.summary()) }
        if let n = config.trainLimit { train = train.prefix(n) }
        if let n = config.testLimit { test = test.prefix(n) }
        guard train.count > 0 else { throw RunError("\(provider.displayName): the training set is empty") }
        guard test.count > 0 else {
            throw RunError("\(provider.displayName): the test (validation) set is empty; add a val/ folder or a --val-split above 0")
        }
        var spec = InputSpec(provider: provider, train: train, recipe: config.recipe, centerCrop: config.centerCrop ?? false)
        if config.pretrained != nil, let weights = ZooModel(rawValue: config.model)?.pretrained {
            // Fine-tuning feeds the backbone what its weights were trained on.
            (spec.mean, spec.std) = (weights.mean, weights.std)
        }
        let base = spec.transform
        let trainTransform = config.recipe.augmentation.map {
            Compose($0.transforms(height: spec.height, width: spec.width) + [base]) as any Transform
        } ?? base
        return (train.with(transform: trainTransform), test.with(transform: base), spec)
    }

    /// The seed of the run's dropout generator at the start of `epoch`.
    func epochSeed(_ epoch: Int) -> UInt64 { config.seed &+ UInt64(epoch + 1) &* 0x9E3779B9 }

    /// Trains (or resumes) and returns the final test metrics.
    /// - Parameter resume: continue the run in `outputDir` from its checkpoint (exactly, also mid-epoch).
    @discardableResult
    public func run(resume: Bool = false) throws -> RunResult {
        try config.validate(resume ? statePath : "the run's settings")
        guard let zoo = ZooModel(rawValue: config.model) else { throw RunError("unknown model \(config.model)") }
        if Parallel.threads != Swift.max(1, config.threads) { Parallel.threads = config.threads }
        var (train, test, spec) = try loadData()   // before creating anything: bad data leaves no output behind
        inputSpec = spec
        try zoo.validate(input: spec.sampleShape, classes: spec.classNames.count)   // refuses unfit data before any output
        try zoo.checkMemory(input: spec.sampleShape, classes: spec.classNames.count, batch: config.recipe.batchSize,
                            training: true, lower: "--image-size or --batch-size")
        if zoo.smallestNormalizedPlane(input: spec.sampleShape) == 1 {
            // Batch norm sees one value per channel in a one-sample batch: refuse such batches, and leave
            // out a last batch that would give a rank a single sample (fastai drops every last batch).
            guard config.recipe.batchSize >= 2 else {
                throw RunError("\(zoo.rawValue) on \(spec.height)x\(spec.width) images normalizes 1x1 planes: batch norm needs a --batch-size "
                    + "of at least 2 (or larger images)")
            }
            let ranks = communicator?.size ?? 1, global = config.recipe.batchSize * ranks
            let rest = train.count % global
            if rest > 0 && rest < 2 * ranks && train.count > rest { train = train.prefix(train.count - rest) }
        }
        var lock: OutputLock?
        if isRoot {
            do { try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true) }
            catch { throw RunError("\(outputDir): cannot create output directory: \(error.localizedDescription)") }
            lock = try OutputLock(directory: outputDir)
        }
        defer { lock?.release() }

        let model = try RandomGenerator.global.exclusively {
            manualSeed(config.seed); return try zoo.make(input: spec.sampleShape, classes: spec.classNames.count)
        }
        // Dropout draws from the run's own generator, reseeded per epoch: masks do not depend on where
        // a run was resumed, nor on other threads using the default generator.
        let dropoutGenerator = RandomGenerator(seed: epochSeed(0))
        model.useGenerator(dropoutGenerator)
        if let pretrained = config.pretrained, !resume { try loadBackbone(model, of: zoo, from: pretrained) }
        let optimizer = try config.recipe.makeOptimizer(model.parameters())
        (model as? Model)?.compile(optimizer: optimizer, loss: .categoricalCrossentropy, metrics: ["accuracy"])
        let loader = DataLoader(train, batchSize: config.recipe.batchSize, shuffle: true, seed: config.seed,
                                shard: communicator.map { ($0.rank, $0.size) })
        let scheduler = config.recipe.makeScheduler(optimizer, stepsPerEpoch: loader.count)
        let perBatch = config.recipe.schedulesPerBatch
        var state = RunState(config: config, completedEpochs: 0, bestAccuracy: nil, history: [])
        let dataDirectory = (dataLocation.directory ?? ProcessInfo.processInfo.environment["CONVOLVE_DATA_DIR"]).map {
            URL(fileURLWithPath: $0).standardizedFileURL.path
        }
        if resume {
            state = try restore(model: model, optimizer: optimizer, trainCount: train.count, batches: loader.count)
            optimizer.lr = config.recipe.lr
            scheduler?.restore(stepsTaken: state.schedulerSteps ?? state.completedEpochs * (perBatch ? loader.count : 1))
            if let words = state.shuffleState, let s = Xoshiro256StarStar(words: words) {
                loader.restoreShuffleState(s)
            } else {
                for _ in 0..<state.completedEpochs { _ = loader.nextEpochOrder() }
            }
            if state.position != nil, let words = state.randomState, let s = Xoshiro256StarStar(words: words) {
                dropoutGenerator.restore(s)
            }
            state.config.recipe.epochs = config.recipe.epochs
            guard config.recipe.epochs >= state.completedEpochs else {
                throw RunError("\(outputDir): the run has completed \(state.completedEpochs) epochs; --epochs \(config.recipe.epochs) is fewer "
                    + "(give at least \(state.completedEpochs))")
            }
        }

        state.dataDirectory = dataDirectory
        let recorder = RunRecorder(run: self, state: state, loader: loader, scheduler: scheduler, dropout: dropoutGenerator)
        // Keras' bar redraws on a terminal by itself; the PyTorch lines get a live status line there.
        // Data-parallel: only rank 0 prints and writes.
        let quiet = progress == .silent || !isRoot
        var callbacks: [Callback] = config.recipe.style == .keras
            ? [ProgressBar(verbose: quiet ? 0 : 1, output: quiet ? .silent : progress)]
            : [LiveProgress(enabled: !quiet && isatty(STDOUT_FILENO) != 0), TutorialEpochLog(log: isRoot ? log : { _ in })]
        // TensorBoard before the schedule: an epoch's learning rate is logged before it decays.
        let board = tensorBoard && isRoot ? TensorBoard(logDir: outputDir + "/tensorboard", mistakesFrom: test,
                                                             mistakesFromValidation: true) : nil
        if let board { callbacks.append(board) }
        if let scheduler { callbacks.append(LRSchedule(scheduler, perBatch: perBatch)) }
        if config.pretrained != nil && (config.linearProbe == true || (config.freezeEpochs ?? 0) > 0) {
            callbacks.append(try FreezeBackbone(model, epochs: config.linearProbe == true ? Int.max : config.freezeEpochs ?? 0))
        }
        callbacks += self.callbacks
        callbacks.append(recorder)   // last: saves after the schedule has stepped
        if resume && isRoot && state.position == nil && state.completedEpochs > 0 {
            // A write that failed after the checkpoint (the CSV, the latest weights) left those behind it:
            // bring them level before training on.
            try save(model: model, optimizer: optimizer, state: state, epochEnd: true, bestImproved: false, metrics: recorder.metricsCSV)
        }
        let trainer = Trainer(model: model, optimizer: optimizer, callbacks: callbacks)
        trainer.communicator = communicator
        trainer.fit(loader, epochs: config.recipe.epochs, initialEpoch: state.completedEpochs,
                    validation: test, resume: state.position)
        if let error = recorder.error { throw error }
        if let error = board?.errors.first { throw RunError("\(error)") }
        state = recorder.state
        if let communicator {
            let agree = try communicator.parametersAgree(model)
            if isRoot {
                log("Ranks: \(communicator.size); weights bit-identical on every rank: \(agree ? "yes" : "NO")")
            }
            guard agree else { throw RunError("the ranks' weights differ after training (a collective went wrong)") }
        }

        let final: (loss: Double, accuracy: Double)
        if let last = state.history.last, recorder.epochsRun > 0, let l = last["val_loss"], let a = last["val_accuracy"] {
            final = (l, a)   // the model has not changed since the last epoch's evaluation
        } else {
            let e = trainer.evaluate(test)
            final = (e.loss, e.accuracy)
        }
        if config.recipe.style == .pytorch && isRoot {
            log("Number Of Images Tested = \(test.count)")
            log("\nModel Accuracy = \(final.accuracy)")
        }
        return RunResult(testAccuracy: final.accuracy, testLoss: final.loss, epochsRun: state.completedEpochs,
                         history: state.history)
    }

    func metadata(_ state: RunState) throws -> [String: String] {
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        let cfg = String(decoding: try enc.encode(state.config), as: UTF8.self)
        var meta = ["format": "convolve", "convolve_version": convolveVersion, "model": config.model, "dataset": config.dataset,
                    "epoch": String(state.completedEpochs), "config": cfg]
        if let inputSpec { meta["input"] = String(decoding: try enc.encode(inputSpec), as: UTF8.self) }
        return meta
    }

    /// Writes the checkpoint (weights, optimizer state, the run state in its metadata) and `run.json`;
    /// at an epoch's end also the latest and best weights and the metrics CSV.
    func save(model: Module, optimizer: Optimizer, state: RunState, epochEnd: Bool, bestImproved: Bool,
              metrics: String) throws {
        guard isRoot else { return }
        let meta = try metadata(state)
        let weights = model.stateDict()
        do {
            // The files a resume reads first (the checkpoint, then run.json): a write that fails after
            // them leaves the latest weights and the CSV one epoch behind, never ahead; resume rewrites both.
            let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let stateJSON = try enc.encode(state)
            try SafeTensors.write(weights + optimizer.stateDict().map { ("optimizer." + $0.0, $0.1) },
                                  metadata: meta.merging(["run_state": String(decoding: stateJSON, as: UTF8.self)]) { $1 },
                                  to: checkpointPath)
            try writeAtomically(stateJSON, to: statePath)
            if epochEnd {
                try writeAtomically(Data(metrics.utf8), to: metricsPath)
                try SafeTensors.write(weights, metadata: meta, to: modelPath)
                if bestImproved, let acc = state.bestAccuracy {
                    try SafeTensors.write(weights, metadata: meta.merging(["val_accuracy": String(acc)]) { $1 }, to: bestPath)
                }
            }
        } catch let e as IOError { throw RunError("\(e)") }
    }

    /// A safetensors file read by rank 0 and sent to every rank (a data-parallel resume), or read here.
    func readShared(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String], order: [String]) {
        guard let communicator else { return try SafeTensors.read(path) }
        var bytes: [UInt8] = [0]
        if isRoot {
            guard let data = FileManager.default.contents(atPath: path) else {
                _ = try communicator.broadcast([0])
                throw RunError("\(path): cannot resume: no checkpoint")
            }
            bytes = [1] + [UInt8](data)
        }
        let sent = try communicator.broadcast(bytes)
        guard sent.first == 1 else { throw RunError("\(path): cannot resume: no checkpoint on rank 0") }
        if isRoot { return try SafeTensors.read(path) }
        let local = NSTemporaryDirectory() + "convolve-resume-\(getpid())-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: local) }
        try writeAtomically(Data(sent.dropFirst()), to: local)
        return try SafeTensors.read(local)
    }

    /// Loads `checkpoint.safetensors` into the model and optimizer and returns the run state it holds.
    func restore(model: Module, optimizer: Optimizer, trainCount: Int, batches: Int) throws -> RunState {
        let previous = try Self.loadState(outputDir, communicator: communicator)
        var a = previous.config, b = config
        a.recipe.epochs = 0; b.recipe.epochs = 0
        guard a == b else {
            throw RunError("\(statePath): settings differ from the run being resumed; resume with the same model, data, recipe, seed, threads and ranks")
        }
        let (tensors, meta, _) = try readShared(checkpointPath)
        var state = previous
        if let text = meta["run_state"] {
            state = try RunState.decodeAndValidate(Data(text.utf8), path: checkpointPath, trainCount: trainCount, batches: batches)
        } else {
            try state.validate(checkpointPath, trainCount: trainCount, batches: batches)
        }
        var weights: [String: Tensor] = [:], opt: [String: Tensor] = [:]
        for (k, v) in tensors {
            if k.hasPrefix("optimizer.") { opt[String(k.dropFirst("optimizer.".count))] = v } else { weights[k] = v }
        }
        try checkFinite(tensors, path: checkpointPath)
        do {
            try model.loadStateDict(weights)
            try optimizer.loadStateDict(opt)
        } catch { throw RunError("\(checkpointPath): \(error)") }
        return state
    }
}
