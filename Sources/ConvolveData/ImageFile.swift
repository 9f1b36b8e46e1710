import Foundation
import CConvolveSupport
import ConvolveIO

/// JPEG decoding (baseline and progressive, grey and colour) by libjpeg-turbo, the library Pillow and
/// torchvision use too. The library is loaded when first needed, so building Convolve never needs it;
/// without it, reading a JPEG fails with one line naming the package to install (`libturbojpeg0`).
public enum JPEG {
    /// Whether the TurboJPEG library could be loaded; `loadError` says why not.
    public static var isAvailable: Bool { loadError == nil }

    /// Why JPEG files cannot be read on this machine, or nil when they can.
    public static var loadError: String? {
        var message = [CChar](repeating: 0, count: 512)
        return convolve_jpeg_load(&message, Int32(message.count)) == 0 ? nil : String(cString: message)
    }

    struct DecodeError: Error { let reason: String }

    /// Decodes JPEG bytes to 8-bit grey (greyscale JPEGs) or RGB (every other colour space but CMYK).
    /// - Parameter bytes: a whole JPEG file.
    public static func decode(_ bytes: [UInt8]) throws -> Image {
        var message = [CChar](repeating: 0, count: 512)
        var width: Int32 = 0, height: Int32 = 0, grey: Int32 = 0
        guard bytes.withUnsafeBufferPointer({ convolve_jpeg_header($0.baseAddress, UInt($0.count), &width, &height, &grey,
                                                                   &message, Int32(message.count)) }) == 0 else {
            throw DecodeError(reason: String(cString: message))
        }
        let (w, h, c) = (Int(width), Int(height), grey != 0 ? 1 : 3)
        guard w > 0, h > 0 else { throw DecodeError(reason: "bad size \(w)x\(h)") }
        do { try Limits.checkImage(width: w, height: h) } catch { throw DecodeError(reason: "\(error)") }
        var pixels = [UInt8](repeating: 0, count: w * h * c)
        let rc = bytes.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                convolve_jpeg_decode(src.baseAddress, UInt(src.count), dst.baseAddress, width, height, Int32(c),
                                     &message, Int32(message.count))
            }
        }
        guard rc == 0 else { throw DecodeError(reason: String(cString: message)) }
        return Image(width: w, height: h, channels: c, pixels: pixels)
    }
}

/// Image files by their content: PNG or JPEG (sniffed from the first bytes, whatever the extension).
public enum ImageFile {
    /// File name extensions of image files (matched case-insensitively); other files in an image
    /// folder are ignored.
    public static let extensions: Set<String> = ["png", "jpg", "jpeg", "jpe", "jfif"]

    /// Whether `path` has an image file extension.
    /// - Parameter path: a file name or path.
    public static func hasImageExtension(_ path: String) -> Bool {
        extensions.contains((path as NSString).pathExtension.lowercased())
    }

    /// Reads a PNG or JPEG file as 8-bit grey or RGB; errors name the file and what is wrong.
    /// - Parameter path: the file.
    public static func read(_ path: String) throws -> Image {
        let data: Data
        do { data = try readRegularFile(path) } catch let e as IOError { throw DataError.unreadable(path: path, reason: e.reason) }
        return try decode([UInt8](data), path: path)
    }

    /// Decodes PNG or JPEG bytes.
    /// - Parameters:
    ///   - bytes: a whole file.
    ///   - path: named in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws -> Image {
        if bytes.starts(with: PNG.signature) {
            do { return try PNG.decode(bytes) }
            catch let e as PNG.PNGDecodeError { throw DataError.badImage(path: path, reason: "not a readable PNG: \(e.reason)") }
        }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) {
            if let why = JPEG.loadError { throw DataError.badImage(path: path, reason: why) }
            do { return try JPEG.decode(bytes) }
            catch let e as JPEG.DecodeError { throw DataError.badImage(path: path, reason: "not a readable JPEG: \(e.reason)") }
        }
        if bytes.isEmpty { throw DataError.badImage(path: path, reason: "empty file") }
        throw DataError.badImage(path: path, reason: "not a PNG or JPEG image (unknown first bytes "
            + bytes.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ") + ")")
    }
}

