import Foundation
import Convolve
import ConvolveNN
import ConvolveData
@_exported import ConvolveIO

/// What one training step did.
public struct StepResult: Sendable {
    /// The batch's mean loss.
    public let loss: Double
    /// Images in the batch, and how many of them the model classified correctly (before the update).
    public let count: Int
    public let correct: Int
}

/// The training engine: the one place a training step happens (forward, loss, backward, the
/// after-backward hooks, optimizer step, metrics), and the epoch loop around it with callbacks at
/// every event. Keras' `Model.fit`, the run driver behind `convolve train` and the benchmarks all
/// train through it; a hand-written PyTorch-style loop needs none of it.
///
/// ```swift
/// let trainer = Trainer(model: net, optimizer: Adam(net.parameters(), lr: 1e-3),
///                       callbacks: [LRSchedule(StepLR(optimizer, stepSize: 1, gamma: 0.7))])
/// let history = trainer.fit(DataLoader(train, batchSize: 64, shuffle: true), epochs: 5, validation: test)
/// ```
///
/// Learning-rate schedules, progress lines, logging and checkpoints are callbacks. A callback ends
/// training by setting `stopTraining`: in `onEpochEnd` after that epoch, in `onBatchEnd` right after
/// that batch (the unfinished epoch then gets no validation and no `onEpochEnd`).
public final class Trainer {
    public let model: Module & Layer
    public let optimizer: Optimizer
    public let objective: Objective
    public var callbacks: [Callback]
    /// Whether `accuracy` (and `val_accuracy`) are reported (Keras: `metrics: ["accuracy"]`).
    public var reportsAccuracy: Bool
    /// Runs after every backward pass, before the optimizer step: where gradients are averaged across
    /// processes in data-parallel training, or clipped.
    public var afterBackward: [(Trainer) -> Void] = []
    /// Set by a callback to end `fit` after the current epoch.
    public var stopTraining = false
    /// The epoch being trained (0-based) and the batch within it.
    public private(set) var epoch = 0
    public private(set) var batch = 0
    /// Epochs of the current `fit` (its `epochs` argument) and batches in each.
    public private(set) var epochs = 0
    public private(set) var batchesPerEpoch = 0
    /// Training steps taken by this trainer (across `fit` calls).
    public private(set) var globalStep = 0
    /// Batch size of validation passes.
    public var validationBatchSize = 1000
    /// How the step and the epoch are shared with other processes (``DataParallel``), or nil for one
    /// process. The step calls it at fixed points and
    /// knows nothing else of it.
    public var distribution: (any Distribution)?

    /// - Parameters:
    ///   - model: the classifier to train (its `parameters()` are the optimizer's).
    ///   - optimizer: updates the parameters from their gradients.
    ///   - objective: the model's outputs and loss (default: `objective(for: model)`: a Keras `Model`'s
    ///     compiled loss, cross-entropy on logits for other modules).
    ///   - callbacks: observers and controllers of training, called in order.
    ///   - reportsAccuracy: report `accuracy` and `val_accuracy` in the logs.
    public init(model: Module & Layer, optimizer: Optimizer, objective: Objective? = nil,
                callbacks: [Callback] = [], reportsAccuracy: Bool = true) {
        self.model = model
        self.optimizer = optimizer
        self.objective = objective ?? ConvolveTraining.objective(for: model)
        self.callbacks = callbacks
        self.reportsAccuracy = reportsAccuracy
    }

    /// The training step: zero gradients, forward, loss, backward, after-backward hooks, optimizer step.
    /// Counts correct predictions from the same forward pass. The model should be in training mode.
    ///
    /// - Parameters:
    ///   - x: a batch of inputs.
    ///   - labels: their class indices.
    @discardableResult
    public func trainStep(_ x: Tensor, _ labels: [Int]) -> StepResult {
        optimizer.zeroGrad()
        guard !labels.isEmpty else {
            // A rank whose part of a short last global batch is empty still takes part in the
            // gradient average (with weight 0) and steps with everyone.
            collective { try $0.gradientsReady(self, localCount: 0) }
            for hook in afterBackward { hook(self) }
            optimizer.step()
            globalStep += 1
            return StepResult(loss: 0, count: 0, correct: 0)
        }
        let scores = Profiler.measure("loss forward") { objective.scores(x) }
        let loss = objective.lossValue(scores, labels)
        Profiler.measure("backward (total)") { loss.backward() }
        collective { try $0.gradientsReady(self, localCount: labels.count) }
        for hook in afterBackward { hook(self) }
        optimizer.step()
        globalStep += 1
        var counted = ClassificationTally()
        if reportsAccuracy { counted.add(scores: scores, labels: labels, lossSum: 0) }
        return StepResult(loss: Double(loss.item), count: labels.count, correct: counted.correct)
    }

    /// Runs a step of the distribution, if any; a failure there ends every process (a peer has died:
    /// waiting would hang).
    private func collective(_ body: (any Distribution) throws -> Void) {
        guard let distribution else { return }
        do { try body(distribution) } catch { distribution.fail(error) }
    }

