import Foundation

/// An RGB drawing surface for plots: rectangles, lines, and text in an embedded bitmap font
/// (DejaVu Sans Mono, see `BitmapFont`). Coordinates are pixels, origin top left.
public struct Canvas: Sendable {
    public typealias Color = (r: UInt8, g: UInt8, b: UInt8)
    public let width: Int, height: Int
    public private(set) var pixels: [UInt8]

    /// - Parameters:
    ///   - width: pixels across.
    ///   - height: pixels down.
    ///   - background: the fill.
    public init(width: Int, height: Int, background: Color = (255, 255, 255)) {
        self.width = width; self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { pixels[3 * i] = background.r; pixels[3 * i + 1] = background.g; pixels[3 * i + 2] = background.b }
    }

    /// The picture as an RGB `Image` (for `PNG.write`).
    public var image: Image { Image(width: width, height: height, channels: 3, pixels: pixels) }

    /// Blends `color` into pixel (x, y) with opacity `alpha` (0…1); outside the canvas nothing happens.
    ///
    /// - Parameters:
    ///   - x: column.
    ///   - y: row.
    ///   - color: the colour blended in.
    ///   - alpha: its opacity, 0…1.
    public mutating func blend(_ x: Int, _ y: Int, _ color: Color, alpha: Double = 1) {
        guard x >= 0, y >= 0, x < width, y < height, alpha > 0 else { return }
        let i = (y * width + x) * 3, a = Swift.min(1, alpha)
        func mix(_ old: UInt8, _ new: UInt8) -> UInt8 { UInt8((Double(old) * (1 - a) + Double(new) * a).rounded()) }
        pixels[i] = mix(pixels[i], color.r); pixels[i + 1] = mix(pixels[i + 1], color.g); pixels[i + 2] = mix(pixels[i + 2], color.b)
    }

    /// Fills the rectangle `x..<x+w`, `y..<y+h`.
    ///
    /// - Parameters:
    ///   - x: left column.
    ///   - y: top row.
    ///   - w: width.
    ///   - h: height.
    ///   - color: the fill.
    public mutating func fill(x: Int, y: Int, w: Int, h: Int, _ color: Color) {
        for yy in Swift.max(0, y)..<Swift.min(height, y + h) { for xx in Swift.max(0, x)..<Swift.min(width, x + w) {
            blend(xx, yy, color)
        } }
    }

    /// A line `thickness` pixels wide from (x0, y0) to (x1, y1).
    ///
    /// - Parameters:
    ///   - x0: start column.
    ///   - y0: start row.
    ///   - x1: end column.
    ///   - y1: end row.
    ///   - color: the line's colour.
    ///   - thickness: its width in pixels.
    public mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ color: Color, thickness: Int = 1) {
        let steps = Swift.max(1, Int(Swift.max(Swift.abs(x1 - x0), Swift.abs(y1 - y0)).rounded(.up)))
        let r = thickness / 2
        for s in 0...steps {
            let t = Double(s) / Double(steps)
            let x = Int((x0 + (x1 - x0) * t).rounded()), y = Int((y0 + (y1 - y0) * t).rounded())
            for dy in -r...(thickness - 1 - r) { for dx in -r...(thickness - 1 - r) { blend(x + dx, y + dy, color) } }
        }
    }

    /// Width in pixels of `text` in the bitmap font.
    ///
    /// - Parameter text: printable ASCII.
    public static func textWidth(_ text: String) -> Int { text.count * BitmapFont.width }
    /// Height of a line of text.
    public static var lineHeight: Int { BitmapFont.height }

    /// Draws `text` with its top-left corner at (x, y); characters outside printable ASCII show as `?`.
    ///
    /// - Parameters:
    ///   - text: printable ASCII.
    ///   - x: left column.
    ///   - y: top row.
    ///   - color: the ink.
    public mutating func text(_ text: String, x: Int, y: Int, _ color: Color = (0, 0, 0)) {
        for (k, ch) in text.enumerated() {
            let code = ch.asciiValue.map(Int.init) ?? 63
            let glyph = Array(BitmapFont.glyphs[(32...126).contains(code) ? code - 32 : 31].utf8)
            for gy in 0..<BitmapFont.height { for gx in 0..<BitmapFont.width {
                let c = glyph[gy * BitmapFont.width + gx]
                let v = c >= 97 ? Int(c) - 87 : Int(c) - 48   // hex digit
                if v > 0 { blend(x + k * BitmapFont.width + gx, y + gy, color, alpha: Double(v) / 15) }
            } }
        }
    }

    /// Draws `text` centred on (x, y).
    ///
    /// - Parameters:
    ///   - text: printable ASCII.
    ///   - x: the centre's column.
    ///   - y: the centre's row.
    ///   - color: the ink.
    public mutating func text(_ text: String, centerX x: Int, centerY y: Int, _ color: Color = (0, 0, 0)) {
        self.text(text, x: x - Self.textWidth(text) / 2, y: y - Self.lineHeight / 2, color)
    }

    /// Copies a grey or RGB image in at (x, y), each pixel as a `scale`×`scale` block.
    ///
    /// - Parameters:
    ///   - image: grey or RGB.
    ///   - x: left column.
    ///   - y: top row.
    ///   - scale: pixels per image pixel, each way.
    public mutating func draw(_ image: Image, x: Int, y: Int, scale: Int = 1) {
        for yy in 0..<(image.height * scale) { for xx in 0..<(image.width * scale) {
            let i = ((yy / scale) * image.width + xx / scale) * image.channels
            let c: Color = image.channels >= 3 ? (image.pixels[i], image.pixels[i + 1], image.pixels[i + 2])
                : (image.pixels[i], image.pixels[i], image.pixels[i])
            blend(x + xx, y + yy, c)
        } }
    }
}
