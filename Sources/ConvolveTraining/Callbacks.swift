import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// Hooks called by `Model.fit` (Keras' `keras.callbacks.Callback`).
public protocol Callback: AnyObject {
    func onTrainBegin(_ model: Model)
    func onEpochEnd(_ epoch: Int, logs: [String: Double], model: Model)
    func onTrainEnd(_ model: Model)
}
extension Callback {
    public func onTrainBegin(_ model: Model) {}
    public func onTrainEnd(_ model: Model) {}
}

/// Stops training when a monitored metric stops improving (`EarlyStopping`).
public final class EarlyStopping: Callback {
    public let monitor: String, minDelta: Double, patience: Int, restoreBestWeights: Bool
    public private(set) var stoppedEpoch: Int?
    private var best = Double.infinity, wait = 0, bestWeights: [(String, [Float])]?
    private let sign: Double

    /// `mode` is inferred as Keras does: metrics containing "acc" are maximized, others minimized.
    public init(monitor: String = "val_loss", minDelta: Double = 0, patience: Int = 0, restoreBestWeights: Bool = false) {
        self.monitor = monitor; self.minDelta = Swift.abs(minDelta); self.patience = patience
        self.restoreBestWeights = restoreBestWeights
        sign = monitor.contains("acc") ? -1 : 1
    }
    public func onTrainBegin(_ model: Model) { best = .infinity; wait = 0; stoppedEpoch = nil; bestWeights = nil }
    public func onEpochEnd(_ epoch: Int, logs: [String: Double], model: Model) {
        guard let v = logs[monitor] else { return }
        let value = sign * v
        if value < best - minDelta {
            best = value; wait = 0
            if restoreBestWeights { bestWeights = model.stateDict().map { ($0.0, $0.1.storage) } }
        } else {
            wait += 1
            if wait > patience {
                stoppedEpoch = epoch
                model.stopTraining = true
                if let bestWeights {
                    let current = Dictionary(uniqueKeysWithValues: model.stateDict())
                    for (k, v) in bestWeights { current[k]?.storage = v }
                }
            }
        }
    }
}

/// Saves the model after each epoch, or only when the monitored metric improves (`ModelCheckpoint`).
public final class ModelCheckpoint: Callback {
    public let path: String, monitor: String, saveBestOnly: Bool
    public let metadata: [String: String]
    private var best = Double.infinity
    private let sign: Double
    /// Errors from saving (training continues; the caller can inspect them).
    public private(set) var errors: [Error] = []

    /// `path` may contain `{epoch}` (1-based, zero-padded to 2 digits).
    public init(path: String, monitor: String = "val_loss", saveBestOnly: Bool = false, metadata: [String: String] = [:]) {
        self.path = path; self.monitor = monitor; self.saveBestOnly = saveBestOnly; self.metadata = metadata
        sign = monitor.contains("acc") ? -1 : 1
    }
    public func onEpochEnd(_ epoch: Int, logs: [String: Double], model: Model) {
        if saveBestOnly {
            guard let v = logs[monitor], sign * v < best else { return }
            best = sign * v
        }
        let p = path.replacingOccurrences(of: "{epoch}", with: String(format: "%02d", epoch + 1))
        do { try SafeTensors.write(model.stateDict(), metadata: metadata, to: p) } catch { errors.append(error) }
    }
}

/// Appends one CSV row of metrics per epoch (`CSVLogger`), rewriting the file atomically.
public final class CSVLogger: Callback {
    public let path: String
    private var rows: [String] = []
    private var columns: [String] = []
    public private(set) var errors: [Error] = []
    public init(path: String) { self.path = path }
    public func onTrainBegin(_ model: Model) { rows = []; columns = [] }
    public func onEpochEnd(_ epoch: Int, logs: [String: Double], model: Model) {
        if columns.isEmpty { columns = logs.keys.sorted() }
        rows.append(([String(epoch)] + columns.map { logs[$0].map { String($0) } ?? "" }).joined(separator: ","))
        let text = (["epoch," + columns.joined(separator: ",")] + rows).joined(separator: "\n") + "\n"
        do { try writeAtomically(Data(text.utf8), to: path) } catch { errors.append(error) }
    }
}

/// Where progress lines go.
public enum ProgressOutput: Sendable {
    case standardOutput
    case silent
}

/// Keras' per-epoch progress line: redraws on a terminal, one line per epoch otherwise.
final class ProgressBar {
    let total: Int, epoch: Int, epochs: Int, verbose: Int
    let interactive: Bool
    let start = Date()
    var lastDraw = Date.distantPast
    var step = 0
    let output: ProgressOutput

    init(total: Int, epoch: Int, epochs: Int, verbose: Int, output: ProgressOutput) {
        self.total = total; self.epoch = epoch; self.epochs = epochs; self.verbose = verbose; self.output = output
        interactive = isatty(STDOUT_FILENO) != 0
        if verbose > 0 { emit("Epoch \(epoch + 1)/\(epochs)\n") }
    }

    /// Writes through C's `stdout`, the stream `print` uses, so progress and a program's own output
    /// appear in the order they were written (also when stdout is a file or a pipe); a redrawn line
    /// is flushed at once so a terminal shows it.
    func emit(_ s: String) {
        guard case .standardOutput = output else { return }
        fputs(s, stdout)
        if interactive { fflush(stdout) }
    }

    static func metrics(_ logs: [String: Double]) -> String {
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
        return "[" + String(repeating: "=", count: Swift.max(0, filled - 1)) + ">" + String(repeating: ".", count: width - Swift.max(filled, 1)) + "]"
    }

    func update(_ logs: @autoclosure () -> [String: Double], showAccuracy: Bool) {
        step += 1
        guard verbose == 1, interactive else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.1 || step == total else { return }
        lastDraw = now
        var l = logs()
        if !showAccuracy { l["accuracy"] = nil }
        let elapsed = now.timeIntervalSince(start)
        let eta = elapsed / Double(step) * Double(total - step)
        let w = String(total).count
        emit("\r" + String(repeating: " ", count: w - String(step).count) + "\(step)/\(total) \(bar(step)) - ETA: \(Int(eta))s" + Self.metrics(l))
    }

    func finish(_ logs: [String: Double]) {
        guard verbose > 0 else { return }
        let elapsed = Date().timeIntervalSince(start)
        let perStep = elapsed / Double(Swift.max(step, 1))
        let unit = perStep >= 1 ? String(format: "%.0fs/step", perStep)
            : perStep >= 1e-3 ? String(format: "%.0fms/step", perStep * 1e3) : String(format: "%.0fus/step", perStep * 1e6)
        let line = "\(total)/\(total) \(bar(total)) - \(Int(elapsed.rounded()))s \(unit)" + Self.metrics(logs)
        emit((interactive ? "\r\u{1B}[K" : "") + line + "\n")
    }
}
