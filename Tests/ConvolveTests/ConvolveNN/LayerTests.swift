import Foundation
import Testing
@testable import Convolve
import ConvolveNN
@testable import ConvolveTraining

/// One layer of either API style and what it must do (Keras' `run_layer_test`).
struct LayerCase: Sendable, CustomTestStringConvertible {
    let name: String
    let make: @Sendable () -> Module & Layer
    let input: [Int]
    let output: [Int]
    /// Parameter tensors, their scalars, and buffers (BatchNorm's running statistics).
    let parameters: Int, scalars: Int, buffers: Int
    /// Whether training and eval mode give different outputs (dropout, batch norm).
    var trainDiffersFromEval = false
    /// Finite-difference step: deep stacks of ReLUs need a smaller one (a weight feeds every position,
    /// so a large step crosses many kinks).
    var eps: Float = 1e-2
    /// Forgive points with a ReLU kink within the step (see `gradCheck`).
    var kinks = false
    /// Check gradients by finite differences (off only where PyTorch's gradients are compared instead:
    /// a whole ResNet has ReLU kinks within any usable step).
    var finiteDifferences = true
    var testDescription: String { name }
}

/// The harness: output shape, parameter and buffer counts, train vs eval behaviour, a finite-difference
/// check of the input and every parameter gradient, and a safetensors round trip.
func runLayerTest(_ c: LayerCase, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let layer = RandomGenerator.global.exclusively { manualSeed(1); return c.make() }
    #expect(layer.namedParameters().count == c.parameters && layer.parameterCount == c.scalars,
            "\(c.name): \(layer.namedParameters().count) parameters, \(layer.parameterCount) scalars", sourceLocation: sourceLocation)
    #expect(layer.namedBuffers().count == c.buffers, "\(c.name): buffers", sourceLocation: sourceLocation)
    // Distinct values at least 0.037 apart and 0.018 from zero: no finite-difference step of 0.01 crosses
    // a ReLU kink or changes a max-pool winner.
    let n = c.input.reduce(1, *)
    let order = RandomGenerator(seed: 2).permutation(n)
    let x = Tensor(order.map { (Float($0) - Float(n / 2)) * 0.037 + 0.0185 }, shape: c.input, requiresGrad: true)

    layer.train()
    let yTrain = layer(x)
    #expect(yTrain.shape == c.output, "\(c.name): output \(yTrain.shape)", sourceLocation: sourceLocation)
    layer.eval()
    let yEval = withNoGrad { layer(x) }
    #expect((yTrain.storage != yEval.storage) == c.trainDiffersFromEval,
            "\(c.name): train and eval outputs \(c.trainDiffersFromEval ? "should" : "should not") differ", sourceLocation: sourceLocation)

    // Gradients of the input and every parameter against central differences (eval mode: deterministic).
    if c.finiteDifferences { gradCheck([x] + layer.parameters(), eps: c.eps, maxElements: 60, kinkTolerant: c.kinks, { t in layer(t[0]) }, sourceLocation: sourceLocation) }

    // A safetensors round trip into a freshly initialized copy gives the same outputs.
    let path = NSTemporaryDirectory() + "layer-\(UUID().uuidString).safetensors"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try SafeTensors.write(layer.stateDict(), to: path)
    let copy = RandomGenerator.global.exclusively { manualSeed(99); return c.make() }
    try copy.loadStateDict(SafeTensors.read(path).tensors)
    copy.eval()
    #expect(withNoGrad { copy(x) }.storage == yEval.storage, "\(c.name): round trip", sourceLocation: sourceLocation)
}

/// A Keras layer inside a one-layer `Model` (Keras layers build from the model's input shape).
func keras(_ inputShape: [Int], _ layer: @escaping @Sendable () -> any Layer) -> @Sendable () -> Module & Layer {
    { Model(inputShape: inputShape) { layer() } }
}

