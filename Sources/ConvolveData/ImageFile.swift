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

    /// Resized with Pillow's `resize(..., BILINEAR)` (or `BICUBIC`), byte for byte: a triangle (or
    /// Keys cubic, a = −0.5) filter that widens when shrinking (so downscaling averages every source
    /// pixel), coefficients in Pillow's 22-bit fixed point, a horizontal pass rounded to bytes, then a
    /// vertical one — what torchvision's `Resize` does to a PIL image, so a pretrained model sees the
    /// pixels it was trained on.
    /// - Parameters:
    ///   - newWidth: output width.
    ///   - newHeight: output height.
    ///   - filter: `.bilinear` (default) or `.bicubic`.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResizeFilter = .bilinear) -> Image {
        var image = self
        if newWidth != width {
            let taps = Self.taps(source: width, target: newWidth, filter: filter)
            var out = [UInt8](repeating: 0, count: height * newWidth * channels)
            for y in 0..<height { for x in 0..<newWidth {
                let (first, weights) = taps[x]
                for c in 0..<channels {
                    var sum = Self.half
                    for (k, weight) in weights.enumerated() { sum += weight * Int(pixels[(y * width + first + k) * channels + c]) }
                    out[(y * newWidth + x) * channels + c] = Self.clip(sum)
                }
            } }
            image = Image(width: newWidth, height: height, channels: channels, pixels: out)
        }
        if newHeight != height {
            let taps = Self.taps(source: height, target: newHeight, filter: filter)
            let row = newWidth * channels
            var out = [UInt8](repeating: 0, count: newHeight * row)
            for y in 0..<newHeight {
                let (first, weights) = taps[y]
                for i in 0..<row {
                    var sum = Self.half
                    for (k, weight) in weights.enumerated() { sum += weight * Int(image.pixels[(first + k) * row + i]) }
                    out[y * row + i] = Self.clip(sum)
                }
            }
            image = Image(width: newWidth, height: newHeight, channels: channels, pixels: out)
        }
        return image
    }

    /// Pillow's fixed point: coefficients carry 22 fractional bits (`PRECISION_BITS`).
    static let precisionBits = 22
    static let half = 1 << (precisionBits - 1)
    static func clip(_ sum: Int) -> UInt8 { UInt8(Swift.max(0, Swift.min(255, sum >> precisionBits))) }

    /// For each output position, the first source index and its fixed-point filter weights, as
    /// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` compute them.
    static func taps(source: Int, target: Int, filter: ResizeFilter) -> [(Int, [Int])] {
        let scale = Double(source) / Double(target)
        let filterScale = Swift.max(scale, 1)   // the filter widens when shrinking (antialiasing)
        let support = filter.support * filterScale
        return (0..<target).map { i in
            let center = (Double(i) + 0.5) * scale
            let lo = Swift.max(0, Int(center - support + 0.5))
            let hi = Swift.min(source, Int(center + support + 0.5))
            var weights: [Double] = (lo..<Swift.max(lo, hi)).map { j in filter.weight((Double(j) - center + 0.5) / filterScale) }
            let total = weights.reduce(0, +)
            if total != 0 { weights = weights.map { $0 / total } }
            let one = Double(1 << precisionBits)
            return (lo, weights.map { $0 < 0 ? Int(-0.5 + $0 * one) : Int(0.5 + $0 * one) })
        }
    }

    /// torchvision's `Resize(size)` of a PIL image: the shorter side becomes `size`, the longer
    /// `Int(size × longer / shorter)` (truncated), resized as ``resized(width:height:filter:)``.
    /// - Parameters:
    ///   - size: the shorter side after resizing.
    ///   - filter: `.bilinear` (default) or `.bicubic`.
    public func resized(shorterSide size: Int, filter: ResizeFilter = .bilinear) -> Image {
        let (short, long) = width <= height ? (width, height) : (height, width)
        let newLong = Int(Double(size) * Double(long) / Double(short))
        return width <= height ? resized(width: size, height: newLong, filter: filter) : resized(width: newLong, height: size, filter: filter)
    }

    /// The centred `width × height` region, placed as torchvision's `CenterCrop` places it (offsets
    /// `round((side − crop) / 2)`, halves rounded to even, as Python rounds); the image must be at
    /// least that large.
    /// - Parameters:
    ///   - cropWidth: the region's width (at most the image's).
    ///   - cropHeight: the region's height (at most the image's).
    public func centerCropped(width cropWidth: Int, height cropHeight: Int) -> Image {
        let x0 = Int((Double(width - cropWidth) / 2).rounded(.toNearestOrEven))
        let y0 = Int((Double(height - cropHeight) / 2).rounded(.toNearestOrEven))
        var out = [UInt8](repeating: 0, count: cropWidth * cropHeight * channels)
        for y in 0..<cropHeight {
            let src = ((y0 + y) * width + x0) * channels
            out[(y * cropWidth * channels)..<((y + 1) * cropWidth * channels)] = pixels[src..<(src + cropWidth * channels)]
        }
        return Image(width: cropWidth, height: cropHeight, channels: channels, pixels: out)
    }
}

/// The resampling filters of ``Image/resized(width:height:filter:)``, Pillow's.
public enum ResizeFilter: String, Codable, Sendable {
    /// The triangle filter (`Image.BILINEAR`, torchvision's default).
    case bilinear
    /// Keys' cubic convolution with a = −0.5 (`Image.BICUBIC`: torchvision's EfficientNet weights).
    case bicubic

    /// Half the filter's width at scale 1.
    var support: Double { self == .bilinear ? 1 : 2 }

    /// The filter's value at `x`.
    func weight(_ x: Double) -> Double {
        let x = Swift.abs(x)
        switch self {
        case .bilinear: return x < 1 ? 1 - x : 0
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }
}
