import Foundation
import Convolve
import ConvolveData
import ConvolveTraining

// Fuzz targets for every reader of untrusted bytes. Built normally, this is a regression runner:
// `convolve-fuzz TARGET FILE...` feeds each file to TARGET once (CI runs the committed corpora this
// way). Built with `-sanitize=fuzzer,address`, libFuzzer's `main` drives `LLVMFuzzerTestOneInput`
// below and `CONVOLVE_FUZZ_TARGET` names the target (see RELIABILITY.md for the commands).
// A target may reject its input with an error; it must never crash, trap or leak.

/// The readers, by name: each takes raw bytes.
let targets: [String: ([UInt8]) -> Void] = [
    "idx": { bytes in withTempFile(bytes) { _ = try? IDX.read($0) } },
    "mnist": { bytes in
        // The images file of an MNIST pair (labels fixed: 2 images' worth).
        withTempFile(bytes) { images in
            withTempFile([0, 0, 8, 1, 0, 0, 0, 2, 3, 7]) { labels in
                _ = try? DatasetKind.loadPair(images: images, labels: labels, name: "fuzz",
                                              classNames: DatasetKind.mnist.classNames,
                                              imageShape: DatasetKind.mnist.imageShape)
            }
        }
    },
    "png": { bytes in _ = try? PNG.decode(bytes) },
    "safetensors": { bytes in withTempFile(bytes) { _ = try? SafeTensors.read($0) } },
    // A torch.save file, zip or legacy: the zip directory, the restricted unpickler, the tensor views.
    "pytorch": { bytes in withTempFile(bytes) { _ = try? PyTorchFile.read($0) } },
    "run-state": { bytes in _ = try? RunState.decodeAndValidate(Data(bytes), path: "fuzz", trainCount: 64, batches: 4) },
    // A run's run.json, as `--resume` and `plot` read it (decoded, settings validated).
    "run-json": { bytes in
        let dir = NSTemporaryDirectory() + "convolve-fuzz-\(getpid())-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        writeOrExit(dir + "/run.json", bytes)
        _ = try? TrainingRun.loadState(dir)
    },
    // From checkpoint bytes to a prediction: metadata → input description → model → one forward pass
    // (what `predict` does), within a 512 MB memory budget.
    "checkpoint": { bytes in
        Limits.memoryBytes = 512 << 20
        withTempFile(bytes) { path in
            guard let (zoo, model, _, spec) = try? loadCheckpointWithInput(path),
                  (try? zoo.checkMemory(input: spec.sampleShape, classes: spec.classNames.count, batch: 1, training: false,
                                        lower: "")) != nil else { return }
            let x = spec.tensor(pixels: [UInt8](repeating: 128, count: spec.sampleShape.reduce(1, *)), shape: [1] + spec.sampleShape)
            _ = inferInSlices(x) { model($0) }
        }
    },
    // PNG or JPEG by content (JPEG through libjpeg-turbo, when installed).
    "image": { bytes in _ = try? ImageFile.decode(bytes, path: "fuzz") },
    // A CIFAR-10 archive (tar, gzip or not): the tar reader and the record checks.
    "cifar": { bytes in
        let dir = NSTemporaryDirectory() + "convolve-fuzz-\(getpid())-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        writeOrExit(dir + "/cifar-10-binary.tar.gz", bytes)
        _ = try? CIFAR.cifar10.load(train: false, directory: dir)
    },
]

/// Writes `bytes` to `path`, or stops the run with one message (an input the harness could not write
/// was not tested).
func writeOrExit(_ path: String, _ bytes: [UInt8]) {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        FileHandle.standardError.write(Data("convolve-fuzz: cannot write \(path)\n".utf8))
        exit(2)
    }
}

/// Writes `bytes` to a fresh temporary file, runs `body` on its path, removes it.
func withTempFile(_ bytes: [UInt8], _ body: (String) -> Void) {
    let path = NSTemporaryDirectory() + "convolve-fuzz-\(getpid())-\(UUID().uuidString)"
    writeOrExit(path, bytes)
    defer { unlink(path) }
    body(path)
}

let selected = ProcessInfo.processInfo.environment["CONVOLVE_FUZZ_TARGET"] ?? ""

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let target = targets[selected] else {
        fputs("convolve-fuzz: set CONVOLVE_FUZZ_TARGET to one of \(targets.keys.sorted().joined(separator: ", "))\n", stderr)
        exit(2)
    }
    target(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

// Built with -sanitize=fuzzer, libFuzzer is linked in: hand it the command line (its flags and corpus
// directories). Looked up at run time, so the normal build links without it.
typealias FuzzerDriver = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                                         @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32
if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "LLVMFuzzerRunDriver") {
    let driver = unsafeBitCast(symbol, to: FuzzerDriver.self)
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(driver(&argc, &argv, { data, size in fuzzOne(data, size) }))
}

// Regression runner (normal builds).
let args = Array(CommandLine.arguments.dropFirst())
guard let name = args.first, let target = targets[name] else {
    fputs("usage: convolve-fuzz TARGET FILE|DIR... (targets: \(targets.keys.sorted().joined(separator: ", ")))\n", stderr)
    exit(2)
}
var files: [String] = []
for arg in args.dropFirst() {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: arg, isDirectory: &isDir), isDir.boolValue {
        files += ((try? FileManager.default.contentsOfDirectory(atPath: arg)) ?? []).sorted().map { arg + "/" + $0 }
    } else { files.append(arg) }
}
for f in files {
    guard let d = FileManager.default.contents(atPath: f) else { fputs("convolve-fuzz: cannot read \(f)\n", stderr); exit(1) }
    target([UInt8](d))
}
print("\(name): \(files.count) inputs, no crash")
