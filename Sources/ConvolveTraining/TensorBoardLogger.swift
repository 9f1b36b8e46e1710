import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// Writes a run to TensorBoard as a callback (Keras' `TensorBoard`): training loss and accuracy every
/// `updateEvery` batches, each epoch's loss, accuracy, validation loss and accuracy and learning rate,
/// a grid of the first training inputs, and histograms of every parameter and its gradient per epoch.
/// Steps are positions in the whole run (epoch × batches + batch), so a resumed run continues the
/// curves. Flushed at every epoch's end, so a running TensorBoard follows along.
///
/// ```swift
/// model.fit(x: x, y: y, epochs: 5, callbacks: [TensorBoard(logDir: "runs/exp1")])
/// ```
public final class TensorBoard: Callback {
    public let logDir: String
    public let updateEvery: Int, histograms: Bool
    /// Test data whose first misclassified images are logged at the end of training.
    public let mistakesFrom: (any BatchSource)?
    /// `mistakesFrom` is the data `fit` validates on: the final validation pass's mistakes are used
    /// when it saw the final weights, instead of evaluating the data once more.
    public let mistakesFromValidation: Bool
    /// Errors from writing (training continues; the caller can inspect them).
    public private(set) var errors: [Error] = []
    private var writer: SummaryWriter?
    private var imagesLogged = false
    /// The latest evaluation seen, and the latest validation of `fit` with the step it followed (its
    /// weights are the model's while the trainer's `globalStep` still equals `step`).
    private var lastEvaluation: Evaluation?
    private var lastValidation: (step: Int, evaluation: Evaluation)?

    /// - Parameters:
    ///   - logDir: the event files' directory (`tensorboard --logdir` it or a parent).
    ///   - updateEvery: batches between training-loss points.
    ///   - histograms: write parameter and gradient histograms each epoch.
    ///   - mistakesFrom: test data; at the end, a grid of its first 16 misclassified images is logged
    ///     (`test/mistakes`) with their labels and predictions as text (`test/mistakes_labels`).
    ///   - mistakesFromValidation: `mistakesFrom` is also `fit`'s validation data (saves one pass over it).
    public init(logDir: String, updateEvery: Int = 50, histograms: Bool = true, mistakesFrom: (any BatchSource)? = nil,
                mistakesFromValidation: Bool = false) {
        self.logDir = logDir; self.updateEvery = Swift.max(1, updateEvery); self.histograms = histograms
        self.mistakesFrom = mistakesFrom; self.mistakesFromValidation = mistakesFromValidation
    }

    static let mistakesShown = 16

    /// The event file, once training has begun.
    public var eventFile: String? { writer?.path }

    private func step(_ trainer: Trainer, batch: Int) -> Int { trainer.epoch * trainer.batchesPerEpoch + batch + 1 }

    /// Validation keeps as many mistakes as the grid shows when they are reused.
    public var mistakesWanted: Int { mistakesFrom != nil && mistakesFromValidation ? Self.mistakesShown : 0 }

    public func onTestEnd(_ evaluation: Evaluation, logs: Logs) { lastEvaluation = evaluation }

    public func onTrainBegin(_ trainer: Trainer) {
        guard writer == nil else { return }
        do { writer = try SummaryWriter(logDir: logDir) } catch { errors.append(error) }
    }

    public func onBatchBegin(_ batch: Int, inputs: Tensor, labels: [Int], trainer: Trainer) {
        guard let writer, !imagesLogged, inputs.rank == 4 else { return }
        imagesLogged = true
        writer.addImage("train/inputs", Self.grid(inputs), step: step(trainer, batch: batch))
    }

    public func onBatchEnd(_ batch: Int, logs: Logs, trainer: Trainer) {
        guard let writer else { return }
        let s = step(trainer, batch: batch)
        guard s % updateEvery == 0 else { return }
        if let l = logs["batch_loss"] { writer.addScalar("train/batch_loss", l, step: s) }
        if let l = logs["loss"] { writer.addScalar("train/loss", l, step: s) }
        if let a = logs["accuracy"] { writer.addScalar("train/accuracy", a, step: s) }
    }

    public func onEpochEnd(_ epoch: Int, logs: Logs, trainer: Trainer) {
        // `fit` validates just before this event: the latest evaluation is that validation.
        if logs["val_loss"] != nil, let lastEvaluation { lastValidation = (trainer.globalStep, lastEvaluation) }
        guard let writer else { return }
        let e = epoch + 1
        for (key, tag) in [("loss", "epoch/loss"), ("accuracy", "epoch/accuracy"), ("val_loss", "epoch/val_loss"),
                           ("val_accuracy", "epoch/val_accuracy")] {
            if let v = logs[key] { writer.addScalar(tag, v, step: e) }
        }
        writer.addScalar("epoch/learning_rate", trainer.optimizer.lr, step: e)
        if histograms {
            for (name, p) in trainer.model.namedParameters() {
                writer.addHistogram("parameters/" + name, p.scalars, step: e)
                if let g = p.grad { writer.addHistogram("gradients/" + name, g.scalars, step: e) }
            }
        }
        do { try writer.flush() } catch { errors.append(error) }
    }

    public func onTrainEnd(_ trainer: Trainer, logs: Logs) {
        if let writer, let data = mistakesFrom {
            let mistakes: [Mistake]
            if mistakesFromValidation, let last = lastValidation, last.step == trainer.globalStep {
                mistakes = Array(last.evaluation.mistakes.prefix(Self.mistakesShown))
            } else {
                mistakes = Evaluator(trainer.model, objective: trainer.objective, batchSize: trainer.validationBatchSize)
                    .evaluate(data, keepMistakes: Self.mistakesShown).mistakes
            }
            if !mistakes.isEmpty {
                let (x, _) = data.batch(mistakes.map { $0.index })
                let grid = Self.grid(x)
                let s = trainer.epoch * trainer.batchesPerEpoch + trainer.batch
                writer.addImage("test/mistakes", grid, step: s)
                writer.addText("test/mistakes_labels", mistakes.map { "\($0.label) → \($0.predicted)" }
                    .joined(separator: ", ") + " (true → predicted, row by row)", step: s)
            }
        }
        do { try writer?.flush() } catch { errors.append(error) }
    }

    /// Up to 16 images of an NCHW batch in a 4-wide grid, each scaled to 0…255 from its own range.
    static func grid(_ x: Tensor) -> Image {
        let (n, c, h, w) = (Swift.min(16, x.shape[0]), x.shape[1], x.shape[2], x.shape[3])
        let channels = c == 3 ? 3 : 1, cols = Swift.min(4, n), rows = (n + cols - 1) / cols, pad = 2
        let gw = cols * (w + pad) + pad, gh = rows * (h + pad) + pad
        var px = [UInt8](repeating: 0, count: gw * gh * channels)
        let all = x.scalars
        for i in 0..<n {
            let base = i * c * h * w
            let values = all[base..<(base + c * h * w)]
            let lo = values.min() ?? 0, hi = values.max() ?? 1, scale = hi > lo ? 255 / (hi - lo) : 0
            let ox = pad + (i % cols) * (w + pad), oy = pad + (i / cols) * (h + pad)
            for y in 0..<h { for xx in 0..<w { for ch in 0..<channels {
                let v = all[base + (ch * h + y) * w + xx]
                px[((oy + y) * gw + ox + xx) * channels + ch] = UInt8(Swift.max(0, Swift.min(255, ((v - lo) * scale).rounded())))
            } } }
        }
        return Image(width: gw, height: gh, channels: channels, pixels: px)
    }
}
