import Foundation
import Convolve
import ConvolveNN

/// What a classifier's forward pass returns and the loss it trains on: the one place that knows.
/// The `Trainer` and `Evaluator` compute `scores` (the tensor the loss reads: logits wherever a final
/// softmax can be fused into the loss), the loss of those scores, and predictions as their argmax.
///
/// PyTorch-style modules return logits and train on `crossEntropy` (`Objective.crossEntropy`); a
/// Keras `Model` knows its own from `compile` (`Model.objective`). `objective(for:)` picks for any model.
public struct Objective {
    /// What `model(x)` returns.
    public enum Output: String, Sendable { case logits, probabilities }
    /// The loss, by what it reads.
    public enum Loss: String, Sendable {
        /// Log-softmax + NLL of logits (PyTorch's `cross_entropy`; Keras' softmax + categorical
        /// cross-entropy fused, as TensorFlow does).
        case crossEntropyOnLogits
        /// Categorical cross-entropy of probabilities (clipped to [1e-7, 1], as Keras).
        case crossEntropyOnProbabilities
        /// Mean squared error against one-hot targets.
        case meanSquaredError
    }

    public let output: Output
    public let loss: Loss
    /// The scores the loss reads, for a batch (the model's outputs, or logits of its final softmax).
    public let scores: (Tensor) -> Tensor

    /// - Parameters:
    ///   - output: what the model's forward pass returns.
    ///   - loss: the loss computed on `scores`.
    ///   - scores: the forward pass the loss reads (default: the model itself).
    public init(output: Output, loss: Loss, scores: @escaping (Tensor) -> Tensor) {
        self.output = output; self.loss = loss; self.scores = scores
    }

    /// A module that returns logits, trained on cross-entropy (every PyTorch-style zoo model).
    /// - Parameter model: a module returning logits.
    public static func crossEntropy(_ model: some Layer) -> Objective {
        Objective(output: .logits, loss: .crossEntropyOnLogits, scores: { model($0) })
    }

    /// Mean (or summed) loss of `scores` for integer labels.
    /// - Parameters:
    ///   - scores: what `scores` returned for the batch.
    ///   - labels: class indices.
    ///   - reduction: mean or sum over the batch.
    public func lossValue(_ scores: Tensor, _ labels: [Int], reduction: Reduction = .mean) -> Tensor {
        switch loss {
        case .crossEntropyOnLogits:
            return Convolve.crossEntropy(scores, labels, reduction: reduction)
        case .crossEntropyOnProbabilities:
            return categoricalCrossEntropy(scores, oneHot(labels, classes: scores.shape[1]), reduction: reduction)
        case .meanSquaredError:
            let perSample = mseLoss(scores, oneHot(labels, classes: scores.shape[1]), reduction: .mean)
            return reduction == .sum ? perSample * Float(labels.count) : perSample
        }
    }

    /// Class probabilities from the model's outputs (softmax of logits).
    /// - Parameter outputs: what the model returned, `[N, classes]`.
    public func probabilities(_ outputs: Tensor) -> Tensor {
        output == .logits ? outputs.softmax(dim: 1) : outputs
    }
}

/// The objective of any classifier: a Keras `Model`'s compiled one, cross-entropy on logits otherwise.
/// - Parameter model: any classifier.
public func objective(for model: Module & Layer) -> Objective {
    if let keras = model as? Model { return keras.objective }
    return .crossEntropy(model)
}
