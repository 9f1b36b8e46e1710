import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// Loads a checkpoint written by `convolve train` (or any safetensors file with the model's keys)
/// into a fresh zoo model, strictly, built for the input the file's metadata describes (MNIST's
/// when it describes none). The model name comes from the file's metadata unless given.
///
/// - Parameters:
///   - path: a `.safetensors` file.
///   - name: the zoo model, when the file's metadata does not name it.
/// - Returns: the zoo model, the loaded module (in eval mode) and the file's metadata.
public func loadCheckpoint(_ path: String, model name: String? = nil) throws -> (ZooModel, Module & Layer, [String: String]) {
    let (zoo, model, meta, _) = try loadCheckpointWithInput(path, model: name)
    return (zoo, model, meta)
}

/// ``loadCheckpoint(_:model:)`` and the input the model takes (shape, classes, normalization).
/// - Parameters:
///   - path: a `.safetensors` file.
///   - name: the zoo model, when the file's metadata does not name it.
public func loadCheckpointWithInput(_ path: String, model name: String? = nil) throws
    -> (ZooModel, Module & Layer, [String: String], InputSpec) {
    let (tensors, meta, _) = try SafeTensors.read(path)
    guard let modelName = name ?? meta["model"] else {
        throw RunError("\(path): no model name in the file's metadata; pass --model")
    }
    guard let zoo = ZooModel(rawValue: modelName) else { throw RunError("\(path): unknown model \"\(modelName)\"") }
    let spec = try inputSpec(of: meta, zoo: zoo, path: path)
    let weights = tensors.filter { !$0.key.hasPrefix("optimizer.") }
    // The model the description asks for must be the one the file holds weights for: checked from the
    // sizes before building it, so a description of a huge input cannot make a huge model.
    let stored = weights.values.reduce(0.0) { $0 + Double($1.count) }
    let wanted = zoo.estimatedSize(input: spec.sampleShape, classes: spec.classNames.count).parameters
    guard wanted <= 1.25 * stored + 10_000 else {
        throw RunError("\(path): the input description (\(spec.height)x\(spec.width)x\(spec.channels), \(spec.classNames.count) classes) "
            + "asks for a \(zoo.rawValue) of about \(ZooModel.count(wanted)) parameters, but the file holds \(ZooModel.count(stored))")
    }
    try checkFinite(weights, path: path)
    let model = try zoo.make(input: spec.sampleShape, classes: spec.classNames.count)
    do { try model.loadStateDict(weights) } catch { throw RunError("\(path): \(error)") }
    model.eval()
    return (zoo, model, meta, spec)
}

/// The input a checkpoint's model takes: its `input` metadata, or — for files written before it
/// existed — the MNIST-family dataset it names with the model's recipe. Validated
/// (``InputSpec/validate(_:)``) before it is returned.
/// - Parameters:
///   - meta: the file's metadata.
///   - zoo: the model.
///   - path: the file, for messages.
public func inputSpec(of meta: [String: String], zoo: ZooModel, path: String) throws -> InputSpec {
    let spec: InputSpec
    if let text = meta["input"] {
        // 100,000 class names of up to 1,000 bytes would be 100 MB: the format's header limit already
        // bounds it; this bounds what the decoder builds from it.
        guard text.utf8.count <= 8 << 20 else {
            throw RunError("\(path): the input description in its metadata is \(text.utf8.count) bytes (at most 8 MB)")
        }
        do { spec = try JSONDecoder().decode(InputSpec.self, from: Data(text.utf8)) }
        catch { throw RunError("\(path): the input description in its metadata is unreadable (\(error))") }
    } else {
        let kind = meta["dataset"].flatMap(DatasetKind.init(rawValue:)) ?? .mnist
        var recipe = zoo.defaults
        if let text = meta["config"], text.utf8.count <= 8 << 20,
           let config = try? JSONDecoder().decode(RunConfig.self, from: Data(text.utf8)) {
            try config.validate(path)
            recipe = config.recipe
        }
        spec = InputSpec(dataset: kind, recipe: recipe)
    }
    try spec.validate(path)
    do { try zoo.validate(input: spec.sampleShape, classes: spec.classNames.count) }
    catch let e as RunError { throw RunError("\(path): \(e)") }
    return spec
}

/// The test (or validation) set a checkpoint is evaluated on (`evaluate`, `plot`): `dataset`, or the one
/// it was trained on, loaded as its input description says (size, channels, crop; an image folder's
/// split as its run's config says), cut to its first `limit` images, and checked against the model's
/// input and classes and against the memory limit. Raw pixels: apply `spec.transform` to evaluate.
/// - Parameters:
///   - spec: the checkpoint's input description.
///   - checkpoint: the checkpoint's path, for messages.
///   - dataset: a dataset name or folder; nil: the checkpoint's own.
///   - config: the run's settings (an image folder's split and seed), or nil.
///   - location: where datasets are found.
///   - limit: use only the first this many images.
///   - progress: show a download progress line.
public func evaluationData(for spec: InputSpec, checkpoint: String, dataset: String? = nil, config: RunConfig?,
                           location: DataLocation, limit: Int?, progress: Bool) throws -> (provider: any DatasetProvider, test: ImageDataset) {
    let name = dataset ?? config?.dataset ?? spec.dataset
    var options = config?.folderOptions ?? ImageFolder.Options()
    options.height = spec.height; options.width = spec.width; options.channels = spec.channels
    options.centerCrop = spec.centerCrop
    let provider = try DatasetCatalog.resolve(name, options: options)
    var test = try provider.load(train: false, from: location, progress: progress)
    if let limit { test = test.prefix(limit) }
    guard test.count > 0 else { throw DataError.badShape(path: "\(name) test", reason: "no test images to evaluate") }
    guard test.sampleShape == spec.sampleShape else {
        throw DataError.badShape(path: "\(name) test",
                                 reason: "images are \(test.sampleShape) but \(checkpoint) takes \(spec.sampleShape) (channels, height, width)")
    }
    guard test.classNames.count == spec.classNames.count else {
        throw DataError.badShape(path: "\(name) test", reason: "\(test.classNames.count) classes but \(checkpoint) predicts \(spec.classNames.count)")
    }
    return (provider, test)
}
