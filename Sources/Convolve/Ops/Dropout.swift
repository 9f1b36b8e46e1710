import Foundation
import RealModule

/// Randomly zeroes elements with probability `p` and scales the rest by `1/(1-p)` when `training`.
///
/// - Parameters:
///   - input: any shape.
///   - p: probability of zeroing an element.
///   - training: apply dropout (otherwise the input is returned as is).
///   - generator: draws the mask (one seed per 8K-element block, so the mask depends on the seed only).
public func dropout(_ input: Tensor, p: Float, training: Bool, generator: RandomGenerator = .global) -> Tensor {
    precondition(p >= 0 && p <= 1, "dropout probability must be in [0, 1], got \(p)")
    if !training || p == 0 { return input }
    let scale: Float = p < 1 ? 1 / (1 - p) : 0
    let n = input.count
    // One byte per element (kept = 1): a quarter of a float mask's memory. Blocks of 8K elements draw
    // from their own generators, seeded in order from `generator`, so the mask is built in parallel and
    // depends only on the seed (not on the thread count); one pass draws the mask and writes the output.
    let block = 1 << 13, blocks = (n + block - 1) / block
    let seeds = generator.withState { rng in (0..<blocks).map { _ in rng.next() } }
    // Each step of a block's eight-lane generator gives sixteen 24-bit uniforms u (lane j's bits 8…31
    // for element 2j, its bits 40…63 for element 2j + 1: the little-endian halves of its 64 bits), kept
    // when u / 2²⁴ ≥ p, that is u ≥ ⌈p · 2²⁴⌉.
    let threshold = SIMD16<UInt32>(repeating: UInt32((Double(p) * 16_777_216).rounded(.up)))
    var out = [Float]()
    let mask = [UInt8](unsafeUninitializedCapacity: n) { m, c in
        out = input.storage.withUnsafeBufferPointer { x in uninitializedFloats(n) { o in
            Parallel.forChunks(blocks, work: n * 4) { r in
                for bi in r {
                    var rng = Xoshiro256StarStarLanes(seed: seeds[bi])
                    var i = bi * block
                    let end = Swift.min(n, i + block)
                    while i < end {
                        let bits = rng.next()
                        let u = unsafeBitCast(bits, to: SIMD16<UInt32>.self) &>> 8
                        let keep = u .>= threshold
                        let factor = SIMD16<Float>(repeating: 0).replacing(with: scale, where: keep)
                        let kept = SIMD16<UInt8>(truncatingIfNeeded: SIMD16<UInt32>(repeating: 0).replacing(with: 1, where: keep))
                        if end - i >= 16 {
                            let xs = UnsafeRawPointer(x.baseAddress! + i).loadUnaligned(as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(o.baseAddress! + i).storeBytes(of: xs * factor, as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(m.baseAddress! + i).storeBytes(of: kept, as: SIMD16<UInt8>.self)
                        } else {
                            for k in 0..<(end - i) { o[i + k] = x[i + k] * factor[k]; m[i + k] = kept[k] }
                        }
                        i += 16
                    }
                }
            }
        } }
        c = n
    }
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

/// Stochastic depth (torchvision's `stochastic_depth(mode="row")`, EfficientNet's drop connect): while
/// `training`, each sample's whole input (a residual branch) is zeroed with probability `p` and the
/// survivors scaled by `1/(1−p)`; otherwise the input as it is. The gradient follows the same mask.
///
/// - Parameters:
///   - input: `[N, ...]`, one row per sample.
///   - p: probability of dropping a sample's branch.
///   - training: apply it (otherwise the input is returned).
///   - generator: draws one uniform per sample.
public func stochasticDepth(_ input: Tensor, p: Float, training: Bool, generator: RandomGenerator = .global) -> Tensor {
    precondition(p >= 0 && p <= 1, "stochastic depth probability must be in [0, 1], got \(p)")
    if !training || p == 0 || input.rank == 0 { return input }
    let survival = 1 - p
    let keep = Tensor.bernoulli([input.shape[0]] + [Int](repeating: 1, count: input.rank - 1), p: survival, generator: generator)
    if survival > 0 { keep.scale(by: 1 / survival) }
    return input * keep
}
