import Foundation
import RealModule

/// Randomly zeroes elements with probability `p` and scales the rest by `1/(1-p)` when `training`.
///
/// - Parameters:
///   - input: any shape.
///   - p: probability of zeroing an element.
///   - training: apply dropout (otherwise the input is returned as is).
///   - generator: draws the mask (one seed per 32K-element block, so the mask depends on the seed only).
public func dropout(_ input: Tensor, p: Float, training: Bool, generator: RandomGenerator = .global) -> Tensor {
    precondition(p >= 0 && p <= 1, "dropout probability must be in [0, 1], got \(p)")
    if !training || p == 0 { return input }
    let scale: Float = p < 1 ? 1 / (1 - p) : 0
    let n = input.count
    // One byte per element (kept = 1): a quarter of a float mask's memory. Blocks of 32K elements draw
    // from their own generators, seeded in order from `generator`, so the mask is built in parallel and
    // depends only on the seed (not on the thread count).
    let block = 1 << 15, blocks = (n + block - 1) / block
    let seeds = generator.withState { rng in (0..<blocks).map { _ in rng.next() } }
    // Each 64-bit draw gives two 24-bit uniforms u (bits 40…63 and 8…31), kept when u / 2²⁴ ≥ p, that
    // is u ≥ ⌈p · 2²⁴⌉: half the generator's serial steps of one draw per element.
    let threshold = UInt64((Double(p) * 16_777_216).rounded(.up))
    let mask = [UInt8](unsafeUninitializedCapacity: n) { m, c in
        Parallel.forChunks(blocks, work: n * 4) { r in
            for bi in r {
                var rng = Xoshiro256StarStar(seed: seeds[bi])
                let end = Swift.min(n, (bi + 1) * block)
                var i = bi * block
                while i < end {
                    let bits = rng.next()
                    m[i] = bits >> 40 >= threshold ? 1 : 0
                    if i + 1 < end { m[i + 1] = bits >> 8 & 0xFF_FFFF >= threshold ? 1 : 0 }
                    i += 2
                }
            }
        }
        c = n
    }
    let out = input.storage.withUnsafeBufferPointer { x in mask.withUnsafeBufferPointer { m in
        uninitializedFloats(n) { o in
            Parallel.forChunks(n, work: n, streaming: true) { r in for i in r { o[i] = x[i] * (m[i] != 0 ? scale : 0) } }
        }
    } }
    return Tensor.result(out, input.shape, [input], op: "dropout") { g in
        mask.withUnsafeBufferPointer { m in
            input.accumulate(overwriting: { d, fresh in
                Parallel.forChunks(n, work: n, streaming: true) { r in
                    if fresh { for i in r { d[i] = g[i] * (m[i] != 0 ? scale : 0) } }
                    else { for i in r { d[i] += g[i] * (m[i] != 0 ? scale : 0) } }
                }
            })
        }
    }
}
