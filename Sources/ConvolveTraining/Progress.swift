import Foundation
import Convolve

/// Where progress lines go.
public enum ProgressOutput: Sendable, Equatable {
    case standardOutput
    case silent
}

/// Writes through C's `stdout`, the stream `print` uses, so progress and a program's own output
/// appear in the order they were written (also when stdout is a file or a pipe); `flush` pushes a
/// redrawn line to a terminal at once.
func writeStandardOutput(_ s: String, flush: Bool) {
    fputs(s, stdout)
    if flush { fflush(stdout) }
}

/// Keras' progress output as a callback: "Epoch N/M", then a bar redrawn in place on a terminal
/// (`verbose` 1) and one closing line per epoch with time per step and the epoch's metrics.
public final class ProgressBar: Callback {
    public let verbose: Int
    let output: ProgressOutput
    let interactive: Bool
    private var start = Date(), lastDraw = Date.distantPast, total = 0, step = 0, images = 0, showAccuracy = true

    /// - Parameters:
    ///   - verbose: 0 silent, 1 progress bar (redrawn on a terminal), 2 one line per epoch.
    ///   - output: where the lines go.
    public init(verbose: Int = 1, output: ProgressOutput = .standardOutput) {
        self.verbose = verbose; self.output = output
        interactive = isatty(STDOUT_FILENO) != 0
    }

    func emit(_ s: String) {
        guard output == .standardOutput, verbose > 0 else { return }
        writeStandardOutput(s, flush: interactive)
    }

    public func onEpochBegin(_ epoch: Int, trainer: Trainer) {
        start = Date(); lastDraw = .distantPast; step = trainer.batch; total = trainer.batchesPerEpoch; images = 0
        showAccuracy = trainer.reportsAccuracy
        emit("Epoch \(epoch + 1)/\(trainer.epochs)\n")
    }

    public func onBatchEnd(_ batch: Int, logs: Logs, trainer: Trainer) {
        step = batch + 1
        images += Int(logs["batch_size"] ?? 0)
        guard verbose == 1, interactive, output == .standardOutput else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.1 || step == total else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(start)
        let eta = elapsed / Double(Swift.max(step, 1)) * Double(total - step)
        let w = String(total).count
        let rate = elapsed > 0 ? Double(images) / elapsed : 0
        emit("\r" + String(repeating: " ", count: Swift.max(0, w - String(step).count)) + "\(step)/\(total) \(bar(step)) - ETA: \(Int(eta))s"
             + Self.metrics(logs.filter { !$0.key.hasPrefix("batch_") })
             + String(format: " - %.0f img/s - ", rate) + LiveProgress.clock(elapsed) + " elapsed")
    }

    public func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {
        let elapsed = Date().timeIntervalSince(start)
        let perStep = elapsed / Double(Swift.max(step, 1))
        let unit = perStep >= 1 ? String(format: "%.0fs/step", perStep)
            : perStep >= 1e-3 ? String(format: "%.0fms/step", perStep * 1e3) : String(format: "%.0fus/step", perStep * 1e6)
        let line = "\(total)/\(total) \(bar(total)) - \(Int(elapsed.rounded()))s \(unit)" + Self.metrics(logs)
        emit((interactive && verbose == 1 ? "\r\u{1B}[K" : "") + line + "\n")
    }

    static func metrics(_ logs: Logs) -> String {
        let order = ["loss", "accuracy", "val_loss", "val_accuracy"]
        let keys = order.filter { logs[$0] != nil } + logs.keys.filter { !order.contains($0) }.sorted()
        return keys.map { k in
            let v = logs[k]!
            return " - \(k): " + (Swift.abs(v) > 1e-3 || v == 0 ? String(format: "%.4f", v) : String(format: "%.4e", v))
        }.joined()
    }

    func bar(_ done: Int) -> String {
        let width = 30
        let filled = total > 0 ? width * done / total : width
        if done >= total { return "[" + String(repeating: "=", count: width) + "]" }
        return "[" + String(repeating: "=", count: Swift.max(0, filled - 1)) + ">"
            + String(repeating: ".", count: width - Swift.max(filled, 1)) + "]"
    }
}

