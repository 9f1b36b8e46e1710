import Foundation
import Testing
import Convolve
@testable import ConvolveData
@testable import ConvolveTraining

/// `mpirun` (Open MPI) on this machine, or nil.
let mpirunPath: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// The trait of the multi-process tests: they need Open MPI (`apt-get install openmpi-bin`); skipped
/// with the reason where it is missing, a failure in CI (`CONVOLVE_REQUIRE_DATA=1`, which installs it).
let needsMPI: ConditionTrait = .enabled(
    if: (mpirunPath != nil && realMNISTDirectory != nil) || realDataRequired,
    "Open MPI's mpirun (apt-get install openmpi-bin) and real MNIST are needed for the two-rank tests")

/// Runs `mpirun -np ranks convolve ARGS` (as root where needed), returning status and output.
func runMPI(_ ranks: Int, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try #require(mpirunPath))
    p.arguments = ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", try cliExecutable().path] + args
    p.environment = ProcessInfo.processInfo.environment.merging(
        ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"]) { $1 }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite struct ShardingTests {
    /// Every sample exactly once per epoch across the ranks, the same number of batches on every rank,
    /// each rank's part of a global batch contiguous and the parts in rank order.
    @Test func everySampleOncePerEpochAcrossRanks() {
        for (n, batch, ranks) in [(100, 8, 2), (65, 32, 2), (129, 32, 4), (7, 4, 3), (1, 16, 2), (640, 64, 1)] {
            let ds = TensorDataset(Tensor((0..<n).map(Float.init), shape: [n, 1]), (0..<n).map { $0 % 2 })
            let loaders = (0..<ranks).map { DataLoader(ds, batchSize: batch, shuffle: true, seed: 3, prefetch: false, shard: ($0, ranks)) }
            #expect(Set(loaders.map(\.count)).count == 1, "\(n), \(batch), \(ranks): batches differ")
            let orders = loaders.map { $0.nextEpochOrder() }
            #expect(Set(orders).count == 1, "every rank draws the same epoch order")
            var seen: [Int] = []
            for b in 0..<loaders[0].count {
                for r in 0..<ranks {
                    let range = loaders[r].positions(ofBatch: b, in: n)
                    seen += orders[r][range]
                }
            }
            #expect(seen == orders[0], "\(n), \(batch), \(ranks): the ranks' parts are not the epoch order once")
            // The batches a sharded loader yields are its parts.
            var yielded: [Int] = []
            for r in 0..<ranks {
                for (x, _) in IteratorSequence(loaders[r].makeIterator(order: orders[r])) { yielded += x.storage.map { Int($0) } }
            }
            #expect(yielded.sorted() == Array(0..<n))
        }
    }
}

@Suite(.serialized) struct DistributedTests {
    /// Two ranks × batch 32 reach the weights of one process × batch 64 on the same data order (SGD,
    /// no BatchNorm or dropout; the last global batch of 1,281 images has one image: one rank's part is
    /// empty). Tolerance: 1e-5 absolute on weights of magnitude ≤ 0.3 (float rounding of sums in
    /// another order). The ranks end bit-identical (the run checks and says so).
    @Test(needsMPI) func twoRanksMatchOneProcessWithTheGlobalBatch() throws {
        guard let data = mnistDirectory() else { _ = requireMNIST(); return }
        let dir = TempDir()
        let common = ["--model", "lenet5", "--data-dir", data, "--epochs", "1", "--train-limit", "1281", "--test-limit", "300",
                      "--optimizer", "sgd", "--lr", "0.02", "--threads", "1", "--no-tensorboard", "--seed", "4"]
        let one = try runCLI(["train"] + common + ["--batch-size", "64", "--output", dir.path + "/one"])
        #expect(one.status == 0, "\(one.err)")
        let two = try runMPI(2, ["train"] + common + ["--batch-size", "32", "--distributed", "--output", dir.path + "/two"])
        #expect(two.status == 0, "\(two.err)")
        #expect(two.out.contains("Ranks: 2; weights bit-identical on every rank: yes"), "\(two.out)")
        #expect(two.out.components(separatedBy: "Epoch 1 - Training loss").count == 2, "only rank 0 prints")
        let a = try SafeTensors.read(dir.path + "/one/model.safetensors").tensors
        let b = try SafeTensors.read(dir.path + "/two/model.safetensors").tensors
        #expect(a.keys.sorted() == b.keys.sorted())
        var worst: Float = 0
        for (k, t) in a { worst = max(worst, zip(t.storage, b[k]!.storage).map { abs($0 - $1) }.max() ?? 0) }
        #expect(worst <= 1e-5, "largest weight difference \(worst)")
        // Only rank 0 wrote: one set of files.
        #expect(FileManager.default.fileExists(atPath: dir.path + "/two/metrics.csv"))
    }

    /// A rank killed mid-epoch ends the job within seconds with a non-zero exit; the last checkpoint
    /// is whole and `--resume` (on as many ranks) finishes the run.
    @Test(needsMPI) func aKilledRankEndsTheJobAndTheRunResumes() throws {
        guard let data = mnistDirectory() else { _ = requireMNIST(); return }
        let dir = TempDir()
        let out = dir.path + "/run"
        let args = ["train", "--model", "lenet5", "--data-dir", data, "--epochs", "3", "--train-limit", "12800", "--test-limit", "500",
                    "--threads", "1", "--no-tensorboard", "--distributed", "--checkpoint-batches", "20", "--output", out]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(mpirunPath))
        p.arguments = ["-np", "2", "--oversubscribe", "--bind-to", "none", try cliExecutable().path] + args
        p.environment = ProcessInfo.processInfo.environment.merging(["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]) { $1 }
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait for a mid-epoch checkpoint, then kill rank 1 (a child of mpirun running convolve).
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: out + "/checkpoint.safetensors") && Date() < deadline { usleep(50_000) }
        let ranks = try childProcesses(of: p.processIdentifier).filter { commandLine($0).contains("--distributed") }
        #expect(ranks.count == 2, "rank processes: \(ranks)")
        let victim = try #require(ranks.last)
        kill(victim, SIGKILL)
        let killed = Date()
        while p.isRunning && Date().timeIntervalSince(killed) < 30 { usleep(50_000) }
        let took = Date().timeIntervalSince(killed)
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        #expect(took < 10, "the job took \(took) s to end after a rank was killed")
        #expect(p.terminationStatus != 0)
        _ = try SafeTensors.read(out + "/checkpoint.safetensors")   // whole
        let resumed = try runMPI(2, args + ["--resume"])
        #expect(resumed.status == 0, "\(resumed.err)")
        #expect(resumed.out.contains("Model Accuracy = "), "\(resumed.out)")
        let state = try TrainingRun.loadState(out)
        #expect(state.completedEpochs == 3)
    }
}

/// Direct children of a process (from /proc).
func childProcesses(of parent: Int32) throws -> [Int32] {
    let names = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { Int32($0) }
    return names.filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 2 && Int32(fields[1]) == parent
    }.sorted()
}

/// A process's command line (arguments joined by spaces).
func commandLine(_ pid: Int32) -> String {
    (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")).map { String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "\0", with: " ") } ?? ""
}
