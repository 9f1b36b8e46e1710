import Foundation

/// Records the ops of one forward pass as a graph of named ops with attributes, for exporting a model
/// (ONNX). Ops that can be exported describe themselves with `OpTrace.record`; every other op's
/// output is remembered as unexported, so a graph that uses one is refused instead of silently
/// freezing its result as a constant. Trace on the calling thread only (not inside `inferInSlices`).
/// An exportable op records itself where it is built, beside its body: its public face runs the body
/// with tracing suppressed (so the ops inside are not recorded) and then describes itself as ONNX nodes.
///
/// ```swift
/// let (y, trace) = OpTrace.recording { model(x) }
/// ```
public final class OpTrace {
    /// An attribute value of an op.
    public enum Attribute: Equatable, Sendable { case int(Int), ints([Int]), float(Float) }
    /// One op: its ONNX type, the ids of its inputs (nil: an optional input left out), its output id.
    public struct Node: Sendable {
        public let op: String
        public let inputs: [Int?]
        public let output: Int
        public let attributes: [(String, Attribute)]
    }
    public private(set) var nodes: [Node] = []
    /// Tensors seen, by id (kept alive so identifiers are not reused while tracing).
    public private(set) var tensors: [Int: Tensor] = [:]
    /// Ops that produced a tensor without describing themselves.
    public private(set) var unexported: [Int: String] = [:]
    private var ids: [ObjectIdentifier: Int] = [:]
    private var nextID = 0
    private var suppression = 0
    private var layers: [String] = []

    @TaskLocal static var current: OpTrace?

    /// Runs `body` and returns its result with the trace of the ops it ran.
    ///
    /// - Parameter body: the forward pass to record (on this thread).
    public static func recording<R>(_ body: () throws -> R) rethrows -> (R, OpTrace) {
        let trace = OpTrace()
        let r = try $current.withValue(trace) { try body() }
        return (r, trace)
    }

    /// The id of `t` (a new one the first time it is seen).
    ///
    /// - Parameter t: any tensor.
    public func id(_ t: Tensor) -> Int {
        if let i = ids[ObjectIdentifier(t)] { return i }
        let i = fresh()
        ids[ObjectIdentifier(t)] = i
        tensors[i] = t
        return i
    }

    /// A new id for an intermediate value that has no tensor (inside a fused op).
    public func fresh() -> Int { nextID += 1; return nextID }

    /// Multiply-adds of the convolutions and linear layers recorded (what torchvision's model tables
    /// call FLOPs: ResNet-50 at 224×224 has 4.09 G).
    public private(set) var multiplyAdds = 0

    /// Counts an op's multiply-adds (convolutions and linear layers call this as they record).
    ///
    /// - Parameter count: the op's multiply-adds.
    public func count(multiplyAdds count: Int) { if suppression == 0 { multiplyAdds += count } }

    /// Ids of constants stored as int64 (shapes), with their values.
    public private(set) var int64Constants: [Int: [Int]] = [:]

    /// A constant int64 tensor (an op's shape argument); returns its id.
    ///
    /// - Parameter values: the constant's elements.
    public func int64Constant(_ values: [Int]) -> Int {
        let i = fresh()
        int64Constants[i] = values
        return i
    }

    /// Whether `t` was produced by an op during this trace.
    ///
    /// - Parameter t: any tensor.
    public func isKnown(_ t: Tensor) -> Bool { ids[ObjectIdentifier(t)] != nil }

    /// Appends an op; returns its output id (`output`'s, or a fresh one).
    ///
    /// - Parameters:
    ///   - op: the ONNX op type.
    ///   - inputs: input ids (nil: an optional input left out).
    ///   - output: the output tensor, or nil for an intermediate value.
    ///   - attributes: the op's attributes.
    @discardableResult
    public func add(_ op: String, _ inputs: [Int?], output: Tensor? = nil, _ attributes: [(String, Attribute)] = []) -> Int {
        let out = output.map { id($0) } ?? fresh()
        if let output { unexported[id(output)] = nil }
        nodes.append(Node(op: op, inputs: inputs, output: out, attributes: attributes))
        return out
    }

    /// Called by every op's result: remembers it as unexported (with the layer it ran in) until the op
    /// records itself.
    static func produced(_ t: Tensor, op: StaticString) {
        guard let trace = current, trace.suppression == 0 else { return }
        trace.unexported[trace.id(t)] = "\(op)" + (trace.layers.isEmpty ? "" : " in layer " + trace.layers.joined(separator: " / "))
    }

    /// Runs a layer's forward pass under its name, so an op without an ONNX form is reported with it.
    ///
    /// - Parameters:
    ///   - name: the layer's name, for messages.
    ///   - body: the layer's forward pass.
    public static func inLayer<R>(_ name: @autoclosure () -> String, _ body: () -> R) -> R {
        guard let trace = current else { return body() }
        trace.layers.append(name())
        defer { trace.layers.removeLast() }
        return body()
    }

    /// Records `op` for the current trace, if any (ops call this after computing `output`).
    static func record(_ op: String, _ inputs: [Tensor?], output: Tensor, _ attributes: [(String, Attribute)] = []) {
        guard let trace = current, trace.suppression == 0 else { return }
        trace.add(op, inputs.map { $0.map { trace.id($0) } }, output: output, attributes)
    }

    /// Runs `body` without recording (an op built from other ops that records itself as one).
    static func suppressed<R>(_ body: () -> R) -> R {
        guard let trace = current else { return body() }
        trace.suppression += 1
        defer { trace.suppression -= 1 }
        return body()
    }
}

extension OpTrace.Attribute {
    /// ONNX padding of a 2-D window: begins then ends, `[top, left, bottom, right]`.
    static func pads(_ p: (Int, Int)) -> OpTrace.Attribute { .ints([p.0, p.1, p.0, p.1]) }
    /// Two values (height, width), as ONNX's `kernel_shape`, `strides`, `dilations`.
    static func pair(_ p: (Int, Int)) -> OpTrace.Attribute { .ints([p.0, p.1]) }
}

extension Tensor {
    /// Records a one-input op while tracing; returns `y`.
    func traced(_ op: String, _ y: Tensor, _ attributes: [(String, OpTrace.Attribute)] = []) -> Tensor {
        OpTrace.record(op, [self], output: y, attributes)
        return y
    }
}
