import Foundation
import Convolve
import ConvolveNN
import ConvolveData

// The tutorial's models and the small MNIST-sized CNNs, with their registry entries.

/// The tutorial's PyTorch model: Conv-BN-ReLU-MaxPool ×2 + Linear; 2,174 parameters on MNIST.
public final class TorchSeedNet: Module, Layer {
    public let cnnLayers: Sequential
    public let linearLayers: Sequential
    /// - Parameters:
    ///   - channels: input channels.
    ///   - height: input height (at least 4).
    ///   - width: input width (at least 4).
    ///   - classes: output classes.
    public init(channels: Int = 1, height: Int = 28, width: Int = 28, classes: Int = 10) {
        cnnLayers = Sequential {
            Conv2d(channels, 4, kernelSize: 3, stride: 1, padding: 1); BatchNorm2d(4); ReLU(inplace: true)
            MaxPool2d(kernelSize: 2, stride: 2)
            Conv2d(4, 4, kernelSize: 3, stride: 1, padding: 1); BatchNorm2d(4); ReLU(inplace: true)
            MaxPool2d(kernelSize: 2, stride: 2)
        }
        linearLayers = Sequential { Linear(4 * (height / 4) * (width / 4), classes) }
    }
    public override var typeName: String { "Net" }
    public func callAsFunction(_ x: Tensor) -> Tensor { linearLayers(cnnLayers(x).flatten(startDim: 1)) }
}

/// LeNet-5 (ReLU and max-pool variant): 61,706 parameters on MNIST.
public final class LeNet5: Module, Layer {
    public let features: Sequential
    public let classifier: Sequential
    /// - Parameters:
    ///   - channels: input channels.
    ///   - height: input height (at least 12).
    ///   - width: input width (at least 12).
    ///   - classes: output classes.
    public init(channels: Int = 1, height: Int = 28, width: Int = 28, classes: Int = 10) {
        features = Sequential {
            Conv2d(channels, 6, kernelSize: 5, padding: 2); ReLU(); MaxPool2d(kernelSize: 2)
            Conv2d(6, 16, kernelSize: 5); ReLU(); MaxPool2d(kernelSize: 2)
        }
        let (fh, fw) = ((height / 2 - 4) / 2, (width / 2 - 4) / 2)
        classifier = Sequential {
            Linear(16 * fh * fw, 120); ReLU(); Linear(120, 84); ReLU(); Linear(84, classes)
        }
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { classifier(features(x).flatten(startDim: 1)) }
}

/// pytorch/examples' MNIST CNN: 1,199,882 parameters on MNIST. Returns logits (the example's
/// `log_softmax` + `nll_loss` equals `crossEntropy` on these).
public final class MnistCNN: Module, Layer {
    public let conv1: Conv2d, conv2: Conv2d
    public let dropout1 = Dropout(0.25)
    public let dropout2 = Dropout(0.5)
    public let fc1: Linear, fc2: Linear
    /// - Parameters:
    ///   - channels: input channels.
    ///   - height: input height (at least 6).
    ///   - width: input width (at least 6).
    ///   - classes: output classes.
    public init(channels: Int = 1, height: Int = 28, width: Int = 28, classes: Int = 10) {
        conv1 = Conv2d(channels, 32, kernelSize: 3, stride: 1)
        conv2 = Conv2d(32, 64, kernelSize: 3, stride: 1)
        fc1 = Linear(64 * ((height - 4) / 2) * ((width - 4) / 2), 128)
        fc2 = Linear(128, classes)
    }
    public override var typeName: String { "Net" }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        // Fused: the same values and gradients as maxPool2d(conv2(conv1(x).relu()).relu(), 2).
        var h = conv2.reluMaxPool2x2(conv1(x, fusedReLU: true))
        h = dropout1(h)
        h = dropout2(fc1(h.flatten(startDim: 1)).relu())
        return fc2(h)
    }
}

