import Foundation
import RealModule

// The activations of the ImageNet mobile networks (MobileNetV2's ReLU6, EfficientNet's SiLU,
// MobileNetV3's hard-swish and hard-sigmoid), each forward beside its derivative, with PyTorch's
// conventions at the kinks (the gradient of a clamp is zero on its boundary) and its ONNX form.

extension Tensor {
    /// `min(max(x, 0), 6)` (`torch.nn.functional.relu6`); the gradient passes strictly inside (0, 6).
    public func relu6() -> Tensor {
        let y = unary({ Swift.min(Swift.max($0, 0), 6) }, op: "relu6") { g, x, _ in x > 0 && x < 6 ? g : 0 }
        if let trace = OpTrace.current {
            trace.add("Clip", [trace.id(self), trace.id(Tensor(scalar: 0)), trace.id(Tensor(scalar: 6))], output: y)
        }
        return y
    }

    /// `x · σ(x)` (`torch.nn.functional.silu`, also called swish); derivative `σ(x)(1 + x(1 − σ(x)))`.
    /// Both passes 16 lanes at a time with a vector `exp` (`siluForward` / `siluBackward`), on every thread.
    public func silu() -> Tensor {
        let input = self
        let out = uninitializedFloats(count) { y in
            storage.withUnsafeBufferPointer { x in
                let (xp, yp) = (x.baseAddress!, y.baseAddress!)
                Parallel.forChunks(y.count, work: 16 * y.count, streaming: true) { r in
                    siluForward(xp + r.lowerBound, yp + r.lowerBound, r.count)
                }
            }
        }
        let y = Tensor.result(out, shape, [self], op: "silu") { g in
            input.accumulate { d in
                input.storage.withUnsafeBufferPointer { x in g.withUnsafeBufferPointer { gb in
                    let (dp, xp, gp) = (d.baseAddress!, x.baseAddress!, gb.baseAddress!)
                    Parallel.forChunks(d.count, work: 16 * d.count, streaming: true) { r in
                        siluBackward(gp + r.lowerBound, xp + r.lowerBound, dp + r.lowerBound, r.count)
                    }
                } }
            }
        }
        if let trace = OpTrace.current {
            let s = trace.add("Sigmoid", [trace.id(self)])
            trace.add("Mul", [trace.id(self), s], output: y)
        }
        return y
    }

    /// `relu6(x + 3) / 6` (`torch.nn.functional.hardsigmoid`); the gradient is 1/6 strictly inside (−3, 3).
    public func hardsigmoid() -> Tensor {
        let y = unary({ Swift.min(Swift.max($0 + 3, 0), 6) / 6 }, op: "hardsigmoid") { g, x, _ in x > -3 && x < 3 ? g / 6 : 0 }
        return traced("HardSigmoid", y, [("alpha", .float(1 / 6)), ("beta", .float(0.5))])
    }

    /// `x · relu6(x + 3) / 6` (`torch.nn.functional.hardswish`); derivative `x/3 + 1/2` strictly
    /// inside (−3, 3), 0 at and below −3, 1 at and above 3 (PyTorch's).
    public func hardswish() -> Tensor {
        let y = unary({ $0 * Swift.min(Swift.max($0 + 3, 0), 6) / 6 }, op: "hardswish") { g, x, _ in
            x <= -3 ? 0 : x < 3 ? g * (x / 3 + 0.5) : g
        }
        return traced("HardSwish", y)
    }
}
