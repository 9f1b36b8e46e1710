import Foundation
import CConvolveSupport
import Dispatch
import Synchronization

/// Thread settings and the parallel loop used by CPU kernels.
public enum Parallel {
    /// Threads kernels may use (default: the machine's active cores). `--threads N` sets it. Set it
    /// before starting work: an op that is running on another thread sizes its per-chunk buffers
    /// from it. Stored atomically, so reading it from any thread is safe.
    public static var threads: Int {
        get { threadSetting.load(ordering: .relaxed) }
        set { threadSetting.store(Swift.max(1, newValue), ordering: .relaxed) }
    }
    private static let threadSetting = Atomic<Int>(cores)

    /// Threads an op starting on this thread can use: `requested` (default `threads`), or 1 inside
    /// another op's parallel chunk (the pool is busy with that op and would run a nested split's chunks
    /// inline, one after another, paying every chunk's setup and re-packing for nothing).
    static func available(_ requested: Int? = nil) -> Int { WorkerPool.insideJob ? 1 : requested ?? threads }

    /// The cores this process may use, read once: the machine's active cores
    /// (`ProcessInfo.activeProcessorCount`, which reads the cgroup's files on every call on Linux: too
    /// slow for a per-batch decision), but no more than the CPUs of the affinity mask (`taskset`, a
    /// container's cpuset, an MPI rank bound to its cores), as OpenMP's default thread count, and so
    /// PyTorch's, is. The mask is that of the thread that first reads this (in practice the main
    /// thread, before the pool exists or binds anything).
    public static let cores = usableCores(active: ProcessInfo.processInfo.activeProcessorCount,
                                          allowed: allowedCPUs().count)

    /// `active` capped by `allowed` (0: the affinity mask is unknown), at least 1.
    static func usableCores(active: Int, allowed: Int) -> Int {
        Swift.max(1, allowed > 0 ? Swift.min(active, allowed) : active)
    }

    /// Work (in multiply-adds or element visits) below which splitting costs more than it saves.
    /// The pool's workers spin briefly between jobs, so handing work over costs ~1–2 µs while
    /// training runs (a sleeping thread would cost ~30 µs to wake). 2¹⁵ rather than 2¹⁷: the tutorial
    /// model's second block (batch norm and pooling of 64 × 4 × 14 × 14) then splits too, W2 +8%
    /// (W1, W3, W4 unchanged; 2¹⁴ no better) — BENCHMARKS-HISTORY.md, session 9.
    public static let minWorkToSplit = 1 << 15

    /// Chunks per thread: lets a thread that is running take over work a descheduled one has not
    /// started, so a busy core slows us by at most its share (no lock-step waits).
    static let chunksPerThread = 4
    /// Most chunks per thread of a streaming pass (elementwise work over memory with nothing to set up
    /// per chunk: batch norm, ReLU masks, gradient sums, optimizer updates), each keeping at least
    /// `minWorkToSplit` of work. Two threads streaming memory together run at uneven speeds, and such a
    /// chunk costs only its claim, so smaller chunks shorten the wait at the end of each pass.
    static let streamingChunksPerThread = 16

    /// Whether the pool counts, for each parallel job, whether a worker took part (see `participation`).
    /// Off by default: the count reads the clock twice per job. `convolve-bench --scaling` turns it on.
    public static var recordsParticipation: Bool {
        get { participationSetting.load(ordering: .relaxed) }
        set { participationSetting.store(newValue, ordering: .relaxed) }
    }
    private static let participationSetting = Atomic<Bool>(false)

    /// Whether the pool binds each of its threads to one CPU. Off by default; the `convolve` and
    /// `convolve-bench` commands turn it on (they own their process). The pool binds only when the
    /// process's main thread runs a parallel op while `threads` equals the number of CPUs it may run
    /// on (its affinity mask): the main thread to the first of them, worker i to the (i + 1)-th. With
    /// every allowed CPU in use, two processes sharing a machine are never crowded onto the same few.
    /// Bound threads are not moved about when another process takes a share of one core: beside a busy
    /// loop, two bound threads trained W3 / W4 7–8% faster than unbound ones (medians), and alike without it
    /// (BENCHMARKS-HISTORY.md, session 15). Set it before the first parallel op; a bind the system refuses
    /// leaves the thread as it was.
    public static var bindsThreads: Bool {
        get { bindingSetting.load(ordering: .relaxed) }
        set { bindingSetting.store(newValue, ordering: .relaxed) }
    }
    private static let bindingSetting = Atomic<Bool>(false)

