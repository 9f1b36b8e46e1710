import Foundation
import CZlib
import ConvolveIO

/// An 8-bit image: `channels` (1 gray, 3 RGB) interleaved, row-major.
public struct Image: Sendable, Equatable {
    public let width: Int, height: Int, channels: Int
    public var pixels: [UInt8]
    /// - Parameters:
    ///   - width: pixels across.
    ///   - height: pixels down.
    ///   - channels: 1 (grey) or 3 (RGB).
    ///   - pixels: `height × width × channels` bytes, interleaved, row-major.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "pixel count does not match size")
        self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
    }

    /// Luminance (ITU-R 601) as one gray channel.
    public func grayscale() -> Image {
        if channels == 1 { return self }
        var g = [UInt8](repeating: 0, count: width * height)
        for i in 0..<(width * height) {
            let r = Double(pixels[i * channels]), gg = Double(pixels[i * channels + 1]), b = Double(pixels[i * channels + 2])
            g[i] = UInt8(Swift.min(255, (0.299 * r + 0.587 * gg + 0.114 * b).rounded()))
        }
        return Image(width: width, height: height, channels: 1, pixels: g)
    }

    /// Converts a gray drawing to a 28×28 MNIST-style digit: optional inversion (for dark ink on a
    /// light background), crop to the ink's bounding box, scale to fit 20×20 keeping the aspect
    /// ratio, and place it so its center of mass is at the image center. A 28×28 input is kept as is
    /// (apart from inversion).
    /// - Parameter invert: the drawing is dark on light.
    public func mnistStyle(invert: Bool) -> Image {
        var g = grayscale()
        if invert { g.pixels = g.pixels.map { 255 - $0 } }
        if g.width == 28 && g.height == 28 { return g }
        var x0 = g.width, y0 = g.height, x1 = -1, y1 = -1
        for y in 0..<g.height { for x in 0..<g.width where g.pixels[y * g.width + x] > 30 {
            x0 = Swift.min(x0, x); y0 = Swift.min(y0, y); x1 = Swift.max(x1, x); y1 = Swift.max(y1, y)
        } }
        if x1 < 0 { return Image(width: 28, height: 28, channels: 1, pixels: [UInt8](repeating: 0, count: 784)) }
        let bw = x1 - x0 + 1, bh = y1 - y0 + 1
        let scale = 20.0 / Double(Swift.max(bw, bh))
        let nw = Swift.max(1, Int((Double(bw) * scale).rounded())), nh = Swift.max(1, Int((Double(bh) * scale).rounded()))
        // Area-average resampling of the crop into nw×nh.
        var small = [Double](repeating: 0, count: nw * nh)
        for ty in 0..<nh { for tx in 0..<nw {
            let sx0 = Double(tx) / scale, sx1 = Double(tx + 1) / scale
            let sy0 = Double(ty) / scale, sy1 = Double(ty + 1) / scale
            var acc = 0.0, area = 0.0
            var sy = Int(sy0)
            while Double(sy) < sy1 && sy < bh {
                let hy = Swift.min(sy1, Double(sy + 1)) - Swift.max(sy0, Double(sy))
                var sx = Int(sx0)
                while Double(sx) < sx1 && sx < bw {
                    let wx = Swift.min(sx1, Double(sx + 1)) - Swift.max(sx0, Double(sx))
                    acc += Double(g.pixels[(y0 + sy) * g.width + x0 + sx]) * wx * hy
                    area += wx * hy
                    sx += 1
                }
                sy += 1
            }
            small[ty * nw + tx] = area > 0 ? acc / area : 0
        } }
        var mass = 0.0, cx = 0.0, cy = 0.0
        for y in 0..<nh { for x in 0..<nw { let v = small[y * nw + x]; mass += v; cx += v * Double(x); cy += v * Double(y) } }
        let ox = Int((14 - (mass > 0 ? cx / mass : Double(nw) / 2)).rounded() - 0.5)
        let oy = Int((14 - (mass > 0 ? cy / mass : Double(nh) / 2)).rounded() - 0.5)
        var out = [UInt8](repeating: 0, count: 784)
        for y in 0..<nh { for x in 0..<nw {
            let tx = x + ox, ty = y + oy
            if tx >= 0 && tx < 28 && ty >= 0 && ty < 28 { out[ty * 28 + tx] = UInt8(Swift.min(255, small[y * nw + x].rounded())) }
        } }
        return Image(width: 28, height: 28, channels: 1, pixels: out)
    }
}

/// Minimal PNG codec: reads every non-interlaced PNG — gray, gray + alpha, RGB, RGBA at 8 or 16 bits,
/// gray at 1/2/4 bits, palette images at 1–8 bits (with `tRNS` transparency) — checking each chunk's
/// CRC as libpng does; writes 8-bit gray or RGB. Alpha is composited on black (MNIST's background).
public enum PNG {
    static let signature: [UInt8] = [137, 80, 78, 71, 13, 10, 26, 10]