/// The PyTorch tutorial's epoch line as a callback: "Epoch N - Training loss: X", X the mean of the
/// epoch's batch losses (`running_loss / len(trainloader)`).
public final class TutorialEpochLog: Callback {
    let log: (String) -> Void
    /// - Parameter log: where each line goes (default: `print`).
    public init(log: @escaping (String) -> Void = { print($0) }) { self.log = log }
    public func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {
        let tally = trainer.position.tally
        log("Epoch \(epoch + 1) - Training loss: \(tally.batchLossSum / Double(Swift.max(tally.batches, 1)))")
    }
}

/// A live status line on a terminal, redrawn in place (like tqdm): batches done / total, images/s,
/// the running loss and accuracy, elapsed time and ETA; during evaluation, the batches evaluated.
/// It draws only when stdout is a terminal, and erases itself before each epoch's own line, so a
/// file or a pipe gets exactly the lines the other callbacks print.
public final class LiveProgress: Callback {
    let enabled: Bool
    private var start = Date(), lastDraw = Date.distantPast, startBatch = 0, images = 0, epoch = 0
    private var drawn = false

    /// - Parameter enabled: draw at all (default: when stdout is a terminal).
    public init(enabled: Bool = isatty(STDOUT_FILENO) != 0) { self.enabled = enabled }

    /// `m:ss` (or `h:mm:ss`).
    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded()), h = s / 3600, m = s / 60 % 60
        return h > 0 ? String(format: "%d:%02d:%02d", h, m, s % 60) : String(format: "%d:%02d", m, s % 60)
    }

    /// The status line after `done` of `total` batches.
    static func line(epoch: Int, epochs: Int, done: Int, total: Int, images: Int, elapsed: Double, logs: Logs) -> String {
        let rate = elapsed > 0 ? Double(images) / elapsed : 0
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let width = 20, filled = total > 0 ? width * done / total : width
        var s = "epoch \(epoch + 1)/\(epochs) \(done)/\(total) [" + String(repeating: "=", count: filled)
            + String(repeating: ".", count: width - filled) + "] " + String(format: "%.0f img/s", rate)
        if let l = logs["loss"] { s += String(format: " - loss %.4f", l) }
        if let a = logs["accuracy"] { s += String(format: " - acc %.4f", a) }
        return s + " - \(clock(elapsed)) elapsed, ETA \(clock(eta))"
    }

    private func draw(_ s: String) {
        writeStandardOutput("\r\u{1B}[K" + s, flush: true)
        drawn = true
    }
    private func erase() {
        if drawn { writeStandardOutput("\r\u{1B}[K", flush: true); drawn = false }
    }

    public func onEpochBegin(_ epoch: Int, trainer: Trainer) {
        start = Date(); lastDraw = .distantPast; startBatch = trainer.batch; images = 0; self.epoch = epoch
    }
    public func onBatchEnd(_ batch: Int, logs: Logs, trainer: Trainer) {
        guard enabled else { return }
        images += Int(logs["batch_size"] ?? 0)
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || batch + 1 == trainer.batchesPerEpoch else { return }
        lastDraw = now
        draw(Self.line(epoch: epoch, epochs: trainer.epochs, done: batch + 1 - startBatch,
                       total: trainer.batchesPerEpoch - startBatch, images: images,
                       elapsed: now.timeIntervalSince(start), logs: logs))
    }
    public func onTestBegin(batches: Int) { testBatches = batches }
    private var testBatches = 0
    public func onTestBatchEnd(_ batch: Int, logs: Logs) {
        guard enabled else { return }
        draw("evaluating \(batch + 1)/\(testBatches)")
    }
    public func onTestEnd(_ evaluation: Evaluation, logs: Logs) { if enabled { erase() } }
    public func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) { if enabled { erase() } }
    public func onTrainEnd(_ trainer: Trainer, logs: Logs) { if enabled { erase() } }
}
