import ArgumentParser
import Foundation
import Convolve

/// Examples printed at the end of each command's `--help` (swift-argument-parser has no epilogue).
let examples: [String: [String]] = [
    "convolve": [
        "convolve train --model fast-cnn  # 99% MNIST test accuracy in one epoch, ~2 s",
        "convolve train --model lenet5    # 99.1-99.3% in ~6 s",
        "convolve evaluate runs/lenet5/model.safetensors",
        "convolve models  # the zoo, with expected accuracy and time",
    ],
    "train": [
        "convolve train --model torch-seed  # the tutorial's PyTorch half",
        "convolve train --model mnist-cnn --dataset fashion-mnist --epochs 3",
        "convolve train --resume --output runs/mnist-cnn  # continue a run",
        "convolve train --model resnet8 --dataset ./photos --image-size 64 --augment  # a folder per class",
        "convolve train --model resnet8 --dataset cifar10 --augment  # verified download",
        "convolve train --model resnet8 --augment  # MNIST with random affine warps",
        "mpirun -np 2 --bind-to none convolve train --model mnist-cnn --distributed  # data-parallel over MPI",
    ],
    "evaluate": [
        "convolve evaluate runs/lenet5/model.safetensors",
        "convolve evaluate runs/lenet5/best.safetensors --json",
    ],
    "predict": [
        "convolve predict runs/lenet5/model.safetensors digit.png --invert",
        "convolve predict runs/lenet5/model.safetensors t10k-images-idx3-ubyte --top-k 1 --json",
        "convolve predict runs/resnet8/model.safetensors cat.jpg dog.png  # class names from the checkpoint",
    ],
    "summary": [
        "convolve summary --model keras-seed  # Total params: 1,198",
        "convolve summary --model torch-seed",
    ],
    "show": [
        "convolve show --count 16 --output grid.png",
        "convolve show --dataset fashion-mnist --split test --start 100 --preview",
        "convolve show --dataset ./photos --image-size 64 --count 16 --output grid.png",
    ],
    "models": [
        "convolve models",
        "convolve summary --model mnist-cnn",
    ],
    "datasets": [
        "convolve datasets",
        "convolve datasets --data-dir /mnt/data  # what a data directory holds",
    ],
    "download": [
        "convolve download mnist  # into ~/.cache/convolve/mnist",
        "convolve download fashion-mnist --data-dir data  # then copy data/ offline",
        "convolve download cifar10  # cifar-10-binary.tar.gz, SHA-256 verified",
    ],
    "plot": [
        "convolve plot runs/lenet5             # curves.png, confusion.png, mistakes.png",
        "convolve plot runs/mnist-cnn --output figures",
    ],
    "export": [
        "convolve export runs/lenet5/model.safetensors --output lenet5.onnx",
        #"python -c "import onnxruntime as ort; ort.InferenceSession('lenet5.onnx')""#,
    ],
]

extension ConvolveCLI {
    /// swift-argument-parser's entry point, with `--help` ending in the command's examples.
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        if args.contains("--help") || args.contains("-h") || args.first == "help" {
            let words = args.filter { !$0.hasPrefix("-") && $0 != "help" }
            let sub = configuration.subcommands.first { "\($0)".lowercased() == words.first?.lowercased() }
            let command: ParsableCommand.Type = sub ?? ConvolveCLI.self
            let name = sub.map { "\($0)".lowercased() } ?? "convolve"
            var text = helpMessage(for: command).trimmingCharacters(in: .newlines)
            if let lines = examples[name] {
                text += "\n\nEXAMPLES:\n" + lines.map { "  " + $0 }.joined(separator: "\n")
            }
            print(text)
            return
        }
        // This process is ours: the pool's threads may be bound to its CPUs (see `Parallel.bindsThreads`).
        Parallel.bindsThreads = true
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}
