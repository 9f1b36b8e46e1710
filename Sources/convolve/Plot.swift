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
    @OptionGroup var limits: LimitOptions

    func validate() throws { try check("--limit", limit, in: Bounds.imageCount) }

    func run() throws {
        limits.apply()
        try guarded {
            let run = runDirectory
            let state = try TrainingRun.loadState(run)
            guard !state.history.isEmpty else { throw RunError("\(run)/run.json: no completed epoch to plot") }
            let out = output ?? run
            do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
            catch { throw RunError("\(out): cannot create the output directory: \(error.localizedDescription)") }
            // Everything is computed before anything is written.
            let curves = Plots.learningCurves(state.history)
            let (_, net, _, spec) = try loadCheckpointWithInput(run + "/model.safetensors", model: state.config.model)
            // The data where the run found it (recorded in run.json) unless --data-dir says otherwise.
            let location = data.dataDir == nil && state.dataDirectory != nil ? DataLocation(directory: state.dataDirectory) : data.location
            let (_, test) = try evaluationData(for: spec, checkpoint: run + "/model.safetensors", config: state.config, location: location,
                                               limit: limit ?? state.config.testLimit, progress: isatty(STDERR_FILENO) != 0)
            let result = Evaluator(net).evaluate(test.with(transform: spec.transform),
                                                 callbacks: [LiveProgress()], keepMistakes: 36)
            let confusion = Plots.confusionMatrix(result.confusion, classNames: test.classNames)
            let images = result.mistakes.map { sampleImage(test, $0.index) }
            let captions = result.mistakes.map { "\(test.classNames[$0.label]) -> \(test.classNames[$0.predicted])" }
            let mistakes = Plots.mistakes(images, captions: captions)
            for (name, image) in [("curves.png", curves), ("confusion.png", confusion), ("mistakes.png", mistakes)] {
                try PNG.write(image, to: out + "/" + name)
                print("wrote \(out)/\(name)")
            }
            let skipped = Plots.undrawable(state.history)
            if !skipped.isEmpty {
                print("curves.png: \(skipped.count) point(s) not drawn: "
                      + skipped.prefix(8).map { "epoch \($0.epoch) \($0.key) \($0.value)" }.joined(separator: ", ")
                      + (skipped.count > 8 ? ", …" : ""))
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
            let (zoo, net, _, spec) = try loadCheckpointWithInput(checkpoint, model: model?.rawValue)
            let shape = spec.sampleShape.map(String.init).joined(separator: ", ")
            let metadata = [("model", zoo.rawValue), ("dataset", spec.dataset),
                            ("input", "NCHW float [batch, \(shape)]: pixels / 255, then (x - mean) / std per channel"),
                            ("normalize_mean", (spec.mean ?? [0]).map { String($0) }.joined(separator: ",")),
                            ("normalize_std", (spec.std ?? [1]).map { String($0) }.joined(separator: ",")),
                            ("class_names", String(decoding: try JSONEncoder().encode(spec.classNames), as: UTF8.self))]
                + (spec.resize.map { [("resize", "shorter side to \($0) (\((spec.filter ?? .bilinear).rawValue), then the centre "
                                       + "\(spec.height)x\(spec.width) cropped")] } ?? [])
            do { try ONNXExport.export(net, inputShape: spec.sampleShape, metadata: metadata, to: output) }
            catch let e as ONNX.ExportError { throw RunError("\(checkpoint): \(e)") }
            print("wrote \(output): input [batch, \(shape)], "
                  + "output [batch, \(spec.classNames.count)] \(objective(for: net).output == .logits ? "logits" : "probabilities")")
        }
    }
}
