import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// Optimizer choices for `compile` (Keras defaults: Adam lr 1e-3, epsilon 1e-7, Keras epsilon placement).
public enum OptimizerSpec: Sendable {
    case adam(lr: Double = 1e-3, epsilon: Double = 1e-7)
    case sgd(lr: Double = 0.01, momentum: Double = 0, nesterov: Bool = false)
    case rmsprop(lr: Double = 1e-3, rho: Double = 0.9, epsilon: Double = 1e-7)
    case adadelta(lr: Double = 1.0, rho: Double = 0.95, epsilon: Double = 1e-7)

    /// The string shortcuts Keras accepts (`"adam"`, `"sgd"`, `"rmsprop"`, `"adadelta"`).
    ///
    /// - Parameter name: `adam`, `sgd`, `rmsprop` or `adadelta` (any case).
    public init?(_ name: String) {
        switch name.lowercased() {
        case "adam": self = .adam()
        case "sgd": self = .sgd()
        case "rmsprop": self = .rmsprop()
        case "adadelta": self = .adadelta()
        default: return nil
        }
    }

    func make(_ params: [Tensor]) -> Optimizer {
        switch self {
        case let .adam(lr, eps): return Adam(params, lr: lr, eps: eps, epsilonStyle: .keras)
        case let .sgd(lr, m, n): return SGD(params, lr: lr, momentum: m, nesterov: n)
        case let .rmsprop(lr, rho, eps): return RMSprop(params, lr: lr, alpha: rho, eps: eps)
        case let .adadelta(lr, rho, eps): return Adadelta(params, lr: lr, rho: rho, eps: eps)
        }
    }
}

/// Loss choices for `compile`.
public enum LossSpec: String, Sendable {
    /// One-hot targets against probabilities (fused with a final softmax, as Keras does).
    case categoricalCrossentropy = "categorical_crossentropy"
    /// Integer targets against probabilities.
    case sparseCategoricalCrossentropy = "sparse_categorical_crossentropy"
    case meanSquaredError = "mse"
}

/// Per-epoch metrics returned by `fit` (`history.history["val_accuracy"]`).
public struct History: Sendable {
    /// Metric name → one value per epoch.
    public var history: [String: [Double]] = [:]
    /// Epoch indices run (0-based).
    public var epochs: [Int] = []
    mutating func append(_ epoch: Int, _ logs: [String: Double]) {
        epochs.append(epoch)
        for (k, v) in logs { history[k, default: []].append(v) }
    }
}

/// A Keras-style model: an ordered stack of layers with `compile`, `fit`, `evaluate`, `predict`
/// and `summary`, running on the same engine and modules as the PyTorch-style API.
///
/// ```swift
/// let model = Model(inputShape: [28, 28, 1]) {
///     Conv2D(4, 3, activation: .relu); MaxPooling2D(2, strides: 2)
///     Conv2D(4, 3, activation: .relu); MaxPooling2D(2, strides: 2)
///     Keras.Flatten(); Dense(10, activation: .softmax)
/// }
/// model.compile(optimizer: .adam(), loss: .categoricalCrossentropy, metrics: ["accuracy"])
/// let history = model.fit(x: trainImages, y: trainLabels, epochs: 10, validationData: (testImages, testLabels))
/// ```
public final class Model: Module, Layer {
    /// Model name shown by `summary()`.
    public let name: String
    /// The layers in order.
    public private(set) var layers: [KerasLayer] = []
    /// Input shape, channels-last without the batch dimension (e.g. `[28, 28, 1]`).
    public private(set) var inputShape: [Int]?
    public private(set) var optimizer: Optimizer?
    public private(set) var loss: LossSpec = .categoricalCrossentropy
    public private(set) var metrics: [String] = []

    /// - Parameters:
    ///   - name: shown by `summary()`.
    ///   - inputShape: one sample's shape, channels-last (`[28, 28, 1]`), unless the first layer declares it.
    ///   - build: the layers in order (Keras-style layers: `Conv2D`, `Dense`, …).
    ///
    /// ### See Also
    /// - ``Trainer``, which `fit` runs; <doc:GettingStartedKeras>
    public init(name: String = "sequential", inputShape: [Int]? = nil, @LayerBuilder _ build: () -> [any Layer] = { [] }) {
        self.name = name
        self.inputShape = inputShape
        super.init()
        for l in build() { add(l) }
    }

