import Foundation
import ArgumentParser
import Convolve
import ConvolveData
import ConvolveTraining

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a run: learning curves, the confusion matrix and misclassified test images (PNG).")
    @Argument(help: "A run directory written by `convolve train`.") var runDirectory: String
    @Option(help: "Write the pictures here (default: the run directory).") var output: String?
    @OptionGroup var data: DataOptions
    @Option(help: "Evaluate on only the first N test images.") var limit: Int?

    func run() throws {
        try guarded {
            let run = runDirectory
            let state = try TrainingRun.loadState(run)
            guard !state.history.isEmpty else { throw RunError("\(run)/run.json: no completed epoch to plot") }
            let out = output ?? run
            do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
            catch { throw RunError("\(out): cannot create the output directory: \(error.localizedDescription)") }
            // Everything is computed before anything is written.
            let curves = Plots.learningCurves(state.history)
            let (zoo, net, _) = try loadCheckpoint(run + "/model.safetensors", model: state.config.model)
            guard let kind = DatasetKind(rawValue: state.config.dataset) else {
                throw RunError("\(run)/run.json: unknown dataset \(state.config.dataset)")
            }
            var test = try data.location.load(kind, train: false)
            if let n = limit ?? state.config.testLimit { test = test.prefix(n) }
            guard test.count > 0 else { throw DataError.badShape(path: "\(kind.rawValue) test", reason: "no test images") }
            let result = Evaluator(net).evaluate(test.with(transform: zoo.defaults.transform),
                                                 callbacks: [LiveProgress()], keepMistakes: 36)
            let confusion = Plots.confusionMatrix(result.confusion, classNames: test.classNames)
            let per = test.height * test.width * test.channels
            let images = result.mistakes.map { m in
                Image(width: test.width, height: test.height, channels: 1,
                      pixels: Array(test.pixels[(m.index * per)..<(m.index * per + test.height * test.width)]))
            }
            let captions = result.mistakes.map { "\(test.classNames[$0.label]) -> \(test.classNames[$0.predicted])" }
            let mistakes = Plots.mistakes(images, captions: captions)
            for (name, image) in [("curves.png", curves), ("confusion.png", confusion), ("mistakes.png", mistakes)] {
                try PNG.write(image, to: out + "/" + name)
                print("wrote \(out)/\(name)")
            }
            print(String(format: "test accuracy %.4f on %d images, %d misclassified", result.accuracy, result.count,
                         result.count - result.confusion.indices.reduce(0) { $0 + result.confusion[$1][$1] }))
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a checkpoint to ONNX (IR 8, opset 17) for ONNX Runtime and other deployment tools.")
    @Argument(help: "A .safetensors checkpoint written by `convolve train`.") var checkpoint: String
    @Option(help: "The .onnx file to write.") var output: String
    @Option(help: "Model name, if the file has no Convolve metadata.", transform: parseModel) var model: ZooModel?

    func run() throws {
        try guarded {
            let (zoo, net, meta) = try loadCheckpoint(checkpoint, model: model?.rawValue)
            let kind = meta["dataset"].flatMap(DatasetKind.init(rawValue:)) ?? .mnist
            let recipe = zoo.defaults
            let metadata = [("model", zoo.rawValue), ("dataset", kind.rawValue),
                            ("input", "NCHW float [batch, \(zoo.inputShape.map(String.init).joined(separator: ", "))]: pixels / 255, then (x - mean) / std"),
                            ("normalize_mean", String(recipe.normalizeMean ?? 0)), ("normalize_std", String(recipe.normalizeStd ?? 1)),
                            ("class_names", kind.classNames.joined(separator: "\t"))]
            do { try ONNXExport.export(net, inputShape: zoo.inputShape, metadata: metadata, to: output) }
            catch let e as ONNX.ExportError { throw RunError("\(checkpoint): \(e)") }
            print("wrote \(output): input [batch, \(zoo.inputShape.map(String.init).joined(separator: ", "))], "
                  + "output [batch, 10] \(objective(for: net).output == .logits ? "logits" : "probabilities")")
        }
    }
}
