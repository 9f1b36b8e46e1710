import Foundation
import RealModule

// MARK: - Elementwise binary operations

extension Tensor {
    /// `f` elementwise with broadcasting; operands of one shape (a residual block's sum) run on every
    /// thread in streaming chunks.
    @inline(__always)
    static func binary(_ op: StaticString, _ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float,
                       _ grads: @escaping (_ g: [Float], _ shape: [Int]) -> ([Float]?, [Float]?)) -> Tensor {
        let (data, shape): ([Float], [Int])
        if a.shape == b.shape {
            shape = a.shape
            data = uninitializedFloats(a.count) { y in
                a.storage.withUnsafeBufferPointer { pa in b.storage.withUnsafeBufferPointer { pb in
                    let (yp, ap, bp) = (y.baseAddress!, pa.baseAddress!, pb.baseAddress!)
                    Parallel.forChunks(y.count, work: y.count, streaming: true) { r in for i in r { yp[i] = f(ap[i], bp[i]) } }
                } }
            }
        } else {
            (data, shape) = broadcastMap(a.storage, a.shape, b.storage, b.shape, f)
        }
        let y = result(data, shape, [a, b], op: op) { g in
            let (ga, gb) = grads(g, shape)
            if let ga { a.accumulate(sumTo(ga, from: shape, to: a.shape)) }
            if let gb { b.accumulate(sumTo(gb, from: shape, to: b.shape)) }
        }
        let names: [String: String] = ["add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"]
        OpTrace.record(names["\(op)"] ?? "\(op)", [a, b], output: y)
        return y
    }

    /// Elementwise sum with broadcasting.
    ///
    /// - Parameters:
    ///   - a: a tensor.
    ///   - b: a tensor whose shape broadcasts with `a`'s.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        binary("add", a, b, +) { g, _ in (a.requiresGrad ? g : nil, b.requiresGrad ? g : nil) }
    }
    /// Elementwise difference with broadcasting.
    ///
    /// - Parameters:
    ///   - a: a tensor.
    ///   - b: a tensor whose shape broadcasts with `a`'s.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        binary("sub", a, b, -) { g, _ in (a.requiresGrad ? g : nil, b.requiresGrad ? g.map { -$0 } : nil) }
    }
    /// Elementwise product with broadcasting.
    ///
    /// - Parameters:
    ///   - a: a tensor.
    ///   - b: a tensor whose shape broadcasts with `a`'s.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        binary("mul", a, b, *) { g, shape in
            (a.requiresGrad ? broadcastMap(g, shape, b.storage, b.shape, *).0 : nil,
             b.requiresGrad ? broadcastMap(g, shape, a.storage, a.shape, *).0 : nil)
        }
    }
    /// Elementwise quotient with broadcasting.
    ///
    /// - Parameters:
    ///   - a: the dividend.
    ///   - b: the divisor, broadcasting with `a`.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        binary("div", a, b, /) { g, shape in
            let ga = a.requiresGrad ? broadcastMap(g, shape, b.storage, b.shape, /).0 : nil
            var gb: [Float]? = nil
            if b.requiresGrad {
                // d(a/b)/db = -a/b² = -(a/b)/b
                let q = broadcastMap(a.storage, a.shape, b.storage, b.shape, /).0
                let t = broadcastMap(q, shape, b.storage, b.shape, /).0
                gb = zip(g, t).map { -$0 * $1 }
            }
            return (ga, gb)
        }
    }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func + (a: Tensor, s: Float) -> Tensor { a.unary({ $0 + s }, op: "addScalar") { g, _, _ in g } }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func - (s: Float, a: Tensor) -> Tensor { a.unary({ s - $0 }, op: "rsubScalar") { g, _, _ in -g } }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func * (a: Tensor, s: Float) -> Tensor { a.unary({ $0 * s }, op: "mulScalar") { g, _, _ in g * s } }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
    /// - Parameters:
    ///   - a: the tensor (elementwise).
    ///   - s: the scalar.
    public static func / (s: Float, a: Tensor) -> Tensor {
        a.unary({ s / $0 }, op: "rdivScalar") { g, x, _ in -g * s / (x * x) }
    }
    /// Elementwise negation.
    public static prefix func - (a: Tensor) -> Tensor { a * -1 }
}

// MARK: - Elementwise unary operations

