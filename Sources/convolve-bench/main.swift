// convolve-bench: the issue-5 workloads, one table row each.
//   swift run -c release convolve-bench --help   (every workload and option; a misspelt one is an error)
//   swift run -c release convolve-bench W1|W2|W3|W4|all|augment [--epochs N] [--limit N] [--threads N] [--profile] [--no-winograd]
//   swift run -c release convolve-bench W3|W4 --scaling [--blocks N]   (1 vs all threads, alternating in one process)
//   swift run -c release convolve-bench gemm|memory   (the GEMM's GF/s; streaming GB/s, cache-resident and not)
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

/// The training rate reported: the median of the epochs after the first (the only one if there is one).
func trainRate(_ rates: [Double]) -> Double {
    rates.count > 1 ? rates.dropFirst().sorted()[(rates.count - 1) / 2] : rates[0]
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
let usage = """
    usage: convolve-bench W1|W2|W3|W4|all [--epochs N] [--limit N] [--threads N] [--profile] [--no-winograd] [--distributed]
           convolve-bench W3|W4 --scaling [--blocks N]     1 vs all threads, alternating in one process, with the host's GEMM scaling
           convolve-bench gemm|memory|pool|conv|dropout|data|augment   kernels and loaders ([--small|--strided|--w4] for conv)
           convolve-bench imagenet   ImageNet models' inference at 224×224, batch 32 (images/s; Benchmarks/pytorch_imagenet.py beside it)
    MNIST comes from --data-dir DIR or CONVOLVE_DATA_DIR (else the cache, else a verified download).
    """
if args.contains("--help") || args.contains("-h") { print(usage); exit(0) }
/// A number given to `name`, or nil when the option is absent; a value that is not a number ends the run.
func numberOption(_ name: String) -> Int? {
    guard let text = option(name) else {
        if args.contains(name) { FileHandle.standardError.write(Data("convolve-bench: \(name) needs a value\n\(usage)\n".utf8)); exit(1) }
        return nil
    }
    guard let value = Int(text), value > 0 else {
        FileHandle.standardError.write(Data("convolve-bench: \(name) takes a positive whole number, not '\(text)'\n".utf8)); exit(1)
    }
    return value
}
let epochsOpt = numberOption("--epochs")
let limitOpt = numberOption("--limit")
let dataDir = option("--data-dir")
if let t = numberOption("--threads") { Parallel.threads = t }
// As in the `convolve` command: the pool's threads may be bound to this process's CPUs.
Parallel.bindsThreads = true
let profile = flag("--profile")
let scaling = flag("--scaling")
let blocksOpt = numberOption("--blocks") ?? 10
// Data-parallel (under mpirun): the workload's batch is the global batch, split over the ranks; rank 0
// prints the global rate and the all-reduce's time per step.
let world: MPICommunicator? = flag("--distributed") ? {
    do { return try MPICommunicator.start() } catch { FileHandle.standardError.write(Data("convolve-bench: \(error)\n".utf8)); exit(1) }
}() : nil
if flag("--no-winograd") { Winograd.isEnabled = false }
let convShapes = flag("--small") ? "small" : flag("--strided") ? "strided" : flag("--w4") ? "w4" : "default"
let which = (args.first ?? "all").lowercased()
// One workload name and nothing else left: a misspelt option fails here instead of being ignored.
if args.count > 1 || !["w1", "w2", "w3", "w4", "all", "gemm", "memory", "pool", "conv", "dropout", "data", "augment", "imagenet"].contains(which) {
    FileHandle.standardError.write(Data("convolve-bench: unknown workload or option: \(args.joined(separator: " "))\n\(usage)\n".utf8)); exit(1)
}
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
    // Forward and backward time of single conv2d calls on the W2 / W3 geometries (--small: W2's only;
    // --strided: W4's stride-2 layers, batch 128; --w4: all of W4's layers).
    // (batch, channels, size, out channels, padding, kernel, stride)
    let shapes = [(64, 1, 28, 4, 1, 3, 1), (64, 4, 14, 4, 1, 3, 1), (64, 32, 26, 64, 0, 3, 1)]
    let strided = [(128, 16, 32, 32, 1, 3, 2), (128, 16, 32, 32, 0, 1, 2), (128, 32, 16, 64, 1, 3, 2), (128, 32, 16, 64, 0, 1, 2)]
    let w4 = [(128, 3, 32, 16, 1, 3, 1), (128, 16, 32, 16, 1, 3, 1), (128, 32, 16, 32, 1, 3, 1), (128, 64, 8, 64, 1, 3, 1)] + strided
    let small = convShapes == "small"
    for (n, c, hw, oc, pad, k, stride) in convShapes == "strided" ? strided : convShapes == "w4" ? w4 : small ? Array(shapes.prefix(2)) : shapes {
        let x = Tensor.uniform([n, c, hw, hw], requiresGrad: c > 1)
        let w = Tensor.uniform([oc, c, k, k], requiresGrad: true), b = Tensor.uniform([oc], requiresGrad: true)
        var fwd: [Double] = [], bwd: [Double] = []
        for _ in 0..<(small ? 1000 : 30) {
            let t0 = Date()
            let y = conv2d(x, weight: w, bias: b, stride: (stride, stride), padding: (pad, pad))
            let t1 = Date()
            y.backward(Tensor.ones(y.shape))
            fwd.append(t1.timeIntervalSince(t0)); bwd.append(Date().timeIntervalSince(t1))
            x.grad = nil; w.grad = nil; b.grad = nil
        }
        print(String(format: "conv %dx%dx%dx%d -> %d, %dx%d stride %d: forward %.1f us, backward %.1f us", n, c, hw, hw, oc, k, k, stride,
                     fwd.sorted()[fwd.count / 2] * 1e6, bwd.sorted()[bwd.count / 2] * 1e6))
    }
    exit(0)
}
if which == "dropout" {
    // Forward and backward of dropout (p 0.25) on mnist-cnn's first dropout input (64 × 9216), median of 200.
    let x = Tensor.uniform([64, 9216], requiresGrad: true), g = Tensor.ones([64, 9216])
    var fwd: [Double] = [], bwd: [Double] = []
    for _ in 0..<200 {
        let t0 = Date()
        let y = dropout(x, p: 0.25, training: true)
        let t1 = Date()
        y.backward(g)
        fwd.append(t1.timeIntervalSince(t0)); bwd.append(Date().timeIntervalSince(t1))
        x.grad = nil
    }
    print(String(format: "dropout 64x9216 p=0.25 threads=%d: forward %.1f us, backward %.1f us", Parallel.threads,
                 fwd.sorted()[100] * 1e6, bwd.sorted()[100] * 1e6))
    exit(0)
}
/// Seconds per call of `body`: the best of 5 rounds, each repeating it for at least 0.2 s.
func bestSecondsPerCall(_ body: () -> Void) -> Double {
    var best = Double.infinity
    for _ in 0..<5 {
        let t0 = Date()
        var reps = 0
        while Date().timeIntervalSince(t0) < 0.2 { body(); reps += 1 }
        best = min(best, Date().timeIntervalSince(t0) / Double(reps))
    }
    return best
}
if which == "imagenet" {
    // Inference images/s of each ImageNet architecture of the registry at batch 32, 224×224, eval mode
    // (random weights: speed does not depend on them), median of 5 timed batches after one warm-up.
    // With ONNX_DIR set, each is also exported there (<name>.onnx) for Benchmarks/onnxruntime_imagenet.py.
    let x = Tensor.uniform([32, 3, 224, 224], low: -2, high: 2, generator: RandomGenerator(seed: 1))
    let onnxDirectory = ProcessInfo.processInfo.environment["ONNX_DIR"]
    let only = ProcessInfo.processInfo.environment["MODELS"].map { Set($0.split(separator: ",").map(String.init)) }
    for zoo in ZooModel.allCases where zoo.pretrained != nil && only.map({ $0.contains(zoo.rawValue) }) ?? true {
        let model = zoo.make()
        model.eval()
        if let onnxDirectory {
            try ONNXExport.export(model, inputShape: [3, 224, 224], to: onnxDirectory + "/\(zoo.rawValue).onnx")
        }
        _ = withNoGrad { model(x) }
        if profile { Profiler.enabled = true; Profiler.reset() }
        var times: [Double] = []
        for _ in 0..<5 {
            let t0 = Date()
            _ = withNoGrad { inferInSlices(x) { model($0) } }
            times.append(Date().timeIntervalSince(t0))
        }
        let median = times.sorted()[2]
        print(String(format: "%@ batch 32 224x224 threads=%d: %.1f img/s (median of 5; %.3f s per batch)",
                     zoo.rawValue, Parallel.threads, 32 / median, median))
        if profile { print(Profiler.report(steps: 5)); Profiler.enabled = false }
    }
    exit(0)
}
if which == "gemm" {
    // GF/s of the SGEMM on square and on W3's convolution and fc1 shapes, 1 thread and all threads.
    for (m, n, k, ta, tb) in [(512, 512, 512, false, false), (1024, 1024, 1024, false, false),
                              (64, 576, 288, false, false), (64, 288, 576, false, true), (288, 576, 64, true, false),
                              // mnist-cnn's fc1: forward (K split), input gradient, weight gradient
                              (64, 128, 9216, false, true), (64, 9216, 128, false, false), (128, 9216, 64, true, false)] {
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
        var c = [Float](repeating: 0, count: m * n)
        for threads in [1, Parallel.threads] {
            let best = bestSecondsPerCall {
                sgemm(transA: ta, transB: tb, m: m, n: n, k: k, a: a, lda: ta ? m : k, b: b, ldb: tb ? k : n,
                      c: &c, ldc: n, threads: threads)
            }
            print(String(format: "gemm %4d x %4d x %4d ta=%d tb=%d threads=%d: %6.1f GF/s", m, n, k, ta ? 1 : 0, tb ? 1 : 0,
                         threads, 2 * Double(m * n * k) / best / 1e9))
        }
    }
    exit(0)
}
/// Keeps a result the optimizer could otherwise drop (with the loads that made it).
@inline(never) func keepAlive(_ value: Float) { if value == -.greatestFiniteMagnitude { print(value) } }
if which == "memory" {
    // The ceiling of memory-bound passes (batch norm, masks, transposes): GB/s of a streaming read (a sum)
    // and of a read + write (y = a·x + b into a second buffer), over buffers that fit the last-level cache
    // (8 MB) and over ones that do not (256 MB), at 1 thread and all threads, through the pool's
    // streaming chunks; best of 5 rounds of ~0.2 s. Two threads read the cache-resident buffer twice as
    // fast as one; how much faster they read main memory is the most a memory-bound pass can scale.
    for megabytes in [8, 256] {
        let count = megabytes << 18
        let source = [Float](repeating: 1, count: count)
        var destination = [Float](repeating: 0, count: count)
        let lanes = 16, blocks = count / lanes
        for copy in [false, true] {
            for threads in [1, Parallel.threads] {
                Parallel.threads = threads
                var partial = [Float](repeating: 0, count: 64)
                let best = source.withUnsafeBufferPointer { x in destination.withUnsafeMutableBufferPointer { y in
                    let xs = UnsafeRawPointer(x.baseAddress!), ys = UnsafeMutableRawPointer(y.baseAddress!)
                    return bestSecondsPerCall {
                        partial.withUnsafeMutableBufferPointer { part in
                            Parallel.forChunksIndexed(blocks, work: count, streaming: true) { chunk, range in
                                var total = SIMD16<Float>()
                                for b in range {
                                    let v = xs.loadUnaligned(fromByteOffset: b * lanes * 4, as: SIMD16<Float>.self)
                                    if copy { ys.storeBytes(of: v * 1.5 + 0.5, toByteOffset: b * lanes * 4, as: SIMD16<Float>.self) }
                                    else { total += v }
                                }
                                part[chunk % 64] += total.sum()
                            }
                        }
                    }
                } }
                keepAlive(partial.reduce(0, +))
                let bytes = Double(count * 4 * (copy ? 2 : 1))
                print(String(format: "memory %3d MB %@ threads=%d: %6.1f GB/s", megabytes,
                             (copy ? "read+write" : "read      ") as NSString, threads, bytes / best / 1e9))
            }
        }
    }
    exit(0)
}
/// Two-thread scaling measured in one process: after a second of warm-up, training alternates between blocks
/// of one thread and of all threads (order 1, N, N, 1, 1, N, ...: a slow drift of the machine's speed
/// weighs on both alike), each block about 0.4 s of steps, and prints each block's rate, the medians and
/// the median of the ratios of neighbouring blocks, beside the host's own GEMM scaling around each pair
/// (`gemmScaling`: it marks the minutes when the host runs two vCPUs like one core). The loader decides
/// per batch as in separate runs (in the background at one thread, where a core is free; inline at two).
func measureScaling(_ name: String, blocks: Int, step: () -> Int) {
    let all = Parallel.threads
    var one: [Double] = [], many: [Double] = [], ratios: [Double] = [], missed: [Double] = []
    var t0 = Date(), images = 0, steps = 0
    Parallel.recordsParticipation = true
    defer { Parallel.recordsParticipation = false }
    while Date().timeIntervalSince(t0) < 1 { _ = step() }
    // Steps per block: about 0.4 s at one thread.
    Parallel.threads = 1
    t0 = Date()
    while Date().timeIntervalSince(t0) < 0.4 { images += step(); steps += 1 }
    // The host's own two-core scaling around each pair: a cache-resident GEMM (compute only) at 1 and at
    // all threads, just before and just after the pair's blocks (the lower of the two). In the host's
    // spells two vCPUs run like one core (BENCHMARKS-HISTORY.md, session 14): this ratio then falls to ~1.0×
    // with the workload's.
    var hostRatios: [Double] = [], hostBefore = 0.0
    for b in 0..<(2 * blocks) {
        if b % 2 == 0 { hostBefore = gemmScaling(all) }
        let threads = (b % 4 == 0 || b % 4 == 3) ? 1 : all
        Parallel.threads = threads
        t0 = Date(); images = 0
        Parallel.resetParticipation()
        for _ in 0..<steps { images += step() }
        let rate = Double(images) / Date().timeIntervalSince(t0)
        if threads == 1 { one.append(rate) } else { many.append(rate); missed.append(Parallel.participation.shareWithoutWorkers) }
        if b % 2 == 1 {
            ratios.append(many.last! / one.last!)
            hostRatios.append(Swift.min(hostBefore, gemmScaling(all)))
        }
    }
    Parallel.threads = all
    func median(_ v: [Double]) -> Double { v.sorted()[(v.count - 1) / 2] }
    print("scaling of \(name): \(blocks) pairs of \(steps)-step blocks, 1 and \(all) threads alternating")
    print("  1 thread  img/s: " + one.map { String(format: "%.0f", $0) }.joined(separator: " "))
    print("  \(all) threads img/s: " + many.map { String(format: "%.0f", $0) }.joined(separator: " "))
    print("  parallel time no worker joined (\(all) threads): " + missed.map { String(format: "%.1f%%", $0 * 100) }.joined(separator: " "))
    // The pairs whose multi-thread block had a worker in at least 98% of its parallel time: where the host
    // ran every core this process asked for (reported beside, never instead of, the median of all pairs).
    let served = zip(ratios, missed).filter { $0.1 <= 0.02 }.map(\.0)
    print("  the host's GEMM \(all) ÷ 1 threads around each pair: " + hostRatios.map { String(format: "%.2f", $0) }.joined(separator: " "))
    print(String(format: "  median 1 thread %.0f, %d threads %.0f; median ratio %.3f (pairs: %@); %d pairs with workers served: %@",
                 median(one), all, median(many), median(ratios),
                 ratios.map { String(format: "%.2f", $0) }.joined(separator: " ") as NSString, served.count,
                 (served.isEmpty ? "-" : String(format: "median ratio %.3f", median(served))) as NSString))
    // The pairs outside the host's spells (its GEMM scaled at least 1.5× both before and after; in a
    // spell it reads ~1.0×): reported beside the median of all pairs, never instead of it. A 15 ms
    // probe is noisy (1.5–1.95× in calm minutes), so it marks spells, not the host's exact share.
    let outside = zip(ratios, hostRatios).filter { $0.1 >= 1.5 }.map(\.0)
    print(String(format: "  %d pairs outside the host's spells (its GEMM >= 1.5x): %@", outside.count,
                 (outside.isEmpty ? "-" : String(format: "median ratio %.3f", median(outside))) as NSString))
}