    /// Encodes an image as PNG bytes.
    /// - Parameter image: 8-bit grey or RGB.
    public static func encode(_ image: Image) -> [UInt8] {
        var out = signature
        func chunk(_ type: String, _ data: [UInt8]) {
            out += be32(UInt32(data.count))
            let body = Array(type.utf8) + data
            out += body
            out += be32(crc(body[...]))
        }
        chunk("IHDR", be32(UInt32(image.width)) + be32(UInt32(image.height)) + [8, image.channels == 3 ? 2 : 0, 0, 0, 0])
        let stride = image.width * image.channels
        var raw = [UInt8](); raw.reserveCapacity((stride + 1) * image.height)
        for y in 0..<image.height { raw.append(0); raw += image.pixels[(y * stride)..<((y + 1) * stride)] }
        chunk("IDAT", zlibCompress(raw))
        chunk("IEND", [])
        return out
    }

    /// Writes a PNG file atomically.
    /// - Parameters:
    ///   - image: 8-bit grey or RGB.
    ///   - path: the file.
    public static func write(_ image: Image, to path: String) throws {
        try writeAtomically(Data(encode(image)), to: path)
    }

    /// Reads a PNG file; errors name the file and the problem.
    /// - Parameter path: a PNG file.
    public static func read(_ path: String) throws -> Image {
        let data: Data
        do { data = try readRegularFile(path) } catch let e as IOError { throw DataError.unreadable(path: path, reason: e.reason) }
        do { return try decode([UInt8](data)) }
        catch let e as PNGDecodeError { throw DataError.badImage(path: path, reason: "not a readable PNG: \(e.reason)") }
    }

    struct PNGDecodeError: Error { let reason: String }

