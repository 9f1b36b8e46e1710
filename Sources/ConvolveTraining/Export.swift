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
    /// - Returns: the `.onnx` file's bytes.
    public static func export(_ model: Module & Layer, inputShape: [Int]) throws -> [UInt8] {
        let was = model.training
        model.eval()
        defer { model.train(was) }
        let x = Tensor.uniform([2] + inputShape, generator: RandomGenerator(seed: 1))
        let (y, trace) = withNoGrad { OpTrace.recording { model(x) } }
        var names: [ObjectIdentifier: String] = [:]
        for (key, t) in model.stateDict() { names[ObjectIdentifier(t)] = key }
        return try ONNX.encode(trace, input: x, output: y, names: names, producer: convolveVersion)
    }

    /// Exports to a file, written atomically.
    /// - Parameters:
    ///   - model: the classifier.
    ///   - inputShape: one sample's shape, `[C, H, W]`.
    ///   - path: the `.onnx` file.
    public static func export(_ model: Module & Layer, inputShape: [Int], to path: String) throws {
        try writeAtomically(Data(export(model, inputShape: inputShape)), to: path)
    }
}
