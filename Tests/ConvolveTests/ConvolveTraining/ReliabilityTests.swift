import Foundation
import Testing
import Convolve
@testable import ConvolveData
@testable import ConvolveTraining

/// Bad input, as a new user would give it: one clear message naming the file, a non-zero exit (never
/// a trap), nothing allocated for sizes a file only claims (issue 11).
@Suite(.serialized) struct ReliabilityTests {
    /// A 28×28 MNIST-format directory of `n` synthetic images per split.
    static func syntheticMNIST(_ dir: TempDir, n: Int = 40) {
        _ = syntheticPair(dir, n: n, h: 28, w: 28, prefix: "train")
        _ = syntheticPair(dir, n: n / 2, h: 28, w: 28, prefix: "t10k")
    }

    /// Expects exit status 1 and exactly one stderr line that names `file` and says `what`.
    static func expectOneError(_ r: (status: Int32, out: String, err: String), naming file: String, _ what: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = r.err.split(separator: "\n")
        #expect(r.status == 1, "exit \(r.status): \(r.err)", sourceLocation: sourceLocation)
        #expect(lines.count == 1 && r.err.contains(file) && r.err.contains(what), "\(r.err)", sourceLocation: sourceLocation)
    }

    /// Item 1: an images file whose magic declares four dimensions, or the wrong image size, is refused
    /// at load by `show` and `train` (it once crashed the grid code with "Illegal instruction").
    @Test func malformedDatasetFilesAreRefusedAtLoad() throws {
        let dir = TempDir()
        Self.syntheticMNIST(dir)
        let images = dir.path + "/train-images-idx3-ubyte.gz"
        var raw = idxBytes(type: 0x08, shape: [40, 28, 28], payload: (0..<(40 * 784)).map { UInt8($0 % 251) })
        raw[3] = 4   // one wrong byte: rank 4, the first pixel bytes become a fourth dimension
        try Data(Gzip.compress(raw)).write(to: URL(fileURLWithPath: images))
        for args in [["show", "--output", dir.path + "/grid.png"], ["train", "--epochs", "1", "--output", dir.path + "/run"]] {
            let r = try runCLI(args + ["--data-dir", dir.path])
            Self.expectOneError(r, naming: images, "header declares [40, 28, 28, 66051]")
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/grid.png"))
        }
        // A well-formed file of 20×20 images is not MNIST.
        _ = syntheticPair(dir, n: 40, h: 20, w: 20, prefix: "train")
        let r = try runCLI(["show", "--data-dir", dir.path])
        Self.expectOneError(r, naming: "train-images-idx3-ubyte.gz", "must be 28x28")
        // Three channels of 28×28 are not MNIST either.
        let rgb = idxBytes(type: 0x08, shape: [2, 28, 28, 3], payload: [UInt8](repeating: 9, count: 2 * 28 * 28 * 3))
        try Data(rgb).write(to: URL(fileURLWithPath: dir.path + "/t10k-images-idx3-ubyte.gz"))
        #expect(throws: DataError.self) { _ = try DatasetKind.mnist.load(train: false, directory: dir.path) }
    }

