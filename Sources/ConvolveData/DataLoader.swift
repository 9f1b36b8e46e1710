import Foundation
import Dispatch
import Synchronization
import Convolve

/// Batches a dataset like `torch.utils.data.DataLoader`: fixed batch size, optional seeded shuffle
/// (a new permutation each epoch, reproducible from the seed), optional drop-last, and the next batch
/// prepared on a background thread while the current one trains.
///
/// ```swift
/// for (images, labels) in trainLoader { ... }   // images: [N, C, H, W], labels: [Int]
/// ```
public final class DataLoader<Source: BatchSource>: Sequence {
    public let dataset: Source
    public let batchSize: Int
    public let shuffle: Bool
    public let dropLast: Bool
    /// Prepare the next batch in the background while the current one trains, where that helps: when
    /// a core is left over (`Parallel.threads`, times the data-parallel ranks, below the machine's
    /// cores), or when a batch takes longer
    /// than ``backgroundBuildThreshold`` to build (heavy augmentation). Otherwise, with every core
    /// computing, a background thread would only take its time from a compute thread in the middle of a
    /// parallel op (and cost a thread wake-up per batch), so a cheap batch is built when it is asked for.
    /// The batches are the same either way. False: always build when asked.
    public var prefetch: Bool
    /// Build time (seconds) above which a batch is prepared in the background even when every core
    /// computes. Measured on two cores: W4's crop-and-flip batches (~0.25 ms) train faster built when
    /// asked, mnist-cnn's random-affine batches (~1.2 ms) faster built in the background.
    public var backgroundBuildThreshold: Double = 0.5e-3
    /// Seconds the last batch took to build (bit pattern; written by whichever thread built it).
    private let lastBuildBits = Atomic<UInt64>(0)
    /// Whether to build the next batch on a background thread (see `prefetch`).
    var buildsInBackground: Bool {
        prefetch && Self.backgroundHelps(threads: Parallel.threads, ranks: shard?.count ?? 1, cores: Parallel.cores,
                                         lastBuild: Double(bitPattern: lastBuildBits.load(ordering: .relaxed)),
                                         threshold: backgroundBuildThreshold)
    }
    /// A core is left over for the loader when this process's compute threads, times the data-parallel
    /// ranks (counted as if they shared this machine, as ranks started on one machine do), are fewer than
    /// the machine's cores; otherwise only a slow build is worth a background thread.
    static func backgroundHelps(threads: Int, ranks: Int, cores: Int, lastBuild: Double, threshold: Double) -> Bool {
        threads * ranks < cores || lastBuild > threshold
    }
    /// Data-parallel training: this loader yields rank `rank`'s part of every global batch of
    /// `batchSize × count` samples (DDP's `DistributedSampler`, without padding: every sample is used
    /// exactly once per epoch across the ranks; a rank's part of a short last batch may be empty).
    /// Every rank must use the same seed (the same epoch order).
    public let shard: (rank: Int, count: Int)?
    private let generator: RandomGenerator
    /// Seeds the random transforms (augmentation) of every batch, with the epoch order and batch index.
    public let augmentationSeed: UInt64

    /// `seed` fixes the shuffle order (default: drawn from the global generator, itself seedable).
    ///
    /// Batches of `[batchSize, C, H, W]` floats (the dataset's transform applied) and their labels.
    ///
    /// - Parameters:
    ///   - dataset: the samples.
    ///   - batchSize: samples per batch (the last batch may be smaller).
    ///   - shuffle: a new random order every epoch.
    ///   - dropLast: drop a last, smaller batch.
    ///   - seed: fixes the shuffle order (default: drawn from the default generator, itself seedable).
    ///   - prefetch: build the next batch on a background thread.
    ///   - shard: `(rank, ranks)` for data-parallel training: this rank's part of each global batch.
    ///
    /// ### See Also
    /// - ``ImageDataset``, ``TensorDataset``, ``Transform``
    public init(_ dataset: Source, batchSize: Int = 1, shuffle: Bool = false, dropLast: Bool = false,
                seed: UInt64? = nil, prefetch: Bool = true, shard: (rank: Int, count: Int)? = nil) {
        precondition(batchSize > 0, "batch size must be positive")
        precondition(shard.map { $0.count >= 1 && $0.rank >= 0 && $0.rank < $0.count } ?? true, "bad shard")
        self.shard = shard
        self.dataset = dataset; self.batchSize = batchSize; self.shuffle = shuffle; self.dropLast = dropLast
        self.prefetch = prefetch
        let base = seed ?? RandomGenerator.global.next()
        generator = RandomGenerator(seed: base)
        augmentationSeed = base ^ 0xA5A5_5A5A_C3C3_3C3C
    }

    /// Number of batches per epoch (`len(loader)`; sharded: global batches, the same on every rank).
    public var count: Int {
        let global = batchSize * (shard?.count ?? 1)
        return dropLast ? dataset.count / global : (dataset.count + global - 1) / global
    }

