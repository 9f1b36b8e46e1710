import Foundation

/// Metric name → value, as callbacks receive them (`loss`, `accuracy`, `val_loss`, `val_accuracy`, …).
public typealias Logs = [String: Double]

/// Something that watches (or steers) training: the `Trainer` calls it at train, epoch and batch
/// begin and end, and at evaluation begin and end, with the running logs (Keras'
/// `keras.callbacks.Callback`). Progress lines, CSV logging, checkpoints, early stopping and
/// learning-rate schedules are all callbacks; every method has an empty default.
///
/// Batch logs hold the epoch's running means so far (`loss`, `accuracy`) and the batch's own
/// `batch_loss` and `batch_size`; epoch logs add `val_loss` and `val_accuracy` when there is
/// validation data. Epochs and batches are 0-based.
public protocol Callback: AnyObject {
    /// Training starts.
    /// - Parameter trainer: the engine (its model, optimizer, epoch and batch counters).
    func onTrainBegin(_ trainer: Trainer)
    /// Training ended (all epochs, or stopped).
    /// - Parameters:
    ///   - trainer: the engine.
    ///   - logs: the last epoch's logs.
    func onTrainEnd(_ trainer: Trainer, logs: Logs)
    /// An epoch starts.
    /// - Parameters:
    ///   - epoch: its index (0-based).
    ///   - trainer: the engine (`trainer.batch` is where the epoch starts: > 0 when resumed inside it).
    func onEpochBegin(_ epoch: Int, trainer: Trainer)
    /// An epoch ended.
    /// - Parameters:
    ///   - epoch: its index.
    ///   - logs: its loss and accuracy, and validation loss and accuracy.
    ///   - trainer: the engine.
    func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer)
    /// A training step starts.
    /// - Parameters:
    ///   - batch: the batch's index in the epoch.
    ///   - inputs: the batch's inputs (NCHW images), as the model gets them.
    ///   - labels: their classes.
    ///   - trainer: the engine.
    func onBatchBegin(_ batch: Int, inputs: Tensor, labels: [Int], trainer: Trainer)
    /// A training step ended.
    /// - Parameters:
    ///   - batch: the batch's index in the epoch.
    ///   - logs: the epoch's running means and the batch's `batch_loss` and `batch_size`.
    ///   - trainer: the engine.
    func onBatchEnd(_ batch: Int, logs: Logs, trainer: Trainer)
    /// Evaluation (validation after an epoch, or `Evaluator.evaluate`) starts.
    /// - Parameter batches: the batches that follow.
    func onTestBegin(batches: Int)
    /// An evaluation batch is done.
    /// - Parameters:
    ///   - batch: its index.
    ///   - logs: running `loss` and `accuracy` so far.
    func onTestBatchEnd(_ batch: Int, logs: Logs)
    /// Evaluation ended.
    /// - Parameters:
    ///   - evaluation: its counts, confusion matrix and first mistakes (``mistakesWanted`` of them).
    ///   - logs: its `loss` and `accuracy`.
    func onTestEnd(_ evaluation: Evaluation, logs: Logs)
    /// How many misclassified samples this callback wants in the evaluations it sees (``Evaluation/mistakes``).
    var mistakesWanted: Int { get }
}

extension Callback {
    public func onTrainBegin(_ trainer: Trainer) {}
    public func onTrainEnd(_ trainer: Trainer, logs: Logs) {}
    public func onEpochBegin(_ epoch: Int, trainer: Trainer) {}
    public func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {}
    public func onBatchBegin(_ batch: Int, inputs: Tensor, labels: [Int], trainer: Trainer) {}
    public func onBatchEnd(_ batch: Int, logs: Logs, trainer: Trainer) {}
    public func onTestBegin(batches: Int) {}
    public func onTestBatchEnd(_ batch: Int, logs: Logs) {}
    public func onTestEnd(_ evaluation: Evaluation, logs: Logs) {}
    public var mistakesWanted: Int { 0 }
}

/// Which metric a callback watches and whether lower or higher is better (Keras' `MonitorCallback`):
/// the one place that decides, for early stopping, best checkpoints and the run driver's best model.
public struct Monitor: Sendable, Codable, Equatable {
    public enum Mode: String, Sendable, Codable { case min, max }
    public let metric: String
    public let mode: Mode
    /// Smallest change that counts as an improvement.
    public let minDelta: Double

    /// `mode` nil infers it as Keras does: accuracy-like metrics (`acc`, `accuracy`, `auc`) are
    /// maximised, everything else (losses) minimised.
    ///
    /// - Parameters:
    ///   - metric: the logs key watched.
    ///   - mode: `.min` or `.max` (nil: inferred from the name).
    ///   - minDelta: the smallest change that counts.
    public init(_ metric: String, mode: Mode? = nil, minDelta: Double = 0) {
        self.metric = metric
        self.mode = mode ?? (metric.contains("acc") || metric.contains("auc") ? .max : .min)
        self.minDelta = Swift.abs(minDelta)
    }

    /// The monitored value in `logs`, if present and a number.
    ///
    /// - Parameter logs: a callback's logs.
    public func value(in logs: Logs) -> Double? { logs[metric].flatMap { $0.isNaN ? nil : $0 } }

    /// Whether `value` improves on `best` (nil: nothing yet, so any value does).
    ///
    /// - Parameters:
    ///   - value: the new value.
    ///   - best: the best so far (nil: none yet).
    public func isImprovement(_ value: Double, over best: Double?) -> Bool {
        guard let best else { return true }
        switch mode {
        case .min: return value < best - minDelta
        case .max: return value > best + minDelta
        }
    }
}