    /// Item 7: a few header bytes declaring gigabytes are checked against the file (or, compressed,
    /// against what the compressed bytes can expand to) before anything is allocated.
    @Test(arguments: [false, true])
    func tinyHeadersCannotDemandGigabytes(gzip: Bool) throws {
        let dir = TempDir()
        // float64, rank 1, 2^31 - 1 elements: 16 GiB claimed by 8 bytes
        let header: [UInt8] = [0, 0, 0x0E, 1, 0x7F, 0xFF, 0xFF, 0xFF]
        let path = dir.write("huge.idx" + (gzip ? ".gz" : ""), gzip ? Gzip.compress(header + [1, 2, 3]) : header + [1, 2, 3])
        let before = peakResidentMB()
        #expect { try IDX.read(path) } throws: { e in
            "\(e)".contains(path) && (gzip ? "\(e)".contains("compressed bytes can hold") : "\(e)".contains("truncated"))
        }
        #expect(peakResidentMB() - before < 200, "reading the header raised the peak memory")
        let r = try runCLI(["predict", "/nonexistent.safetensors", path])
        #expect(r.status == 1)
    }

    /// Item 8: values read from a checkpoint are checked before use: a NaN or huge optimizer step
    /// count, a negative epoch count, a position outside the epoch — one message, exit 1.
    @Test func corruptRunStateIsRefusedOnResume() throws {
        let dir = TempDir(), run = dir.path + "/run"
        Self.syntheticMNIST(dir)
        let args = ["train", "--model", "lenet5", "--epochs", "1", "--data-dir", dir.path, "--output", run, "--quiet"]
        #expect(try runCLI(args).status == 0)
        let checkpoint = run + "/checkpoint.safetensors"
        let (tensors, meta, order) = try SafeTensors.read(checkpoint)
        func rewrite(_ change: (inout [String: Tensor], inout [String: String]) -> Void) throws {
            var t = tensors, m = meta
            change(&t, &m)
            try SafeTensors.write(order.map { ($0, t[$0]!) }, metadata: m, to: checkpoint)
        }
        let resume = ["train", "--resume", "--epochs", "2", "--data-dir", dir.path, "--output", run]
        for bad in [Float.nan, 1e30, -1, 2.5] {
            try rewrite { t, _ in t["optimizer.step"] = Tensor(scalar: bad) }
            Self.expectOneError(try runCLI(resume), naming: checkpoint, "step")
        }
        for (from, to) in [("\"completedEpochs\" : 1", "\"completedEpochs\" : -1"),
                           ("\"completedEpochs\" : 1", "\"completedEpochs\" : 5")] {
            try rewrite { _, m in m["run_state"] = m["run_state"]!.replacingOccurrences(of: from, with: to) }
            Self.expectOneError(try runCLI(resume), naming: checkpoint, "cannot resume")
        }
        try rewrite { _, m in m["run_state"] = "{not json" }
        Self.expectOneError(try runCLI(resume), naming: checkpoint, "unreadable")
    }

    /// Item 6: a write that fails (here: a directory where `metrics.csv` goes, which no rename can
    /// replace, even as root) stops the run with one message naming the file and exit 1. The checkpoint
    /// and run.json are written first (issue 31): they agree, the CSV is never ahead of them, and
    /// `--resume` (here with nothing left to train) rewrites the CSV and the weights once the path is
    /// writable again.
    @Test func failedWriteStopsTheRunAndKeepsThePreviousCheckpoint() throws {
        let dir = TempDir(), run = dir.path + "/run"
        Self.syntheticMNIST(dir)
        let args = ["train", "--model", "torch-seed", "--data-dir", dir.path, "--output", run, "--quiet"]
        #expect(try runCLI(args + ["--epochs", "1"]).status == 0)
        try FileManager.default.removeItem(atPath: run + "/metrics.csv")
        try FileManager.default.createDirectory(atPath: run + "/metrics.csv/blocker", withIntermediateDirectories: true)
        let failed = try runCLI(["train", "--resume", "--epochs", "2", "--output", run, "--data-dir", dir.path, "--quiet"])
        Self.expectOneError(failed, naming: run + "/metrics.csv", "cannot write")
        let state = try TrainingRun.loadState(run)
        let saved = try SafeTensors.read(run + "/checkpoint.safetensors").metadata["run_state"]!
        #expect(try JSONDecoder().decode(RunState.self, from: Data(saved.utf8)).completedEpochs == state.completedEpochs)
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: run)).contains { $0.contains(".tmp-") },
                "no temporary file left behind")
        try FileManager.default.removeItem(atPath: run + "/metrics.csv")
        let resumed = try runCLI(["train", "--resume", "--epochs", "2", "--output", run, "--data-dir", dir.path, "--quiet"])
        #expect(resumed.status == 0, "\(resumed.err)")
        let rows = try String(contentsOfFile: run + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        #expect(rows.count == 3, "\(rows)")   // the header and both epochs
    }

    /// Item 9: a safetensors file with an empty data section (metadata only, or zero-size tensors, as
    /// the safetensors library writes them) is valid.
    @Test func emptyDataSectionIsValid() throws {
        let dir = TempDir()
        for (name, tensors) in [("meta.safetensors", [(String, Tensor)]()),
                                ("empty.safetensors", [("w", Tensor([Float](), shape: [0, 3]))])] {
            let path = dir.path + "/" + name
            try SafeTensors.write(tensors, metadata: ["format": "pt"], to: path)
            let read = try SafeTensors.read(path)
            #expect(read.metadata["format"] == "pt" && read.tensors.count == tensors.count)
            #expect(read.tensors["w"].map { $0.shape == [0, 3] } ?? true)
        }
    }

    /// Item 10: nothing to evaluate or predict is an error, not `Accuracy: -nan` or silence.
    @Test func emptyInputsAreErrors() throws {
        let dir = TempDir(), run = dir.path + "/run"
        Self.syntheticMNIST(dir)
        #expect(try runCLI(["train", "--model", "torch-seed", "--epochs", "1", "--data-dir", dir.path, "--output", run,
                            "--quiet"]).status == 0)
        let e = try runCLI(["evaluate", run + "/model.safetensors", "--data-dir", dir.path, "--limit", "0"])
        #expect(e.status == 64 && e.err.contains("--limit must be between 1"), "\(e.err)")
        let none = dir.write("none.idx", idxBytes(type: 0x08, shape: [0, 28, 28], payload: []))
        let p = try runCLI(["predict", run + "/model.safetensors", none])
        Self.expectOneError(p, naming: none, "no images")
    }
}

/// Peak resident memory of this process so far, in MB.
func peakResidentMB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}
