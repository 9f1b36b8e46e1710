import Foundation
import Testing
@testable import Convolve

@Suite struct RandomTests {
    /// Two threads drawing from one shared generator get disjoint parts of its one sequence: together
    /// exactly the values a single thread would have drawn (no value lost or repeated by a race).
    @Test func sharedGeneratorIsSafeAcrossThreads() {
        let shared = RandomGenerator(seed: 42), perThread = 20_000
        let lock = NSLock()
        nonisolated(unsafe) var drawn: [UInt64] = []
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            var mine: [UInt64] = []
            for _ in 0..<perThread { mine.append(shared.next()) }
            lock.lock(); drawn += mine; lock.unlock()
        }
        let reference = RandomGenerator(seed: 42)
        var expected: [UInt64] = []
        for _ in 0..<(2 * perThread) { expected.append(reference.next()) }
        let got = drawn
        #expect(got.count == expected.count)
        #expect(got.sorted() == expected.sorted())
    }

    /// The default generator behind initializers is the same object on every thread and can be
    /// reseeded: same seed, same values.
    @Test func manualSeedRepeatsTheSequence() {
        let a = RandomGenerator(seed: 7), b = RandomGenerator(seed: 7)
        let ua = Tensor.uniform([100], generator: a), ub = Tensor.uniform([100], generator: b)
        #expect(ua.storage == ub.storage)
        b.reseed(7)
        #expect(Tensor.normal([33], generator: b).storage == Tensor.normal([33], generator: RandomGenerator(seed: 7)).storage)
    }

    /// A snapshot (and its five words, as checkpoints store them) continues the sequence exactly,
    /// including a cached second normal sample.
    @Test func snapshotRestoresTheSequence() throws {
        let g = RandomGenerator(seed: 3)
        _ = g.nextNormal()   // leaves the pair's second value cached
        let saved = g.snapshot
        let after = (0..<5).map { _ in g.nextNormal() }
        let restored = RandomGenerator(seed: 0)
        restored.restore(try #require(Xoshiro256StarStar(words: saved.words)))
        #expect((0..<5).map { _ in restored.nextNormal() } == after)
        #expect(Xoshiro256StarStar(words: [0, 0, 0, 0, 0]) == nil)
        #expect(Xoshiro256StarStar(words: [1, 2, 3]) == nil)
    }

    /// The eight-lane generator (dropout's masks) is eight scalar xoshiro256** generators side by side:
    /// lane j starts from the seed's draws j, 8 + j, 16 + j, 24 + j and steps exactly as the scalar one.
    @Test func laneGeneratorStepsLikeEightScalarOnes() throws {
        var seeding = Xoshiro256StarStar(seed: 2024)
        let draws = (0..<32).map { _ in seeding.next() }
        var scalars = try (0..<8).map { j in
            try #require(Xoshiro256StarStar(words: [draws[j], draws[8 + j], draws[16 + j], draws[24 + j], 0]))
        }
        var lanes = Xoshiro256StarStarLanes(seed: 2024)
        for _ in 0..<100 {
            let vector = lanes.next()
            for j in 0..<8 { #expect(vector[j] == scalars[j].next()) }
        }
    }
}
