// convolve-bench: the issue-5 workloads, one table row each.
//   swift run -c release convolve-bench W1|W2|W3|all [--epochs N] [--limit N] [--threads N] [--profile] [--no-winograd]
// Data from CONVOLVE_DATA_DIR (or --data-dir). Prints: workload, train img/s (median of epochs after
// the first), eval img/s (10k test set, batch 1000, median of 3), seconds from process start to the
// first training step, peak RSS in MB.
import Foundation
import Convolve
import ConvolveNN
import ConvolveData
import ConvolveTraining

func processAgeSeconds() -> Double {
    // /proc/self/stat field 22 is the start time in clock ticks since boot.
    guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
          let uptime = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8) else { return .nan }
    let fields = stat.split(separator: ")").last!.split(separator: " ")
    let start = Double(fields[19]) ?? 0   // field 22 overall; 20th after "(comm)"
    let up = Double(uptime.split(separator: " ")[0]) ?? 0
    return up - start / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func peakRSSMB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

var args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    let v = args[i + 1]; args.removeSubrange(i...(i + 1)); return v
}
func flag(_ name: String) -> Bool {
    guard let i = args.firstIndex(of: name) else { return false }
    args.remove(at: i); return true
}
let epochsOpt = option("--epochs").flatMap(Int.init)
let limitOpt = option("--limit").flatMap(Int.init)
let dataDir = option("--data-dir")
if let t = option("--threads").flatMap(Int.init) { Parallel.threads = max(1, t) }
let profile = flag("--profile")
if flag("--no-winograd") { Winograd.isEnabled = false }
let which = args.first ?? "all"
if which == "pool" {
    // Cost of one parallel dispatch (8 chunks, trivial bodies) while the pool is hot, vs inline.
    var sink = [Int](repeating: 0, count: 64)
    for mode in ["inline", "pool"] {
        let t0 = Date()
        let reps = 20000
        for r in 0..<reps {
            if mode == "inline" { for i in 0..<8 { sink[i * 8] &+= r } }
            else { sink.withUnsafeMutableBufferPointer { p in Parallel.forChunksIndexed(8, work: 1 << 30) { c, _ in p[c * 8] &+= r } } }
        }
        print(String(format: "%@: %.2f us per dispatch", mode as NSString, Date().timeIntervalSince(t0) / Double(reps) * 1e6))
    }
    exit(0)
}
if which == "conv" {
    // Forward and backward time of single conv2d calls on the W2 / W3 geometries.
    let shapes = [(64, 1, 28, 4, 1), (64, 4, 14, 4, 1), (64, 32, 26, 64, 0)]
    let small = flag("--small")
    for (n, c, hw, oc, pad) in small ? Array(shapes.prefix(2)) : shapes {
        let x = Tensor.uniform([n, c, hw, hw], requiresGrad: c > 1)
        let w = Tensor.uniform([oc, c, 3, 3], requiresGrad: true), b = Tensor.uniform([oc], requiresGrad: true)
        var fwd: [Double] = [], bwd: [Double] = []
        for _ in 0..<(small ? 1000 : 30) {
            let t0 = Date()
            let y = conv2d(x, weight: w, bias: b, padding: (pad, pad))
            let t1 = Date()
            y.backward(Tensor.ones(y.shape))
            fwd.append(t1.timeIntervalSince(t0)); bwd.append(Date().timeIntervalSince(t1))
            x.grad = nil; w.grad = nil; b.grad = nil
        }
        print(String(format: "conv %dx%dx%dx%d -> %d: forward %.1f us, backward %.1f us", n, c, hw, hw, oc,
                     fwd.sorted()[fwd.count / 2] * 1e6, bwd.sorted()[bwd.count / 2] * 1e6))
    }
    exit(0)
}
if which == "gemm" {
    // GF/s of the SGEMM on square and on W3's convolution shapes, 1 thread and all threads.
    for (m, n, k, ta, tb) in [(512, 512, 512, false, false), (1024, 1024, 1024, false, false),
                              (64, 576, 288, false, false), (64, 288, 576, false, true), (288, 576, 64, true, false)] {
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
        var c = [Float](repeating: 0, count: m * n)
        for threads in [1, Parallel.threads] {
            var best = Double.infinity
            for _ in 0..<5 {
                let t0 = Date()
                var reps = 0
                while Date().timeIntervalSince(t0) < 0.2 {
                    sgemm(transA: ta, transB: tb, m: m, n: n, k: k, a: a, lda: ta ? m : k, b: b, ldb: tb ? k : n,
                          c: &c, ldc: n, threads: threads)
                    reps += 1
                }
                best = min(best, Date().timeIntervalSince(t0) / Double(reps))
            }
            print(String(format: "gemm %4d x %4d x %4d ta=%d tb=%d threads=%d: %6.1f GF/s", m, n, k, ta ? 1 : 0, tb ? 1 : 0,
                         threads, 2 * Double(m * n * k) / best / 1e9))
        }
    }
    exit(0)
}
let workloads = which == "all" ? ["W1", "W2", "W3"] : [which.uppercased()]

