import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// The run driver's callback: reseeds the dropout generator per epoch (masks do not depend on where a
/// run was resumed), keeps the history and best accuracy, and checkpoints at every
/// epoch's end and at the run's `checkpointInterval` inside epochs. A failed write stops training and
/// is rethrown by `TrainingRun.run`.
final class RunRecorder: Callback {
    unowned let run: TrainingRun
    var state: RunState
    let loader: DataLoader<ImageDataset>
    let scheduler: (any LRScheduler)?
    let dropout: RandomGenerator
    var error: Error?
    var epochsRun = 0
    private var epochStart = Date(), lastSave = Date()
    private let best = Monitor("val_accuracy")
    private let csv: CSVLogger
    /// The metrics CSV of the epochs recorded so far.
    var metricsCSV: String { csv.csv }

    init(run: TrainingRun, state: RunState, loader: DataLoader<ImageDataset>, scheduler: (any LRScheduler)?,
         dropout: RandomGenerator) {
        self.run = run; self.state = state; self.loader = loader; self.scheduler = scheduler; self.dropout = dropout
        csv = CSVLogger(path: run.metricsPath, columns: ["loss", "accuracy", "val_loss", "val_accuracy", "seconds"],
                        epochBase: 1, previous: state.history.enumerated().map { ($0.offset, $0.element) })
    }

    func onEpochBegin(_ epoch: Int, trainer: Trainer) {
        epochStart = Date(); lastSave = Date()
        if trainer.batch == 0 { dropout.reseed(run.epochSeed(epoch)) }   // mid-epoch: the saved state was restored
    }

    func onBatchEnd(_ batch: Int, logs: Logs, trainer: Trainer) {
        guard error == nil else { return }
        if let loss = logs["batch_loss"], !loss.isFinite {
            return fail(diverged("epoch \(trainer.epoch + 1), batch \(batch + 1): the loss is \(loss)"), trainer)
        }
        guard batch + 1 < trainer.batchesPerEpoch else { return }
        var due: Bool
        switch run.checkpointInterval {
        case .never: due = false
        case let .seconds(s): due = Date().timeIntervalSince(lastSave) >= s
        case let .batches(n): due = n > 0 && (batch + 1) % n == 0
        }
        // Data-parallel: rank 0's clock decides for everyone (the tally sum below is a collective).
        if let communicator = run.communicator, case .seconds = run.checkpointInterval {
            do { due = try communicator.broadcast([due ? 1 : 0]) == [1] } catch { fail(error, trainer) ; return }
        }
        guard due else { return }
        var mid = state
        do { mid.position = try trainer.globalPosition() } catch { fail(error, trainer); return }
        mid.shuffleState = loader.shuffleState.words
        mid.randomState = dropout.snapshot.words
        mid.schedulerSteps = scheduler?.stepsTaken
        write(trainer, mid, epochEnd: false, bestImproved: false)
        lastSave = Date()
    }

    func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {
        guard error == nil else { return }
        if let (key, value) = logs.first(where: { !$0.value.isFinite }) {
            return fail(diverged("epoch \(epoch + 1): \(key) is \(value)"), trainer)
        }
        if let (name, _) = trainer.model.namedParameters().first(where: { !$0.1.isAllFinite }) {
            return fail(diverged("epoch \(epoch + 1): parameter \(name) holds NaN or infinite values"), trainer)
        }
        var logs = logs
        logs["seconds"] = Date().timeIntervalSince(epochStart)
        state.completedEpochs = epoch + 1
        state.history.append(logs)
        state.position = nil
        state.randomState = nil
        state.shuffleState = loader.shuffleState.words
        state.schedulerSteps = scheduler?.stepsTaken
        var improved = false
        if let acc = best.value(in: logs), best.isImprovement(acc, over: state.bestAccuracy) {
            state.bestAccuracy = acc; improved = true
        }
        csv.record(epoch, logs: logs)   // written by `save`, after the checkpoint
        write(trainer, state, epochEnd: true, bestImproved: improved)
        epochsRun += 1
    }

    /// Training went non-finite: nothing of this epoch is written, so the run's files keep the last
    /// good state, which `--resume` continues from.
    private func diverged(_ what: String) -> RunError {
        let kept = state.completedEpochs == 0 ? "no epoch had completed, so no checkpoint was written"
            : "\(run.outputDir) keeps epoch \(state.completedEpochs)'s checkpoint, resumable"
        return RunError("training diverged at \(what); stopped without writing it (\(kept)); a lower --lr usually helps")
    }

    private func fail(_ error: Error, _ trainer: Trainer) {
        self.error = error
        trainer.stopTraining = true
    }

    private func write(_ trainer: Trainer, _ s: RunState, epochEnd: Bool, bestImproved: Bool) {
        do {
            try run.save(model: trainer.model, optimizer: trainer.optimizer, state: s, epochEnd: epochEnd,
                         bestImproved: bestImproved, metrics: csv.csv)
        } catch {
            self.error = error
            trainer.stopTraining = true
        }
    }
}

/// An exclusive lock on an output directory (`flock` on `DIR/.lock`, which the system releases when
/// the process ends, however it ends), so two runs never interleave their files.
final class OutputLock {
    private var fd: Int32
    init(directory: String) throws {
        let path = directory + "/.lock"
        // Never through a link: a planted `.lock -> /etc/…` must not be created or truncated.
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw RunError("\(path): cannot create the run lock: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd); fd = -1
            throw RunError("\(directory): another convolve train is writing to this directory; wait for it to finish or use another --output")
        }
    }
    func release() { if fd >= 0 { flock(fd, LOCK_UN); close(fd); fd = -1 } }
    deinit { release() }
}
