import Foundation
import CZlib

/// gzip compression helpers (zlib).
public enum Gzip {
    /// Compresses `data` into the gzip format.
    ///
    /// - Parameters:
    ///   - data: the bytes.
    ///   - level: zlib's level, 0…9.
    public static func compress(_ data: [UInt8], level: Int32 = 6) -> [UInt8] {
        var z = z_stream()
        deflateInit2_(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        defer { deflateEnd(&z) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&z, uLong(data.count))) + 32)
        var input = data
        let written: Int = input.withUnsafeMutableBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                z.next_in = inp.baseAddress
                z.avail_in = uInt(inp.count)
                z.next_out = o.baseAddress
                z.avail_out = uInt(o.count)
                _ = deflate(&z, Z_FINISH)
                return o.count - Int(z.avail_out)
            }
        }
        return Array(out[0..<written])
    }
}
