import Foundation
import Dispatch
import Testing
import Convolve
import ConvolveNN
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
    try runProcess(URL(fileURLWithPath: try #require(mpirunPath)),
                   ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", try cliExecutable().path] + args,
                   env: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"])
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

/// An in-process group of `size` ranks (threads) for testing the collectives' users without MPI:
/// every collective waits for all ranks, combines, and hands each rank the result.
final class ThreadGroup: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var arrived = 0, generation = 0
    private var floats: [[Float]] = [], doubles: [[Double]] = [], bytes: [[UInt8]] = []
    private var resultFloats: [Float] = [], resultDoubles: [Double] = [], resultBytes: [UInt8] = []
    init(size: Int) {
        self.size = size
        floats = Array(repeating: [], count: size); doubles = floats.map { _ in [] }; bytes = floats.map { _ in [] }
    }
    /// Runs `body(rank)` for `ranks` ranks, one thread each (concurrentPerform may run fewer at once
    /// than the collectives need), and waits up to `timeout` seconds until every rank has put its result.
    static func runRanks(_ ranks: Int, until results: ResultBox, timeout: TimeInterval = 60,
                         _ body: @escaping @Sendable (Int) -> Void) {
        let threads = (0..<ranks).map { r in Thread { body(r) } }
        threads.forEach { $0.start() }
        let deadline = Date().addingTimeInterval(timeout)
        while !results.done && Date() < deadline { usleep(10_000) }
    }

    /// Deposits this rank's part, waits for all, lets the last arrival combine.
    func collective(_ rank: Int, deposit: (ThreadGroup) -> Void, combine: (ThreadGroup) -> Void, take: (ThreadGroup) -> Void) {
        condition.lock()
        let gen = generation
        deposit(self)
        arrived += 1
        if arrived == size { combine(self); arrived = 0; generation += 1; condition.broadcast() }
        else { while generation == gen { condition.wait() } }
        take(self)
        condition.unlock()
        // A second barrier so no rank deposits the next collective before every rank has taken this one.
        barrier()
    }
    private var barrierCount = 0, barrierGeneration = 0
    func barrier() {
        condition.lock()
        let gen = barrierGeneration
        barrierCount += 1
        if barrierCount == size { barrierCount = 0; barrierGeneration += 1; condition.broadcast() }
        else { while barrierGeneration == gen { condition.wait() } }
        condition.unlock()
    }
    final class Member: Communicator {
        let group: ThreadGroup, rank: Int
        var size: Int { group.size }
        init(_ group: ThreadGroup, _ rank: Int) { self.group = group; self.rank = rank }
        func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {
            let mine = Array(values)
            group.collective(rank, deposit: { $0.floats[self.rank] = mine },
                             combine: { g in g.resultFloats = (0..<mine.count).map { i in g.floats.reduce(0) { $0 + $1[i] } } },
                             take: { g in for i in 0..<values.count { values[i] = g.resultFloats[i] } })
        }
        func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {
            let mine = Array(values)
            group.collective(rank, deposit: { $0.doubles[self.rank] = mine },
                             combine: { g in g.resultDoubles = (0..<mine.count).map { i in g.doubles.reduce(0) { $0 + $1[i] } } },
                             take: { g in for i in 0..<values.count { values[i] = g.resultDoubles[i] } })
        }
        func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
            let mine = Array(bytes)
            group.collective(rank, deposit: { $0.bytes[self.rank] = mine }, combine: { g in g.resultBytes = g.bytes[root] },
                             take: { g in for i in 0..<bytes.count { bytes[i] = g.resultBytes[i] } })
        }
        func abort(code: Int32) -> Never { fatalError("abort \(code)") }
    }
}

