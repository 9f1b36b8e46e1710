import Foundation
import Convolve
import ConvolveNN

/// ONNX export of a classifier built from the standard layers (either API style): one forward pass
/// in eval mode on an example batch is traced and encoded, the weights under their `state_dict`
/// names. The graph takes NCHW input `[batch, C, H, W]` and returns what the model returns (logits,
/// or a Keras model's probabilities).
public enum ONNXExport {
    /// - Parameters:
    ///   - model: the classifier (put in eval mode, then restored).
    ///   - inputShape: one sample's shape, `[C, H, W]`.
    ///   - metadata: stored in the model's `metadata_props` (`convolve export` puts the normalization,
    ///     the class names and the output kind there).
    /// - Returns: the `.onnx` file's bytes.
    public static func export(_ model: Module & Layer, inputShape: [Int], metadata: [(String, String)] = []) throws -> [UInt8] {
        let was = model.training
        model.eval()
        defer { model.train(was) }
        let x = Tensor.uniform([2] + inputShape, generator: RandomGenerator(seed: 1))
        let (y, trace) = withNoGrad { OpTrace.recording { model(x) } }
        var names: [ObjectIdentifier: String] = [:]
        for (key, t) in model.stateDict() { names[ObjectIdentifier(t)] = key }
        let output = objective(for: model).output == .logits ? "logits" : "probabilities"
        return try ONNX.encode(trace, input: x, output: y, names: names, producer: convolveVersion,
                               metadata: [("output", output)] + metadata)
    }

    /// Exports to a file, written atomically.
    /// - Parameters:
    ///   - model: the classifier.
    ///   - inputShape: one sample's shape, `[C, H, W]`.
    ///   - metadata: stored in the model's `metadata_props`.
    ///   - path: the `.onnx` file.
    public static func export(_ model: Module & Layer, inputShape: [Int], metadata: [(String, String)] = [],
                              to path: String) throws {
        try writeAtomically(Data(export(model, inputShape: inputShape, metadata: metadata)), to: path)
    }
}

/// The multiply-adds of one forward pass of `model` on one sample of `input` (`[C, H, W]`), counted
/// by tracing it in eval mode: what torchvision's model tables call FLOPs.
/// - Parameters:
///   - model: the model.
///   - input: one sample's shape.
public func multiplyAdds(of model: Module & Layer, input: [Int]) -> Int {
    let wasTraining = model.training
    model.eval()
    defer { if wasTraining { model.train() } }
    let (_, trace) = withNoGrad { OpTrace.recording { model(Tensor.zeros([1] + input)) } }
    return trace.multiplyAdds
}