    /// Appends a layer (it must be a Keras-style layer) and builds it if the input shape is known.
    /// - Parameter layer: a Keras-style layer (built now if the input shape is known).
    public func add(_ layer: any Layer) {
        guard let k = layer as? KerasLayer else {
            preconditionFailure("Model.add expects Keras-style layers (Conv2D, Dense, …), got \(type(of: layer))")
        }
        let stem = k.nameStem
        let same = layers.filter { $0.nameStem == stem }.count
        k.name = same == 0 ? stem : "\(stem)_\(same)"
        if inputShape == nil, layers.isEmpty, let s = k.declaredInputShape { inputShape = s }
        layers.append(k)
        if let s = layers.count == 1 ? inputShape : layers[layers.count - 2].outputShape, !s.isEmpty {
            k.outputShape = k.build(s)
        }
    }

    public override var children: [(String, Module)] { layers.map { ($0.name, $0) } }
    public override var typeName: String { "Sequential" }

    /// Forward pass on NCHW (or `[N, features]`) input.
    public func callAsFunction(_ input: Tensor) -> Tensor {
        var x = toInternal(input)
        for l in layers { x = OpTrace.inLayer("\(l.name) (\(l.kerasClassName))") { l(x) } }
        return x
    }

    /// Channels-last `[N, H, W, C]` input is permuted to NCHW (a pure reshape when C is 1).
    func toInternal(_ x: Tensor) -> Tensor {
        guard let s = inputShape, s.count == 3, x.rank == 4 else {
            if let s = inputShape, s.count == 3, x.rank == 3, s[2] == 1 { return x.reshape([x.shape[0], 1, s[0], s[1]]) }
            return x
        }
        if x.shape[1] == s[2] && x.shape[2] == s[0] && x.shape[3] == s[1] && x.shape[1] != x.shape[3] { return x } // NCHW already
        if s[2] == 1 { return x.reshape([x.shape[0], 1, s[0], s[1]]) }
        return x.permute(0, 3, 1, 2)
    }

    /// Outputs before a final softmax (the plain outputs otherwise), for fused losses and calibration.
    ///
    /// - Parameter input: `[N, H, W, C]` (or NCHW) samples.
    public func logits(_ input: Tensor) -> Tensor { forwardLogits(input) ?? self(input) }

    /// Logits of a final softmax layer (so cross-entropy can be fused), or nil.
    func forwardLogits(_ input: Tensor) -> Tensor? {
        guard let last = layers.last as? Dense, last.activation == .softmax else { return nil }
        var x = toInternal(input)
        for l in layers.dropLast() { x = l(x) }
        return last.logits(x)
    }

    /// Configures training (`model.compile`).
    /// - Parameters:
    ///   - optimizer: Keras' optimizer and its settings (`.adam()`: lr 1e-3, epsilon 1e-7).
    ///   - loss: the loss; with a final softmax, cross-entropy is computed from its logits.
    ///   - metrics: `["accuracy"]` to report accuracy.
    public func compile(optimizer: OptimizerSpec = .adam(), loss: LossSpec = .categoricalCrossentropy,
                        metrics: [String] = []) {
        precondition(layers.allSatisfy { !$0.outputShape.isEmpty || $0.nameStem == "dropout" },
                     "the model has no input shape: pass inputShape to the first layer or to Model")
        self.optimizer = optimizer.make(parameters())
        self.loss = loss
        self.metrics = metrics
    }

    /// Uses an existing optimizer instance (e.g. restored from a checkpoint).
    /// - Parameters:
    ///   - optimizer: an optimizer over this model's parameters.
    ///   - loss: the loss.
    ///   - metrics: `["accuracy"]` to report accuracy.
    public func compile(optimizer: Optimizer, loss: LossSpec, metrics: [String] = []) {
        self.optimizer = optimizer; self.loss = loss; self.metrics = metrics
    }

    /// What this model outputs and the loss it trains on: probabilities, and a cross-entropy fused
    /// with the final softmax (from its logits) when the model ends in one, as Keras' TensorFlow
    /// backend does; the compiled loss otherwise.
    public var objective: Objective {
        let final = (layers.last as? Dense)?.activation
        let output: Objective.Output = final == .softmax ? .probabilities : .logits
        switch loss {
        case .categoricalCrossentropy, .sparseCategoricalCrossentropy:
            if final == .softmax {
                return Objective(output: .probabilities, loss: .crossEntropyOnLogits, scores: { [unowned self] in self.logits($0) })
            }
            return Objective(output: output, loss: .crossEntropyOnProbabilities, scores: { [unowned self] in self($0) })
        case .meanSquaredError:
            return Objective(output: output, loss: .meanSquaredError, scores: { [unowned self] in self($0) })
        }
    }

