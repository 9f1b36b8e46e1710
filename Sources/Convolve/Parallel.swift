import Foundation
import Dispatch

/// Thread settings for CPU kernels.
public enum Parallel {
    /// Threads kernels may use (default: the machine's active cores). `--threads N` sets it.
    nonisolated(unsafe) public static var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    /// Work (in multiply-adds or element visits) below which splitting across threads costs more
    /// than it saves: waking a thread costs ~30 µs here, so only work of ≳250 µs is split.
    public static let minWorkToSplit = 1 << 21

    /// Splits `0..<count` into contiguous chunks and runs `body(range)` for each, on up to
    /// `threads` threads when `work` (total) is large enough, else inline on this thread.
    @inline(__always)
    public static func forChunks(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        let t = Swift.min(threads, count)
        if t <= 1 || work < minWorkToSplit {
            if count > 0 { body(0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: t) { i in
                let lo = count * i / t, hi = count * (i + 1) / t
                if hi > lo { body(lo..<hi) }
            }
        }
    }

    /// The number of chunks `forChunks` would use for this work.
    public static func chunkCount(_ count: Int, work: Int) -> Int {
        let t = Swift.min(threads, count)
        return (t <= 1 || work < minWorkToSplit) ? Swift.min(1, count) : t
    }
}
