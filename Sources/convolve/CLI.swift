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
    @Option(name: .long, help: "Directory holding the dataset files, e.g. MNIST's four IDX files or cifar-10-binary.tar.gz (skips the network; also CONVOLVE_DATA_DIR).")
    var dataDir: String?
    var location: DataLocation { DataLocation(directory: dataDir) }
}

/// Throws a `ValidationError` naming the flag when `value` is given and outside `range`.
func check(_ flag: String, _ value: Int?, in range: ClosedRange<Int>) throws {
    if let value, !range.contains(value) {
        throw ValidationError("\(flag) must be between \(range.lowerBound) and \(range.upperBound); got \(value)")
    }
}

/// Throws when `value` is given and is not a finite number in `range` (NaN and infinities never pass).
func check(_ flag: String, _ value: Double?, in range: ClosedRange<Double>, exclusiveLower: Bool = false) throws {
    if let value, !(value.isFinite && range.contains(value) && (!exclusiveLower || value > range.lowerBound)) {
        throw ValidationError("\(flag) must be a finite number \(exclusiveLower ? "above" : "from") \(range.lowerBound) "
            + "\(exclusiveLower ? "up " : "")to \(range.upperBound); got \(value)")
    }
}

/// The ceilings on memory and decoded image size (`Limits`), for every command that reads images or
/// builds a model.
struct LimitOptions: ParsableArguments {
    @Option(help: "Refuse a model, batch or dataset estimated to need more memory than this, e.g. 8GB (default: 3/4 of the physical memory; also CONVOLVE_MEMORY_LIMIT).")
    var memoryLimit: String?
    @Option(help: "Refuse images with more pixels than this (default \(Limits.defaultMaxImagePixels), Pillow's decompression-bomb limit).")
    var maxImagePixels: Int?

    func validate() throws {
        if let memoryLimit, Limits.parseBytes(memoryLimit) == nil {
            throw ValidationError("--memory-limit must be a size such as 8GB, 512MB or a number of bytes; got '\(memoryLimit)'")
        }
        try check("--max-image-pixels", maxImagePixels, in: 1...(1 << 40))
    }

    /// Sets `Limits` from the flags.
    func apply() {
        if let bytes = memoryLimit.flatMap(Limits.parseBytes) { Limits.memoryBytes = bytes }
        if let maxImagePixels { Limits.maxImagePixels = maxImagePixels }
    }
}

