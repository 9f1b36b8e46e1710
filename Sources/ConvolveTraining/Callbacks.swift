import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// Stops training when a monitored metric stops improving (Keras' `EarlyStopping`).
public final class EarlyStopping: Callback {
    public let monitor: Monitor, patience: Int, restoreBestWeights: Bool
    public private(set) var stoppedEpoch: Int?
    /// Best value so far and epochs without improvement (saved by the run driver for resume).
    public var best: Double?, wait = 0
    private var bestWeights: [(String, [Float])]?

    /// - Parameters:
    ///   - monitor: the metric watched (`val_loss`, `val_accuracy`, …).
    ///   - mode: `.min` or `.max`; nil infers it from the name (accuracy-like: maximise).
    ///   - minDelta: smallest change that counts as an improvement.
    ///   - patience: epochs without improvement before stopping.
    ///   - restoreBestWeights: put back the best epoch's weights when stopping.
    public init(monitor: String = "val_loss", mode: Monitor.Mode? = nil, minDelta: Double = 0, patience: Int = 0,
                restoreBestWeights: Bool = false) {
        self.monitor = Monitor(monitor, mode: mode, minDelta: minDelta)
        self.patience = patience
        self.restoreBestWeights = restoreBestWeights
    }
    public func onTrainBegin(_ trainer: Trainer) { stoppedEpoch = nil; bestWeights = nil }
    public func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {
        guard let value = monitor.value(in: logs) else { return }
        if monitor.isImprovement(value, over: best) {
            best = value; wait = 0
            if restoreBestWeights { bestWeights = trainer.model.stateDict().map { ($0.0, $0.1.scalars) } }
            return
        }
        wait += 1
        guard wait > patience else { return }
        stoppedEpoch = epoch
        trainer.stopTraining = true
        if let bestWeights {
            let current = Dictionary(uniqueKeysWithValues: trainer.model.stateDict())
            for (k, v) in bestWeights { current[k]?.scalars = v }
        }
    }
}

/// Saves the model after each epoch, or only when the monitored metric improves (`ModelCheckpoint`).
public final class ModelCheckpoint: Callback {
    public let path: String, monitor: Monitor, saveBestOnly: Bool
    public let metadata: [String: String]
    public var best: Double?
    /// Errors from saving (training continues; the caller can inspect them).
    public private(set) var errors: [Error] = []

    /// - Parameters:
    ///   - path: file to write; `{epoch}` is replaced by the 1-based epoch, zero-padded to 2 digits.
    ///   - monitor: the metric that decides "best".
    ///   - mode: `.min` or `.max`; nil infers it from the metric's name.
    ///   - saveBestOnly: write only when the monitored metric improves.
    ///   - metadata: safetensors metadata stored with the weights.
    public init(path: String, monitor: String = "val_loss", mode: Monitor.Mode? = nil, saveBestOnly: Bool = false,
                metadata: [String: String] = [:]) {
        self.path = path; self.monitor = Monitor(monitor, mode: mode); self.saveBestOnly = saveBestOnly
        self.metadata = metadata
    }
    public func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {
        if saveBestOnly {
            guard let v = monitor.value(in: logs), monitor.isImprovement(v, over: best) else { return }
            best = v
        }
        let p = path.replacingOccurrences(of: "{epoch}", with: String(format: "%02d", epoch + 1))
        do { try SafeTensors.write(trainer.model.stateDict(), metadata: metadata, to: p) } catch { errors.append(error) }
    }
}

/// Writes one CSV row of metrics per epoch (`CSVLogger`), rewriting the file atomically each epoch.
public final class CSVLogger: Callback {
    public let path: String
    /// Rows written so far (a resumed run passes the earlier epochs' logs).
    public private(set) var rows: [(epoch: Int, logs: Logs)]
    private let fixedColumns: [String]?
    public private(set) var errors: [Error] = []

    /// - Parameters:
    ///   - path: the CSV file.
    ///   - columns: the metric columns in order (default: the first epoch's metrics, sorted).
    ///   - epochBase: 0 (Keras' numbering) or 1 for the `epoch` column.
    ///   - previous: rows of epochs already done (a resumed run).
    public init(path: String, columns: [String]? = nil, epochBase: Int = 0, previous: [(epoch: Int, logs: Logs)] = []) {
        self.path = path; fixedColumns = columns; self.epochBase = epochBase; rows = previous
    }
    private let epochBase: Int
    public func onTrainBegin(_ trainer: Trainer) { rows.removeAll { $0.epoch >= trainer.epoch } }
    public func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {
        record(epoch, logs: logs)
        do { try writeAtomically(Data(csv.utf8), to: path) } catch { errors.append(error) }
    }
    /// Adds (or replaces) an epoch's row without writing the file (a caller that orders its own writes).
    /// - Parameters:
    ///   - epoch: the epoch, 0-based.
    ///   - logs: its metrics.
    public func record(_ epoch: Int, logs: Logs) {
        rows.removeAll { $0.epoch >= epoch }
        rows.append((epoch, logs))
    }
    /// The file's text.
    public var csv: String {
        let columns = fixedColumns ?? rows.first.map { $0.logs.keys.filter { !$0.hasPrefix("batch_") }.sorted() } ?? []
        return CSV.text(header: ["epoch"] + columns, rows: rows.map { row in
            [String(row.epoch + epochBase)] + columns.map { row.logs[$0].map { String($0) } ?? "" }
        })
    }
}

/// Steps a learning-rate schedule after every epoch (or every batch, for `OneCycleLR`).
public final class LRSchedule: Callback {
    public let scheduler: any LRScheduler
    public let perBatch: Bool
    /// - Parameters:
    ///   - scheduler: the schedule; it sets its optimizer's learning rate.
    ///   - perBatch: step after every batch instead of every epoch.
    public init(_ scheduler: any LRScheduler, perBatch: Bool = false) { self.scheduler = scheduler; self.perBatch = perBatch }
    public func onBatchEnd(_ batch: Int, logs: Logs, trainer: Trainer) { if perBatch { scheduler.step() } }
    public func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) { if !perBatch { scheduler.step() } }
}

/// Fine-tuning's schedule (fastai's `fine_tune`): the backbone of an ImageNet architecture (every
/// child but its top) frozen for the first `epochs` epochs — no gradients, no optimizer state,
/// inference mode, so only the new head trains — then unfrozen; `Int.max` epochs is a linear probe.
/// Decided at each epoch's start from the epoch number, so a resumed run freezes as the original did.
public final class FreezeBackbone: Callback {
    let parts: [Module]
    let epochs: Int

    /// - Parameters:
    ///   - model: an ImageNet architecture (``FeatureExtractor``).
    ///   - epochs: how many epochs the backbone stays frozen.
    public init(_ model: Module & Layer, epochs: Int) throws {
        guard let network = model as? any FeatureExtractor else {
            throw RunError("only the ImageNet architectures have a backbone to freeze")
        }
        parts = network.children.filter { !network.topKeys.contains($0.0) }.map(\.1)
        self.epochs = epochs
    }

    public func onEpochBegin(_ epoch: Int, trainer: Trainer) {
        for part in parts { if epoch < epochs { part.freeze() } else { part.unfreeze() } }
    }
}
