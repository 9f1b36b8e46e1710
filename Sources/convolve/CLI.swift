import Foundation
import ArgumentParser
import Convolve
import ConvolveNN
import ConvolveData
import ConvolveTraining

/// Prints one clear message to stderr and exits non-zero.
func fail(_ error: Error) -> ExitCode {
    FileHandle.standardError.write(Data("convolve: error: \(error)\n".utf8))
    return ExitCode(1)
}

/// Runs `body`, turning any thrown error into one message and exit code 1.
func guarded(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch { throw fail(error) }
}


struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "Directory holding the four MNIST-format files (skips the network; also CONVOLVE_DATA_DIR).")
    var dataDir: String?
    var location: DataLocation { DataLocation(directory: dataDir) }
}

@main
struct ConvolveCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convolve",
        abstract: "Train and run convolutional image classifiers (PyTorch- and Keras-style) in Swift.",
        version: convolveVersion,
        subcommands: [Train.self, Evaluate.self, Predict.self, Summary.self, Show.self, Plot.self, Export.self, Models.self, Datasets.self,
                      Download.self])
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on an MNIST-format dataset, printing in the style of its tutorial half.")

    @Option(help: "Model: \(ZooModel.allCases.map(\.rawValue).joined(separator: ", ")) (see `convolve models`).",
            transform: parseModel) var model: ZooModel = .torchSeed
    @Option(help: "Dataset: \(DatasetKind.allCases.map(\.rawValue).joined(separator: ", ")) (see `convolve datasets`).",
            transform: parseDataset) var dataset: DatasetKind = .mnist
    @Option(help: "Epochs (default: the model's recipe).") var epochs: Int?
    @Option(help: "Batch size (default: the model's recipe).") var batchSize: Int?
    @Option(help: "Learning rate (default: the model's recipe).") var lr: Double?
    @Option(help: "Optimizer: \(Recipe.optimizerNames.joined(separator: ", ")).") var optimizer: String?
    @Option(help: "Random seed (initialization, shuffling, dropout).") var seed: UInt64 = 0
    @Option(help: "CPU threads (default: all cores).") var threads: Int?
    @OptionGroup var data: DataOptions
    @Option(help: "Output directory for checkpoints and metrics.") var output: String?
    @Flag(help: "Continue an interrupted run in --output from its last checkpoint.") var resume = false
    @Option(help: "Train on only the first N training images.") var trainLimit: Int?
    @Option(help: "Test on only the first N test images.") var testLimit: Int?
    @Flag(help: "Print only the final result.") var quiet = false
    @Option(help: "Also checkpoint every M minutes inside an epoch (0: only at epoch ends).") var checkpointMinutes: Double = 5
    @Option(help: "Also checkpoint every N batches inside an epoch (overrides --checkpoint-minutes).") var checkpointBatches: Int?
    @Flag(help: "Do not write TensorBoard event files (OUTPUT/tensorboard).") var noTensorboard = false

    func validate() throws {
        if !(checkpointMinutes >= 0) { throw ValidationError("--checkpoint-minutes must not be negative") }
        if let checkpointBatches, checkpointBatches < 1 { throw ValidationError("--checkpoint-batches must be at least 1") }
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let lr, !(lr > 0) { throw ValidationError("--lr must be positive") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let trainLimit, trainLimit < 1 { throw ValidationError("--train-limit must be at least 1") }
        if let testLimit, testLimit < 1 { throw ValidationError("--test-limit must be at least 1") }
        if let optimizer, !Recipe.optimizerNames.contains(optimizer.lowercased()) {
            throw ValidationError("unknown optimizer '\(optimizer)' (use " + Recipe.optimizerNames.joined(separator: ", ") + ")")
        }
    }

    func run() throws {
        try guarded {
            let out = output ?? "runs/\(model.rawValue)"
            var config: RunConfig
            if resume {
                config = try TrainingRun.loadState(out).config
                if let epochs { config.recipe.epochs = epochs }
            } else {
                var recipe = model.defaults
                if let epochs { recipe.epochs = epochs }
                if let batchSize { recipe.batchSize = batchSize }
                if let lr { recipe.lr = lr }
                if let optimizer { recipe.optimizer = optimizer.lowercased() }
                config = RunConfig(model: model, dataset: dataset, recipe: recipe, seed: seed,
                                   threads: threads ?? Parallel.threads, trainLimit: trainLimit, testLimit: testLimit)
            }
            let interval: CheckpointInterval = checkpointBatches.map { .batches($0) }
                ?? (checkpointMinutes > 0 ? .seconds(checkpointMinutes * 60) : .never)
            let run = TrainingRun(config: config, outputDir: out, dataLocation: data.location, checkpointInterval: interval,
                                  progress: quiet ? .silent : .standardOutput, log: quiet ? { _ in } : { print($0) })
            run.tensorBoard = !noTensorboard
            let result = try run.run(resume: resume)
            if quiet { print("test accuracy \(result.testAccuracy)") }
            fflush(stdout)
            FileHandle.standardError.write(Data("checkpoints and metrics in \(out)/\n".utf8))
        }
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accuracy, loss, per-class accuracy and confusion matrix of a checkpoint on the test set.")
    @Argument(help: "A .safetensors checkpoint written by `convolve train`.") var checkpoint: String
    @Option(help: "Model name, if the file has no Convolve metadata.", transform: parseModel) var model: ZooModel?
    @Option(help: "Dataset (default: the one the checkpoint was trained on).", transform: parseDataset) var dataset: DatasetKind?
    @OptionGroup var data: DataOptions
    @Option(help: "Evaluate only the first N test images.") var limit: Int?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try guarded {
            let (zoo, net, meta) = try loadCheckpoint(checkpoint, model: model?.rawValue)
            let kind = dataset ?? meta["dataset"].flatMap(DatasetKind.init(rawValue:)) ?? .mnist
            var test = try data.location.load(kind, train: false)
            if let limit { test = test.prefix(limit) }
            guard test.count > 0 else { throw DataError.badShape(path: "\(kind.rawValue) test", reason: "no test images to evaluate") }
            guard test.sampleShape == zoo.inputShape else {
                throw DataError.badShape(path: "\(kind.rawValue) test",
                                         reason: "images are \(test.sampleShape) but \(zoo.rawValue) takes \(zoo.inputShape) (channels, height, width)")
            }
            test = test.with(transform: zoo.defaults.transform)
            let result = Evaluator(net).evaluate(test, callbacks: [LiveProgress(enabled: !json && isatty(STDOUT_FILENO) != 0)])
            let (acc, loss, confusion, classes) = (result.accuracy, result.loss, result.confusion, test.classCount)
            let perClass = result.perClassAccuracy.map { $0 ?? 0 }
            if json {
                let obj: [String: Any] = ["accuracy": acc, "loss": loss, "count": test.count,
                                          "per_class_accuracy": perClass, "confusion_matrix": confusion]
                print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            print("Model: \(zoo.rawValue)  dataset: \(kind.displayName) test (\(test.count) images)")
            print(String(format: "Accuracy: %.4f   Loss: %.4f", acc, loss))
            print("Per-class accuracy:")
            for c in 0..<classes { print(String(format: "  %@ %.4f", test.classNames[c].padding(toLength: 12, withPad: " ", startingAt: 0), perClass[c])) }
            print("Confusion matrix (rows: true class, columns: predicted):")
            print("      " + (0..<classes).map { String(format: "%5d", $0) }.joined())
            for c in 0..<classes { print(String(format: "%5d ", c) + confusion[c].map { String(format: "%5d", $0) }.joined()) }
        }
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify PNG images (any size, converted the MNIST way) or IDX image files.")
    @Argument(help: "A .safetensors checkpoint.") var checkpoint: String
    @Argument(help: "PNG files (8-bit gray or RGB) or IDX image files ([N, 28, 28] bytes).") var images: [String]
    @Option(help: "Model name, if the file has no Convolve metadata.", transform: parseModel) var model: ZooModel?
    @Option(help: "How many classes to show.") var topK: Int = 3
    @Flag(help: "Images are dark ink on a light background (invert them first).") var invert = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image") }
        if topK < 1 { throw ValidationError("--top-k must be at least 1") }
    }

    func run() throws {
        try guarded {
            let (zoo, net, meta) = try loadCheckpoint(checkpoint, model: model?.rawValue)
            let kind = meta["dataset"].flatMap(DatasetKind.init(rawValue:)) ?? .mnist
            // Load every input first: a bad file fails before any output.
            var items: [(String, [UInt8])] = []
            for path in images {
                if path.lowercased().hasSuffix(".png") {
                    items.append((path, try PNG.read(path).mnistStyle(invert: invert).pixels))
                } else {
                    let arr = try IDX.read(path)
                    guard arr.type == .uint8, arr.shape.count >= 2, arr.shape.suffix(2) == [28, 28] else {
                        throw DataError.badShape(path: path, reason: "expected 28x28 unsigned-byte images, got \(arr.type) \(arr.shape)")
                    }
                    let n = arr.count / 784
                    for i in 0..<n {
                        var px = Array(arr.bytes[(i * 784)..<((i + 1) * 784)])
                        if invert { px = px.map { 255 - $0 } }
                        items.append((n == 1 ? path : "\(path)[\(i)]", px))
                    }
                }
            }
            guard !items.isEmpty else {
                throw DataError.badShape(path: images.joined(separator: ", "), reason: "no images to classify")
            }
            let x = zoo.defaults.tensor(pixels: items.flatMap { $0.1 }, shape: [items.count] + zoo.inputShape)
            let outputs = inferInSlices(x) { net($0) }
            let probs = objective(for: net).probabilities(outputs)
            var results: [[String: Any]] = []
            for (i, item) in items.enumerated() {
                let p = Array(probs.storage[(i * 10)..<((i + 1) * 10)])
                let top = p.enumerated().sorted { $0.element > $1.element }.prefix(topK)
                results.append(["file": item.0, "top": top.map { ["class": $0.offset, "name": kind.classNames[$0.offset],
                                                                   "probability": Double($0.element)] },
                                "outputs": outputs.storage[(i * 10)..<((i + 1) * 10)].map(Double.init)])
                if !json {
                    print("\(item.0): " + top.map { String(format: "%@ %.4f", kind.classNames[$0.offset], $0.element) }
                        .joined(separator: ", "))
                }
            }
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: results, options: [.sortedKeys]), as: UTF8.self))
            }
        }
    }
}

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model: Keras' summary table for Keras-style models, the PyTorch module tree otherwise.")
    @Option(help: "Model: \(ZooModel.allCases.map(\.rawValue).joined(separator: ", ")).", transform: parseModel) var model: ZooModel

    func run() throws {
        let net = model.make()
        if let keras = net as? Model { print(keras.summary()) } else {
            print(net)
            print("Trainable params: \(net.parameterCount.formatted())")
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Look at dataset images: a PNG grid with labels, and a terminal preview on a terminal.")
    @Option(help: "Dataset: \(DatasetKind.allCases.map(\.rawValue).joined(separator: ", ")) (see `convolve datasets`).",
            transform: parseDataset) var dataset: DatasetKind = .mnist
    @Option(help: "train or test.") var split: String = "train"
    @Option(help: "Number of images.") var count: Int = 9
    @Option(help: "Index of the first image.") var start: Int = 0
    @Option(help: "Write a PNG grid here.") var output: String?
    @Flag(help: "Print the terminal preview even when stdout is not a terminal.") var preview = false
    @OptionGroup var data: DataOptions

    func validate() throws {
        guard split == "train" || split == "test" else { throw ValidationError("--split must be train or test") }
        guard count >= 1 && count <= 1000 else { throw ValidationError("--count must be between 1 and 1000") }
        guard start >= 0 else { throw ValidationError("--start must not be negative") }
    }

    func run() throws {
        try guarded {
            let ds = try data.location.load(dataset, train: split == "train")
            guard start + count <= ds.count else {
                throw DataError.badShape(path: "\(dataset.rawValue) \(split)", reason: "only \(ds.count) images; --start + --count is \(start + count)")
            }
            let indices = Array(start..<(start + count))
            print("\(dataset.displayName) \(split): \(ds.count) images of \(ds.height)x\(ds.width); showing \(count) from index \(start)")
            print("labels: " + indices.map { ds.classNames[Int(ds.labels[$0])] }.joined(separator: " "))
            if preview || isatty(STDOUT_FILENO) != 0 {
                for i in indices.prefix(12) {
                    print("[\(i)] label \(ds.classNames[Int(ds.labels[i])])")
                    print(terminalPreview(ds, i))
                }
            }
            if let output {
                try PNG.write(grid(ds, indices), to: output)
                print("wrote \(output)")
            }
        }
    }
}

/// Unicode half-block rendering of one image (two pixel rows per text line).
func terminalPreview(_ ds: ImageDataset, _ i: Int) -> String {
    let ramp: [Character] = [" ", "░", "▒", "▓", "█"]
    let per = ds.height * ds.width
    var lines: [String] = []
    for y in stride(from: 0, to: ds.height, by: 2) {
        var line = ""
        for x in 0..<ds.width {
            let a = Int(ds.pixels[i * per + y * ds.width + x])
            let b = y + 1 < ds.height ? Int(ds.pixels[i * per + (y + 1) * ds.width + x]) : 0
            line.append(ramp[Swift.min(4, (a + b) / 2 * 5 / 256)])
        }
        lines.append(line)
    }
    return lines.joined(separator: "\n")
}

/// A grid of samples (scaled ×2) with each label drawn under its image in a 3×5 pixel font.
func grid(_ ds: ImageDataset, _ indices: [Int]) -> Image {
    let font: [String] = ["111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
                          "111100111001111", "111100111101111", "111001010010010", "111101111101111", "111101111001111"]
    let scale = 2, cell = ds.width * scale, label = 14, pad = 4
    let cols = Int(Double(indices.count).squareRoot().rounded(.up))
    let rows = (indices.count + cols - 1) / cols
    let w = cols * (cell + pad) + pad, h = rows * (cell + label + pad) + pad
    var px = [UInt8](repeating: 40, count: w * h)
    let per = ds.height * ds.width
    for (k, i) in indices.enumerated() {
        let ox = pad + (k % cols) * (cell + pad), oy = pad + (k / cols) * (cell + label + pad)
        for y in 0..<(ds.height * scale) { for x in 0..<cell {
            px[(oy + y) * w + ox + x] = ds.pixels[i * per + (y / scale) * ds.width + x / scale]
        } }
        let digits = Array(String(ds.labels[i]))
        for (d, ch) in digits.enumerated() {
            guard let v = ch.wholeNumberValue else { continue }
            let glyph = Array(font[v])
            for gy in 0..<5 { for gx in 0..<3 where glyph[gy * 3 + gx] == "1" {
                for sy in 0..<2 { for sx in 0..<2 {
                    let x = ox + d * 8 + gx * 2 + sx, y = oy + cell + 2 + gy * 2 + sy
                    if x < w && y < h { px[y * w + x] = 255 }
                } }
            } }
        }
    }
    return Image(width: w, height: h, channels: 1, pixels: px)
}
