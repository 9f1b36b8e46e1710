import Foundation
import Convolve
import ConvolveNN
import ConvolveData

// One validation for everything read back from a file (a checkpoint's input description, a run's
// config, its state): train, resume, evaluate, predict, export and plot call these, never their own.

/// The bounds a value read from a file or a flag must lie in (RELIABILITY.md lists them).
public enum Bounds {
    /// Image sides a model is built for.
    public static let imageSide = 1...4096
    /// Classes a model may predict (ImageNet-21k has ~21,800).
    public static let classes = 2...100_000
    /// Bytes of one class name.
    public static let classNameBytes = 1...1000
    /// Epochs of a run.
    public static let epochs = 1...1_000_000
    /// Images per batch.
    public static let batchSize = 1...1 << 20
    /// Images in a limited training or test set (`--train-limit`, `--test-limit`, `--limit`).
    public static let imageCount = 1...Int(Int32.max)
    /// Worker threads.
    public static let threads = 1...1024
    /// Processes of a data-parallel run.
    public static let ranks = 1...1 << 16
    /// Learning rates, weight decays, schedule factors: positive finite values below this.
    public static let largestRate = 1e6
}

extension InputSpec {
    /// Checks every field against the others (normalization per channel, sizes, class names) and
    /// throws one `RunError` naming `path` and the field.
    /// - Parameter path: the file the spec came from.
    public func validate(_ path: String) throws {
        func bad(_ what: String) -> RunError { RunError("\(path): bad input description in the metadata: \(what)") }
        guard channels == 1 || channels == 3 else { throw bad("channels is \(channels) (1 or 3)") }
        guard Bounds.imageSide.contains(height), Bounds.imageSide.contains(width) else {
            throw bad("size \(height)x\(width) (each side \(Bounds.imageSide.lowerBound)...\(Bounds.imageSide.upperBound))")
        }
        guard Bounds.classes.contains(classNames.count) else {
            throw bad("\(classNames.count) class names (\(Bounds.classes.lowerBound)...\(Bounds.classes.upperBound))")
        }
        for (i, name) in classNames.enumerated() {
            guard Bounds.classNameBytes.contains(name.utf8.count) else { throw bad("class \(i)'s name is \(name.utf8.count) bytes") }
            guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw bad("class \(i)'s name contains a control character")
            }
        }
        if let resize, !(Swift.max(height, width)...Bounds.imageSide.upperBound).contains(resize) {
            throw bad("resize is \(resize) (from the larger side of \(height)x\(width) to \(Bounds.imageSide.upperBound))")
        }
        guard (mean == nil) == (std == nil) else { throw bad("mean and std must both be given or both be absent") }
        if let mean, let std {
            guard mean.count == 1 || mean.count == channels, std.count == mean.count else {
                throw bad("\(mean.count) means and \(std.count) standard deviations for \(channels) channel(s) (1 or \(channels) of each)")
            }
            guard mean.allSatisfy({ $0.isFinite && abs($0) <= 1e4 }) else { throw bad("a mean is not a finite number of at most 1e4") }
            guard std.allSatisfy({ $0.isFinite && $0 >= 1e-4 && $0 <= 1e4 }) else {
                throw bad("a standard deviation is outside 1e-4...1e4 (\(std))")
            }
        }
    }
}