    /// Trains on `x` (`[N, H, W, C]` or NCHW) with one-hot `y` `[N, classes]` (Keras' `fit`).
    /// - Parameters:
    ///   - x: `[N, H, W, C]` (or NCHW) samples.
    ///   - y: `[N, classes]` one-hot targets (or `[N]` class indices).
    ///   - batchSize: samples per step.
    ///   - epochs: passes over the data.
    ///   - validationData: `(x, y)` evaluated after each epoch.
    ///   - validationSplit: hold out this last share of the data for validation (before shuffling).
    ///   - shuffle: a new order every epoch.
    ///   - callbacks: observers of training (after the progress bar).
    ///   - verbose: 0 silent, 1 progress bar, 2 one line per epoch.
    ///   - seed: fixes the shuffle order.
    /// - Returns: per-epoch metrics.
    @discardableResult
    public func fit(x: Tensor, y: Tensor, batchSize: Int = 32, epochs: Int = 1,
                    validationData: (Tensor, Tensor)? = nil, validationSplit: Double = 0, shuffle: Bool = true,
                    callbacks: [Callback] = [], verbose: Int = 1, seed: UInt64? = nil) -> History {
        let labels = y.rank == 2 ? y.argmax(dim: 1) : y.scalars.map { Int($0) }
        return fit(x: x, labels: labels, classes: y.rank == 2 ? y.shape[1] : nil, batchSize: batchSize, epochs: epochs,
                   validationData: validationData.map { ($0.0, $0.1.rank == 2 ? $0.1.argmax(dim: 1) : $0.1.scalars.map { Int($0) }) },
                   validationSplit: validationSplit, shuffle: shuffle, callbacks: callbacks, verbose: verbose, seed: seed)
    }

    /// Trains on `x` with integer labels.
    /// - Parameters:
    ///   - x: `[N, H, W, C]` (or NCHW) samples.
    ///   - labels: class indices.
    ///   - classes: number of classes (default: the largest label + 1).
    ///   - batchSize: samples per step.
    ///   - epochs: passes over the data.
    ///   - validationData: `(x, labels)` evaluated after each epoch.
    ///   - validationSplit: hold out this last share of the data for validation.
    ///   - shuffle: a new order every epoch.
    ///   - callbacks: observers of training.
    ///   - verbose: 0 silent, 1 progress bar, 2 one line per epoch.
    ///   - seed: fixes the shuffle order.
    @discardableResult
    public func fit(x: Tensor, labels: [Int], classes: Int? = nil, batchSize: Int = 32, epochs: Int = 1,
                    validationData: (Tensor, [Int])? = nil, validationSplit: Double = 0, shuffle: Bool = true,
                    callbacks: [Callback] = [], verbose: Int = 1, seed: UInt64? = nil) -> History {
        let data = TensorDataset(toInternal(x).detach(), labels, classCount: classes)
        let val = validationData.map { TensorDataset(toInternal($0.0).detach(), $0.1, classCount: classes) }
        if validationSplit > 0 && val == nil {
            // Keras holds out the last fraction of the data, before shuffling.
            let (tr, va) = data.split(validationFraction: validationSplit, shuffle: false)
            return fit(tr, batchSize: batchSize, epochs: epochs, validation: va, shuffle: shuffle,
                       callbacks: callbacks, verbose: verbose, seed: seed)
        }
        return fit(data, batchSize: batchSize, epochs: epochs, validation: val, shuffle: shuffle,
                   callbacks: callbacks, verbose: verbose, seed: seed)
    }

    /// Trains on any batch source (e.g. an `ImageDataset` straight from the IDX bytes), through the
    /// `Trainer`: Keras' progress bar (`verbose`) is its first callback, then `callbacks`.
    ///
    /// - Parameters:
    ///   - data: the training samples (NCHW, transformed by their own transform).
    ///   - batchSize: samples per step.
    ///   - epochs: the epoch to stop before.
    ///   - initialEpoch: the epoch to start at (a resumed run; earlier shuffles are replayed).
    ///   - validation: evaluated after each epoch.
    ///   - shuffle: a new order every epoch.
    ///   - callbacks: observers of training.
    ///   - verbose: 0 silent, 1 progress bar, 2 one line per epoch.
    ///   - seed: fixes the shuffle order.
    ///   - output: where the progress lines go.
    @discardableResult
    public func fit<S: BatchSource>(_ data: S, batchSize: Int = 32, epochs: Int = 1, initialEpoch: Int = 0,
                                    validation: (any BatchSource)? = nil, shuffle: Bool = true,
                                    callbacks: [Callback] = [], verbose: Int = 1, seed: UInt64? = nil,
                                    output: ProgressOutput = .standardOutput) -> History {
        let loader = DataLoader(data, batchSize: batchSize, shuffle: shuffle, seed: seed)
        // Skip the shuffles of epochs already done so that a resumed run sees the same order.
        for _ in 0..<initialEpoch { _ = loader.nextEpochOrder() }
        let trainer = makeTrainer(callbacks: [ProgressBar(verbose: verbose, output: output)] + callbacks)
        trainer.validationBatchSize = Swift.max(batchSize, 256)
        return trainer.fit(loader, epochs: epochs, initialEpoch: initialEpoch, validation: validation)
    }

