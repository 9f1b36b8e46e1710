import Foundation
import Testing
import ConvolveData
import ConvolveTraining

/// Runs the built `convolve` executable (from the same build folder as the tests).
func runCLI(_ args: [String], env: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    try runProcess(try cliExecutable(), args, env: env)
}

/// Runs a program to its end with extra environment variables; its status, stdout and stderr.
func runProcess(_ executable: URL, _ args: [String], env: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = executable
    p.arguments = args
    var environment = ProcessInfo.processInfo.environment
    for (k, v) in env { environment[k] = v }
    p.environment = environment
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
enum CLIError: Error { case missing(String) }

/// The built `convolve` executable (from the same build folder as the tests).
func cliExecutable() throws -> URL {
    let buildDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var exe = buildDir.appendingPathComponent("convolve")
    if !FileManager.default.fileExists(atPath: exe.path) {
        // swift-testing may run from inside the .xctest bundle
        exe = buildDir.deletingLastPathComponent().appendingPathComponent("convolve")
    }
    guard FileManager.default.fileExists(atPath: exe.path) else { throw CLIError.missing(exe.path) }
    return exe
}

/// Starts `convolve` without waiting for it (its output is discarded).
func startCLI(_ args: [String]) throws -> Process {
    let p = Process()
    p.executableURL = try cliExecutable()
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
    try p.run()
    return p
}

@Suite(.serialized) struct CLITests {
    @Test func summaryPrintsBothStylesAndRejectsUnknownModels() throws {
        let k = try runCLI(["summary", "--model", "keras-seed"])
        #expect(k.status == 0 && k.out.contains("Total params: 1,198") && k.out.contains("max_pooling2d_1 (MaxPooling2 (None, 5, 5, 4)"))
        let t = try runCLI(["summary", "--model", "torch-seed"])
        #expect(t.status == 0 && t.out.contains("(cnn_layers): Sequential(") && t.out.contains("2,174"))
        let bad = try runCLI(["summary", "--model", "resnet"])
        #expect(bad.status != 0 && bad.err.contains("resnet"))
    }

    @Test(needsMNIST) func trainEvaluatePredictShowOnRealData() throws {
        guard let data = mnistDirectory() else { _ = requireMNIST(); return }
        let dir = TempDir()
        let run = dir.path + "/run"
        let t = try runCLI(["train", "--model", "torch-seed", "--epochs", "1", "--train-limit", "3000", "--test-limit", "500",
                            "--data-dir", data, "--output", run, "--threads", "2"])
        #expect(t.status == 0, "\(t.err)")
        #expect(t.out.contains("Epoch 1 - Training loss: ") && t.out.contains("Number Of Images Tested = 500"))

        let e = try runCLI(["evaluate", run + "/model.safetensors", "--data-dir", data, "--limit", "500", "--json"])
        #expect(e.status == 0, "\(e.err)")
        let obj = try JSONSerialization.jsonObject(with: Data(e.out.utf8)) as! [String: Any]
        #expect((obj["accuracy"] as! Double) > 0.7)
        #expect((obj["confusion_matrix"] as! [[Int]]).flatMap { $0 }.reduce(0, +) == 500)

        // Export three test digits as IDX and a PNG, then predict them.
        let test = try DatasetKind.mnist.load(train: false, directory: data)
        try IDX.writeUInt8(Array(test.pixels[0..<(3 * 784)]), shape: [3, 28, 28], to: dir.path + "/three.idx")
        // A 56x56 RGB rendering of test image 0 (label 7), dark on light: exercises resize + invert.
        var rgb: [UInt8] = []
        for y in 0..<56 { for x in 0..<56 { let v = 255 - test.pixels[(y / 2) * 28 + x / 2]; rgb += [v, v, v] } }
        try PNG.write(Image(width: 56, height: 56, channels: 3, pixels: rgb), to: dir.path + "/seven.png")
        let p = try runCLI(["predict", run + "/model.safetensors", dir.path + "/three.idx", "--json"])
        #expect(p.status == 0, "\(p.err)")
        let preds = try JSONSerialization.jsonObject(with: Data(p.out.utf8)) as! [[String: Any]]
        #expect(preds.count == 3)
        let png = try runCLI(["predict", run + "/model.safetensors", dir.path + "/seven.png", "--invert", "--top-k", "1"])
        #expect(png.status == 0 && png.out.contains("seven.png: 7 "), "\(png.out) \(png.err)")

        let s = try runCLI(["show", "--count", "4", "--output", dir.path + "/grid.png", "--data-dir", data, "--preview"])
        #expect(s.status == 0 && s.out.contains("labels: 5 0 4 1") && s.out.contains("█"))
        let grid = try PNG.read(dir.path + "/grid.png")
        #expect(grid.width > 56 && grid.height > 56)

        // The run's pictures.
        let plot = try runCLI(["plot", run, "--data-dir", data, "--output", dir.path + "/plots"])
        #expect(plot.status == 0, "\(plot.err)")
        for name in ["curves.png", "confusion.png", "mistakes.png"] {
            let image = try PNG.read(dir.path + "/plots/" + name)
            #expect(image.width > 100 && image.height > 100, "\(name)")
        }

        // Resume continues from the checkpoint.
        let r = try runCLI(["train", "--resume", "--epochs", "2", "--output", run, "--data-dir", data])
        #expect(r.status == 0 && r.out.contains("Epoch 2 - Training loss: ") && !r.out.contains("Epoch 1 -"), "\(r.err)")
    }

    /// `kill -9` during training (whenever it lands: inside an epoch, at its end, during a checkpoint
    /// write), then `--resume`: the same final weights as an uninterrupted run. A second run on the
    /// same output directory meanwhile is refused, and the killed run's lock does not stay stuck.
    @Test(needsMNIST) func killedRunResumesExactlyAndOneWriterPerDirectory() throws {
        guard let data = mnistDirectory() else { _ = requireMNIST(); return }
        let dir = TempDir()
        let args = ["train", "--model", "lenet5", "--epochs", "2", "--train-limit", "3200", "--test-limit", "200",
                    "--seed", "5", "--threads", "2", "--data-dir", data, "--checkpoint-batches", "4", "--quiet"]
        let reference = try runCLI(args + ["--output", dir.path + "/reference"])
        #expect(reference.status == 0, "\(reference.err)")
        for (k, delay) in [0.0, 0.3, 0.8].enumerated() {
            let out = dir.path + "/killed\(k)"
            let victim = try startCLI(args + ["--output", out])
            let deadline = Date().addingTimeInterval(30)
            while !FileManager.default.fileExists(atPath: out + "/checkpoint.safetensors") && victim.isRunning && Date() < deadline {
                usleep(2_000)
            }
            if k == 0 && victim.isRunning {
                let second = try runCLI(args + ["--output", out])
                #expect(second.status != 0 && second.err.contains("another convolve train is writing"), "\(second.err)")
            }
            usleep(useconds_t(delay * 1e6))
            kill(victim.processIdentifier, SIGKILL)
            victim.waitUntilExit()
            let resumed = try runCLI(["train", "--resume", "--output", out, "--data-dir", data, "--checkpoint-batches", "4", "--quiet"])
            #expect(resumed.status == 0, "\(resumed.err)")
            let a = try SafeTensors.read(dir.path + "/reference/model.safetensors").tensors
            let b = try SafeTensors.read(out + "/model.safetensors").tensors
            for (key, t) in a { #expect(t.storage == b[key]?.storage, "killed after \(delay) s: \(key) differs") }
        }
    }

    /// Under a pseudo-terminal the PyTorch-style run redraws a live status line during the epoch (and
    /// Keras' bar redraws with images/s); without a terminal the output is exactly the tutorial's lines.
    @Test(needsMNIST) func liveProgressOnATerminalOnly() throws {
        guard let data = mnistDirectory() else { _ = requireMNIST(); return }
        let dir = TempDir()
        let exe = try cliExecutable().path
        func underTerminal(_ args: [String]) throws -> String {
            let typescript = dir.path + "/typescript-\(UUID().uuidString)"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/script")
            p.arguments = ["-q", "-e", "-c", ([exe] + args).joined(separator: " "), typescript]
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            p.standardInput = FileHandle.nullDevice
            try p.run(); p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            return try String(contentsOfFile: typescript, encoding: .utf8)
        }
        let common = ["--epochs", "1", "--train-limit", "12800", "--test-limit", "1000", "--data-dir", data, "--threads", "2"]
        let torch = try underTerminal(["train", "--model", "torch-seed", "--output", dir.path + "/t"] + common)
        let redraws = torch.components(separatedBy: "\r\u{1B}[Kepoch 1/1 ").count - 1
        #expect(redraws >= 2 && torch.contains("\r\u{1B}[Kepoch 1/1 1/200 ") && torch.contains("img/s")
                && torch.contains("ETA") && torch.contains("Epoch 1 - Training loss: "), "\(torch.prefix(400))")
        let keras = try underTerminal(["train", "--model", "keras-seed", "--output", dir.path + "/k"] + common)
        #expect(keras.contains("/400 [") && keras.contains("img/s") && keras.contains("Epoch 1/1"), "\(keras.prefix(400))")

        let plain = try runCLI(["train", "--model", "torch-seed", "--output", dir.path + "/p"] + common)
        let lines = plain.out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.count == 5 && lines[0].hasPrefix("Epoch 1 - Training loss: ") && lines[1] == "Number Of Images Tested = 1000"
                && lines[2].isEmpty && lines[3].hasPrefix("Model Accuracy = ") && lines[4].isEmpty, "\(plain.out)")
        #expect(!plain.out.contains("\r") && !plain.out.contains("img/s"))
    }

    @Test func versionModelsDatasetsAndNameSuggestions() throws {
        let v = try runCLI(["--version"])
        #expect(v.status == 0 && v.out == convolveVersion + "\n")
        let m = try runCLI(["models"])
        #expect(m.status == 0 && ZooModel.allCases.allSatisfy { m.out.contains($0.rawValue) } && m.out.contains("1,199,882")
                && m.out.contains("99.1–99.3%"))
        let dir = TempDir()
        let d = try runCLI(["datasets", "--data-dir", dir.path], env: ["XDG_CACHE_HOME": dir.path + "/cache"])
        #expect(d.status == 0 && d.out.contains("fashion-mnist (Fashion-MNIST): 60,000 training + 10,000 test images")
                && d.out.contains("not downloaded (convolve download kmnist)"))
        for (args, hint) in [(["train", "--model", "lenet"], "did you mean 'lenet5'"),
                             (["train", "--dataset", "fashion"], "did you mean 'fashion-mnist'"),
                             (["summary", "--model", "keras"], "did you mean 'keras-seed'"),
                             (["download", "kmnsit"], "did you mean 'kmnist'")] {
            let r = try runCLI(args)
            #expect(r.status != 0 && r.err.contains(hint), "\(args): \(r.err)")
        }
        for sub in ["train", "evaluate", "predict", "summary", "show", "plot", "export", "models", "datasets", "download"] {
            let h = try runCLI([sub, "--help"])
            let tail = h.out.components(separatedBy: "\n\nEXAMPLES:\n").last ?? ""
            #expect(h.status == 0 && tail.hasPrefix("  convolve \(sub)") && !tail.contains("OPTIONS:"), "\(sub) --help ends with examples")
        }
    }

    /// `convolve download` against a local server: a checksum failure leaves nothing and says so, then
    /// the real files are fetched, verified and loaded, and `datasets` finds them.
    @Test(needsMNIST) func downloadVerifiesThenLoads() throws {
        guard let data = mnistDirectory() else { _ = requireMNIST(); return }
        var real: [String: TestHTTPServer.Route] = [:], corrupt: [String: TestHTTPServer.Route] = [:]
        for name in DatasetKind.fileNames {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: data + "/" + name)))
            real["/m/" + name] = .init(status: 200, body: bytes)
            corrupt["/m/" + name] = .init(status: 200, body: bytes.map { $0 ^ 1 })
        }
        let dir = TempDir()
        let bad = try TestHTTPServer(routes: corrupt)
        let failed = try runCLI(["download", "mnist", "--data-dir", dir.path, "--mirror", bad.base + "/m/"])
        #expect(failed.status == 1 && failed.err.contains("SHA-256 mismatch"), "\(failed.err)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: dir.path + "/mnist")) ?? []
        #expect(left.isEmpty, "left behind: \(left)")
        let good = try TestHTTPServer(routes: real)
        let ok = try runCLI(["download", "mnist", "--data-dir", dir.path, "--mirror", good.base + "/m/"])
        #expect(ok.status == 0 && ok.out.contains("MNIST: 60000 training and 10000 test images"), "\(ok.out) \(ok.err)")
        let again = try runCLI(["download", "mnist", "--data-dir", dir.path, "--mirror", bad.base + "/m/"])
        #expect(again.status == 0 && again.out.contains("already there, verified"))
        let d = try runCLI(["datasets", "--data-dir", dir.path])
        #expect(d.out.contains("available in \(dir.path)/mnist"))
    }

    @Test func badInputsGiveOneMessageAndNonZeroExit() throws {
        let dir = TempDir()
        let junk = dir.write("junk.safetensors", Array("garbage!".utf8) + [UInt8](repeating: 0, count: 10))
        let notPNG = dir.write("x.png", Array("not a png".utf8))
        let cases: [([String], String)] = [
            (["train", "--data-dir", dir.path + "/missing", "--output", dir.path + "/o"], dir.path + "/missing"),
            (["train", "--epochs", "0"], "--epochs"),
            (["train", "--resume", "--output", dir.path + "/nothing"], "run.json"),
            (["evaluate", junk], junk),
            (["evaluate", dir.path + "/absent.safetensors"], "absent.safetensors"),
            (["predict", junk, notPNG], junk),
            (["show", "--data-dir", dir.path, "--count", "2"], dir.path),
            (["show", "--split", "validation"], "--split"),
            (["train", "--model", "lenet5", "--pretrained", junk], "not an ImageNet architecture"),
            (["train", "--freeze-epochs", "2"], "give --pretrained"),
            (["train", "--model", "resnet18", "--pretrained", junk, "--dataset", dir.path, "--output", dir.path + "/o"], dir.path),
            (["import", junk, "--model", "resnet18", "--output", dir.path + "/o.safetensors"], junk),
            (["predict", "--weights", junk, notPNG], "--model"),
        ]
        for (args, fragment) in cases {
            let r = try runCLI(args, env: ["CONVOLVE_DATA_DIR": dir.path, "XDG_CACHE_HOME": dir.path + "/cache"])
            #expect(r.status != 0, "\(args) succeeded")
            #expect(r.err.contains(fragment), "\(args): stderr does not name \(fragment): \(r.err)")
            #expect(!r.err.contains("Fatal error") && !r.err.contains("Stack dump"), "\(args) crashed: \(r.err)")
            #expect(r.err.split(separator: "\n").filter { $0.contains("rror") }.count <= 1, "\(args): \(r.err)")
        }
        // A run that failed on its data leaves no output behind, nor does a failed import.
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/o"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/o.safetensors"))
    }
}
