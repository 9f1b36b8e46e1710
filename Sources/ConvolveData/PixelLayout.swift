import Foundation

/// The one conversion between interleaved pixels (`H×W×C` per image, as image files and IDX colour files
/// hold them) and planar pixels (`C×H×W` per image, as datasets and tensors hold them), for any number
/// of images of one size.
public enum PixelLayout {
    /// Interleaved `N×H×W×C` bytes as planar `N×C×H×W`.
    /// - Parameters:
    ///   - pixels: whole images, interleaved.
    ///   - channels: channels per pixel.
    ///   - plane: pixels per image (height × width).
    public static func planar(_ pixels: [UInt8], channels: Int, plane: Int) -> [UInt8] {
        convert(pixels, channels: channels, plane: plane) { image, p, c in (image * channels + c) * plane + p }
    }

    /// Planar `N×C×H×W` bytes as interleaved `N×H×W×C`.
    /// - Parameters:
    ///   - pixels: whole images, planar.
    ///   - channels: channels per pixel.
    ///   - plane: pixels per image (height × width).
    public static func interleaved(_ pixels: [UInt8], channels: Int, plane: Int) -> [UInt8] {
        guard channels > 1, plane > 0 else { return pixels }
        var out = [UInt8](repeating: 0, count: pixels.count)
        let per = channels * plane
        for image in 0..<(pixels.count / per) {
            for p in 0..<plane { for c in 0..<channels { out[image * per + p * channels + c] = pixels[image * per + c * plane + p] } }
        }
        return out
    }

    /// Moves each interleaved byte `(image, pixel, channel)` to `target(image, pixel, channel)`.
    private static func convert(_ pixels: [UInt8], channels: Int, plane: Int, _ target: (Int, Int, Int) -> Int) -> [UInt8] {
        guard channels > 1, plane > 0 else { return pixels }
        var out = [UInt8](repeating: 0, count: pixels.count)
        let per = channels * plane
        for image in 0..<(pixels.count / per) {
            for p in 0..<plane { for c in 0..<channels { out[target(image, p, c)] = pixels[image * per + p * channels + c] } }
        }
        return out
    }
}