@main
struct ConvolveCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convolve",
        abstract: "Train and run convolutional image classifiers (PyTorch- and Keras-style) in Swift.",
        version: convolveVersion,
        subcommands: [Train.self, Evaluate.self, Predict.self, Import.self, Summary.self, Show.self, Plot.self, Export.self, Models.self, Datasets.self,
                      Download.self])
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on a dataset or an image folder, printing in the style of its tutorial half.")

    @Option(help: "Model: \(ZooModel.allCases.map(\.rawValue).joined(separator: ", ")) (see `convolve models`).",
            transform: parseModel) var model: ZooModel = .torchSeed
    @Option(help: "Dataset: \(DatasetCatalog.names.joined(separator: ", ")) (see `convolve datasets`), or a directory with one folder of images per class.",
            transform: parseDataset) var dataset: String = "mnist"
    @Option(help: "Image folders: resize every image to N x N (default: the first image's size).") var imageSize: Int?
    @Option(help: "Image folders: 1 (grey) or 3 (RGB) channels (default: grey only if every image is).") var channels: Int?
    @Flag(help: "Image folders: crop each image to a centred square before resizing (default: stretch).") var centerCrop = false
    @Option(help: "Image folders without val/ or test/: the share of images held out, seeded (default 0.2).") var valSplit: Double?
    @Flag(help: "Augment the training images (random affine warps for digits, random crops and flips otherwise).") var augment = false
    @Option(help: "Weight decay (SGD's L2 penalty; default: the model's recipe).") var weightDecay: Double?
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
    @OptionGroup var limits: LimitOptions
    @Option(help: "Fine-tune from pretrained weights (a .pth or .safetensors for --model, e.g. from `convolve import`): the backbone starts from them, a new head is made for the dataset's classes, images are normalized as the weights expect, and image folders default to the weights' size in RGB, centre-cropped.")
    var pretrained: String?
    @Option(help: "With --pretrained: epochs with the backbone frozen (only the new head trains) before every layer trains.")
    var freezeEpochs: Int?
    @Flag(help: "With --pretrained: keep the backbone frozen throughout (train the new head only).") var linearProbe = false
    @Flag(help: "Data-parallel training over MPI: start with `mpirun -np N convolve train --distributed …` (Open MPI). --batch-size is per rank; the recipe's learning rate is scaled by N (an explicit --lr is used as given).")
    var distributed = false

    func validate() throws {
        try check("--checkpoint-minutes", checkpointMinutes, in: 0...1e6)
        try check("--checkpoint-batches", checkpointBatches, in: 1...Int(Int32.max))
        try check("--epochs", epochs, in: Bounds.epochs)
        try check("--batch-size", batchSize, in: Bounds.batchSize)
        try check("--lr", lr, in: 0...Bounds.largestRate, exclusiveLower: true)
        try check("--threads", threads, in: Bounds.threads)
        try check("--train-limit", trainLimit, in: Bounds.imageCount)
        try check("--test-limit", testLimit, in: Bounds.imageCount)
        try check("--image-size", imageSize, in: Bounds.imageSide)
        if let channels, channels != 1 && channels != 3 { throw ValidationError("--channels must be 1 or 3") }
        if let valSplit, !(valSplit >= 0 && valSplit < 1) { throw ValidationError("--val-split must be at least 0 and below 1") }
        try check("--weight-decay", weightDecay, in: 0...Bounds.largestRate)
        if DatasetCatalog.named(dataset) != nil, imageSize != nil || channels != nil || centerCrop || valSplit != nil {
            throw ValidationError("--image-size, --channels, --center-crop and --val-split apply to image folders; "
                + "\(dataset) has a fixed size and its own test set")
        }
        try check("--freeze-epochs", freezeEpochs, in: 0...Bounds.epochs.upperBound)
        if pretrained == nil && (freezeEpochs != nil || linearProbe) {
            throw ValidationError("--freeze-epochs and --linear-probe fine-tune pretrained weights: give --pretrained")
        }
        if pretrained != nil && model.pretrained == nil {
            throw ValidationError("--pretrained: \(model.rawValue) is not an ImageNet architecture (\(ZooModel.allCases.filter { $0.pretrained != nil }.map(\.rawValue).joined(separator: ", ")))")
        }
        if let optimizer, !Recipe.optimizerNames.contains(optimizer.lowercased()) {
            throw ValidationError("unknown optimizer '\(optimizer)' (use " + Recipe.optimizerNames.joined(separator: ", ") + ")")
        }
    }

    func run() throws {
        limits.apply()
        var world: MPICommunicator?
        do {
            if distributed { world = try MPICommunicator.start() }
        } catch { throw fail(error) }
        let isRoot = (world?.rank ?? 0) == 0
        do { try train(world, isRoot: isRoot) } catch let e as ExitCode { throw e } catch {
            guard let world else { throw fail(error) }
            // Data-parallel: one message (rank 0's, or a rank's own), then every rank stops.
            FileHandle.standardError.write(Data("convolve: error: \(isRoot ? "" : "rank \(world.rank): ")\(error)\n".utf8))
            world.abort(code: 1)
        }
    }

    func train(_ world: MPICommunicator?, isRoot: Bool) throws {
        do {
            let out = output ?? "runs/\(model.rawValue)"
            var config: RunConfig
            if resume {
                config = try TrainingRun.loadState(out, communicator: world).config
                if let epochs { config.recipe.epochs = epochs }
            } else {
                var recipe = model.defaults
                if let epochs { recipe.epochs = epochs }
                if let batchSize { recipe.batchSize = batchSize }
                if let lr { recipe.lr = lr }
                if let optimizer { recipe.optimizer = optimizer.lowercased() }
                if let weightDecay { recipe.weightDecay = weightDecay }
                if augment { recipe.augmentation = AugmentationPreset.suited(to: dataset) }
                var perRankThreads = threads ?? Parallel.threads
                if let world {
                    // The global batch is ranks × --batch-size: scale the recipe's rate with it (Goyal et
                    // al.'s linear scaling rule, Horovod's advice); an explicit --lr is the global rate.
                    if lr == nil { recipe.lr *= Double(world.size) }
                    // Ranks on one machine share its cores.
                    if threads == nil { perRankThreads = Swift.max(1, Parallel.cores / Swift.max(1, world.localSize)) }
                    let (_, overflow) = recipe.batchSize.multipliedReportingOverflow(by: world.size)
                    guard !overflow, Bounds.batchSize.contains(recipe.batchSize * world.size) else {
                        throw RunError("--batch-size \(recipe.batchSize) × \(world.size) ranks is more than \(Bounds.batchSize.upperBound) images per step")
                    }
                    if isRoot {
                        FileHandle.standardError.write(Data(("data-parallel: \(world.size) ranks × batch \(recipe.batchSize) = global batch "
                            + "\(world.size * recipe.batchSize), lr \(recipe.lr)\(lr == nil ? " (the recipe's × \(world.size))" : ""), "
                            + "\(perRankThreads) thread(s) per rank\n").utf8))
                    }
                }
                // Fine-tuning an image folder: the weights' own input (size, RGB, centre crop) unless given.
                let weightsInput = pretrained != nil && DatasetCatalog.named(dataset) == nil ? model.pretrained : nil
                config = RunConfig(model: model, dataset: dataset, recipe: recipe, seed: seed,
                                   threads: perRankThreads, trainLimit: trainLimit, testLimit: testLimit,
                                   imageSize: imageSize ?? weightsInput?.height, channels: channels ?? weightsInput?.channels,
                                   centerCrop: centerCrop || weightsInput != nil ? true : nil, validationSplit: valSplit)
                config.ranks = world?.size
                config.pretrained = pretrained
                config.freezeEpochs = freezeEpochs
                config.linearProbe = linearProbe ? true : nil
            }
            if resume, config.ranks != world?.size {
                throw RunError("\(out): the run was trained on \(config.ranks ?? 1) process(es); resume it on as many (now \(world?.size ?? 1))")
            }
            let interval: CheckpointInterval = checkpointBatches.map { .batches($0) }
                ?? (checkpointMinutes > 0 ? .seconds(checkpointMinutes * 60) : .never)
            let silent = quiet || !isRoot
            let run = TrainingRun(config: config, outputDir: out, dataLocation: data.location, checkpointInterval: interval,
                                  progress: silent ? .silent : .standardOutput, log: silent ? { _ in } : { print($0) })
            run.tensorBoard = !noTensorboard
            run.communicator = world
            let result = try run.run(resume: resume)
            guard isRoot else { return }
            if quiet { print("test accuracy \(result.testAccuracy)") }
            fflush(stdout)
            FileHandle.standardError.write(Data("checkpoints and metrics in \(out)/\n".utf8))
        }
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accuracy, loss, per-class accuracy and confusion matrix of a checkpoint on its test (or validation) set.")
    @Argument(help: "A .safetensors checkpoint written by `convolve train`.") var checkpoint: String
    @Option(help: "Model name, if the file has no Convolve metadata.", transform: parseModel) var model: ZooModel?
    @Option(help: "Dataset or image folder (default: the one the checkpoint was trained on).", transform: parseDataset) var dataset: String?
    @OptionGroup var data: DataOptions
    @Option(help: "Evaluate only the first N test images.") var limit: Int?
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var limits: LimitOptions

    func validate() throws { try check("--limit", limit, in: Bounds.imageCount) }

    func run() throws {
        limits.apply()
        try guarded {
            let (zoo, net, meta, spec) = try loadCheckpointWithInput(checkpoint, model: model?.rawValue)
            let config = meta["config"].flatMap { try? JSONDecoder().decode(RunConfig.self, from: Data($0.utf8)) }
            var (provider, test) = try evaluationData(for: spec, checkpoint: checkpoint, dataset: dataset ?? spec.dataset, config: config,
                                                      location: data.location, limit: limit, progress: isatty(STDERR_FILENO) != 0)
            try zoo.checkMemory(input: spec.sampleShape, classes: spec.classNames.count, batch: Swift.min(test.count, 64 * Parallel.threads),
                                training: false, lower: "--threads")
            test = test.with(transform: spec.transform)
            let result = Evaluator(net).evaluate(test, callbacks: [LiveProgress(enabled: !json && isatty(STDOUT_FILENO) != 0)])
            let (acc, loss, confusion, classes) = (result.accuracy, result.loss, result.confusion, test.classCount)
            let perClass = result.perClassAccuracy.map { $0 ?? 0 }
            if json {
                let obj: [String: Any] = ["accuracy": acc, "loss": loss, "count": test.count, "class_names": spec.classNames,
                                          "per_class_accuracy": perClass, "confusion_matrix": confusion]
                print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            print("Model: \(meta["model"] ?? zoo.rawValue)  dataset: \(provider.displayName) test (\(test.count) images)")
            print(String(format: "Accuracy: %.4f   Loss: %.4f", acc, loss))
            print("Per-class accuracy:")
            for c in 0..<classes { print(String(format: "  %@ %.4f", spec.classNames[c].padding(toLength: 12, withPad: " ", startingAt: 0), perClass[c])) }
            print("Confusion matrix (rows: true class, columns: predicted):")
            print("      " + (0..<classes).map { String(format: "%5d", $0) }.joined())
            for c in 0..<classes { print(String(format: "%5d ", c) + confusion[c].map { String(format: "%5d", $0) }.joined()) }
        }
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify image files (PNG or JPEG, any size, converted to the model's input) or IDX image files.",
        discussion: """
            convolve predict runs/resnet8/model.safetensors cat.jpg dog.png
            convolve predict resnet50.safetensors photos/*.jpg --top-k 5        # after `convolve import`
            convolve predict --model efficientnet_lite0 --weights efficientnet-lite0-57934424.pth cat.jpg
            """)
    @Argument(help: "A .safetensors checkpoint, then the images: PNG or JPEG files (any size, grey or colour) or IDX image files ([N, H, W] bytes of the model's size). With --weights, only the images.")
    var files: [String]
    @Option(help: "Model name, if the file has no Convolve metadata (and with --weights).", transform: parseModel) var model: ZooModel?
    @Option(help: "Pretrained weights for --model (a PyTorch .pth or a safetensors file with its state_dict keys), read with the input its published weights expect, instead of a checkpoint.")
    var weights: String?
    @Option(help: "How many classes to show.") var topK: Int = 3
    @Flag(help: "Images are dark ink on a light background (invert them first).") var invert = false
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var limits: LimitOptions

    var images: [String] { weights == nil ? Array(files.dropFirst()) : files }

    func validate() throws {
        if weights != nil && model == nil { throw ValidationError("--weights needs --model (the architecture the weights are for)") }
        if images.isEmpty { throw ValidationError(weights == nil ? "give a checkpoint and at least one image" : "give at least one image") }
        try check("--top-k", topK, in: 1...Bounds.classes.upperBound)
    }

    func run() throws {
        limits.apply()
        try guarded {
            let zoo: ZooModel, net: Module & Layer, spec: InputSpec
            if let weights, let model {
                zoo = model
                (net, spec) = try model.loadPretrained(weights)
            } else {
                (zoo, net, _, spec) = try loadCheckpointWithInput(files[0], model: model?.rawValue)
            }
            try zoo.checkMemory(input: spec.sampleShape, classes: spec.classNames.count,
                                batch: Swift.min(images.count, 64 * Parallel.threads), training: false, lower: "--threads")
            let per = spec.channels * spec.height * spec.width
            // MNIST-family models see drawings the MNIST way (ink centred by mass in a 20x20 box).
            let digits = DatasetCatalog.named(spec.dataset)?.centresInkByMass == true && spec.sampleShape == [1, 28, 28]
            // Load every input first: a bad file fails before any output.
            var items: [(String, [UInt8])] = []
            // The samples and their tensor (5 bytes a value) must fit too: a long list of files is refused
            // before it is all in memory.
            var held = 0
            func hold(_ count: Int, _ path: String) throws {
                held += count
                guard held <= Limits.memoryBytes / 5 else {
                    throw RunError("\(path): \(items.count + 1) images of \(spec.height)x\(spec.width) need more than the memory limit "
                        + "(\(Limits.describe(bytes: Limits.memoryBytes)), --memory-limit): classify fewer images at a time")
                }
            }
            for path in images {
                // PNG and JPEG by their first bytes; anything else is read as IDX (raw or gzip), which names
                // the file and what it found when it is neither.
                let head: [UInt8] = leadingBytes(of: path, 4)
                let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47], jpeg: [UInt8] = [0xFF, 0xD8, 0xFF]
                if head.starts(with: png) || head.starts(with: jpeg) || (head.isEmpty && ImageFile.hasImageExtension(path)) {
                    let image = try ImageFile.read(path)
                    try hold(per, path)
                    if digits {
                        items.append((path, image.mnistStyle(invert: invert).pixels))
                    } else {
                        var px = try spec.sample(from: image, path: path)
                        if invert { px = px.map { 255 - $0 } }
                        items.append((path, px))
                    }
                } else {
                    let arr = try IDX.read(path)
                    let shape = spec.channels == 1 ? [spec.height, spec.width] : [spec.height, spec.width, spec.channels]
                    guard arr.type == .uint8, arr.shape.count == shape.count + 1 || arr.shape == shape,
                          Array(arr.shape.suffix(shape.count)) == shape else {
                        throw DataError.badShape(path: path, reason: "expected unsigned-byte images of \(shape.map(String.init).joined(separator: "x")), got \(arr.type) \(arr.shape)")
                    }
                    let n = arr.count / per
                    for i in 0..<n {
                        try hold(per, path)
                        var px = PixelLayout.planar(Array(arr.bytes[(i * per)..<((i + 1) * per)]), channels: spec.channels,
                                                    plane: spec.height * spec.width)
                        if invert { px = px.map { 255 - $0 } }
                        items.append((n == 1 ? path : "\(path)[\(i)]", px))
                    }
                }
            }
            guard !items.isEmpty else {
                throw DataError.badShape(path: images.joined(separator: ", "), reason: "no images to classify")
            }
            let x = spec.tensor(pixels: items.flatMap { $0.1 }, shape: [items.count] + spec.sampleShape)
            let outputs = inferInSlices(x) { net($0) }
            let probs = objective(for: net).probabilities(outputs)
            let classes = spec.classNames.count, names = spec.classNames
            var results: [[String: Any]] = []
            for (i, item) in items.enumerated() {
                let p = Array(probs.scalars[(i * classes)..<((i + 1) * classes)])
                let top = p.enumerated().sorted { $0.element > $1.element }.prefix(topK)
                results.append(["file": item.0, "top": top.map { ["class": $0.offset, "name": names[$0.offset],
                                                                   "probability": Double($0.element)] },
                                "outputs": outputs.scalars[(i * classes)..<((i + 1) * classes)].map(Double.init)])
                if !json {
                    print("\(item.0): " + top.map { String(format: "%@ %.4f", names[$0.offset], $0.element) }
                        .joined(separator: ", "))
                }
            }
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: results, options: [.sortedKeys]), as: UTF8.self))
            }
        }
    }
}