    /// The positions in an epoch's order that batch `b` takes on this rank.
    /// - Parameters:
    ///   - b: the batch.
    ///   - orderCount: samples in the epoch's order.
    public func positions(ofBatch b: Int, in orderCount: Int) -> Range<Int> {
        let global = batchSize * (shard?.count ?? 1)
        let lo = b * global, hi = Swift.min(orderCount, lo + global)
        guard let shard else { return lo..<hi }
        let m = hi - lo
        return (lo + shard.rank * m / shard.count)..<(lo + (shard.rank + 1) * m / shard.count)
    }

    /// The sample order for the next epoch (advances the shuffle generator).
    public func nextEpochOrder() -> [Int] {
        shuffle ? generator.permutation(dataset.count) : Array(0..<dataset.count)
    }

    /// Resets the shuffle generator (e.g. to resume at an epoch boundary with the same order).
    ///
    /// - Parameter seed: the new shuffle seed.
    public func reseed(_ seed: UInt64) { generator.reseed(seed) }

    /// The next epoch's batches (a new order when shuffling; new augmentation draws every epoch).
    public func makeIterator() -> Iterator {
        epochsStarted += 1
        return Iterator(loader: self, order: nextEpochOrder(), epoch: epochsStarted - 1)
    }
    private var epochsStarted = 0

    /// Iterates the batches of a given epoch order from batch `startBatch` on (a run resumed
    /// mid-epoch). Does not advance the shuffle generator.
    ///
    /// - Parameters:
    ///   - order: the epoch's sample order.
    ///   - startBatch: the first batch to build.
    ///   - epoch: the epoch's index (seeds its augmentation with the order).
    public func makeIterator(order: [Int], startBatch: Int = 0, epoch: Int = 0) -> Iterator {
        var it = Iterator(loader: self, order: order, epoch: epoch)
        it.index = Swift.max(0, startBatch)
        return it
    }

    /// The shuffle generator's state (checkpoints save it; `restoreShuffleState` puts it back).
    public var shuffleState: Xoshiro256StarStar { generator.snapshot }
    /// - Parameter state: a saved `shuffleState`.
    public func restoreShuffleState(_ state: Xoshiro256StarStar) { generator.restore(state) }

    /// Builds batch `b` of `order`. Its random transforms are seeded by the loader's seed, the
    /// epoch (its index and order) and the batch's position: the same batch is augmented the same way however the
    /// run got there (resumed mid-epoch, prefetched or not).
    func makeBatch(_ order: [Int], _ b: Int, orderHash: UInt64) -> (Tensor, [Int]) {
        let range = positions(ofBatch: b, in: order.count)
        let rankSalt = UInt64(shard?.rank ?? 0) &* 0xBF58_476D_1CE4_E5B9
        var mix = Xoshiro256StarStar(seed: augmentationSeed ^ orderHash &+ UInt64(b) &* 0x9E37_79B9_7F4A_7C15 ^ rankSalt)
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            lastBuildBits.store(seconds.bitPattern, ordering: .relaxed)
        }
        return dataset.batch(Array(order[range]), seed: mix.next())
    }

    /// A fingerprint of an epoch's order (FNV-1a), so each epoch's augmentation differs.
    static func fingerprint(_ order: [Int]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in order { h = (h ^ UInt64(truncatingIfNeeded: i)) &* 0x100_0000_01b3 }
        return h
    }

    /// Iterates one epoch's batches.
    public struct Iterator: IteratorProtocol {
        let loader: DataLoader
        /// This epoch's sample order.
        public let order: [Int]
        var index = 0
        var pending: Pending?
        let orderHash: UInt64

        init(loader: DataLoader, order: [Int], epoch: Int) {
            self.loader = loader; self.order = order
            orderHash = DataLoader.fingerprint(order) ^ UInt64(epoch) &* 0xD6E8_FEB8_6659_FD93
        }

        public mutating func next() -> (Tensor, [Int])? {
            guard index < loader.count else { return nil }
            let batch = pending?.wait() ?? loader.makeBatch(order, index, orderHash: orderHash)
            index += 1
            pending = nil
            if index < loader.count && loader.buildsInBackground {
                let (l, o, i, h) = (loader, order, index, orderHash)
                pending = Pending { l.makeBatch(o, i, orderHash: h) }
            }
            return batch
        }
    }

    /// A batch being built on a background thread.
    final class Pending: @unchecked Sendable {
        private var value: (Tensor, [Int])?
        private let ready = DispatchSemaphore(value: 0)
        init(_ work: @escaping () -> (Tensor, [Int])) {
            DispatchQueue.global(qos: .userInitiated).async { [self] in
                value = work()
                ready.signal()
            }
        }
        func wait() -> (Tensor, [Int]) { ready.wait(); return value! }
    }
}