    /// CRC-32 of a chunk's type and data (zlib's, the one PNG uses).
    static func crc(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        UInt32(bytes.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) })
    }

    /// Decodes PNG bytes to 8-bit gray (1 channel) or RGB (3 channels); alpha is composited on black.
    /// - Parameter bytes: a whole PNG file.
    public static func decode(_ bytes: [UInt8]) throws -> Image {
        func fail(_ r: String) -> PNGDecodeError { PNGDecodeError(reason: r) }
        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else { throw fail("missing PNG signature") }
        var pos = 8
        var width = 0, height = 0, depth = 0, color = -1, interlace = 0, sawEnd = false
        var idat = [UInt8](), palette = [UInt8](), transparency = [UInt8]()
        while pos + 12 <= bytes.count && !sawEnd {
            let len = Int(rd32(bytes, pos)); let type = String(decoding: bytes[(pos + 4)..<(pos + 8)], as: UTF8.self)
            guard len <= bytes.count - pos - 12 else { throw fail("chunk \(type) runs past the end of the file") }
            let stored = rd32(bytes, pos + 8 + len)
            guard crc(bytes[(pos + 4)..<(pos + 8 + len)]) == stored else { throw fail("chunk \(type) has a wrong CRC") }
            let body = bytes[(pos + 8)..<(pos + 8 + len)]
            if color < 0 && type != "IHDR" { throw fail("the first chunk is \(type), not IHDR") }
            switch type {
            case "IHDR":
                guard len == 13 else { throw fail("bad IHDR") }
                let h = Array(body)
                width = Int(rd32(h, 0)); height = Int(rd32(h, 4)); depth = Int(h[8]); color = Int(h[9]); interlace = Int(h[12])
            case "PLTE": palette = Array(body)
            case "tRNS": transparency = Array(body)
            case "IDAT": idat += body
            case "IEND": sawEnd = true
            default: break
            }
            pos += 12 + len
        }
        guard color >= 0 else { throw fail("no IHDR chunk") }
        guard width > 0, height > 0, width < 1 << 31, height < 1 << 31 else { throw fail("bad size \(width)x\(height)") }
        do { try Limits.checkImage(width: width, height: height) } catch { throw fail("\(error)") }
        guard interlace == 0 else { throw fail("interlaced PNGs are not supported") }
        let samples: Int
        switch color { case 0: samples = 1; case 2: samples = 3; case 3: samples = 1; case 4: samples = 2; case 6: samples = 4
        default: throw fail("unknown color type \(color)") }
        let allowed: [Int] = color == 0 ? [1, 2, 4, 8, 16] : color == 3 ? [1, 2, 4, 8] : [8, 16]
        guard allowed.contains(depth) else { throw fail("bit depth \(depth) is not valid for color type \(color)") }
        if color == 3 && (palette.isEmpty || palette.count % 3 != 0) { throw fail("palette image without a valid PLTE chunk") }
        guard !idat.isEmpty else { throw fail("no image data (IDAT)") }
        let bitsPerPixel = samples * depth
        let stride = (width * bitsPerPixel + 7) / 8
        let bpp = Swift.max(1, bitsPerPixel / 8)
        let expected = (stride + 1) * height
        // Deflate expands at most ~1032:1: a header demanding more than the data can hold is refused
        // before anything of that size is allocated.
        guard expected / 1032 <= idat.count else {
            throw fail("image data is truncated (\(idat.count) compressed bytes for \(width)x\(height))")
        }
        var raw = try zlibDecompress(idat, expected: expected)
        idat = []
        guard raw.count >= expected else { throw fail("image data is truncated") }
        // Unfiltered in place (each row after its filter byte), so the decoder holds one copy of the data.
        let rowBytes = stride + 1
        try raw.withUnsafeMutableBufferPointer { raw in
            for y in 0..<height {
                let row = y * rowBytes + 1, above = row - rowBytes
                let f = raw[row - 1]
                for i in 0..<stride {
                    let x = Int(raw[row + i])
                    let a = i >= bpp ? Int(raw[row + i - bpp]) : 0
                    let b = y > 0 ? Int(raw[above + i]) : 0
                    let c = y > 0 && i >= bpp ? Int(raw[above + i - bpp]) : 0
                    let v: Int
                    switch f {
                    case 0: v = x
                    case 1: v = x + a
                    case 2: v = x + b
                    case 3: v = x + (a + b) / 2
                    case 4:
                        let p = a + b - c, pa = Swift.abs(p - a), pb = Swift.abs(p - b), pc = Swift.abs(p - c)
                        v = x + (pa <= pb && pa <= pc ? a : (pb <= pc ? b : c))
                    default: throw fail("bad filter type \(f) in row \(y)")
                    }
                    raw[row + i] = UInt8(truncatingIfNeeded: v)
                }
            }
        }
        let rows = raw
        /// Sample `index` of `row` (0-based across the row's samples), as a value scaled to 0…255.
        func sample(_ row: Int, _ index: Int) -> Int {
            switch depth {
            case 8: return Int(rows[row * rowBytes + 1 + index])
            case 16:   // high byte first; rounded to 8 bits as libpng's png_set_scale_16 does
                let v = Int(rows[row * rowBytes + 1 + 2 * index]) << 8 | Int(rows[row * rowBytes + 2 + 2 * index])
                return (v * 255 + 32767) / 65535
            default:
                let bit = index * depth, byte = rows[row * rowBytes + 1 + bit / 8]
                let v = Int(byte >> (8 - depth - bit % 8)) & ((1 << depth) - 1)
                return color == 3 ? v : v * 255 / ((1 << depth) - 1)
            }
        }
        let gray = color == 0 || color == 4
        var out = [UInt8](repeating: 0, count: width * height * (gray ? 1 : 3))
        for y in 0..<height { for x in 0..<width {
            switch color {
            case 0: out[y * width + x] = UInt8(sample(y, x))
            case 4: out[y * width + x] = UInt8(sample(y, 2 * x) * sample(y, 2 * x + 1) / 255)
            case 3:
                let idx = sample(y, x)
                guard idx * 3 + 2 < palette.count else { throw fail("palette index \(idx) out of range") }
                let al = idx < transparency.count ? Int(transparency[idx]) : 255
                for ch in 0..<3 { out[(y * width + x) * 3 + ch] = UInt8(Int(palette[idx * 3 + ch]) * al / 255) }
            default:
                let al = samples == 4 ? sample(y, x * 4 + 3) : 255
                for ch in 0..<3 { out[(y * width + x) * 3 + ch] = UInt8(sample(y, x * samples + ch) * al / 255) }
            }
        } }
        return Image(width: width, height: height, channels: gray ? 1 : 3, pixels: out)
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
    static func rd32(_ b: [UInt8], _ p: Int) -> UInt32 {
        UInt32(b[p]) << 24 | UInt32(b[p + 1]) << 16 | UInt32(b[p + 2]) << 8 | UInt32(b[p + 3])
    }

    static func zlibCompress(_ data: [UInt8]) -> [UInt8] {
        var destLen = compressBound(uLong(data.count))
        var out = [UInt8](repeating: 0, count: Int(destLen))
        _ = out.withUnsafeMutableBufferPointer { o in data.withUnsafeBufferPointer { i in
            compress2(o.baseAddress, &destLen, i.baseAddress, uLong(i.count), 6)
        } }
        return Array(out[0..<Int(destLen)])
    }

    static func zlibDecompress(_ data: [UInt8], expected: Int) throws -> [UInt8] {
        guard expected > 0, expected < 1 << 30 else { throw PNGDecodeError(reason: "image too large") }
        var destLen = uLongf(expected)
        var out = [UInt8](repeating: 0, count: expected)
        let rc = out.withUnsafeMutableBufferPointer { o in data.withUnsafeBufferPointer { i in
            uncompress(o.baseAddress, &destLen, i.baseAddress, uLong(i.count))
        } }
        guard rc == Z_OK || rc == Z_BUF_ERROR else { throw PNGDecodeError(reason: "corrupt image data (zlib \(rc))") }
        return Array(out[0..<Int(destLen)])
    }
}

extension SummaryWriter {
    /// An image (`add_image`), encoded as PNG.
    /// - Parameters:
    ///   - tag: the image's name.
    ///   - image: 8-bit grey or RGB.
    ///   - step: the step the slider shows.
    public func addImage(_ tag: String, _ image: Image, step: Int) {
        addImage(tag, png: PNG.encode(image), width: image.width, height: image.height, channels: image.channels, step: step)
    }
}