    /// Trains epochs `initialEpoch..<epochs` over `loader`, evaluating `validation` after each epoch
    /// (`val_loss`, `val_accuracy`), and returns the per-epoch logs. `resume` continues the first
    /// epoch from a saved position (a run resumed mid-epoch: that epoch's order, batches done, tally).
    ///
    /// - Parameters:
    ///   - loader: the training batches (it shuffles).
    ///   - epochs: the epoch to stop before.
    ///   - initialEpoch: the epoch to start at.
    ///   - validation: evaluated after each epoch, or nil.
    ///   - resume: where to continue inside `initialEpoch`, or nil.
    @discardableResult
    public func fit<S: BatchSource>(_ loader: DataLoader<S>, epochs: Int, initialEpoch: Int = 0,
                                    validation: (any BatchSource)? = nil, resume: EpochPosition? = nil) -> History {
        var history = History()
        stopTraining = false
        self.epochs = epochs
        batchesPerEpoch = loader.count
        epoch = initialEpoch
        batch = resume?.batch ?? 0
        collective { try $0.fitBegins(self) }   // every process starts from the same weights
        for cb in callbacks { cb.onTrainBegin(self) }
        var last: Logs = [:]
        for e in initialEpoch..<epochs {
            epoch = e
            let start = e == initialEpoch ? resume : nil
            batch = start?.batch ?? 0
            // A resumed epoch's saved tally is the sum over processes: one of them carries it.
            var tally = distribution?.carriesSavedTally ?? true ? start?.tally ?? ClassificationTally() : ClassificationTally()
            currentTally = tally
            for cb in callbacks { cb.onEpochBegin(e, trainer: self) }
            model.train()
            var iterator = loader.makeIterator(order: start?.order ?? loader.nextEpochOrder(), startBatch: start?.batch ?? 0, epoch: e)
            currentOrder = iterator.order
            while let (x, y) = Profiler.measure("data (wait for batch)", { iterator.next() }) {
                for cb in callbacks { cb.onBatchBegin(batch, inputs: x, labels: y, trainer: self) }
                let step = trainStep(x, y)
                tally.add(step)
                currentTally = tally
                var logs = tally.logs(accuracy: reportsAccuracy)
                logs["batch_loss"] = step.loss
                logs["batch_size"] = Double(step.count)
                batch += 1
                for cb in callbacks { cb.onBatchEnd(batch - 1, logs: logs, trainer: self) }
                if stopTraining { break }
            }
            // Stopped inside the epoch (a callback's decision, or a failed checkpoint): the epoch did
            // not end, so it is neither validated nor reported as ended.
            if stopTraining && batch < batchesPerEpoch { break }
            // Every process reports the whole epoch and validates the same model.
            collective { tally = try $0.epochEnds(self, tally: tally) }
            var logs = tally.logs(accuracy: reportsAccuracy)
            if let validation {
                let v = evaluate(validation)
                logs["val_loss"] = v.loss
                if reportsAccuracy { logs["val_accuracy"] = v.accuracy }
            }
            history.append(e, logs)
            last = logs
            for cb in callbacks { cb.onEpochEnd(e, logs: logs, trainer: self) }
            if stopTraining { break }
        }
        for cb in callbacks { cb.onTrainEnd(self, logs: last) }
        model.eval()
        return history
    }

    /// Evaluates the model on `data` with this trainer's objective; the callbacks get the test events.
    /// - Parameters:
    ///   - data: the samples.
    ///   - keepMistakes: record the first this many misclassified samples.
    public func evaluate(_ data: some BatchSource, keepMistakes: Int = 0) -> Evaluation {
        Evaluator(model, objective: objective, batchSize: validationBatchSize)
            .evaluate(data, callbacks: callbacks, keepMistakes: keepMistakes)
    }

    /// Where the current epoch is: its sample order, the batches done and their running tally
    /// (for a checkpoint taken mid-epoch).
    public var position: EpochPosition { EpochPosition(order: currentOrder, batch: batch, tally: currentTally) }

    /// `position` with the tally of every process (a collective: every process must call it at the
    /// same batch). In one process, `position`.
    public func globalPosition() throws -> EpochPosition {
        guard let distribution else { return position }
        var p = position
        p.tally = try distribution.globalTally(p.tally)
        return p
    }
    private var currentOrder: [Int] = []
    private var currentTally = ClassificationTally()
}

/// How a training step and an epoch are shared between processes (data parallelism). The ``Trainer``
/// calls these at fixed points and names nothing else of it (Keras' `ddp_model or self`):
/// ``DataParallel`` implements it over MPI or in-process ranks.
public protocol Distribution: AnyObject {
    /// `fit` starts: every process must hold the same weights and buffers.
    func fitBegins(_ trainer: Trainer) throws
    /// After every backward pass, before the optimizer step: combine the gradients of `localCount`
    /// samples here with the other processes'.
    func gradientsReady(_ trainer: Trainer, localCount: Int) throws
    /// An epoch's training ends, before validation: the tally of the whole epoch (and any state every
    /// process must share before validating).
    func epochEnds(_ trainer: Trainer, tally: ClassificationTally) throws -> ClassificationTally
    /// The tally of every process at the same batch (a mid-epoch checkpoint).
    func globalTally(_ tally: ClassificationTally) throws -> ClassificationTally
    /// Whether this process carries a resumed epoch's saved tally (exactly one does).
    var carriesSavedTally: Bool { get }
    /// A collective failed: end every process, saying why (waiting would hang).
    func fail(_ error: Error) -> Never
}

/// A point inside an epoch: the epoch's sample order, the next batch, and the tally so far.
public struct EpochPosition: Sendable, Codable, Equatable {
    public var order: [Int]
    public var batch: Int
    public var tally: ClassificationTally
    /// - Parameters:
    ///   - order: the epoch's sample order.
    ///   - batch: the next batch.
    ///   - tally: the batches done so far.
    public init(order: [Int], batch: Int, tally: ClassificationTally) { self.order = order; self.batch = batch; self.tally = tally }
}