    /// The CPUs the calling thread may run on (its affinity mask), in increasing order; empty where
    /// unknown (not Linux).
    public static func allowedCPUs() -> [Int] {
        var ids = [Int32](repeating: 0, count: 1024)
        let count = Int(convolve_allowed_cpus(&ids, Int32(ids.count)))
        guard count > 0 && count <= ids.count else { return [] }
        return ids.prefix(count).map(Int.init)
    }

    /// Binds the calling thread to one CPU; whether the system accepted it (Linux only).
    static func bindCallingThread(to cpu: Int) -> Bool { convolve_bind_thread(Int32(cpu)) == 0 }

    /// The CPU for each of the pool's threads (the main thread's first, then worker 0's, 1's, ...), or
    /// nil to leave them unbound (see `bindsThreads`; the pool asks only from the main thread).
    static func bindingPlan(binds: Bool, threads: Int, allowedCPUs: [Int]) -> [Int]? {
        guard binds, threads >= 2, allowedCPUs.count == threads else { return nil }
        return allowedCPUs
    }

    /// Parallel jobs since the last `resetParticipation()` (while `recordsParticipation`), and those no
    /// worker joined: the caller ran every chunk, as when the host does not run the worker's core in that
    /// time (a virtual machine's vCPU descheduled by its host).
    public static var participation: Participation { WorkerPool.shared.participation() }
    /// Starts `participation` over.
    public static func resetParticipation() { WorkerPool.shared.resetParticipation() }

    /// Counts of parallel jobs and their wall time, all and without any worker.
    public struct Participation: Sendable {
        public var jobs = 0, jobsWithoutWorkers = 0
        public var seconds = 0.0, secondsWithoutWorkers = 0.0
        /// The share of the jobs' wall time in which no worker took part.
        public var shareWithoutWorkers: Double { seconds > 0 ? secondsWithoutWorkers / seconds : 0 }
    }

    /// The number of chunks `forChunks` uses for this work (depends only on `threads`, so results
    /// that reduce per-chunk partials are deterministic for a given thread count).
    ///
    /// - Parameters:
    ///   - count: items to split.
    ///   - work: multiply-adds (or element visits) of the whole job.
    ///   - streaming: a streaming pass (see `streamingChunksPerThread`).
    public static func chunkCount(_ count: Int, work: Int, streaming: Bool = false) -> Int {
        let t = Swift.min(available(), count)
        if t <= 1 || work < minWorkToSplit { return Swift.min(1, count) }
        // A streaming chunk keeps at least `minWorkToSplit` of work: the tutorial models' small passes
        // stay at 4 chunks per thread, where each chunk's claim would be a visible share.
        let perThread = streaming ? Swift.max(chunksPerThread, Swift.min(streamingChunksPerThread, work / minWorkToSplit / t))
                                  : chunksPerThread
        return Swift.min(count, t * perThread)
    }

    /// Splits `0..<count` into `chunkCount` contiguous ranges and runs `body(range)` for each, on the
    /// calling thread and the pool's workers.
    ///
    /// - Parameters:
    ///   - count: items to split.
    ///   - work: multiply-adds of the whole job (below `minWorkToSplit` it runs inline).
    ///   - streaming: a streaming pass: smaller chunks (see `streamingChunksPerThread`).
    ///   - body: runs once per range.
    @inline(__always)
    public static func forChunks(_ count: Int, work: Int, streaming: Bool = false, _ body: (Range<Int>) -> Void) {
        forChunksIndexed(count, work: work, streaming: streaming) { _, r in body(r) }
    }

