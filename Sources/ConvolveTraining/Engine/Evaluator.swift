import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// The result of `Evaluator.evaluate`: loss, accuracy, per-class accuracy and confusion matrix.
public struct Evaluation: Sendable {
    public let count: Int
    public let loss: Double
    public let accuracy: Double
    /// `confusion[true][predicted]`.
    public let confusion: [[Int]]
    /// The first misclassified samples, when asked for (`Evaluator.evaluate(_:keepMistakes:)`, or a
    /// callback's ``Callback/mistakesWanted``).
    public var mistakes: [Mistake] = []
    /// Accuracy of each class over its own samples (nil for a class with none).
    public var perClassAccuracy: [Double?] {
        confusion.enumerated().map { c, row in
            let n = row.reduce(0, +)
            return n > 0 ? Double(row[c]) / Double(n) : nil
        }
    }
}

/// The only evaluation loop: runs a model in eval mode without gradients over a batch source in
/// batches (each split into 64-image slices across the worker pool, `inferInSlices`) and tallies
/// loss, accuracy and the confusion matrix. Used by `Model.evaluate`, the `Trainer`'s validation,
/// the run driver and `convolve evaluate`.
public struct Evaluator {
    public let model: Module & Layer
    public let objective: Objective
    public let batchSize: Int

    /// - Parameters:
    ///   - model: the classifier (put in eval mode for the evaluation, then restored).
    ///   - objective: its outputs and loss (default: `objective(for: model)`).
    ///   - batchSize: images per batch (each batch is evaluated in slices of 64 in parallel).
    public init(_ model: Module & Layer, objective: Objective? = nil, batchSize: Int = 1000) {
        self.model = model
        self.objective = objective ?? ConvolveTraining.objective(for: model)
        self.batchSize = Swift.max(1, batchSize)
    }

    /// Evaluates `data`; `callbacks` get the test events.
    ///
    /// - Parameters:
    ///   - data: the samples (with their transform).
    ///   - callbacks: receive `onTestBegin`, `onTestBatchEnd` and `onTestEnd`.
    ///   - keepMistakes: record the first this many misclassified samples in `mistakes` (at least as
    ///     many as any callback's ``Callback/mistakesWanted``).
    public func evaluate<S: BatchSource>(_ data: S, callbacks: [Callback] = [], keepMistakes: Int = 0) -> Evaluation {
        let wasTraining = model.training
        model.eval()
        defer { model.train(wasTraining) }
        releaseUnusedMemory()   // after training's buffers: evaluation's slices should not raise the peak
        var tally = ClassificationTally(classes: data.classCount)
        tally.keepMistakes = callbacks.reduce(keepMistakes) { Swift.max($0, $1.mistakesWanted) }
        // No prefetch: building a batch is ~1% of evaluating it, and a second batch buffer would raise
        // peak memory.
        let loader = DataLoader(data, batchSize: batchSize, prefetch: false)
        for cb in callbacks { cb.onTestBegin(batches: loader.count) }
        withNoGrad {
            for (b, (x, y)) in loader.enumerated() {
                let scores = inferInSlices(x) { objective.scores($0) }
                tally.add(scores: scores, labels: y, lossSum: Double(objective.lossValue(scores, y, reduction: .sum).item))
                if !callbacks.isEmpty {
                    let logs: Logs = ["loss": tally.loss, "accuracy": tally.accuracy]
                    for cb in callbacks { cb.onTestBatchEnd(b, logs: logs) }
                }
            }
        }
        var result = Evaluation(count: tally.count, loss: tally.loss, accuracy: tally.accuracy, confusion: tally.confusion)
        result.mistakes = tally.mistakes
        for cb in callbacks { cb.onTestEnd(result, logs: ["loss": result.loss, "accuracy": result.accuracy]) }
        return result
    }
}