@Suite struct LayerTests {
    static let pytorchStyle: [LayerCase] = [
        LayerCase(name: "Conv2d", make: { Conv2d(2, 3, kernelSize: 3, padding: 1) }, input: [2, 2, 5, 4], output: [2, 3, 5, 4],
                  parameters: 2, scalars: 57, buffers: 0),
        LayerCase(name: "Conv2d same, strided (TF: 0 before, 1 after)", make: { Conv2d(2, 3, kernelSize: 3, stride: 2, padding: .same) },
                  input: [2, 2, 6, 5], output: [2, 3, 3, 3], parameters: 2, scalars: 57, buffers: 0),
        LayerCase(name: "Conv2d depthwise same", make: { Conv2d(4, 4, kernelSize: 5, padding: .same, groups: 4, bias: false) },
                  input: [2, 4, 5, 5], output: [2, 4, 5, 5], parameters: 1, scalars: 100, buffers: 0),
        LayerCase(name: "ReLU6", make: { ReLU6() }, input: [2, 3, 4], output: [2, 3, 4], parameters: 0, scalars: 0, buffers: 0, kinks: true),
        LayerCase(name: "SiLU", make: { SiLU() }, input: [2, 3, 4], output: [2, 3, 4], parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Hardswish", make: { Hardswish() }, input: [2, 3, 4], output: [2, 3, 4], parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Hardsigmoid", make: { Hardsigmoid() }, input: [2, 3, 4], output: [2, 3, 4], parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Conv2d strided, no bias", make: { Conv2d(2, 4, kernelSize: 3, stride: 2, bias: false) },
                  input: [1, 2, 7, 7], output: [1, 4, 3, 3], parameters: 1, scalars: 72, buffers: 0),
        LayerCase(name: "Linear", make: { Linear(4, 3) }, input: [5, 4], output: [5, 3], parameters: 2, scalars: 15, buffers: 0),
        LayerCase(name: "BatchNorm2d", make: { BatchNorm2d(3) }, input: [4, 3, 2, 2], output: [4, 3, 2, 2],
                  parameters: 2, scalars: 6, buffers: 3, trainDiffersFromEval: true),
        LayerCase(name: "ReLU", make: { ReLU() }, input: [3, 5], output: [3, 5], parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Sigmoid", make: { Sigmoid() }, input: [3, 5], output: [3, 5], parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Tanh", make: { Tanh() }, input: [3, 5], output: [3, 5], parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Softmax", make: { Softmax(dim: 1) }, input: [3, 5], output: [3, 5], parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "LogSoftmax", make: { LogSoftmax(dim: 1) }, input: [3, 5], output: [3, 5], parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Identity", make: { Identity() }, input: [2, 3], output: [2, 3], parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Flatten", make: { Flatten() }, input: [2, 3, 2, 2], output: [2, 12], parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "MaxPool2d", make: { MaxPool2d(kernelSize: 2) }, input: [2, 2, 4, 6], output: [2, 2, 2, 3],
                  parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "AvgPool2d", make: { AvgPool2d(kernelSize: 2) }, input: [2, 2, 4, 6], output: [2, 2, 2, 3],
                  parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Dropout", make: { Dropout(0.5) }, input: [4, 8], output: [4, 8], parameters: 0, scalars: 0, buffers: 0,
                  trainDiffersFromEval: true),
        LayerCase(name: "Sequential", make: { Sequential { Linear(4, 6); ReLU(); Linear(6, 2) } }, input: [3, 4], output: [3, 2],
                  parameters: 4, scalars: 44, buffers: 0),
        LayerCase(name: "Sequential (BatchNorm2d + ReLU, fused)", make: { Sequential { Conv2d(2, 3, kernelSize: 3, padding: 1); BatchNorm2d(3); ReLU() } },
                  input: [2, 2, 5, 4], output: [2, 3, 5, 4], parameters: 4, scalars: 63, buffers: 3, trainDiffersFromEval: true,
                  kinks: true),
        LayerCase(name: "AdaptiveAvgPool2d", make: { AdaptiveAvgPool2d(1) }, input: [2, 3, 5, 4], output: [2, 3, 1, 1],
                  parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "BasicBlock (identity)", make: { BasicBlock(3, 3) }, input: [2, 3, 5, 4], output: [2, 3, 5, 4],
                  parameters: 6, scalars: 2 * 81 + 12, buffers: 6, trainDiffersFromEval: true, eps: 1e-3, kinks: true),
        LayerCase(name: "BasicBlock (projection, stride 2)", make: { BasicBlock(2, 4, stride: 2) }, input: [2, 2, 6, 5],
                  output: [2, 4, 3, 3], parameters: 9, scalars: 72 + 144 + 8 + 16 + 8, buffers: 9, trainDiffersFromEval: true, eps: 1e-3, kinks: true),
        LayerCase(name: "ResNet-8", make: { ResNet(channels: 3, classes: 10) }, input: [2, 3, 8, 8], output: [2, 10],
                  parameters: 29, scalars: 78_042, buffers: 27, trainDiffersFromEval: true,
                  finiteDifferences: false),   // gradients: ReferenceTests, against PyTorch),
    ]
    static let kerasStyle: [LayerCase] = [
        LayerCase(name: "Conv2D", make: keras([6, 6, 2]) { Conv2D(3, 3) }, input: [2, 6, 6, 2], output: [2, 3, 4, 4],
                  parameters: 2, scalars: 57, buffers: 0),
        LayerCase(name: "Conv2D same, strided", make: keras([6, 5, 2]) { Conv2D(3, 3, strides: 2, padding: .same) }, input: [2, 6, 5, 2],
                  output: [2, 3, 3, 3], parameters: 2, scalars: 57, buffers: 0),
        LayerCase(name: "Dense", make: keras([4]) { Dense(3, activation: .softmax) }, input: [5, 4], output: [5, 3],
                  parameters: 2, scalars: 15, buffers: 0),
        LayerCase(name: "MaxPooling2D", make: keras([4, 6, 2]) { MaxPooling2D(2) }, input: [2, 4, 6, 2], output: [2, 2, 2, 3],
                  parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "AveragePooling2D", make: keras([4, 6, 2]) { AveragePooling2D(2) }, input: [2, 4, 6, 2], output: [2, 2, 2, 3],
                  parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Flatten (Keras)", make: keras([2, 2, 3]) { Keras.Flatten() }, input: [2, 2, 2, 3], output: [2, 12],
                  parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "Dropout (Keras)", make: keras([8]) { KerasDropout(0.5) }, input: [4, 8], output: [4, 8],
                  parameters: 0, scalars: 0, buffers: 0, trainDiffersFromEval: true),
        LayerCase(name: "Activation", make: keras([5]) { KerasActivation(.tanh) }, input: [3, 5], output: [3, 5],
                  parameters: 0, scalars: 0, buffers: 0),
        LayerCase(name: "BatchNormalization", make: keras([4, 4, 3]) { BatchNormalization() }, input: [2, 4, 4, 3],
                  output: [2, 3, 4, 4], parameters: 2, scalars: 6, buffers: 3, trainDiffersFromEval: true),
        LayerCase(name: "GlobalAveragePooling2D", make: keras([4, 5, 3]) { GlobalAveragePooling2D() }, input: [2, 4, 5, 3],
                  output: [2, 3], parameters: 0, scalars: 0, buffers: 0),
    ]

