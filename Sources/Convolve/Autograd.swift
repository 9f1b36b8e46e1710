import Foundation

/// One recorded operation: its inputs and the function that turns the output's gradient
/// into (accumulated) input gradients.
final class Node {
    let inputs: [Tensor]
    let op: StaticString
    /// Receives the output's gradient buffer, which only it holds (unless the same buffer was handed
    /// to several tensors): an op may write its input gradient into it instead of a new buffer.
    let backward: (inout [Float]) -> Void
    init(inputs: [Tensor], op: StaticString, backward: @escaping (inout [Float]) -> Void) {
        self.inputs = inputs
        self.op = op
        self.backward = backward
    }
}

/// Gradient-recording mode (PyTorch's `torch.is_grad_enabled`). Thread-local, so a data loader
/// thread or evaluation in another thread does not change it for training.
public enum GradMode {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()
    /// Whether new operations are recorded for `backward()` on this thread.
    public static var isEnabled: Bool {
        get { pthread_getspecific(key) == nil }
        set { pthread_setspecific(key, newValue ? nil : UnsafeRawPointer(bitPattern: 1)) }
    }
}

/// Runs `body` without recording operations (PyTorch's `with torch.no_grad():`).
///
/// - Parameter body: runs with gradient recording off (outputs have no tape).
public func withNoGrad<T>(_ body: () throws -> T) rethrows -> T {
    let previous = GradMode.isEnabled
    GradMode.isEnabled = false
    defer { GradMode.isEnabled = previous }
    return try body()
}

extension Tensor {
    /// Builds an op's output tensor and, if any input needs a gradient and grad mode is on,
    /// records `backward`, which receives the output gradient and must call `accumulate` on inputs.
    @inline(__always)
    static func result(_ storage: [Float], _ shape: [Int], _ inputs: [Tensor], op: StaticString,
                       backward: @escaping ([Float]) -> Void) -> Tensor {
        resultOwningGradient(storage, shape, inputs, op: op) { backward($0) }
    }

    /// Like `result(_:_:_:op:backward:)`, with a `backward` that owns the output's gradient buffer and
    /// may overwrite it (a streaming op writing its input gradient in place: no new buffer, and no
    /// read of the destination's old contents before the writes).
    @inline(__always)
    static func resultOwningGradient(_ storage: [Float], _ shape: [Int], _ inputs: [Tensor], op: StaticString,
                                     backward: @escaping (inout [Float]) -> Void) -> Tensor {
        let out = Tensor(storage, shape: shape)
        OpTrace.produced(out, op: op)
        if GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) {
            out.requiresGrad = true
            out.node = Node(inputs: inputs, op: op, backward: backward)
        }
        return out
    }

    /// Adds `g` (same element count) into this tensor's pending gradient.
    func accumulate(_ g: [Float]) {
        guard requiresGrad else { return }
        if pendingGrad == nil { pendingGrad = g; return }
        pendingGrad!.withUnsafeMutableBufferPointer { d in
            g.withUnsafeBufferPointer { s in
                // A residual block's input gets two activation-sized gradients: add them on every thread.
                Parallel.forChunks(d.count, work: d.count, streaming: true) { r in for i in r { d[i] += s[i] } }
            }
        }
    }

    /// Gives `body` this tensor's pending gradient buffer and whether it is new. A new buffer is
    /// uninitialized and `body` must store every element (a GEMM with beta 0): no zero fill, no
    /// read-modify-write pass over a large gradient.
    func accumulate(overwriting body: (UnsafeMutableBufferPointer<Float>, _ fresh: Bool) -> Void) {
        guard requiresGrad else { return }
        if pendingGrad == nil {
            pendingGrad = uninitializedFloats(count) { body($0, true) }
            return
        }
        pendingGrad!.withUnsafeMutableBufferPointer { body($0, false) }
    }

    /// Gives `body` this tensor's pending gradient buffer (zero-filled on first use) to add into.
    func accumulate(_ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        guard requiresGrad else { return }
        if pendingGrad == nil { pendingGrad = [Float](repeating: 0, count: count) }
        pendingGrad!.withUnsafeMutableBufferPointer { body($0) }
    }

    /// Computes gradients of this tensor with respect to every leaf that requires them,
    /// adding into their `.grad` (accumulates across calls, like PyTorch). A non-scalar
    /// tensor needs an explicit `gradient` of its shape. The graph is freed afterwards.
    ///
    /// - Parameter gradient: the upstream gradient, the output's shape (default: 1 for a scalar).
    public func backward(_ gradient: Tensor? = nil) {
        precondition(requiresGrad, "backward() on a tensor that does not require grad")
        if let gradient {
            precondition(gradient.count == count, "gradient shape \(gradient.shape) != \(shape)")
        } else {
            precondition(count == 1, "backward() without a gradient needs a scalar, shape is \(shape)")
        }
        // Iterative topological order (inputs before outputs).
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            if !visited.insert(ObjectIdentifier(t)).inserted { continue }
            stack.append((t, true))
            if let node = t.node {
                for input in node.inputs where input.requiresGrad && !visited.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
        }
        pendingGrad = gradient?.storage ?? [Float](repeating: 1, count: count)
        // Popping releases each tensor as soon as its gradient has been passed on, so activations are
        // freed progressively during the backward pass instead of all at its end.
        while let t = order.popLast() {
            guard var g = t.pendingGrad else { t.node = nil; continue }
            t.pendingGrad = nil
            if let node = t.node {
                if Profiler.enabled {
                    Profiler.measure("\(node.op) backward") { node.backward(&g) }
                } else {
                    node.backward(&g)
                }
                t.node = nil
            } else if t.requiresGrad {
                if let existing = t.grad {
                    existing.storage.withUnsafeMutableBufferPointer { d in
                        for i in 0..<d.count { d[i] += g[i] }
                    }
                } else {
                    t.grad = Tensor(g, shape: t.shape)
                }
            }
        }
    }

    /// Whether this tensor was produced by a recorded operation.
    public var hasGradFn: Bool { node != nil }
}

extension Array where Element == Float {
    /// Runs `body` with the elements' address: writable when `writing` (the array's own storage, copied
    /// first if another array shares it), else the shared storage read in place (`body` must not write).
    /// For a backward that owns its output gradient and overwrites it only on some paths.
    mutating func withBaseAddress<R>(writing: Bool, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        if writing { return withUnsafeMutableBufferPointer { body($0.baseAddress!) } }
        return withUnsafeBufferPointer { body(UnsafeMutablePointer(mutating: $0.baseAddress!)) }
    }
}