let location = DataLocation(directory: dataDir)
if which == "data" {
    // Time to read + decompress + validate both MNIST splits, and DataLoader batches/s (batch 64, shuffled,
    // ToTensor + Normalize, prefetch on), medians of 5.
    var loads: [Double] = [], rates: [Double] = []
    var train: ImageDataset?
    for _ in 0..<5 {
        let t0 = Date()
        do { train = try location.load(.mnist, train: true); _ = try location.load(.mnist, train: false) }
        catch { FileHandle.standardError.write(Data("convolve-bench: \(error)\n".utf8)); exit(1) }
        loads.append(Date().timeIntervalSince(t0))
    }
    let ds = train!.with(transform: Compose(ToTensor(), Normalize(mean: [0.5], std: [0.5])))
    for _ in 0..<5 {
        let loader = DataLoader(ds, batchSize: 64, shuffle: true, seed: 1)
        let t0 = Date()
        var n = 0
        for (x, _) in loader { n += x.shape[0] > 0 ? 1 : 0 }
        rates.append(Double(n) / Date().timeIntervalSince(t0))
    }
    print(String(format: "load+decompress MNIST (70k images): %.3f s   DataLoader: %.0f batches/s of 64", loads.sorted()[2], rates.sorted()[2]))
    exit(0)
}
let trainRaw: ImageDataset, testRaw: ImageDataset
do {
    trainRaw = try location.load(.mnist, train: true)
    testRaw = try location.load(.mnist, train: false)
} catch {
    FileHandle.standardError.write(Data("convolve-bench: \(error)\n".utf8)); exit(1)
}

print("workload  threads  train_img/s  eval_img/s  first_step_s  peak_rss_MB  epochs  images/epoch")
for w in workloads {
    manualSeed(0)
    let zoo: ZooModel, batch: Int, lr: Double
    var transform: any Transform = ToTensor()
    switch w {
    case "W1": (zoo, batch, lr) = (.kerasSeed, 32, 1e-3)
    case "W2": (zoo, batch, lr) = (.torchSeed, 64, 1e-2); transform = Compose(ToTensor(), Normalize(mean: [0.5], std: [0.5]))
    case "W3": (zoo, batch, lr) = (.mnistCNN, 64, 1e-3); transform = Compose(ToTensor(), Normalize.mnist)
    default: FileHandle.standardError.write(Data("unknown workload \(w) (W1, W2, W3, all)\n".utf8)); exit(1)
    }
    let epochs = epochsOpt ?? 3
    let limit = limitOpt ?? (w == "W3" ? 12800 : 60000)
    let train = trainRaw.prefix(limit).with(transform: transform)
    let test = testRaw.with(transform: transform)
    let model = zoo.make()
    var recipe = zoo.defaults
    recipe.lr = lr; recipe.optimizer = "adam"
    // The engine's own train step (Trainer.trainStep), batch by batch.
    let optimizer: Optimizer
    do { optimizer = try recipe.makeOptimizer(model.parameters()) }
    catch { FileHandle.standardError.write(Data("convolve-bench: \(error)\n".utf8)); exit(1) }
    let trainer = Trainer(model: model, optimizer: optimizer)
    let loader = DataLoader(train, batchSize: batch, shuffle: true, seed: 0)
    var firstStep = Double.nan
    var rates: [Double] = []
    var steps = 0
    for e in 0..<epochs {
        if profile && e == 1 { Profiler.enabled = true; Profiler.reset(); steps = 0 }
        model.train()
        let t0 = Date()
        var n = 0
        var it = loader.makeIterator()
        while true {
            guard let (x, y) = Profiler.measure("data (wait for batch)", { it.next() }) else { break }
            if firstStep.isNaN { firstStep = processAgeSeconds() }
            trainer.trainStep(x, y)
            n += y.count
            steps += 1
        }
        rates.append(Double(n) / Date().timeIntervalSince(t0))
    }
    Profiler.enabled = false
    let trainRate = rates.count > 1 ? rates.dropFirst().sorted()[(rates.count - 1) / 2] : rates[0]
    model.eval()
    releaseUnusedMemory()
    var evalRates: [Double] = []
    for _ in 0..<3 {
        let t0 = Date()
        withNoGrad { for (x, _) in DataLoader(test, batchSize: 1000, prefetch: false) { _ = inferInSlices(x) { model($0) } } }
        evalRates.append(Double(test.count) / Date().timeIntervalSince(t0))
    }
    let evalRate = evalRates.sorted()[1]
    print(String(format: "%-9@ %7d  %11.0f  %10.0f  %12.2f  %11.1f  %6d  %12d", w as NSString, Parallel.threads, trainRate, evalRate,
                 firstStep, peakRSSMB(), epochs, train.count))
    if profile {
        print("profile of \(w) (epochs after the first, \(steps) steps; forward rows include their backward only under 'backward'):")
        print(Profiler.report(steps: steps))
    }
}