extension Image {
    /// Three channels: grey replicated, RGB as is.
    public func rgb() -> Image {
        if channels == 3 { return self }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { let v = pixels[i]; out[3 * i] = v; out[3 * i + 1] = v; out[3 * i + 2] = v }
        return Image(width: width, height: height, channels: 3, pixels: out)
    }

    /// The image with `channels` channels (1: luminance, 3: RGB).
    /// - Parameter channels: 1 or 3.
    public func converted(channels: Int) -> Image { channels == 1 ? grayscale() : rgb() }

    /// The largest centred region with the aspect ratio `width : height` (Keras' `crop_to_aspect_ratio`,
    /// torchvision's resize-shorter-side-then-`CenterCrop`).
    /// - Parameters:
    ///   - aspectWidth: target width (any unit).
    ///   - aspectHeight: target height.
    public func centerCropped(aspectWidth: Int, aspectHeight: Int) -> Image {
        var cw = width, ch = height
        if width * aspectHeight > height * aspectWidth { cw = Swift.max(1, height * aspectWidth / aspectHeight) }
        else { ch = Swift.max(1, width * aspectHeight / aspectWidth) }
        if cw == width && ch == height { return self }
        let x0 = (width - cw) / 2, y0 = (height - ch) / 2
        var out = [UInt8](repeating: 0, count: cw * ch * channels)
        for y in 0..<ch {
            let src = ((y0 + y) * width + x0) * channels
            out[(y * cw * channels)..<((y + 1) * cw * channels)] = pixels[src..<(src + cw * channels)]
        }
        return Image(width: cw, height: ch, channels: channels, pixels: out)
    }

    /// Resized with a triangle (bilinear) filter that widens when shrinking, so downscaling averages
    /// every source pixel instead of skipping rows — what Pillow's `resize(..., BILINEAR)` does.
    /// - Parameters:
    ///   - newWidth: output width.
    ///   - newHeight: output height.
    public func resized(width newWidth: Int, height newHeight: Int) -> Image {
        if newWidth == width && newHeight == height { return self }
        // Separable: horizontal pass into floats, then vertical pass into bytes.
        let horizontal = Self.filterWeights(source: width, target: newWidth)
        let vertical = Self.filterWeights(source: height, target: newHeight)
        var rows = [Float](repeating: 0, count: height * newWidth * channels)
        for y in 0..<height { for x in 0..<newWidth {
            let (first, weights) = horizontal[x]
            for c in 0..<channels {
                var acc: Float = 0
                for (k, wt) in weights.enumerated() { acc += wt * Float(pixels[(y * width + first + k) * channels + c]) }
                rows[(y * newWidth + x) * channels + c] = acc
            }
        } }
        var out = [UInt8](repeating: 0, count: newHeight * newWidth * channels)
        for y in 0..<newHeight {
            let (first, weights) = vertical[y]
            for i in 0..<(newWidth * channels) {
                var acc: Float = 0
                for (k, wt) in weights.enumerated() { acc += wt * rows[(first + k) * newWidth * channels + i] }
                out[y * newWidth * channels + i] = UInt8(Swift.max(0, Swift.min(255, acc.rounded())))
            }
        }
        return Image(width: newWidth, height: newHeight, channels: channels, pixels: out)
    }

    /// For each output position, the first source index and the normalized triangle-filter weights.
    static func filterWeights(source: Int, target: Int) -> [(Int, [Float])] {
        let scale = Double(source) / Double(target)
        let support = Swift.max(scale, 1)   // the filter widens when shrinking (antialiasing)
        return (0..<target).map { i in
            let center = (Double(i) + 0.5) * scale
            let lo = Swift.max(0, Int((center - support).rounded(.down)))
            let hi = Swift.min(source, Int((center + support).rounded(.up)))
            var weights: [Double] = (lo..<hi).map { j in Swift.max(0, 1 - Swift.abs((Double(j) + 0.5 - center) / support)) }
            let total = weights.reduce(0, +)
            if total > 0 { weights = weights.map { $0 / total } }
            return (lo, weights.map(Float.init))
        }
    }
}