    /// Like `forChunks`, also passing the chunk's index in `0..<chunkCount(count, work:)` (for
    /// per-chunk partial results).
    ///
    /// - Parameters:
    ///   - count: items to split.
    ///   - work: multiply-adds of the whole job.
    ///   - streaming: a streaming pass: smaller chunks (see `streamingChunksPerThread`).
    ///   - body: runs with the chunk's index and its range.
    @inline(__always)
    public static func forChunksIndexed(_ count: Int, work: Int, streaming: Bool = false, _ body: (Int, Range<Int>) -> Void) {
        let chunks = chunkCount(count, work: work, streaming: streaming)
        if chunks <= 1 {
            if count > 0 { body(0, 0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            WorkerPool.shared.run(chunks: chunks, workers: Swift.min(threads, chunks) - 1) { i in
                body(i, (count * i / chunks)..<(count * (i + 1) / chunks))
            }
        }
    }
}

/// A small pool of persistent worker threads. `run` publishes a job of N chunks; the caller and the
/// workers claim chunks from a shared counter tagged with the job's generation, so a late worker can
/// never run a chunk of a finished job. Idle workers spin for `spinNanoseconds`, then sleep on a semaphore.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool(workers: Parallel.cores - 1)

    /// (generation << 32) | next chunk index.
    private let cursor = Atomic<Int>(0)
    /// Chunks of the current job not yet finished.
    private let pending = Atomic<Int>(0)
    /// Generation of the published job.
    private let generation = Atomic<Int>(0)
    /// Workers allowed to join the current job.
    private let allowed = Atomic<Int>(0)
    /// The last generation a worker ran chunks of.
    private let joinedGeneration = Atomic<Int>(0)
    /// `Parallel.participation`'s counts (guarded by `lock`).
    private var counts = Parallel.Participation()
    /// Workers currently holding a reference to `job` (the caller waits for 0 before returning,
    /// so the non-escaping body it lent never outlives `run`).
    private let active = Atomic<Int>(0)
    /// Whether the pool's threads are bound to CPUs (`Parallel.bindsThreads`): 0 not decided yet (no
    /// job from the main thread so far), 1 no, 2 yes, to the CPUs in `binding`.
    private let bindingState = Atomic<Int>(0)
    private var binding: [Int] = []
    private var job: ((Int) -> Void)?
    private var chunkCount = 0
    private let sleepers: [Sleeper]
    private let lock = NSLock()
    private let jobLock = NSLock()
    /// How long an idle worker spins (yielding its core after the first 20 µs) before it sleeps.
    /// Waking a sleeper costs the publisher a system call and the job ~30–50 µs of one thread fewer;
    /// a training step's serial stretches between parallel ops are shorter than this, so workers stay
    /// awake through a step.
    static let spinNanoseconds: UInt64 = 500_000

    final class Sleeper: @unchecked Sendable {
        let sleeping = Atomic<Bool>(false)
        let semaphore = DispatchSemaphore(value: 0)
    }

    init(workers: Int) {
        sleepers = (0..<workers).map { _ in Sleeper() }
        for (i, s) in sleepers.enumerated() {
            let t = Thread { [unowned self] in self.workerLoop(index: i, sleeper: s) }
            t.name = "convolve-worker-\(i)"
            t.start()
        }
    }

    /// Runs `body(chunk)` for every chunk in `0..<chunks` using the caller and up to `workers` workers.
    func run(chunks: Int, workers: Int, _ body: @escaping (Int) -> Void) {
        // A kernel called from inside a chunk (nested parallelism) runs inline: the pool is busy with
        // the outer job, and waiting for it here would deadlock.
        if Self.insideJob {
            for i in 0..<chunks { body(i) }
            return
        }
        Self.insideJob = true
        defer { Self.insideJob = false }
        // One job at a time (kernels called from several threads simply queue here).
        lock.lock(); defer { lock.unlock() }
        if bindingState.load(ordering: .relaxed) == 0 && Thread.isMainThread { decideBinding() }
        jobLock.lock()
        job = body
        chunkCount = chunks
        jobLock.unlock()
        pending.store(chunks, ordering: .relaxed)
        allowed.store(Swift.min(workers, sleepers.count), ordering: .relaxed)
        let gen = generation.load(ordering: .relaxed) + 1
        cursor.store(gen << 32, ordering: .relaxed)
        generation.store(gen, ordering: .releasing)
        for (i, s) in sleepers.enumerated() where i < workers {
            if s.sleeping.exchange(false, ordering: .acquiringAndReleasing) { s.semaphore.signal() }
        }
        let recording = Parallel.recordsParticipation
        let start = recording ? DispatchTime.now().uptimeNanoseconds : 0
        work(gen: gen, body: body, chunks: chunks)
        while pending.load(ordering: .acquiring) > 0 { spinPause() }
        if recording {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            counts.jobs += 1; counts.seconds += seconds
            if workers > 0 && joinedGeneration.load(ordering: .relaxed) != gen {
                counts.jobsWithoutWorkers += 1; counts.secondsWithoutWorkers += seconds
            }
        }
        jobLock.lock()
        job = nil
        jobLock.unlock()
        while active.load(ordering: .acquiring) > 0 { spinPause() }
    }

    /// Decides `Parallel.bindsThreads` once, at the main thread's first job (under `lock`), and binds
    /// the main thread; each worker binds itself when it next joins a job.
    private func decideBinding() {
        guard let plan = Parallel.bindingPlan(binds: Parallel.bindsThreads, threads: Parallel.threads,
                                              allowedCPUs: Parallel.allowedCPUs()),
              Parallel.bindCallingThread(to: plan[0]) else {
            bindingState.store(1, ordering: .relaxed)
            return
        }
        binding = plan
        bindingState.store(2, ordering: .releasing)
    }

    /// Claims and runs chunks of job `gen` until none are left.
    @inline(__always)
    private func work(gen: Int, body: (Int) -> Void, chunks: Int) {
        while true {
            let v = cursor.load(ordering: .relaxed)
            if v >> 32 != gen || (v & 0xFFFF_FFFF) >= chunks { return }
            let (exchanged, _) = cursor.compareExchange(expected: v, desired: v + 1, ordering: .acquiringAndReleasing)
            if !exchanged { continue }
            body(v & 0xFFFF_FFFF)
            pending.subtract(1, ordering: .releasing)
        }
    }

    private static let insideKey: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()
    /// Whether this thread is running (or publishing) a pool job.
    static var insideJob: Bool {
        get { pthread_getspecific(insideKey) != nil }
        set { pthread_setspecific(insideKey, newValue ? UnsafeRawPointer(bitPattern: 1) : nil) }
    }

    private func workerLoop(index: Int, sleeper: Sleeper) {
        Self.insideJob = true
        var seen = 0, bindingSettled = false
        while true {
            var gen = generation.load(ordering: .acquiring)
            var spinStart: UInt64? = nil
            while gen == seen {
                // Spin (checking the clock every 64 pauses) for `spinNanoseconds`, then sleep.
                for _ in 0..<64 where gen == seen {
                    spinPause()
                    gen = generation.load(ordering: .acquiring)
                }
                if gen != seen { break }
                let now = DispatchTime.now().uptimeNanoseconds
                guard let start = spinStart else { spinStart = now; continue }
                if now - start < Self.spinNanoseconds {
                    // Past the first 20 µs, offer the core to any other runnable thread (the caller's
                    // own thread, or another process, sharing this core) between checks.
                    if now - start > 20_000 { sched_yield() }
                    continue
                }
                sleeper.sleeping.store(true, ordering: .releasing)
                gen = generation.load(ordering: .acquiring)
                if gen != seen {
                    if !sleeper.sleeping.exchange(false, ordering: .acquiringAndReleasing) { sleeper.semaphore.wait() }
                    break
                }
                sleeper.semaphore.wait()
                spinStart = nil
                gen = generation.load(ordering: .acquiring)
            }
            seen = gen
            guard index < allowed.load(ordering: .relaxed) else { continue }
            if !bindingSettled, case let state = bindingState.load(ordering: .acquiring), state != 0 {
                bindingSettled = true
                if state == 2 && index + 1 < binding.count { _ = Parallel.bindCallingThread(to: binding[index + 1]) }
            }
            if join(gen: gen) { active.subtract(1, ordering: .releasing) }
        }
    }

    func participation() -> Parallel.Participation { lock.lock(); defer { lock.unlock() }; return counts }
    func resetParticipation() { lock.lock(); counts = .init(); lock.unlock() }

    /// Runs chunks of job `gen` if it still has unclaimed ones; returns (having released its reference
    /// to the job) whether it joined, in which case the caller must decrement `active`.
    @inline(never)
    private func join(gen: Int) -> Bool {
        jobLock.lock()
        let v = cursor.load(ordering: .acquiring)
        guard v >> 32 == gen, (v & 0xFFFF_FFFF) < chunkCount, let body = job else { jobLock.unlock(); return false }
        active.add(1, ordering: .acquiringAndReleasing)
        joinedGeneration.store(gen, ordering: .relaxed)
        let n = chunkCount
        jobLock.unlock()
        work(gen: gen, body: body, chunks: n)
        return true
    }
}

/// A short busy wait that is kind to the sibling hyper-thread (x86 `pause`).
@inline(__always) func spinPause() { convolve_spin_pause() }
