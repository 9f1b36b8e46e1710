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
    func onTrainBegin(_ trainer: Trainer)
    func onTrainEnd(_ trainer: Trainer, logs: Logs)
    func onEpochBegin(_ epoch: Int, trainer: Trainer)
    func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer)
    func onBatchBegin(_ batch: Int, trainer: Trainer)
    func onBatchEnd(_ batch: Int, logs: Logs, trainer: Trainer)
    /// Evaluation (validation after an epoch, or `Evaluator.evaluate`) starts; `batches` batches follow.
    func onTestBegin(batches: Int)
    func onTestBatchEnd(_ batch: Int, logs: Logs)
    func onTestEnd(logs: Logs)
}

extension Callback {
    public func onTrainBegin(_ trainer: Trainer) {}
    public func onTrainEnd(_ trainer: Trainer, logs: Logs) {}
    public func onEpochBegin(_ epoch: Int, trainer: Trainer) {}
    public func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {}
    public func onBatchBegin(_ batch: Int, trainer: Trainer) {}
    public func onBatchEnd(_ batch: Int, logs: Logs, trainer: Trainer) {}
    public func onTestBegin(batches: Int) {}
    public func onTestBatchEnd(_ batch: Int, logs: Logs) {}
    public func onTestEnd(logs: Logs) {}
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
