// The PyTorch half of the tutorial, step by step, in Swift with Convolve.
// Run: swift run -c release torch-tutorial   (data: CONVOLVE_DATA_DIR or the download cache)
import Foundation
import ConvolveTraining

// 1. Transformations applied to the images: to [0, 1], then Normalize((0.5,), (0.5,)) → [-1, 1].
let transform = Compose(ToTensor(), Normalize(mean: [0.5], std: [0.5]))

// 2. The datasets (torchvision.datasets.MNIST) and loaders (batch 64, shuffled).
let data = DataLocation()
let trainset: ImageDataset, testset: ImageDataset
do {
    trainset = try data.load(.mnist, train: true).with(transform: transform)
    testset = try data.load(.mnist, train: false).with(transform: transform)
} catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8)); exit(1)
}
let trainloader = DataLoader(trainset, batchSize: 64, shuffle: true)
let testloader = DataLoader(testset, batchSize: 64, shuffle: true)

// 3. Shapes of one batch: [64, 1, 28, 28] and 64 labels.
var dataiter = trainloader.makeIterator()
let (images, labels) = dataiter.next()!
print(images.shape, labels.count)

// 4. Look at an image (the tutorial uses plt.imshow; here a PNG file and the label).
let first = images[0].reshape(28, 28).storage.map { UInt8(max(0, min(255, ($0 * 0.5 + 0.5) * 255))) }
try? PNG.write(Image(width: 28, height: 28, channels: 1, pixels: first), to: "first-image.png")
print("first image (label \(labels[0])) written to first-image.png")

// 5. The model: Conv-BatchNorm-ReLU-MaxPool twice, then Linear(4*7*7, 10).
final class Net: Module, Layer {
    let cnnLayers = Sequential {
        Conv2d(1, 4, kernelSize: 3, stride: 1, padding: 1)
        BatchNorm2d(4)
        ReLU(inplace: true)
        MaxPool2d(kernelSize: 2, stride: 2)
        Conv2d(4, 4, kernelSize: 3, stride: 1, padding: 1)
        BatchNorm2d(4)
        ReLU(inplace: true)
        MaxPool2d(kernelSize: 2, stride: 2)
    }
    let linearLayers = Sequential { Linear(4 * 7 * 7, 10) }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let h = cnnLayers(x)
        return linearLayers(h.view(h.size(0), -1))
    }
}

let model = Net()
let optimizer = Adam(model.parameters(), lr: 0.01)
print(model)

// 6. Train for 10 epochs (Convolve runs on the CPU: no .cuda() step).
let epochs = Int(ProcessInfo.processInfo.environment["EPOCHS"] ?? "") ?? 10
for i in 0..<epochs {
    var runningLoss = 0.0
    for (images, labels) in trainloader {
        optimizer.zeroGrad()
        let output = model(images)
        let loss = crossEntropy(output, labels)
        loss.backward()          // this is where the model learns by backpropagating
        optimizer.step()         // and optimizes its weights here
        runningLoss += Double(loss.item)
    }
    print("Epoch \(i + 1) - Training loss: \(runningLoss / Double(trainloader.count))")
}

// 7. Evaluate. The tutorial forgot model.eval(), so its BatchNorm normalized each single test image
//    with that image's own statistics; we switch to eval mode so the running statistics are used.
model.eval()
var correctCount = 0, allCount = 0
withNoGrad {
    for (images, labels) in testloader {
        let predictions = model(images).argmax(dim: 1)
        for (p, t) in zip(predictions, labels) where p == t { correctCount += 1 }
        allCount += labels.count
    }
}
print("Number Of Images Tested =", allCount)
print("\nModel Accuracy =", Double(correctCount) / Double(allCount))
