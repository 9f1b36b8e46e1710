import Foundation
import Synchronization

/// The ceilings that protect a process from its input: how many pixels one decoded image may have, and
/// how much memory a model, a batch or a decoded dataset may claim. Checked before anything of that size
/// is allocated, so a tiny file that declares a huge image, or a flag that asks for a model larger than
/// the machine, gets one error naming what to lower instead of an abort.
public enum Limits {
    /// Pillow's `Image.MAX_IMAGE_PIXELS` (1024³ / 4 / 3 ≈ 89.5 M pixels, the size of a 3-channel image
    /// in a quarter of a GiB): the default cap on one decoded image. Pillow warns above it and refuses
    /// twice it; Convolve refuses above it, keeping the decoder's peak memory under 1 GB whatever the
    /// file declares.
    public static let defaultMaxImagePixels = 89_478_485

    /// The most pixels one decoded image may have (`--max-image-pixels`; default
    /// ``defaultMaxImagePixels``). Images declaring more are refused from their header.
    public static var maxImagePixels: Int {
        get { imagePixels.load(ordering: .relaxed) }
        set { imagePixels.store(Swift.max(1, newValue), ordering: .relaxed) }
    }
    private static let imagePixels = Atomic<Int>(defaultMaxImagePixels)

    /// The memory a model with its training state, a batch's activations or a decoded dataset may claim
    /// (`--memory-limit`, or `CONVOLVE_MEMORY_LIMIT` in bytes, MB or GB; default: three quarters of the
    /// physical memory). Estimates above it are refused before building, with the size needed.
    public static var memoryBytes: Int {
        get { memory.load(ordering: .relaxed) }
        set { memory.store(Swift.max(1, newValue), ordering: .relaxed) }
    }
    private static let memory = Atomic<Int>(defaultMemoryBytes)

    /// Three quarters of the physical memory, or `CONVOLVE_MEMORY_LIMIT` when it is set and valid.
    public static var defaultMemoryBytes: Int {
        if let text = ProcessInfo.processInfo.environment["CONVOLVE_MEMORY_LIMIT"], let bytes = parseBytes(text) { return bytes }
        return Int(ProcessInfo.processInfo.physicalMemory / 4 * 3)
    }

    /// `"8GB"`, `"512MB"`, `"1.5G"`, `"1000000"` (bytes) as bytes; nil when not a positive size.
    /// - Parameter text: a number with an optional unit (K, M, G, T, with or without B; powers of 1000).
    public static func parseBytes(_ text: String) -> Int? {
        var digits = text.trimmingCharacters(in: .whitespaces).uppercased()
        if digits.hasSuffix("B") { digits.removeLast() }
        var scale = 1.0
        if let unit = digits.last, let power = ["K": 1.0, "M": 2, "G": 3, "T": 4][String(unit)] {
            scale = Foundation.pow(1000, power); digits.removeLast()
        }
        guard let value = Double(digits), value.isFinite, value > 0, value * scale < 9e18 else { return nil }
        return Swift.max(1, Int(value * scale))
    }

    /// A byte count for a person: "1.2 GB", "340 MB".
    /// - Parameter bytes: the count.
    public static func describe(bytes: Int) -> String {
        let b = Double(bytes)
        if b >= 1e12 { return String(format: "%.1f TB", b / 1e12) }
        if b >= 1e9 { return String(format: "%.1f GB", b / 1e9) }
        if b >= 1e6 { return String(format: "%.0f MB", b / 1e6) }
        return String(format: "%.0f KB", Swift.max(1, b / 1e3))
    }

    /// Throws when an image of `width × height` exceeds ``maxImagePixels`` (checked from a header,
    /// before decoding).
    /// - Parameters:
    ///   - width: pixels across, as declared.
    ///   - height: pixels down, as declared.
    static func checkImage(width: Int, height: Int) throws -> Void {
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= maxImagePixels else {
            throw ImageTooLarge(width: width, height: height, limit: maxImagePixels)
        }
    }

    struct ImageTooLarge: Error, CustomStringConvertible {
        let width: Int, height: Int, limit: Int
        var description: String {
            "it declares \(width)x\(height) pixels, more than the limit of \(limit) (a decompression bomb?); "
                + "raise it with --max-image-pixels if the image is real"
        }
    }
}
