import Foundation

// The rectifier and the fused ops that end in one (conv + ReLU and batch norm + ReLU live with their
// families; these are the elementwise ones). Each gradient passes where the output is positive.

extension Tensor {
    /// `max(x, 0)` elementwise.
    public func relu() -> Tensor {
        let n = count
        let out = storage.withUnsafeBufferPointer { x in
            uninitializedFloats(n) { y in
                Parallel.forChunks(n, work: n, streaming: true) { r in for i in r { y[i] = Swift.max(x[i], 0) } }
            }
        }
        let input = self
        return traced("Relu", Tensor.result(out, shape, [self], op: "relu") { g in
            // Gradient passes where the output is positive (the input was > 0).
            input.accumulate(reluMask(g, out))
        })
    }

    /// The untraced body of ``addReLU(_:_:)`` (see there).
    static func addReLUUntraced(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "addReLU: shapes \(a.shape) and \(b.shape) differ")
        let n = a.count
        let out = a.storage.withUnsafeBufferPointer { x in b.storage.withUnsafeBufferPointer { z in
            uninitializedFloats(n) { y in
                Parallel.forChunks(n, work: n, streaming: true) { r in for i in r { y[i] = Swift.max(x[i] + z[i], 0) } }
            }
        } }
        return Tensor.result(out, a.shape, [a, b], op: "addReLU") { g in
            // one masked gradient, handed to both summands
            let masked = reluMask(g, out)
            a.accumulate(masked)
            b.accumulate(masked)
        }
    }
}

/// `relu(a + b)` for tensors of one shape as one op (a residual block's join): one pass forward, and
/// one masked gradient for both summands.
///
/// - Parameters:
///   - a: a tensor.
///   - b: a tensor of `a`'s shape.
///
/// ### See Also
/// - `BasicBlock`
public func addReLU(_ a: Tensor, _ b: Tensor) -> Tensor {
    let y = OpTrace.suppressed { Tensor.addReLUUntraced(a, b) }
    if let trace = OpTrace.current {
        let sum = trace.add("Add", [trace.id(a), trace.id(b)])
        trace.add("Relu", [sum], output: y)
    }
    return y
}
