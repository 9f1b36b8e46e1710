// The Keras half of the tutorial, step by step, in Swift with Convolve.
// Run: swift run -c release keras-tutorial   (data: CONVOLVE_DATA_DIR or the download cache)
import Foundation
import ConvolveTraining

// 1. Load MNIST (keras.datasets.mnist.load_data) and scale pixels to [0, 1].
let data = DataLocation()
let train: ImageDataset, test: ImageDataset
do {
    train = try data.load(.mnist, train: true)
    test = try data.load(.mnist, train: false)
} catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8)); exit(1)
}
var (trainImages, trainLabels) = train.batch(Array(0..<train.count))   // ToTensor: /255
var (testImages, testLabels) = test.batch(Array(0..<test.count))

// 2. Look at a few images: a 3x3 grid written as PNG.
var grid = [UInt8](repeating: 0, count: 84 * 84)
for i in 0..<9 {
    let digit = train.pixels(ofImage: i)
    for y in 0..<28 { for x in 0..<28 { grid[((i / 3) * 28 + y) * 84 + (i % 3) * 28 + x] = digit[y * 28 + x] } }
}
try? PNG.write(Image(width: 84, height: 84, channels: 1, pixels: grid), to: "first-nine.png")
print("labels of first-nine.png:", (0..<9).map { trainLabels[$0] })

// 3. Shapes, then reshape to channels-last (60000, 28, 28, 1) and one-hot encode the labels.
print(trainImages.shape, trainLabels.count, testImages.shape, testLabels.count)
let xTrain = trainImages.reshape(60000, 28, 28, 1), xTest = testImages.reshape(10000, 28, 28, 1)
let yTrain = oneHot(trainLabels, classes: 10), yTest = oneHot(testLabels, classes: 10)

// 4. The model: Conv2D-MaxPooling2D twice, Flatten, Dense(10, softmax).
let model = Model(inputShape: [28, 28, 1]) {
    Conv2D(4, 3, activation: .relu)
    MaxPooling2D(2, strides: 2)
    Conv2D(4, 3, activation: .relu)
    MaxPooling2D(2, strides: 2)
    Keras.Flatten()
    Dense(10, activation: .softmax)
}
print(model.summary())

// 5. Compile and fit for 10 epochs (batch 32), validating on the test set like the tutorial.
model.compile(optimizer: .adam(), loss: .categoricalCrossentropy, metrics: ["accuracy"])
let epochs = Int(ProcessInfo.processInfo.environment["EPOCHS"] ?? "") ?? 10
let history = model.fit(x: xTrain, y: yTrain, epochs: epochs, validationData: (xTest, yTest))
print("final val_accuracy:", history.history["val_accuracy"]!.last!)
