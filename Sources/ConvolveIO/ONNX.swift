import Foundation
import Convolve

/// Encodes a traced graph (`OpTrace`) as an ONNX model (IR version 8, opset 17: PyTorch's exporter's
/// default, which ONNX Runtime accepts) that ONNX Runtime
/// runs: the nodes in order, every weight as a named initializer, one float input with a dynamic
/// batch dimension and one output. A hand-written encoder for the handful of message types used
/// (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto).
public enum ONNX {
    /// Why a graph cannot be exported.
    public struct ExportError: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "cannot export to ONNX: \(reason)" }
    }

    /// - Parameters:
    ///   - trace: the ops of one forward pass from `input` to `output`.
    ///   - input: the graph's input tensor (its first dimension becomes the dynamic `batch`).
    ///   - output: the tensor the graph returns.
    ///   - names: names for known tensors (a model's `stateDict()` keys); others are `const<N>`.
    ///   - producer: recorded as the producer's version.
    ///   - metadata: `metadata_props` of the model (normalization, class names, …).
    /// - Returns: the bytes of a `.onnx` file.
    public static func encode(_ trace: OpTrace, input: Tensor, output: Tensor, names: [ObjectIdentifier: String],
                              producer: String, metadata: [(String, String)] = []) throws -> [UInt8] {
        let inputID = trace.id(input), outputID = trace.id(output)
        let produced = Set(trace.nodes.map(\.output))
        func name(_ id: Int) -> String {
            if id == inputID { return "input" }
            if id == outputID { return "output" }
            if let t = trace.tensors[id], let n = names[ObjectIdentifier(t)] { return n }
            return produced.contains(id) ? "t\(id)" : "const\(id)"
        }
        guard produced.contains(outputID) else {
            throw ExportError(reason: trace.unexported[outputID].map { "\($0): this op has no ONNX form" }
                                ?? "the output is not computed from the input by exportable ops")
        }
        var graph = Protobuf()
        var initialized = Set<Int>()
        var initializers: [Protobuf] = []
        for node in trace.nodes {
            for case let id? in node.inputs where id != inputID && !produced.contains(id) && !initialized.contains(id) {
                if let op = trace.unexported[id] { throw ExportError(reason: "\(op): this op has no ONNX form") }
                initialized.insert(id)
                var t = Protobuf()
                if let ints = trace.int64Constants[id] {
                    t.int(1, ints.count)
                    t.int(2, 7)   // INT64
                    t.string(8, name(id))
                    t.bytes(9, ints.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: Int64(v) >> (8 * Int64($0))) } })
                } else if let tensor = trace.tensors[id] {
                    for d in tensor.shape { t.int(1, d) }
                    t.int(2, 1)   // FLOAT
                    t.string(8, name(id))
                    t.bytes(9, tensor.scalars.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt32($0))) } })
                } else {
                    throw ExportError(reason: "an input of \(node.op) is neither computed nor a constant")
                }
                initializers.append(t)
            }
            var n = Protobuf()
            var inputs = node.inputs
            while let last = inputs.last, last == nil { inputs.removeLast() }
            for i in inputs { n.string(1, i.map(name) ?? "") }
            n.string(2, name(node.output))
            n.string(3, "\(node.op)_\(node.output)")
            n.string(4, node.op)
            for (key, value) in node.attributes {
                var a = Protobuf()
                a.string(1, key)
                switch value {
                case let .int(v): a.int(3, v); a.int(20, 2)
                case let .float(v): a.float(2, v); a.int(20, 1)
                case let .ints(vs): for v in vs { a.int(8, v) }; a.int(20, 7)
                }
                n.message(5, a)
            }
            graph.message(1, n)
        }
        graph.string(2, "convolve")
        for t in initializers { graph.message(5, t) }
        func valueInfo(_ name: String, _ shape: [Int]) -> Protobuf {
            var shapeProto = Protobuf()
            for (k, d) in shape.enumerated() {
                var dim = Protobuf()
                if k == 0 { dim.string(2, "batch") } else { dim.int(1, d) }
                shapeProto.message(1, dim)
            }
            var tensorType = Protobuf(); tensorType.int(1, 1); tensorType.message(2, shapeProto)
            var type = Protobuf(); type.message(1, tensorType)
            var v = Protobuf(); v.string(1, name); v.message(2, type)
            return v
        }
        graph.message(11, valueInfo("input", input.shape))
        graph.message(12, valueInfo("output", output.shape))
        var opset = Protobuf(); opset.string(1, ""); opset.int(2, 17)
        var model = Protobuf()
        model.int(1, 8)
        model.string(2, "convolve")
        model.string(3, producer)
        model.message(7, graph)
        model.message(8, opset)
        for (key, value) in metadata {
            var entry = Protobuf(); entry.string(1, key); entry.string(2, value)
            model.message(14, entry)
        }
        return model.bytes
    }
}
