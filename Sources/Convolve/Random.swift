import Foundation

/// The xoshiro256** generator's state as a value: fast, seedable, and owned by one thread at a time.
/// Hot loops (dropout masks, bulk sampling) advance one of these without any locking; shared use goes
/// through `RandomGenerator`, which guards one with a lock.
public struct Xoshiro256StarStar: RandomNumberGenerator, Sendable, Equatable {
    var s0: UInt64 = 0, s1: UInt64 = 0, s2: UInt64 = 0, s3: UInt64 = 0
    /// The second value of the last Box–Muller pair, not yet returned.
    var spareNormal: Float?

    /// A state whose sequence is fully determined by `seed` (splitmix64 expands it to 256 bits).
    ///
    /// - Parameter seed: any 64 bits; equal seeds give equal sequences.
    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E3779B97F4A7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    /// The next 64 random bits.
    @inline(__always) public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// A uniform Float in [0, 1) with 24 random bits.
    @inline(__always) public mutating func nextFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A standard normal sample (Box–Muller, pairs cached).
    public mutating func nextNormal() -> Float {
        if let s = spareNormal { spareNormal = nil; return s }
        var u1 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        let r = (-2 * Foundation.log(u1)).squareRoot()
        spareNormal = Float(r * Foundation.sin(2 * Double.pi * u2))
        return Float(r * Foundation.cos(2 * Double.pi * u2))
    }

    /// A uniformly random permutation of `0..<n` (Fisher–Yates).
    ///
    /// - Parameter n: the permutation's length.
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            p.swapAt(i, j)
        }
        return p
    }

    /// The state as five words (the last encodes the cached normal), for checkpoints.
    public var words: [UInt64] {
        [s0, s1, s2, s3, spareNormal.map { 1 << 32 | UInt64($0.bitPattern) } ?? 0]
    }

    /// Restores a state saved by `words`; nil if the words cannot be one (wrong count, all-zero state).
    ///
    /// - Parameter words: five words saved from `words`.
    public init?(words: [UInt64]) {
        guard words.count == 5, words[0] | words[1] | words[2] | words[3] != 0, words[4] >> 33 == 0 else {
            return nil
        }
        s0 = words[0]; s1 = words[1]; s2 = words[2]; s3 = words[3]
        spareNormal = words[4] >> 32 == 1 ? Float(bitPattern: UInt32(truncatingIfNeeded: words[4])) : nil
    }
}

/// Eight xoshiro256** generators, one per lane: each step returns eight 64-bit draws in one vector
/// (dropout's masks: one scalar generator's serial steps cost ~1.3 ns per element, the lanes ~0.1).
struct Xoshiro256StarStarLanes {
    var s0, s1, s2, s3: SIMD8<UInt64>

    /// Lanes seeded with 32 consecutive draws of `Xoshiro256StarStar(seed:)`: fully determined by `seed`.
    init(seed: UInt64) {
        var scalar = Xoshiro256StarStar(seed: seed)
        func lanes() -> SIMD8<UInt64> {   // filled in place: no array per lane (dropout seeds one per block)
            var v = SIMD8<UInt64>()
            for j in 0..<8 { v[j] = scalar.next() }
            return v
        }
        s0 = lanes(); s1 = lanes(); s2 = lanes(); s3 = lanes()
    }

    /// The next 64 random bits of every lane (the scalar generator's step, lane by lane).
    @inline(__always) mutating func next() -> SIMD8<UInt64> {
        let times5 = s1 &* 5
        let result = ((times5 &<< 7) | (times5 &>> 57)) &* 9
        let t = s1 &<< 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = (s3 &<< 45) | (s3 &>> 19)
        return result
    }
}

/// A seedable random generator that any thread may use (like PyTorch's `torch.Generator`): a lock
/// guards its `Xoshiro256StarStar` state, taken once per call, so bulk draws (`fill`, `permutation`,
/// `withState`) lock once for the whole loop. Used for initialization, dropout and shuffling so that
/// runs are reproducible from one seed.
public final class RandomGenerator: RandomNumberGenerator, @unchecked Sendable {
    // A recursive pthread mutex, not `Synchronization.Mutex`: ThreadSanitizer understands it (the
    // suite's TSan run checks the generator's users, not the lock), and `exclusively` can hold it
    // across draws of its own.
    private let lock = NSRecursiveLock()
    private var state: Xoshiro256StarStar

    /// The process-wide default generator behind initializers, dropout and `Tensor.uniform`/`normal`;
    /// `manualSeed` reseeds it. Safe to use from several threads at once: two threads drawing from it
    /// get disjoint parts of one sequence (which parts depends on timing, as in PyTorch).
    public static let global = RandomGenerator(seed: 0x5EED)

    /// Creates a generator whose sequence is fully determined by `seed`.
    ///
    /// - Parameter seed: any 64 bits; equal seeds give equal sequences.
    public init(seed: UInt64) { state = Xoshiro256StarStar(seed: seed) }

    /// Runs `body` with exclusive access to the state: the way to draw many values under one lock.
    ///
    /// - Parameter body: draws from the state, which no other thread touches meanwhile.
    public func withState<R>(_ body: (inout Xoshiro256StarStar) throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try body(&state)
    }

    /// Runs `body` while no other thread can draw from this generator: `manualSeed` then building a
    /// model inside it gives the same weights whatever other threads do with the default generator.
    ///
    /// - Parameter body: may draw from this generator (the lock is recursive).
    public func exclusively<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try body()
    }

    /// Restarts the sequence from `seed`.
    ///
    /// - Parameter seed: the new seed.
    public func reseed(_ seed: UInt64) { withState { $0 = Xoshiro256StarStar(seed: seed) } }

    /// A copy of the current state (for checkpoints); `restore` puts one back.
    public var snapshot: Xoshiro256StarStar { withState { $0 } }
    /// Continues the sequence from a saved `snapshot`.
    ///
    /// - Parameter saved: a `snapshot` taken earlier.
    public func restore(_ saved: Xoshiro256StarStar) { withState { $0 = saved } }

    /// The next 64 random bits.
    public func next() -> UInt64 { withState { $0.next() } }

    /// A uniform Float in [0, 1) with 24 random bits.
    public func nextFloat() -> Float { withState { $0.nextFloat() } }

    /// A standard normal sample.
    public func nextNormal() -> Float { withState { $0.nextNormal() } }

    /// A uniform integer in `0..<n`.
    ///
    /// - Parameter n: the bound (exclusive), positive.
    public func nextInt(_ n: Int) -> Int { withState { Int.random(in: 0..<n, using: &$0) } }

    /// A uniformly random permutation of `0..<n` (Fisher–Yates), drawn under one lock.
    ///
    /// - Parameter n: the permutation's length.
    public func permutation(_ n: Int) -> [Int] { withState { $0.permutation(n) } }
}

/// Reseeds the global generator (PyTorch's `torch.manual_seed`).
///
/// - Parameter seed: the new seed of `RandomGenerator.global`.
public func manualSeed(_ seed: UInt64) { RandomGenerator.global.reseed(seed) }
