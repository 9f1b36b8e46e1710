import Foundation

/// Opt-in per-op timing (`convolve-bench --profile`): forward and backward time of each op kind,
/// plus any named region (optimizer, data). Disabled by default; a disabled check costs one load.
public enum Profiler {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) static var totals: [String: (seconds: Double, calls: Int)] = [:]
    static let lock = NSLock()

    @inline(__always) static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Times `body` under `name` when profiling is enabled.
    /// - Parameters:
    ///   - name: the region's name (evaluated only while profiling).
    ///   - body: the work timed.
    @inline(__always)
    public static func measure<T>(_ name: @autoclosure () -> String, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let t0 = now()
        let r = try body()
        record(name(), Double(now() - t0) * 1e-9)
        return r
    }

    static func record(_ name: String, _ seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        let old = totals[name] ?? (0, 0)
        totals[name] = (old.seconds + seconds, old.calls + 1)
    }

    /// Clears the accumulated timings.
    public static func reset() { lock.lock(); totals = [:]; lock.unlock() }

    /// A table of regions sorted by total time.
    /// - Parameter steps: training steps profiled, for the per-step column.
    public static func report(steps: Int) -> String {
        lock.lock(); defer { lock.unlock() }
        let total = totals.values.reduce(0) { $0 + $1.seconds }
        var lines = [String(format: "%-28@ %10@ %8@ %12@", "region" as NSString, "ms/step" as NSString, "share" as NSString, "calls/step" as NSString)]
        for (name, v) in totals.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            lines.append(String(format: "%-28@ %10.4f %7.1f%% %12.1f", name as NSString, v.seconds * 1e3 / Double(max(steps, 1)),
                                100 * v.seconds / max(total, 1e-12), Double(v.calls) / Double(max(steps, 1))))
        }
        return lines.joined(separator: "\n")
    }
}