    /// A `Trainer` for this compiled model (its optimizer, objective and metrics).
    /// - Parameter callbacks: the trainer's callbacks.
    public func makeTrainer(callbacks: [Callback] = []) -> Trainer {
        guard let optimizer else { preconditionFailure("call compile() before fit()") }
        return Trainer(model: self, optimizer: optimizer, objective: objective, callbacks: callbacks,
                       reportsAccuracy: metrics.contains { $0 == "accuracy" || $0 == "acc" })
    }

    /// Mean loss and accuracy over a batch source, in inference mode.
    /// - Parameters:
    ///   - data: the samples.
    ///   - batchSize: samples per batch.
    public func evaluate<S: BatchSource>(_ data: S, batchSize: Int = 1000) -> (loss: Double, accuracy: Double) {
        let result = Evaluator(self, objective: objective, batchSize: batchSize).evaluate(data)
        return (result.loss, result.accuracy)
    }

    /// Keras' `evaluate(x, y)` with one-hot `y`.
    /// - Parameters:
    ///   - x: `[N, H, W, C]` (or NCHW) samples.
    ///   - y: `[N, classes]` one-hot targets (or `[N]` class indices).
    ///   - batchSize: samples per batch.
    public func evaluate(x: Tensor, y: Tensor, batchSize: Int = 32) -> (loss: Double, accuracy: Double) {
        let labels = y.rank == 2 ? y.argmax(dim: 1) : y.scalars.map { Int($0) }
        return evaluate(TensorDataset(toInternal(x).detach(), labels, classCount: y.rank == 2 ? y.shape[1] : nil),
                        batchSize: batchSize)
    }

    /// Model outputs (probabilities for a softmax model) for `x`, in batches, without gradients.
    /// - Parameters:
    ///   - x: `[N, H, W, C]` (or NCHW) samples.
    ///   - batchSize: samples per batch.
    /// - Returns: `[N, classes]` outputs.
    public func predict(x: Tensor, batchSize: Int = 32) -> Tensor {
        let wasTraining = training
        eval()
        defer { train(wasTraining) }
        let xi = toInternal(x).detach()
        return withNoGrad {
            var parts: [Tensor] = []
            var i = 0
            while i < xi.shape[0] {
                parts.append(inferInSlices(xi[i..<Swift.min(xi.shape[0], i + batchSize)]) { self($0) })
                i += batchSize
            }
            return Tensor.cat(parts)
        }
    }

    /// Keras' model summary table (TF 2.x layout: 65 columns, one row per layer).
    public func summary() -> String {
        let positions = [29, 55, 65]
        func row(_ fields: [String]) -> String {
            var line = ""
            for (i, f) in fields.enumerated() {
                if i > 0 { line = String(line.dropLast()) + " " }
                line += f
                line = String(line.prefix(positions[i]))
                line += String(repeating: " ", count: Swift.max(0, positions[i] - line.count))
            }
            return line
        }
        func fmt(_ n: Int) -> String {
            let f = NumberFormatter(); f.numberStyle = .decimal; f.groupingSeparator = ","; f.usesGroupingSeparator = true
            return f.string(from: NSNumber(value: n)) ?? "\(n)"
        }
        var lines = ["Model: \"\(name)\"", String(repeating: "_", count: 65),
                     row(["Layer (type)", "Output Shape", "Param #"]), String(repeating: "=", count: 65)]
        for (i, l) in layers.enumerated() {
            let shape = "(None, " + l.outputShape.map(String.init).joined(separator: ", ") + ")"
            lines.append(row(["\(l.name) (\(l.kerasClassName))", shape, "\(l.paramCount)"]))
            lines.append(String(repeating: i == layers.count - 1 ? "=" : "_", count: 65))
        }
        if layers.isEmpty { lines.append(String(repeating: "=", count: 65)) }
        let total = parameterCount, trainable = parameters().filter(\.requiresGrad).reduce(0) { $0 + $1.count }
        lines += ["Total params: \(fmt(total))", "Trainable params: \(fmt(trainable))", "Non-trainable params: \(fmt(total - trainable))",
                  String(repeating: "_", count: 65)]
        return lines.joined(separator: "\n")
    }

    /// State dictionary keyed by Keras layer name (`conv2d.weight`, `dense.bias`, …; PyTorch layouts).
    public override var localTensors: [(String, Tensor)] { [] }
}