extension RunConfig {
    /// Checks a config read from `run.json` or a checkpoint (or built from flags) before it is used:
    /// a known model and optimizer, every number in its range. Throws one `RunError` naming `path`.
    /// - Parameter path: the file it came from (or the command's name for flags).
    public func validate(_ path: String) throws {
        func bad(_ what: String) -> RunError { RunError("\(path): bad run settings: \(what)") }
        func rate(_ name: String, _ value: Double?, allowZero: Bool = false) throws {
            guard let value else { return }
            guard value.isFinite, allowZero ? value >= 0 : value > 0, value < Bounds.largestRate else {
                throw bad("\(name) is \(value) (a finite number \(allowZero ? "≥ 0" : "> 0") below \(Bounds.largestRate))")
            }
        }
        guard ZooModel(rawValue: model) != nil else { throw bad("unknown model \"\(model)\"") }
        guard !dataset.isEmpty, dataset.utf8.count <= 4096 else { throw bad("dataset is empty or too long") }
        guard Bounds.epochs.contains(recipe.epochs) else { throw bad("epochs is \(recipe.epochs) (\(Bounds.epochs))") }
        guard Bounds.batchSize.contains(recipe.batchSize) else { throw bad("batch size is \(recipe.batchSize) (\(Bounds.batchSize))") }
        guard Recipe.optimizerNames.contains(recipe.optimizer.lowercased()) else { throw bad("unknown optimizer \"\(recipe.optimizer)\"") }
        try rate("learning rate", recipe.lr)
        try rate("weight decay", recipe.weightDecay, allowZero: true)
        try rate("StepLR gamma", recipe.stepLRGamma)
        if let m = recipe.normalizeMean, !(m.isFinite && abs(m) <= 1e4) { throw bad("normalize mean is \(m)") }
        if let s = recipe.normalizeStd, !(s.isFinite && s >= 1e-4 && s <= 1e4) { throw bad("normalize std is \(s)") }
        guard Bounds.threads.contains(threads) else { throw bad("threads is \(threads) (\(Bounds.threads))") }
        for (name, limit) in [("trainLimit", trainLimit), ("testLimit", testLimit)] {
            if let limit, !Bounds.imageCount.contains(limit) { throw bad("\(name) is \(limit) (\(Bounds.imageCount))") }
        }
        if let imageSize, !Bounds.imageSide.contains(imageSize) { throw bad("imageSize is \(imageSize) (\(Bounds.imageSide))") }
        if let channels, channels != 1 && channels != 3 { throw bad("channels is \(channels) (1 or 3)") }
        if let validationSplit, !(validationSplit >= 0 && validationSplit < 1) { throw bad("validationSplit is \(validationSplit) (0 ≤ v < 1)") }
        if let ranks, !Bounds.ranks.contains(ranks) { throw bad("ranks is \(ranks) (\(Bounds.ranks))") }
        if let pretrained, pretrained.isEmpty || pretrained.utf8.count > 4096 { throw bad("the pretrained weights' path is empty or too long") }
        if let freezeEpochs, !(0...Bounds.epochs.upperBound).contains(freezeEpochs) {
            throw bad("freezeEpochs is \(freezeEpochs) (0...\(Bounds.epochs.upperBound))")
        }
        if (freezeEpochs ?? 0) > 0 || linearProbe == true, pretrained == nil { throw bad("freezing needs pretrained weights") }
        let (global, overflow) = recipe.batchSize.multipliedReportingOverflow(by: ranks ?? 1)
        guard !overflow, Bounds.batchSize.contains(global) else { throw bad("the global batch (ranks × batch size) is too large") }
    }
}

extension RunState {
    /// The run's history as stored: every value finite (a diverged epoch is never recorded).
    func validateHistory(_ path: String) throws {
        for (i, row) in history.enumerated() {
            for (key, value) in row where !value.isFinite {
                throw RunError("\(path): epoch \(i + 1)'s \(key) is \(value) in the run's history")
            }
        }
    }
}

extension ZooModel {
    /// Throws, with the size needed and the flags that lower it, when the model for `input` and
    /// `classes`, with a batch of `batch` samples, would need more than ``Limits/memoryBytes``.
    /// Training counts each parameter four times (weights, gradients, two optimizer slots) and each
    /// activation twice (its gradient); inference counts each once.
    /// - Parameters:
    ///   - input: one sample's shape.
    ///   - classes: output classes.
    ///   - batch: samples in one step (inference: in one slice of the pool).
    ///   - training: whether gradients and optimizer state are needed.
    ///   - lower: what the user can lower, for the message (e.g. "--image-size or --batch-size").
    public func checkMemory(input: [Int], classes: Int, batch: Int, training: Bool, lower: String) throws {
        let size = estimatedSize(input: input, classes: classes)
        let bytes = 4 * (size.parameters * (training ? 4 : 1) + Double(batch) * size.activationsPerSample * (training ? 2 : 1))
        guard bytes <= Double(Limits.memoryBytes) else {
            let shape = input.count == 3 ? "\(input[1])x\(input[2])" : "\(input)"
            throw RunError("\(rawValue) for \(shape) images needs about \(Limits.describe(bytes: bytes >= 9e18 ? Int.max : Int(bytes))) "
                + "(\(Self.count(size.parameters)) parameters, a batch of \(batch)); the limit is "
                + "\(Limits.describe(bytes: Limits.memoryBytes)) (--memory-limit): lower \(lower)")
        }
    }

    static func count(_ n: Double) -> String {
        n >= 1e9 ? String(format: "%.1f G", n / 1e9) : n >= 1e6 ? String(format: "%.1f M", n / 1e6) : String(Int(n))
    }
}

/// Throws when a tensor read from `path` holds NaN or an infinity (weights that would silently give
/// "accuracy 0.08, loss nan"), naming the tensor.
/// - Parameters:
///   - tensors: tensors by name.
///   - path: the file, for the message.
public func checkFinite(_ tensors: [String: Tensor], path: String) throws {
    for (name, t) in tensors.sorted(by: { $0.key < $1.key }) where !t.isAllFinite {
        throw RunError("\(path): tensor \"\(name)\" holds NaN or infinite values (a diverged run?); refusing to load it")
    }
}