extension Tensor {
    /// Applies `f` elementwise; `df(g, x, y)` is the input gradient given output gradient `g`,
    /// input `x` and output `y`.
    @inline(__always)
    func unary(_ f: (Float) -> Float, op: StaticString, _ df: @escaping (Float, Float, Float) -> Float) -> Tensor {
        var out = [Float](repeating: 0, count: count)
        storage.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { y in
            for i in 0..<y.count { y[i] = f(x[i]) }
        } }
        let input = self
        let y = out
        return Tensor.result(out, shape, [self], op: op) { g in
            input.accumulate { d in
                input.storage.withUnsafeBufferPointer { x in
                    for i in 0..<d.count { d[i] += df(g[i], x[i], y[i]) }
                }
            }
        }
    }

    /// `x` for positive values, `slope * x` otherwise.
    ///
    /// - Parameter slope: the factor for negative values.
    public func leakyRelu(_ slope: Float = 0.01) -> Tensor {
        unary({ $0 > 0 ? $0 : slope * $0 }, op: "leakyRelu") { g, x, _ in x > 0 ? g : slope * g }
    }
    /// The logistic function `1 / (1 + e^-x)`.
    public func sigmoid() -> Tensor {
        traced("Sigmoid", unary({ 1 / (1 + Float.exp(-$0)) }, op: "sigmoid") { g, _, y in g * y * (1 - y) })
    }
    /// Hyperbolic tangent.
    public func tanh() -> Tensor { traced("Tanh", unary({ Float.tanh($0) }, op: "tanh") { g, _, y in g * (1 - y * y) }) }
    /// `e^x` elementwise.
    public func exp() -> Tensor { unary({ Float.exp($0) }, op: "exp") { g, _, y in g * y } }
    /// Natural logarithm elementwise.
    public func log() -> Tensor { unary({ Float.log($0) }, op: "log") { g, x, _ in g / x } }
    /// Square root elementwise.
    public func sqrt() -> Tensor { unary({ $0.squareRoot() }, op: "sqrt") { g, _, y in g / (2 * y) } }
    /// `x²` elementwise.
    public func square() -> Tensor { unary({ $0 * $0 }, op: "square") { g, x, _ in 2 * x * g } }
    /// `x^p` elementwise for a constant exponent.
    ///
    /// - Parameter p: the exponent.
    public func pow(_ p: Float) -> Tensor {
        unary({ Float.pow($0, p) }, op: "pow") { g, x, _ in g * p * Float.pow(x, p - 1) }
    }
    /// Absolute value elementwise.
    public func abs() -> Tensor { unary({ Swift.abs($0) }, op: "abs") { g, x, _ in x > 0 ? g : (x < 0 ? -g : 0) } }
    /// Clamps values to `[low, high]`; the gradient passes only inside the range.
    ///
    /// - Parameters:
    ///   - low: the smallest value kept.
    ///   - high: the largest value kept.
    public func clamp(min low: Float, max high: Float) -> Tensor {
        unary({ Swift.min(Swift.max($0, low), high) }, op: "clamp") { g, x, _ in (x >= low && x <= high) ? g : 0 }
    }
}

// MARK: - Per-channel scale (squeeze-and-excitation)

extension Tensor {
    /// `x · s` with `s` of shape `[N, C, 1, 1]` scaling each channel plane of `x` (`[N, C, H, W]`):
    /// squeeze-and-excitation's gate. The same values as the broadcast product, one plane per step on
    /// every thread; its gradients `g · s` and `Σ_plane g · x`. Exported as ONNX `Mul` (broadcasting).
    ///
    /// - Parameter scale: `[N, C, 1, 1]`.
    public func scaledPerChannel(by scale: Tensor) -> Tensor {
        precondition(rank == 4 && scale.shape == [shape[0], shape[1], 1, 1],
                     "scaledPerChannel: \(scale.shape) does not scale the channels of \(shape)")
        let input = self, plane = shape[2] * shape[3], planes = shape[0] * shape[1]
        let out = uninitializedFloats(count) { y in
            storage.withUnsafeBufferPointer { x in scale.storage.withUnsafeBufferPointer { s in
                let (xp, yp, sp) = (x.baseAddress!, y.baseAddress!, s.baseAddress!)
                Parallel.forChunks(planes, work: count, streaming: true) { r in
                    for p in r { for i in (p * plane)..<((p + 1) * plane) { yp[i] = xp[i] * sp[p] } }
                }
            } }
        }
        let y = Tensor.result(out, shape, [self, scale], op: "scaledPerChannel") { g in
            input.storage.withUnsafeBufferPointer { x in scale.storage.withUnsafeBufferPointer { s in
            g.withUnsafeBufferPointer { gb in
                let (xp, sp, gp) = (x.baseAddress!, s.baseAddress!, gb.baseAddress!)
                if input.requiresGrad {
                    input.accumulate { d in
                        let dp = d.baseAddress!
                        Parallel.forChunks(planes, work: input.count, streaming: true) { r in
                            for p in r { for i in (p * plane)..<((p + 1) * plane) { dp[i] += gp[i] * sp[p] } }
                        }
                    }
                }
                if scale.requiresGrad {
                    let sums = uninitializedFloats(planes) { ds in
                        let dsp = ds.baseAddress!
                        Parallel.forChunks(planes, work: input.count, streaming: true) { r in
                            for p in r {
                                var acc = V16(), i = p * plane
                                let end = (p + 1) * plane
                                while i + 16 <= end { acc.addProduct(ld(gp + i), ld(xp + i)); i += 16 }
                                var total = acc.sum()
                                while i < end { total += gp[i] * xp[i]; i += 1 }
                                dsp[p] = total
                            }
                        }
                    }
                    scale.accumulate(sums)
                }
            } } }
        }
        OpTrace.record("Mul", [self, scale], output: y)
        return y
    }
}