/// A small batch-normalized CNN sized for speed (zoo `fast-cnn`, 22,874 parameters on MNIST): three 3×3
/// Conv-BN-ReLU blocks of 16, 16 and 32 channels (no conv bias: batch norm shifts), the first two
/// max-pooled, and one Linear layer. With a one-cycle Adam schedule it reaches 99% on MNIST in one pass
/// over the training set (RESULTS.md).
public final class FastCNN: Module, Layer {
    public let features: Sequential
    public let classifier: Sequential
    /// - Parameters:
    ///   - channels: input channels.
    ///   - height: input height (at least 4).
    ///   - width: input width (at least 4).
    ///   - classes: output classes.
    ///   - widths: the three blocks' output channels (the zoo's: 16, 16, 32).
    ///
    /// Input `[N, channels, height, width]`; output `[N, classes]` logits.
    ///
    /// ### See Also
    /// - ``LeNet5``, ``TorchSeedNet``
    public init(channels: Int = 1, height: Int = 28, width: Int = 28, classes: Int = 10,
                widths: (Int, Int, Int) = (16, 16, 32)) {
        let (c1, c2, c3) = widths
        features = Sequential {
            Conv2d(channels, c1, kernelSize: 3, padding: 1, bias: false); BatchNorm2d(c1); ReLU(inplace: true)
            MaxPool2d(kernelSize: 2)
            Conv2d(c1, c2, kernelSize: 3, padding: 1, bias: false); BatchNorm2d(c2); ReLU(inplace: true)
            MaxPool2d(kernelSize: 2)
            Conv2d(c2, c3, kernelSize: 3, padding: 1, bias: false); BatchNorm2d(c3); ReLU(inplace: true)
        }
        classifier = Sequential { Linear(c3 * (height / 4) * (width / 4), classes) }
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { classifier(features(x).flatten(startDim: 1)) }
}

/// The tutorial's Keras model: Conv2D-MaxPool ×2, Flatten, Dense softmax; 1,198 parameters on MNIST.
///
/// - Parameters:
///   - inputShape: one sample, channels-last `[H, W, C]` (at least 10×10).
///   - classes: output classes.
public func kerasSeedModel(inputShape: [Int] = [28, 28, 1], classes: Int = 10) -> Model {
    Model(inputShape: inputShape) {
        Conv2D(4, 3, activation: .relu)
        MaxPooling2D(2, strides: 2)
        Conv2D(4, 3, activation: .relu)
        MaxPooling2D(2, strides: 2)
        Keras.Flatten()
        Dense(classes, activation: .softmax)
    }
}

extension ModelEntry {
    /// The tutorial's PyTorch model (`torch-seed`).
    static let torchSeed = ModelEntry(
        name: "torch-seed", about: "the tutorial's PyTorch model (Conv-BN-ReLU-MaxPool x2 + Linear)",
        defaults: Recipe(epochs: 10, batchSize: 64, lr: 0.01, optimizer: "adam", normalize: (0.5, 0.5)),
        expected: ("97.79% (MNIST)", "~4 s"), minimumSize: 4,
        build: { c, h, w, k in TorchSeedNet(channels: c, height: h, width: w, classes: k) },
        size: { c, h, w, k in (c * 36 + 168 + 4 * whole(h / 4) * whole(w / 4) * k + k, (c + 13) * h * w) },
        normalizedPlane: { h, w in (h / 2) * (w / 2) })

    /// The tutorial's Keras model (`keras-seed`).
    static let kerasSeed = ModelEntry(
        name: "keras-seed", about: "the tutorial's Keras model (Conv2D-MaxPooling2D x2 + Dense softmax)",
        defaults: Recipe(epochs: 10, batchSize: 32, lr: 0.001, optimizer: "adam", normalize: nil, style: .keras),
        expected: ("97.2% (MNIST; 97.2–97.8% by seed)", "~4 s"), minimumSize: 10,
        build: { c, h, w, k in kerasSeedModel(inputShape: [h, w, c], classes: k) },
        size: { c, h, w, k in
            (c * 36 + 152 + 4 * whole((whole((h - 2) / 2) - 2) / 2) * whole((whole((w - 2) / 2) - 2) / 2) * k + k, (c + 10) * h * w)
        })

    /// LeNet-5 (`lenet5`).
    static let lenet5 = ModelEntry(
        name: "lenet5", about: "LeNet-5 with ReLU and max-pooling",
        defaults: Recipe(epochs: 5, batchSize: 64, lr: 0.002, optimizer: "adam", normalization: .dataset, stepLRGamma: 0.6),
        expected: ("99.1–99.3% (MNIST)", "~6 s"), minimumSize: 12,
        build: { c, h, w, k in LeNet5(channels: c, height: h, width: w, classes: k) },
        size: { c, h, w, k in
            (c * 150 + 12_706 + 1_920 * whole((whole(h / 2) - 4) / 2) * whole((whole(w / 2) - 4) / 2) + 85 * k, (c + 22) * h * w)
        })

    /// The fast batch-normalized CNN (`fast-cnn`).
    static let fastCNN = ModelEntry(
        name: "fast-cnn", about: "three 3x3 Conv-BN-ReLU blocks (16/16/32) + Linear, one-cycle Adam: 99% in one epoch",
        defaults: Recipe(epochs: 1, batchSize: 32, lr: 0.015, optimizer: "adam", normalization: .dataset, oneCycle: true),
        expected: ("99.0–99.2% (MNIST, one epoch)", "~2 s"), minimumSize: 4,
        build: { c, h, w, k in FastCNN(channels: c, height: h, width: w, classes: k) },
        size: { c, h, w, k in (c * 144 + 7_040 + 32 * whole(h / 4) * whole(w / 4) * k + k, (c + 74) * h * w) },
        normalizedPlane: { h, w in (h / 4) * (w / 4) })

    /// pytorch/examples' MNIST CNN (`mnist-cnn`).
    static let mnistCNN = ModelEntry(
        name: "mnist-cnn", about: "pytorch/examples' MNIST CNN (two 3x3 convs, dropout, two dense)",
        defaults: Recipe(epochs: 5, batchSize: 64, lr: 1.0, optimizer: "adadelta", normalization: .dataset, stepLRGamma: 0.7),
        expected: ("99.1–99.2% (MNIST)", "~70 s"), minimumSize: 6,
        build: { c, h, w, k in MnistCNN(channels: c, height: h, width: w, classes: k) },
        size: { c, h, w, k in
            (c * 288 + 18_656 + 8_192 * whole((h - 4) / 2) * whole((w - 4) / 2) + 129 * k, (c + 128) * h * w)
        })
}