    @Test(arguments: pytorchStyle + kerasStyle)
    func layer(_ c: LayerCase) throws { try runLayerTest(c) }

    /// `Sequential` runs a BatchNorm2d followed by a ReLU as one fused op: the output and every
    /// gradient equal the two layers applied one after the other.
    @Test func sequentialFusesBatchNormAndReLU() {
        let model = RandomGenerator.global.exclusively {
            manualSeed(3); return Sequential { Conv2d(2, 4, kernelSize: 3, padding: 1); BatchNorm2d(4); ReLU(); MaxPool2d(kernelSize: 2) }
        }
        let x = rand([3, 2, 6, 6], seed: 8, grad: false)
        func gradients(_ forward: () -> Tensor) -> ([Float], [[Float]]) {
            for p in model.parameters() { p.grad = nil }
            let y = forward()
            (y * rand(y.shape, seed: 9, grad: false)).sum().backward()
            return (y.storage, model.parameters().map { $0.grad!.storage })
        }
        let fused = gradients { model(x) }
        let layered = gradients { model.layers.reduce(x) { h, layer in layer(h) } }
        #expect(fused.0 == layered.0)
        for (a, b) in zip(fused.1, layered.1) {
            #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 })
        }
    }

    /// Keras' (TensorFlow's) "same" for a strided 3×3 convolution on an even side pads nothing before and
    /// one row and column after: the same values as padding the input that way, then a valid convolution.
    @Test func sameConvolutionPadsAfterLikeTensorFlow() {
        let conv = RandomGenerator.global.exclusively { manualSeed(3); return Conv2d(2, 3, kernelSize: 3, stride: 2, padding: .same) }
        let x = Tensor.uniform([1, 2, 6, 6], generator: RandomGenerator(seed: 4))
        let expected = conv2d(pad2d(x, top: 0, left: 0, bottom: 1, right: 1), weight: conv.weight, bias: conv.bias, stride: (2, 2))
        #expect(conv(x).scalars == expected.scalars)
        #expect(samePadding(6, kernel: 3, stride: 2) == (0, 1) && samePadding(7, kernel: 3, stride: 2) == (1, 1)
                && samePadding(5, kernel: 5, stride: 1) == (2, 2) && samePadding(4, kernel: 2, stride: 1) == (0, 1))
        #expect("\(conv)".contains("padding=same"))
    }
}