/// The all-threads ÷ 1-thread rate of a 512³ SGEMM (cache-resident: compute only), medians of 9 calls each
/// (~15 ms): how much of a second core the host gives at this moment.
func gemmScaling(_ threads: Int) -> Double {
    let size = 512
    let a = [Float](repeating: 0.5, count: size * size), b = [Float](repeating: 0.25, count: size * size)
    var c = [Float](repeating: 0, count: size * size)
    func seconds(_ t: Int) -> Double {
        var times: [Double] = []
        for _ in 0..<9 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            sgemm(transA: false, transB: false, m: size, n: size, k: size, a: a, lda: size, b: b, ldb: size,
                  c: &c, ldc: size, threads: t)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0))
        }
        return times.sorted()[4]
    }
    return seconds(1) / seconds(threads)
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
/// CIFAR-shaped samples (32×32 RGB, 10 classes) of seeded random pixels: speed does not depend on content.
func cifarShaped(_ n: Int, seed: UInt64) -> ImageDataset {
    var g = Xoshiro256StarStar(seed: seed)
    let pixels = (0..<(n * 3072)).map { _ in UInt8(truncatingIfNeeded: g.next() >> 56) }
    return ImageDataset(name: "CIFAR-shaped", pixels: pixels, labels: (0..<n).map { UInt8($0 % 10) }, channels: 3,
                        height: 32, width: 32, classNames: (0..<10).map(String.init))
}
if which == "augment" {
    // Images/s one thread builds into batches (what the loader's background thread does), with and without
    // augmentation: MNIST with the digits preset (random affine), CIFAR-shaped with crops + flips.
    // Medians of 5 passes over 10,240 images, batch 128, prefetch off (so the rate is one thread's).
    let mnist: ImageDataset
    do { mnist = try location.load(.mnist, train: true).prefix(10_240) }
    catch { FileHandle.standardError.write(Data("convolve-bench: \(error)\n".utf8)); exit(1) }
    let cifar = cifarShaped(10_240, seed: 3)
    print("dataset        augmentation   loader_img/s (one thread)")
    for (name, ds, preset) in [("MNIST", mnist, AugmentationPreset.digits), ("CIFAR-shaped", cifar, .crops)] {
        let normalize = Normalize(mean: [Float](repeating: 0.5, count: ds.channels), std: [Float](repeating: 0.25, count: ds.channels))
        for augmented in [false, true] {
            let base: [any Transform] = [ToTensor(), normalize]
            let transform = Compose((augmented ? preset.transforms(height: ds.height, width: ds.width) : []) + base)
            var rates: [Double] = []
            for r in 0..<5 {
                let loader = DataLoader(ds.with(transform: transform), batchSize: 128, shuffle: true, seed: UInt64(r), prefetch: false)
                let t0 = Date()
                var n = 0
                for (_, y) in loader { n += y.count }
                rates.append(Double(n) / Date().timeIntervalSince(t0))
            }
            print(String(format: "%-14@ %-14@ %12.0f", name as NSString, (augmented ? preset.rawValue : "none") as NSString, rates.sorted()[2]))
        }
    }
    exit(0)
}
if which == "w4" {
    // The zoo's CIFAR ResNet (resnet8) on 32×32×3, batch 128, its recipe (SGD 0.1, momentum 0.9, weight
    // decay 5e-4) with augmentation (random crops with padding 4 + flips) on: train img/s (median of the
    // epochs after the first) and eval img/s, on CIFAR-shaped data.
    manualSeed(0)
    let epochs = epochsOpt ?? 3, limit = limitOpt ?? 5120
    let recipe = ZooModel.resnet8.defaults
    let base = Compose(ToTensor(), Normalize(mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616]))
    let train = cifarShaped(limit, seed: 1).with(transform: Compose(AugmentationPreset.crops.transforms(height: 32, width: 32) + [base]))
    let test = cifarShaped(2000, seed: 2).with(transform: base)
    let model = ResNet(channels: 3, classes: 10)
    let trainer: Trainer
    do { trainer = Trainer(model: model, optimizer: try recipe.makeOptimizer(model.parameters())) }
    catch { FileHandle.standardError.write(Data("convolve-bench: \(error)\n".utf8)); exit(1) }
    let loader = DataLoader(train, batchSize: recipe.batchSize, shuffle: true, seed: 0)
    if scaling {
        var it = loader.makeIterator()
        measureScaling("W4", blocks: blocksOpt) {
            guard let (x, y) = it.next() ?? { it = loader.makeIterator(); return it.next() }() else { return 0 }
            trainer.trainStep(x, y); return y.count
        }
        exit(0)
    }
    var rates: [Double] = [], firstStep = Double.nan, steps = 0
    for e in 0..<epochs {
        if profile && e == 1 { Profiler.enabled = true; Profiler.reset(); steps = 0 }
        model.train()
        let t0 = Date()
        var n = 0
        var it = loader.makeIterator()
        while let (x, y) = Profiler.measure("data (wait for batch)", { it.next() }) {
            if firstStep.isNaN { firstStep = processAgeSeconds() }
            trainer.trainStep(x, y); n += y.count; steps += 1
        }
        rates.append(Double(n) / Date().timeIntervalSince(t0))
    }
    Profiler.enabled = false
    model.eval()
    var evalRates: [Double] = []
    for _ in 0..<3 {
        let t0 = Date()
        withNoGrad { for (x, _) in DataLoader(test, batchSize: 500, prefetch: false) { _ = inferInSlices(x) { model($0) } } }
        evalRates.append(Double(test.count) / Date().timeIntervalSince(t0))
    }
    print("workload  threads  train_img/s  eval_img/s  first_step_s  peak_rss_MB  epochs  images/epoch")
    print(String(format: "%-9@ %7d  %11.0f  %10.0f  %12.2f  %11.1f  %6d  %12d", "W4" as NSString, Parallel.threads,
                 trainRate(rates), evalRates.sorted()[1], firstStep, peakRSSMB(), epochs, limit))
    if profile { print(Profiler.report(steps: steps)) }
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
    trainer.communicator = world
    let loader = DataLoader(train, batchSize: batch / (world?.size ?? 1), shuffle: true, seed: 0,
                            shard: world.map { ($0.rank, $0.size) })
    if let world { do { try world.broadcast(model.stateDict().map(\.1)) } catch { exit(1) } }
    if scaling {
        var it = loader.makeIterator()
        measureScaling(w, blocks: blocksOpt) {
            guard let (x, y) = it.next() ?? { it = loader.makeIterator(); return it.next() }() else { return 0 }
            trainer.trainStep(x, y); return y.count
        }
        continue
    }
    var firstStep = Double.nan
    var rates: [Double] = []
    var steps = 0
    for e in 0..<epochs {
        if profile && e == 1 { Profiler.enabled = true; Profiler.reset(); steps = 0 }
        model.train()
        let t0 = Date()
        var n = 0
        var it = loader.makeIterator()
        let reduceBefore = world?.allReduceSeconds ?? 0
        var epochSteps = 0
        while true {
            guard let (x, y) = Profiler.measure("data (wait for batch)", { it.next() }) else { break }
            if firstStep.isNaN { firstStep = processAgeSeconds() }
            trainer.trainStep(x, y)
            n += y.count * (world?.size ?? 1)
            steps += 1; epochSteps += 1
        }
        let seconds = Date().timeIntervalSince(t0)
        rates.append(Double(n) / seconds)
        if let world, world.rank == 0, e > 0 {
            let reduce = world.allReduceSeconds - reduceBefore
            print(String(format: "  epoch %d: %d ranks, %.2f ms per step, all-reduce %.3f ms per step (%.1f%% of the step)", e + 1, world.size,
                         seconds / Double(epochSteps) * 1000, reduce / Double(epochSteps) * 1000, reduce / seconds * 100))
        }
    }
    Profiler.enabled = false
    model.eval()
    releaseUnusedMemory()
    var evalRates: [Double] = []
    for _ in 0..<3 {
        let t0 = Date()
        withNoGrad { for (x, _) in DataLoader(test, batchSize: 1000, prefetch: false) { _ = inferInSlices(x) { model($0) } } }
        evalRates.append(Double(test.count) / Date().timeIntervalSince(t0))
    }
    let evalRate = evalRates.sorted()[1]
    if (world?.rank ?? 0) != 0 { continue }
    print(String(format: "%-9@ %7d  %11.0f  %10.0f  %12.2f  %11.1f  %6d  %12d", w as NSString, Parallel.threads, trainRate(rates), evalRate,
                 firstStep, peakRSSMB(), epochs, train.count))
    if profile {
        print("profile of \(w) (epochs after the first, \(steps) steps; forward rows include their backward only under 'backward'):")
        print(Profiler.report(steps: steps))
    }
}
