import Foundation
import Convolve

/// A misclassified sample: its position in the data, its label and the prediction.
public struct Mistake: Sendable, Equatable {
    public let index: Int, label: Int, predicted: Int
}

/// The one tally of a classifier's results, and the only place accuracy is counted: an evaluation's
/// (loss, correct predictions, confusion matrix, first mistakes) and an epoch's training batches (the
/// same counts, by batch; saved in a mid-epoch checkpoint and summed over processes).
public struct ClassificationTally: Sendable, Codable, Equatable {
    /// Samples, correct predictions, and batches added.
    public var count = 0, correct = 0, batches = 0
    /// Σ loss over samples (batch mean × batch size), and Σ batch mean loss.
    public var lossSum = 0.0, batchLossSum = 0.0
    /// `confusion[true][predicted]`, or empty when not kept.
    public private(set) var confusion: [[Int]] = []
    /// The first misclassified samples, up to `keepMistakes`.
    public private(set) var mistakes: [Mistake] = []
    /// How many mistakes to keep.
    public var keepMistakes = 0

    // A checkpoint holds the counts (not confusion or mistakes, which training does not keep).
    private enum CodingKeys: String, CodingKey { case count, correct, batches, lossSum, batchLossSum }

    /// - Parameter classes: keep a confusion matrix of this many classes (nil: only counts).
    public init(classes: Int? = nil) {
        confusion = classes.map { [[Int]](repeating: [Int](repeating: 0, count: $0), count: $0) } ?? []
    }

    /// Adds a batch: its scores `[N, classes]`, labels, and its loss summed over the batch.
    ///
    /// - Parameters:
    ///   - scores: `[N, classes]` (argmax is the prediction).
    ///   - labels: the true classes.
    ///   - batchLoss: the batch's summed loss.
    public mutating func add(scores: Tensor, labels: [Int], lossSum batchLoss: Double) {
        let predicted = scores.argmax(dim: 1)
        for (i, (p, y)) in zip(predicted, labels).enumerated() {
            if p == y { correct += 1 } else if mistakes.count < keepMistakes { mistakes.append(Mistake(index: count + i, label: y, predicted: p)) }
            if !confusion.isEmpty && y < confusion.count && p < confusion.count { confusion[y][p] += 1 }
        }
        count += labels.count
        lossSum += batchLoss
        batchLossSum += labels.isEmpty ? 0 : batchLoss / Double(labels.count)
        batches += 1
    }

    /// Adds a training step's result (its correct predictions counted by `add(scores:labels:lossSum:)`).
    ///
    /// - Parameter step: the step's mean loss, batch size and correct predictions.
    public mutating func add(_ step: StepResult) {
        count += step.count; correct += step.correct; batches += 1
        lossSum += step.loss * Double(step.count); batchLossSum += step.loss
    }

    /// Mean loss per sample (NaN when empty).
    public var loss: Double { count > 0 ? lossSum / Double(count) : .nan }
    /// Share of correct predictions (NaN when empty).
    public var accuracy: Double { count > 0 ? Double(correct) / Double(count) : .nan }

    /// `loss` (per sample) and, when asked, `accuracy` so far.
    func logs(accuracy reportsAccuracy: Bool) -> Logs {
        var l: Logs = ["loss": loss]
        if reportsAccuracy { l["accuracy"] = accuracy }
        return l
    }
}
