import Foundation
import ArgumentParser
import Convolve
import ConvolveNN
import ConvolveData
import ConvolveTraining

// The commands about a model itself: its summary, and importing pretrained weights for it.

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model: Keras' summary table for Keras-style models, the PyTorch module tree otherwise; its parameters and multiply-adds at its default input.")
    @Option(help: "Model: \(ZooModel.allCases.map(\.rawValue).joined(separator: ", ")).", transform: parseModel) var model: ZooModel

    func run() throws {
        let net = model.make()
        if let keras = net as? Model { print(keras.summary()) } else {
            print(net)
            print("Trainable params: \(net.parameterCount.formatted())")
        }
        let input = model.inputShape
        let macs = Double(multiplyAdds(of: net, input: input))
        print("Multiply-adds (FLOPs as torchvision counts them) for one \(input[0])x\(input[1])x\(input[2]) image: "
              + (macs >= 1e9 ? String(format: "%.2f G", macs / 1e9) : String(format: "%.2f M", macs / 1e6)))
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Turn pretrained weights (a PyTorch .pth or a safetensors file with torchvision's keys) into a Convolve checkpoint that predict, evaluate and export use without flags.",
        discussion: """
            convolve import resnet50.pth --model resnet50 --output resnet50.safetensors
            convolve predict resnet50.safetensors cat.jpg

            The weights load strictly (every key present, none left over, every shape right); the checkpoint
            records the model, its 1000 ImageNet class names (or --class-names) and the preprocessing its
            weights expect (resize the shorter side, centre crop, mean and std).
            """)
    @Argument(help: "The weight file: torch.save's zip or legacy format (a state_dict or a checkpoint holding one), or safetensors.")
    var weights: String
    @Option(help: "The architecture: \(ZooModel.allCases.filter { $0.pretrained != nil }.map(\.rawValue).joined(separator: ", ")).",
            transform: parseModel) var model: ZooModel
    @Option(help: "The checkpoint to write (.safetensors).") var output: String
    @Option(help: "A text file with one class name per line, for weights fine-tuned to other classes (default: ImageNet's names for 1000 outputs, else the class numbers).")
    var classNames: String?

    func run() throws {
        try guarded {
            var names: [String]?
            if let classNames {
                let text: Data
                do { text = try readRegularFile(classNames, maxBytes: 8 << 20, what: "a class-name list") }
                catch let e as IOError { throw RunError("\(classNames): \(e.reason)") }
                names = String(decoding: text, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
            }
            let (net, spec) = try model.loadPretrained(weights, classNames: names)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let metadata = ["model": model.rawValue, "input": String(decoding: try encoder.encode(spec), as: UTF8.self),
                            "source": URL(fileURLWithPath: weights).lastPathComponent, "format": "pt"]
            try SafeTensors.write(net.stateDict(), metadata: metadata, to: output)
            print("\(model.rawValue): \(net.stateDict().count) tensors, \(net.parameterCount.formatted()) parameters from \(weights)")
            print("input: \(spec.height)x\(spec.width) RGB cut from the centre after resizing the shorter side to \(spec.resize ?? spec.height), "
                  + "mean \(spec.mean ?? []), std \(spec.std ?? []); \(spec.classNames.count) classes (\(spec.classNames.prefix(3).joined(separator: ", ")), …)")
            print("wrote \(output)")
        }
    }
}
