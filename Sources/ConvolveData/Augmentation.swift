import Foundation
import Convolve

// Random per-sample transforms for training (torchvision's `RandomCrop`, `RandomHorizontalFlip`,
// `RandomAffine`). They are `Transform`s, so they compose with `ToTensor` and `Normalize`:
//
//     Compose(RandomCrop(padding: 4), RandomHorizontalFlip(), ToTensor(), Normalize(mean: m, std: s))
//
// Put them on the training set only (evaluation then sees plain images). They run where the loader
// builds batches — on its background thread — and draw from the generator the loader seeds per batch,
// so a seeded run is reproducible. Every sample keeps its shape; uncovered pixels are `fill`.

/// A transform that draws random numbers: applied outside a loader (no generator given), it draws a
/// seed from the default generator (itself seedable with `manualSeed`).
public protocol RandomTransform: Transform {}

extension RandomTransform {
    public var isRandom: Bool { true }
    public func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int]) {
        var g = Xoshiro256StarStar(seed: RandomGenerator.global.next())
        apply(batch, shape: shape, generator: &g)
    }
}

/// Applies `body` to each `[C, H, W]` sample of a batch.
@inline(__always)
func forEachSample(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int],
                   _ body: (UnsafeMutablePointer<Float>, _ channels: Int, _ height: Int, _ width: Int) -> Void) {
    guard shape.count == 4 else { return }
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
    for i in 0..<n { body(batch.baseAddress! + i * c * h * w, c, h, w) }
}

/// Pads each image by `padding` on every side with `fill`, then crops a random window of the
/// original size (`transforms.RandomCrop(size, padding=p)`): a random shift of up to ±`padding` pixels.
public struct RandomCrop: RandomTransform {
    public let padding: Int
    public let fill: Float
    /// - Parameters:
    ///   - padding: the largest shift, in pixels, each way.
    ///   - fill: the value of pixels shifted in from outside (in the batch's current scale: 0 before ToTensor).
    public init(padding: Int, fill: Float = 0) {
        precondition(padding >= 0, "padding must not be negative")
        self.padding = padding; self.fill = fill
    }
    public func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int], generator: inout Xoshiro256StarStar) {
        forEachSample(batch, shape: shape) { sample, c, h, w in
            let dy = Int(generator.next() % UInt64(2 * padding + 1)) - padding
            let dx = Int(generator.next() % UInt64(2 * padding + 1)) - padding
            if dx == 0 && dy == 0 { return }
            // out[y][x] = in[y + dy][x + dx], in place: rows move in the order that reads each source row
            // before it is overwritten (down the plane when the source lies below, up when above), and
            // each row's covered span moves with one overlapping-safe copy.
            let span = max(0, w - abs(dx))
            let (srcX, dstX) = (max(0, dx), max(0, -dx))
            for ch in 0..<c {
                let plane = sample + ch * h * w
                for step in 0..<h {
                    let y = dy >= 0 ? step : h - 1 - step, sy = y + dy
                    let row = plane + y * w
                    guard sy >= 0 && sy < h && span > 0 else { row.update(repeating: fill, count: w); continue }
                    memmove(row + dstX, plane + sy * w + srcX, span * MemoryLayout<Float>.stride)
                    if dstX > 0 { row.update(repeating: fill, count: dstX) }
                    if dstX + span < w { (row + dstX + span).update(repeating: fill, count: w - dstX - span) }
                }
            }
        }
    }
}

/// Mirrors each image left-right with probability `p` (`transforms.RandomHorizontalFlip`).
/// Not for digits or text, whose meaning changes when mirrored.
public struct RandomHorizontalFlip: RandomTransform {
    public let p: Double
    /// - Parameter p: probability of flipping each image.
    public init(p: Double = 0.5) { precondition(p >= 0 && p <= 1, "p must be in [0, 1]"); self.p = p }
    public func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int], generator: inout Xoshiro256StarStar) {
        forEachSample(batch, shape: shape) { sample, c, h, w in
            guard Double(generator.nextFloat()) < p else { return }
            for r in 0..<(c * h) {
                let row = sample + r * w
                for x in 0..<(w / 2) { let t = row[x]; row[x] = row[w - 1 - x]; row[w - 1 - x] = t }
            }
        }
    }
}

/// A small random affine warp about the image centre (`transforms.RandomAffine`): rotation by up
/// to ±`degrees`, a shift of up to `translate` × the size each way, and a zoom in `scale`; bilinear
/// sampling, uncovered pixels `fill`. For digits: `RandomAffine(degrees: 10, translate: 0.1, scale: 0.9...1.1)`.
public struct RandomAffine: RandomTransform {
    public let degrees: Double, translate: Double, scale: ClosedRange<Double>, fill: Float
    /// - Parameters:
    ///   - degrees: largest rotation either way.
    ///   - translate: largest shift as a fraction of the width (horizontally) and height (vertically).
    ///   - scale: the range the zoom factor is drawn from.
    ///   - fill: the value of uncovered pixels (in the batch's current scale).
    public init(degrees: Double = 0, translate: Double = 0, scale: ClosedRange<Double> = 1...1, fill: Float = 0) {
        precondition(degrees >= 0 && translate >= 0 && translate < 1 && scale.lowerBound > 0, "bad RandomAffine parameters")
        self.degrees = degrees; self.translate = translate; self.scale = scale; self.fill = fill
    }
    public func apply(_ batch: UnsafeMutableBufferPointer<Float>, shape: [Int], generator: inout Xoshiro256StarStar) {
        var source = [Float]()
        forEachSample(batch, shape: shape) { sample, c, h, w in
            func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * Double(generator.nextFloat()) }
            let angle = uniform(-degrees, degrees) * .pi / 180
            let tx = uniform(-translate, translate) * Double(w), ty = uniform(-translate, translate) * Double(h)
            let zoom = uniform(scale.lowerBound, scale.upperBound)
            source = Array(UnsafeBufferPointer(start: sample, count: c * h * w))
            // Output pixel p maps back to the source at R(-angle) (p - centre - t) / zoom + centre.
            let (cx, cy) = (Double(w - 1) / 2, Double(h - 1) / 2)
            let (cosA, sinA) = (cos(angle) / zoom, sin(angle) / zoom)
            for y in 0..<h { for x in 0..<w {
                let ux = Double(x) - cx - tx, uy = Double(y) - cy - ty
                let sx = cosA * ux + sinA * uy + cx, sy = -sinA * ux + cosA * uy + cy
                let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                let fx = Float(sx - Double(x0)), fy = Float(sy - Double(y0))
                for ch in 0..<c {
                    let plane = ch * h * w
                    func at(_ yy: Int, _ xx: Int) -> Float { yy >= 0 && yy < h && xx >= 0 && xx < w ? source[plane + yy * w + xx] : fill }
                    let top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
                    let bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
                    sample[plane + y * w + x] = top * (1 - fy) + bottom * fy
                }
            } }
        }
    }
}