@Suite struct DistributedOptimizerTests {
    /// Horovod-style hand-written loops on two in-process ranks (half of each batch each, different
    /// initial weights that rank 0's broadcast replaces) reach one process's weights on whole batches;
    /// the Trainer with a communicator does the same, and a rank with an empty part still steps.
    @Test func twoRanksOfAHandWrittenLoopMatchOneProcess() throws {
        let n = 50, features = 6
        var g = Xoshiro256StarStar(seed: 1)
        let x = Tensor((0..<(n * features)).map { _ in g.nextFloat() * 2 - 1 }, shape: [n, features])
        let y = (0..<n).map { $0 % 3 }
        @Sendable func model(seed: UInt64) -> Sequential {
            RandomGenerator.global.exclusively { manualSeed(seed); return Sequential { Linear(features, 8); ReLU(); Linear(8, 3) } }
        }
        // One process, batches of 16 (the last one has 2 samples).
        let single = model(seed: 7)
        let sgd = SGD(single.parameters(), lr: 0.1, momentum: 0.9)
        for start in stride(from: 0, to: n, by: 16) {
            let idx = Array(start..<min(n, start + 16))
            sgd.zeroGrad()
            crossEntropy(single(TensorDataset(x, y).batch(idx).0), idx.map { y[$0] }).backward()
            sgd.step()
        }
        // Two ranks, 8 each of every batch of 16 (of the last batch of 2: one each) — and a 3-rank
        // group where one rank's part of that last batch is empty.
        for ranks in [2, 3] {
            let group = ThreadGroup(size: ranks)
            let results = ResultBox(ranks)
            ThreadGroup.runRanks(ranks, until: results) { r in
                let world = ThreadGroup.Member(group, r)
                let net = model(seed: r == 0 ? 7 : UInt64(100 + r))   // rank 0 starts as the single process; the broadcast makes everyone so
                let opt = DistributedOptimizer(SGD(net.parameters(), lr: 0.1, momentum: 0.9), communicator: world)
                try! opt.broadcastState(of: net)
                for start in stride(from: 0, to: n, by: 16) {
                    let m = min(n, start + 16) - start
                    let idx = Array((start + r * m / ranks)..<(start + (r + 1) * m / ranks))
                    opt.zeroGrad()
                    if !idx.isEmpty { crossEntropy(net(TensorDataset(x, y).batch(idx).0), idx.map { y[$0] }).backward() }
                    try! opt.step(localCount: idx.count)
                }
                results.set(r, net.parameters().flatMap(\.storage))
            }
            #expect(results.done, "the ranks did not finish")
            let reference = single.parameters().flatMap(\.storage)
            for r in 0..<ranks where results.done {
                let worst = zip(results[r], reference).map { abs($0 - $1) }.max() ?? 0
                #expect(worst < 1e-5, "\(ranks) ranks, rank \(r): largest difference \(worst)")
                #expect(results[r] == results[0], "ranks differ")
            }
        }
        // The engine: Trainer.fit on sharded loaders with a communicator, against one Trainer on the whole
        // batches: the same weights and the same (summed) epoch metrics on every rank.
        let data = TensorDataset(x, y, classCount: 3)
        let one = model(seed: 7)
        let oneTrainer = Trainer(model: one, optimizer: SGD(one.parameters(), lr: 0.1, momentum: 0.9))
        let oneLogs = oneTrainer.fit(DataLoader(data, batchSize: 16, shuffle: true, seed: 5), epochs: 2, validation: data)
        let group = ThreadGroup(size: 2)
        let results = ResultBox(2), logs = ResultBox(2)
        ThreadGroup.runRanks(2, until: results) { r in
            let net = model(seed: r == 0 ? 7 : 55)
            let trainer = Trainer(model: net, optimizer: SGD(net.parameters(), lr: 0.1, momentum: 0.9))
            trainer.communicator = ThreadGroup.Member(group, r)
            let history = trainer.fit(DataLoader(data, batchSize: 8, shuffle: true, seed: 5, shard: (r, 2)), epochs: 2, validation: data)
            logs.set(r, ["loss", "accuracy", "val_loss"].flatMap { (history.history[$0] ?? []).map(Float.init) })
            results.set(r, net.parameters().flatMap(\.storage))
        }
        #expect(results.done, "the trainers did not finish")
        let reference = one.parameters().flatMap(\.storage)
        let referenceLogs = ["loss", "accuracy", "val_loss"].flatMap { (oneLogs.history[$0] ?? []).map(Float.init) }
        for r in 0..<2 where results.done {
            #expect((zip(results[r], reference).map { abs($0 - $1) }.max() ?? 1) < 1e-5, "Trainer rank \(r)")
            #expect(logs[r].count == 6 && referenceLogs.count == 6)
            #expect(zip(logs[r], referenceLogs).allSatisfy { abs($0 - $1) < 1e-4 }, "Trainer rank \(r) logs \(logs[r]) vs \(referenceLogs)")
        }
        #expect(results[0] == results[1])
    }
}

/// Each rank thread's final weights.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [[Float]?]
    init(_ n: Int) { values = Array(repeating: nil, count: n) }
    func set(_ r: Int, _ v: [Float]) { lock.lock(); values[r] = v; lock.unlock() }
    var done: Bool { lock.lock(); defer { lock.unlock() }; return values.allSatisfy { $0 != nil } }
    subscript(_ r: Int) -> [Float] { lock.lock(); defer { lock.unlock() }; return values[r] ?? [] }
}
