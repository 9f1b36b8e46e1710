import Foundation
import Testing
import Convolve
@testable import ConvolveIO
@testable import ConvolveData
@testable import ConvolveTraining

/// Issue 31: every class of hostile file, flag or value found on 3e7fde2, given to the real `convolve`
/// under a 1.1 GB address-space limit and a time limit. Each must end with an exit code of 1–127, at
/// most three lines of error naming the file or flag, nothing written where it should not be.
@Suite(.serialized) struct HostileInputTests {
    typealias Outcome = (status: Int32, out: String, err: String)

    /// Whether this build runs under AddressSanitizer or ThreadSanitizer, whose shadow memory needs
    /// terabytes of address space: there the address-space limit is left off (the sanitizers watch).
    static let sanitized = ["__asan_init", "__tsan_init"].contains { (symbol: String) in
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), symbol) != nil
    }

    /// Runs `convolve` under `prlimit --as` (an allocation of gigabytes fails, so it shows as a crash)
    /// and a watchdog; a crash or a kill is reported as 128 + the signal.
    static func run(_ args: [String], env: [String: String] = [:], seconds: Double = 120) throws -> Outcome {
        let p = Process()
        if sanitized {
            p.executableURL = try cliExecutable()
            p.arguments = args
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
            p.arguments = ["--as=1100000000", "--", try cliExecutable().path] + args
        }
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        for (k, v) in env { environment[k] = v }
        p.environment = environment
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let watchdog = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: watchdog)
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        watchdog.cancel()
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return (status, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// One clean failure: exit 1–127, one to three lines on stderr naming `name` and saying `what`.
    static func expectRefused(_ r: Outcome, naming name: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = r.err.split(separator: "\n").filter { !$0.hasPrefix("Usage:") && !$0.hasPrefix("  See '") && !$0.isEmpty }
        #expect(r.status >= 1 && r.status < 128, "exit \(r.status): \(r.err)", sourceLocation: sourceLocation)
        #expect(lines.count >= 1 && lines.count <= 3, "\(lines.count) lines: \(r.err)", sourceLocation: sourceLocation)
        #expect(r.err.contains(name) && (what.isEmpty || r.err.contains(what)), "\(r.err)", sourceLocation: sourceLocation)
    }

    /// A trained torch-seed run on synthetic MNIST-format data (fast: 40 images).
    static func trainedRun(_ dir: TempDir, model: String = "torch-seed", epochs: Int = 1) throws -> String {
        ReliabilityTests.syntheticMNIST(dir)
        let out = dir.path + "/run"
        let r = try runCLI(["train", "--model", model, "--epochs", String(epochs), "--data-dir", dir.path, "--output", out,
                            "--quiet", "--no-tensorboard"])
        #expect(r.status == 0, "\(r.err)")
        return out
    }

    /// A copy of `source` with its metadata changed by `edit` (and its tensors by `tensors`).
    static func rewrite(_ source: String, to path: String, tensors: (inout [String: Tensor]) -> Void = { _ in },
                        _ edit: (inout [String: String]) -> Void) throws -> String {
        var (t, meta, order) = try SafeTensors.read(source)
        edit(&meta)
        tensors(&t)
        try SafeTensors.write(order.map { ($0, t[$0]!) }, metadata: meta, to: path)
        return path
    }

    /// Class 1: a checkpoint's input description is validated against itself and against the weights
    /// before a model is built (was: preconditions, index traps and 8–137 GB allocations).
    @Test func checkpointMetadataIsValidatedBeforeUse() throws {
        let dir = TempDir()
        let model = try Self.trainedRun(dir) + "/model.safetensors"
        let meta = try SafeTensors.read(model).metadata
        let spec = try JSONDecoder().decode(InputSpec.self, from: Data(meta["input"]!.utf8))
        var image = [UInt8](repeating: 0, count: 28 * 28)
        image[400] = 255
        let png = dir.write("digit.png", PNG.encode(Image(width: 28, height: 28, channels: 1, pixels: image)))
        func with(_ change: (inout InputSpec) -> Void) throws -> String {
            var s = spec
            change(&s)
            let text = String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
            return try Self.rewrite(model, to: dir.path + "/bad-\(UUID().uuidString).safetensors") { $0["input"] = text }
        }
        let cases: [(String, String)] = [
            (try with { $0.channels = 4 }, "channels is 4"),
            (try with { $0.channels = 1 << 62 }, "channels is"),
            (try with { $0.mean = [0.1, 0.2, 0.3]; $0.std = [0.3, 0.3, 0.3] }, "3 means"),
            (try with { $0.std = [0] }, "standard deviation"),
            (try with { $0.std = [1e-30] }, "standard deviation"),
            (try with { $0.mean = [0.1]; $0.std = nil }, "both"),
            (try with { $0.height = 4096; $0.width = 4096 }, "parameters, but the file holds"),
            (try with { $0.height = 1 << 40 }, "size"),
            (try with { $0.classNames = ["a"] }, "1 class names"),
            (try with { $0.classNames[3] = "three\tcats" }, "control character"),
            (try Self.rewrite(model, to: dir.path + "/huge-list.safetensors") {
                $0["input"] = #"{"dataset":"x","channels":1,"height":28,"width":28,"centerCrop":false,"classNames":["#
                    + String(repeating: #""a","#, count: 2_500_000) + #""b"]}"#
            }, "at most 8 MB"),
        ]
        for (file, what) in cases {
            Self.expectRefused(try Self.run(["predict", file, png]), naming: file, what)
            Self.expectRefused(try Self.run(["evaluate", file, "--data-dir", dir.path]), naming: file, what)
            let onnx = dir.path + "/out.onnx"
            Self.expectRefused(try Self.run(["export", file, "--output", onnx]), naming: file, what)
            #expect(!FileManager.default.fileExists(atPath: onnx))
        }
        // Non-finite weights are refused on load (they gave "Accuracy 0.08, loss nan" with exit 0).
        let nan = try Self.rewrite(model, to: dir.path + "/nan.safetensors", tensors: {
            $0["linear_layers.0.weight"] = Tensor([Float](repeating: .nan, count: $0["linear_layers.0.weight"]!.count),
                                                  shape: $0["linear_layers.0.weight"]!.shape)
        }) { _ in }
        Self.expectRefused(try Self.run(["evaluate", nan, "--data-dir", dir.path]), naming: nan, "NaN or infinite")
        Self.expectRefused(try Self.run(["predict", nan, png]), naming: nan, "NaN or infinite")
        #expect(try Self.run(["predict", model, png]).status == 0)
    }

    /// Class 2: models, batches and image folders are sized before they are built, and images by
    /// their header; a tiny file cannot make the process allocate gigabytes.
    @Test func memoryIsBudgetedBeforeAllocating() throws {
        let dir = TempDir()
        // Two 1024² photos and a model whose dense layer grows with the image: refused with the flag.
        for cls in ["a", "b"] {
            let folder = dir.path + "/photos/" + cls
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            _ = dir.write("photos/\(cls)/x.png", PNG.encode(Image(width: 1024, height: 1024, channels: 1,
                                                                    pixels: [UInt8](repeating: cls == "a" ? 10 : 200, count: 1 << 20))))
        }
        let out = dir.path + "/run"
        var r = try Self.run(["train", "--model", "mnist-cnn", "--dataset", dir.path + "/photos", "--val-split", "0.5",
                              "--output", out, "--quiet"])
        Self.expectRefused(r, naming: "mnist-cnn", "--image-size")
        #expect(!FileManager.default.fileExists(atPath: out))
        r = try Self.run(["train", "--model", "mnist-cnn", "--dataset", dir.path + "/photos", "--val-split", "0.5",
                          "--image-size", "4096", "--output", out, "--quiet"])
        Self.expectRefused(r, naming: "mnist-cnn", "needs about")
        // A ~100-byte PNG bomb: 12000 × 12000 of zeros (144 M pixels, a valid file of ~140 KB).
        let bomb = dir.write("bomb.png", PNG.encode(Image(width: 12000, height: 12000, channels: 1,
                                                          pixels: [UInt8](repeating: 0, count: 144_000_000))))
        let model = try Self.trainedRun(dir) + "/model.safetensors"
        Self.expectRefused(try Self.run(["predict", model, bomb]), naming: bomb, "--max-image-pixels")
        // The user may raise the cap (then it decodes, within 1.1 GB).
        #expect(try Self.run(["predict", model, bomb, "--max-image-pixels", "150000000"]).status == 0)
        // A JPEG of 878 bytes whose frame header declares 16384 × 16384.
        if JPEG.isAvailable {
            var jpeg = [UInt8](try Data(contentsOf: Bundle.module.url(forResource: "class-green-1", withExtension: "jpg",
                                                                        subdirectory: "Fixtures/jpeg")!))
            let sof = (0..<(jpeg.count - 9)).first { jpeg[$0] == 0xFF && (jpeg[$0 + 1] == 0xC0 || jpeg[$0 + 1] == 0xC2) }!
            jpeg.replaceSubrange((sof + 5)..<(sof + 9), with: [0x40, 0x00, 0x40, 0x00])
            let liar = dir.write("liar.jpg", jpeg)
            Self.expectRefused(try Self.run(["predict", model, liar]), naming: liar, "16384x16384")
        } else if ProcessInfo.processInfo.environment["CONVOLVE_REQUIRE_DATA"] != nil {
            Issue.record("libjpeg-turbo is not installed: \(JPEG.loadError ?? "")")
        }
        // The library's own face: the estimate refuses before building.
        Limits.memoryBytes = 1 << 30
        defer { Limits.memoryBytes = Limits.defaultMemoryBytes }
        #expect(throws: RunError.self) {
            try ZooModel.mnistCNN.checkMemory(input: [1, 512, 512], classes: 10, batch: 64, training: true, lower: "--image-size")
        }
        try ZooModel.mnistCNN.checkMemory(input: [1, 28, 28], classes: 10, batch: 64, training: true, lower: "--image-size")
    }

    /// Class 3: every integer flag has a range and arithmetic on them cannot overflow; non-finite
    /// rates are refused at once.
    @Test func flagsHaveRanges() throws {
        let dir = TempDir()
        let run = try Self.trainedRun(dir)
        let max = String(Int.max)
        let cases: [([String], String)] = [
            (["show", "--start", max, "--data-dir", dir.path], "--start"),
            (["evaluate", run + "/model.safetensors", "--limit=-1"], "--limit"),
            (["plot", run, "--limit=0"], "--limit"),
            (["train", "--batch-size", max], "--batch-size"),
            (["train", "--epochs", max], "--epochs"),
            (["train", "--lr", "inf"], "--lr"),
            (["train", "--lr", "nan"], "--lr"),
            (["train", "--weight-decay", "inf"], "--weight-decay"),
            (["train", "--checkpoint-minutes", "nan"], "--checkpoint-minutes"),
            (["train", "--threads", "100000"], "--threads"),
            (["train", "--train-limit", max + "0"], "train-limit"),
            (["predict", run + "/model.safetensors", "x.png", "--top-k", "0"], "--top-k"),
            (["predict", run + "/model.safetensors", "x.png", "--memory-limit", "lots"], "--memory-limit"),
            (["train", "--resume", "--epochs", "0", "--output", run, "--data-dir", dir.path], "--epochs"),
        ]
        for (args, flag) in cases { Self.expectRefused(try Self.run(args), naming: flag, "") }
        // Values inside the ranges still work (the ranges are not too tight).
        #expect(try Self.run(["show", "--start", "3", "--count", "2", "--data-dir", dir.path]).status == 0)
        // --resume with fewer epochs than the run has completed.
        let two = try Self.run(["train", "--model", "torch-seed", "--epochs", "2", "--data-dir", dir.path, "--output", dir.path + "/two",
                                "--quiet", "--no-tensorboard"])
        #expect(two.status == 0)
        Self.expectRefused(try Self.run(["train", "--resume", "--epochs", "1", "--output", dir.path + "/two", "--data-dir", dir.path]),
                           naming: dir.path + "/two", "completed 2 epochs")
    }

    /// Property: any value for any flag of any command ends in a clean refusal or a clean failure to
    /// find the (nonexistent) data or files: never a trap, a hang or more than three lines. 240 random
    /// commands, seeded, drawn from extremes (Int.max, Int.min, huge decimals, NaN, inf, junk).
    @Test func randomFlagValuesNeverTrap() throws {
        let dir = TempDir()
        let rng = RandomGenerator(seed: 31)
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.nextFloat() * Float(xs.count)) % xs.count] }
        let values = ["0", "-1", "1", "2", "7", String(Int.max), String(Int.min), "9223372036854775808", "1e999", "-1e999",
                      "nan", "inf", "-inf", "-0", "", "abc", "0x10", "99999999999999999999999", "1e-320", "4097", "65536",
                      "0.5", "1.7976931348623157e308", "\t", "--", "8GB", "-5MB"]
        let commands: [(String, [String], [String])] = [
            ("train", ["--epochs", "--batch-size", "--lr", "--weight-decay", "--threads", "--train-limit", "--test-limit",
                       "--image-size", "--channels", "--val-split", "--checkpoint-minutes", "--checkpoint-batches", "--seed",
                       "--memory-limit", "--max-image-pixels", "--optimizer", "--model"],
             ["--data-dir", dir.path + "/none", "--output", dir.path + "/out", "--quiet", "--no-tensorboard"]),
            ("evaluate", ["--limit", "--memory-limit", "--max-image-pixels", "--dataset"], [dir.path + "/none.safetensors"]),
            ("predict", ["--top-k", "--memory-limit", "--max-image-pixels"], [dir.path + "/none.safetensors", dir.path + "/none.png"]),
            ("show", ["--count", "--start", "--image-size", "--split", "--max-image-pixels"], ["--data-dir", dir.path + "/none"]),
            ("plot", ["--limit", "--memory-limit"], [dir.path + "/none"]),
        ]
        for _ in 0..<240 {
            let (command, flags, rest) = pick(commands)
            var args = [command] + rest
            for _ in 0..<(1 + Int(rng.nextFloat() * 3)) { args += [pick(flags), pick(values)] }
            let r = try Self.run(args, env: ["CONVOLVE_DATA_DIR": dir.path + "/none"], seconds: 60)
            let lines = r.err.split(separator: "\n").filter { !$0.hasPrefix("Usage:") && !$0.hasPrefix("  See '") && !$0.isEmpty }
            #expect(r.status >= 1 && r.status < 128, "\(args): exit \(r.status) \(r.err)")
            #expect(lines.count <= 3, "\(args): \(r.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out/run.json"))
    }

    /// Class 4 and 5: run.json is validated wherever it is read, and `plot` finishes on any history,
    /// saying which points it could not draw, without being given the data again.
    @Test func runFilesAreValidatedAndPlotFinishes() throws {
        let dir = TempDir()
        let run = try Self.trainedRun(dir)
        let json = run + "/run.json"
        let original = try String(contentsOfFile: json, encoding: .utf8)
        for (from, to, what) in [("\"batchSize\" : 64", "\"batchSize\" : 0", "batch size"),
                                 ("\"lr\" : 0.01", "\"lr\" : -0.01", "learning rate"),
                                 ("\"threads\" : ", "\"trainLimit\" : -5, \"threads\" : ", "trainLimit")] {
            #expect(original.contains(from))
            try original.replacingOccurrences(of: from, with: to).write(toFile: json, atomically: true, encoding: .utf8)
            Self.expectRefused(try Self.run(["train", "--resume", "--output", run, "--data-dir", dir.path]), naming: json, what)
            Self.expectRefused(try Self.run(["plot", run]), naming: json, what)
        }
        // Extreme but readable values: the plot finishes and names what it left out. The data is found
        // where the run found it (no --data-dir).
        let extreme = original.replacingOccurrences(of: #""loss" : "#, with: #""loss" : 1.7e308, "old_loss" : "#)
            .replacingOccurrences(of: #""val_loss" : "#, with: #""val_loss" : 1e17, "old_val_loss" : "#)
        try extreme.write(toFile: json, atomically: true, encoding: .utf8)
        let r = try Self.run(["plot", run], env: ["CONVOLVE_DATA_DIR": "/nonexistent"], seconds: 60)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("not drawn") && r.out.contains("1.7e+308"), "\(r.out)")
        #expect(FileManager.default.fileExists(atPath: run + "/curves.png"))
        // The tick rule ends for spans far below the values' precision.
        #expect(Plots.ticks(1e17, 1e17 + 1).count <= 21)
        _ = Plots.learningCurves([["loss": 1e17, "val_loss": 1e17 + 16], ["loss": -1.7e308, "val_loss": .infinity]])
    }

    /// Class 6: a loss that goes NaN stops the run with a message and writes nothing of it; the last
    /// good checkpoint stays resumable.
    @Test func divergedTrainingStopsWithoutWriting() throws {
        let dir = TempDir()
        ReliabilityTests.syntheticMNIST(dir, n: 200)
        let out = dir.path + "/run"
        let r = try Self.run(["train", "--model", "lenet5", "--optimizer", "sgd", "--lr", "100000", "--epochs", "2",
                              "--data-dir", dir.path, "--output", out, "--no-tensorboard"])
        Self.expectRefused(r, naming: "diverged", "lower --lr")
        for file in ["run.json", "checkpoint.safetensors", "model.safetensors", "metrics.csv"] {
            #expect(!FileManager.default.fileExists(atPath: out + "/" + file), "\(file)")
        }
    }

    /// Class 7: outputs are never written through a device, a FIFO or a planted link; inputs that are
    /// not regular files are refused at once instead of blocking.
    @Test func writesAndReadsOnlyTouchRegularFiles() throws {
        let dir = TempDir()
        let run = try Self.trainedRun(dir)
        let fifo = dir.path + "/fifo"
        #expect(mkfifo(fifo, 0o644) == 0)
        Self.expectRefused(try Self.run(["export", run + "/model.safetensors", "--output", fifo], seconds: 30), naming: fifo, "FIFO")
        Self.expectRefused(try Self.run(["show", "--data-dir", dir.path, "--output", fifo], seconds: 30), naming: fifo, "FIFO")
        Self.expectRefused(try Self.run(["predict", fifo, fifo], seconds: 30), naming: fifo, "FIFO")
        Self.expectRefused(try Self.run(["predict", run + "/model.safetensors", fifo], seconds: 30), naming: fifo, "FIFO")
        Self.expectRefused(try Self.run(["evaluate", fifo], seconds: 30), naming: fifo, "FIFO")
        var st = stat()
        #expect(lstat(fifo, &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO, "the FIFO was replaced")
        if getuid() == 0 {   // a character device node, as /dev/null is (only root can make one)
            let null = dir.path + "/null"
            #expect(try runProcess(URL(fileURLWithPath: "/usr/bin/mknod"), [null, "c", "1", "3"]).status == 0)
            Self.expectRefused(try Self.run(["export", run + "/model.safetensors", "--output", null]), naming: null, "character device")
            #expect(lstat(null, &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR, "the device node was replaced")
        }
        // A lock planted as a link to a file outside the output directory is not followed.
        let victim = dir.write("victim.txt", Array("keep".utf8))
        let out = dir.path + "/linked"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: out + "/.lock", withDestinationPath: victim)
        Self.expectRefused(try Self.run(["train", "--epochs", "1", "--data-dir", dir.path, "--output", out, "--quiet"]),
                           naming: out + "/.lock", "lock")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep")
        // The library call refuses too, naming the file.
        #expect { try writeAtomically(Data("x".utf8), to: fifo) } throws: { "\($0)".contains(fifo) && "\($0)".contains("FIFO") }
        #expect { try readRegularFile(dir.path) } throws: { "\($0)".contains("directory") }
    }

    /// Class 7: a disk that fills up in the middle of a run leaves files a resume and a plot can read:
    /// run.json never ahead of the checkpoint, the CSV never ahead of run.json; resuming with space
    /// again finishes the run.
    @Test(.enabled(if: getuid() == 0, "mounting a small file system needs root (CI runs as root)"))
    func aFullDiskLeavesConsistentFiles() throws {
        let dir = TempDir()
        ReliabilityTests.syntheticMNIST(dir, n: 200)
        let mount = dir.path + "/small"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let mounted = try runProcess(URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mount])
        guard mounted.status == 0 else { Issue.record("cannot mount a tmpfs: \(mounted.err)"); return }
        defer { _ = try? runProcess(URL(fileURLWithPath: "/bin/umount"), [mount]) }
        let out = mount + "/run"
        let args = ["train", "--model", "mnist-cnn", "--epochs", "3", "--data-dir", dir.path, "--output", out, "--quiet", "--no-tensorboard"]
        // mnist-cnn's checkpoint (weights and Adadelta's two slots, 14 MB) cannot fit into 2 MB: every
        // attempt fails, the first at the first epoch's end.
        let r = try Self.run(args)
        Self.expectRefused(r, naming: out, "No space left on device")
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        #expect(!leftovers.contains { $0.contains(".tmp-") }, "temporary files left: \(leftovers)")
        #expect(!leftovers.contains("run.json") && !leftovers.contains("metrics.csv"), "\(leftovers)")
        // A smaller model: some epochs fit before the disk fills.
        let filler = mount + "/filler"
        let small = ["train", "--model", "torch-seed", "--epochs", "6", "--data-dir", dir.path, "--output", out + "2", "--quiet",
                     "--no-tensorboard"]
        FileManager.default.createFile(atPath: filler, contents: Data(count: 2 * 1024 * 1024 - 100 * 1024))
        let partial = try Self.run(small)
        if partial.status != 0 {
            Self.expectRefused(partial, naming: out + "2", "No space left on device")
            if let state = try? TrainingRun.loadState(out + "2") {
                let checkpoint = try SafeTensors.read(out + "2/checkpoint.safetensors").metadata
                let inCheckpoint = try JSONDecoder().decode(RunState.self, from: Data(checkpoint["run_state"]!.utf8))
                #expect(inCheckpoint.completedEpochs >= state.completedEpochs)
                let rows = try String(contentsOfFile: out + "2/metrics.csv", encoding: .utf8).split(separator: "\n").count - 1
                #expect(rows <= state.completedEpochs)
            }
        }
        try FileManager.default.removeItem(atPath: filler)
        let resumed = try Self.run(small + ["--resume"])
        #expect(resumed.status == 0, "\(resumed.err)")
        #expect(try TrainingRun.loadState(out + "2").completedEpochs == 6)
    }

    /// Class 8: the safetensors header takes exact integers only; CIFAR archives cannot declare
    /// members larger than the dataset's largest file; ONNX class names are escaped.
    @Test func parsingIsStrict() throws {
        let dir = TempDir()
        for offsets in ["[0, 18446744073709551616]", "[0, 4.9]", "[0, true]", "[0]", "\"0,4\""] {
            let header = #"{"w":{"dtype":"U8","shape":[4],"data_offsets":"# + offsets + "}}"
            var bytes = [UInt8](repeating: 0, count: 8)
            bytes[0] = UInt8(header.utf8.count)
            let path = dir.write("o-\(UUID().uuidString).safetensors", bytes + Array(header.utf8) + [1, 2, 3, 4])
            #expect(throws: SafeTensors.FormatError.self, "\(offsets)") { _ = try SafeTensors.read(path) }
        }
        #expect(CIFAR.cifar10.largestFileBytes == 10_000 * 3073)
        #expect(CIFAR.cifar100.largestFileBytes == 50_000 * 3074)
        // A tar member that declares 1 GiB is refused before it is read.
        var tar = [UInt8](repeating: 0, count: 512)
        let name = Array("cifar-10-batches-bin/data_batch_1.bin".utf8)
        tar.replaceSubrange(0..<name.count, with: name)
        let size = Array(String(1 << 30, radix: 8).utf8)
        tar.replaceSubrange(124..<(124 + size.count), with: size)
        tar[156] = UInt8(ascii: "0")
        var sum = 0
        for (i, b) in tar.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
        let checksum = Array(String(sum, radix: 8).utf8)
        tar.replaceSubrange(148..<(148 + checksum.count), with: checksum)
        let archive = dir.write("cifar-10-binary.tar.gz", Gzip.compress(tar + [UInt8](repeating: 0, count: 4096)))
        #expect { _ = try CIFAR.cifar10.load(train: true, directory: dir.path) } throws: { "\($0)".contains(archive) }
        // ONNX metadata: class names with commas and quotes survive as a JSON array.
        let run = try Self.trainedRun(dir)
        let names = (0..<10).map { "class \"\($0)\", the \($0)th" }
        let spec = InputSpec(dataset: "mnist", channels: 1, height: 28, width: 28, classNames: names, mean: [0.5], std: [0.5])
        let text = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        let model = try Self.rewrite(run + "/model.safetensors", to: dir.path + "/named.safetensors") { $0["input"] = text }
        let onnx = dir.path + "/named.onnx"
        #expect(try Self.run(["export", model, "--output", onnx]).status == 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: onnx))
        let escaped = String(decoding: try JSONEncoder().encode(names), as: UTF8.self)
        #expect(bytes.range(of: Data(escaped.utf8)) != nil)
    }

    /// Class 9: a last batch of one sample on a model whose batch norm sees 1×1 planes trains (the
    /// lone sample is left out, as fastai drops last batches); a batch size of 1 there is refused.
    @Test func tinyShapesTrain() throws {
        let dir = TempDir()
        let folder = dir.path + "/tiny"
        for c in 0..<2 {
            try FileManager.default.createDirectory(atPath: folder + "/\(c)", withIntermediateDirectories: true)
            for i in 0..<(c == 0 ? 17 : 16) {
                _ = dir.write("tiny/\(c)/\(i).png", PNG.encode(Image(width: 4, height: 4, channels: 1,
                                                                     pixels: (0..<16).map { UInt8(($0 * 13 + i * 7 + c * 90) % 256) })))
            }
        }
        let ok = try Self.run(["train", "--model", "fast-cnn", "--dataset", folder, "--val-split", "0.12", "--batch-size", "4",
                               "--output", dir.path + "/r", "--quiet", "--no-tensorboard"])
        #expect(ok.status == 0, "\(ok.err)")
        Self.expectRefused(try Self.run(["train", "--model", "fast-cnn", "--dataset", folder, "--batch-size", "1",
                                         "--output", dir.path + "/r1", "--quiet"]), naming: "fast-cnn", "--batch-size")
    }
}
