import Foundation
import Testing
@testable import Convolve

@Suite struct ParallelTests {
    @Test func nestedParallelLoopsRunInlineAndCoverEveryIndex() {
        var hits = [Int](repeating: 0, count: 64 * 64)
        hits.withUnsafeMutableBufferPointer { h in
            Parallel.forChunks(64, work: 1 << 30) { outer in
                for i in outer {
                    Parallel.forChunks(64, work: 1 << 30) { inner in for j in inner { h[i * 64 + j] += 1 } }
                }
            }
        }
        #expect(hits.allSatisfy { $0 == 1 })
    }

    /// While asked, the pool counts its jobs and their time (other tests' jobs may be counted too: they
    /// share the pool), and the jobs no worker joined are a part of them.
    @Test func poolCountsItsJobsWhileAsked() {
        Parallel.resetParticipation()
        Parallel.recordsParticipation = true
        defer { Parallel.recordsParticipation = false }
        var results = [Double](repeating: 0, count: 8)
        results.withUnsafeMutableBufferPointer { r in
            Parallel.forChunksIndexed(8, work: 1 << 30) { chunk, _ in
                var x = 1.0
                for i in 0..<100_000 { x = x * 0.999_999 + Double(i & 1) }
                r[chunk] = x
            }
        }
        let counted = Parallel.participation
        #expect(results.allSatisfy { $0 > 1 })
        if Parallel.threads > 1 {
            #expect(counted.jobs >= 1 && counted.seconds > 0, "\(counted)")
        }
        #expect(counted.jobsWithoutWorkers <= counted.jobs && (0...1).contains(counted.shareWithoutWorkers), "\(counted)")
    }

    /// The pool binds its threads only when asked, with two or more threads that use exactly the CPUs
    /// the process may run on; then the main thread takes the first CPU.
    @Test func bindingPlanBindsOnlyWhenEveryAllowedCPUIsUsed() {
        let cpus = [2, 5]
        #expect(Parallel.bindingPlan(binds: true, threads: 2, allowedCPUs: cpus) == [2, 5])
        #expect(Parallel.bindingPlan(binds: false, threads: 2, allowedCPUs: cpus) == nil)
        // fewer threads than CPUs: another process may use the rest, so no thread is pinned in its way
        #expect(Parallel.bindingPlan(binds: true, threads: 2, allowedCPUs: [0, 1, 2, 3]) == nil)
        #expect(Parallel.bindingPlan(binds: true, threads: 3, allowedCPUs: cpus) == nil)
        #expect(Parallel.bindingPlan(binds: true, threads: 1, allowedCPUs: [7]) == nil)
        #expect(Parallel.bindingPlan(binds: true, threads: 2, allowedCPUs: []) == nil)
    }

    /// The default thread count is the active cores capped by the affinity mask (`taskset -c 0` means
    /// one thread, as with OpenMP), never below one, and the active cores alone where the mask is unknown.
    @Test func coresAreCappedByTheAffinityMask() {
        #expect(Parallel.usableCores(active: 8, allowed: 1) == 1)
        #expect(Parallel.usableCores(active: 2, allowed: 8) == 2)
        #expect(Parallel.usableCores(active: 4, allowed: 0) == 4)
        #expect(Parallel.usableCores(active: 0, allowed: 0) == 1)
        #if os(Linux)
        #expect(Parallel.cores <= Parallel.allowedCPUs().count)
        #endif
    }

    /// `allowedCPUs` reads the thread's real affinity mask, and binding a thread narrows that mask to
    /// the one CPU (on a thread of its own, so no other test's thread is bound).
    @Test func bindingNarrowsTheThreadsAllowedCPUs() {
        let allowed = Parallel.allowedCPUs()
        #if os(Linux)
        #expect(!allowed.isEmpty)
        #expect(allowed == allowed.sorted() && Set(allowed).count == allowed.count)
        #expect(allowed.count >= Parallel.cores)
        let target = allowed.last!
        nonisolated(unsafe) var bound = false, after: [Int] = []
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            bound = Parallel.bindCallingThread(to: target)
            after = Parallel.allowedCPUs()
            done.signal()
        }
        thread.start()
        done.wait()
        #expect(bound)
        #expect(after == [target])
        // this thread is unchanged
        #expect(Parallel.allowedCPUs() == allowed)
        // a CPU outside the set is refused
        #expect(!Parallel.bindCallingThread(to: -1))
        #else
        #expect(allowed.isEmpty)
        #endif
    }
}
