import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// Everything that defines a training run (saved as `run.json` beside its checkpoints).
public struct RunConfig: Codable, Sendable, Equatable {
    public var model: String
    /// A built-in dataset's name or an image folder's path.
    public var dataset: String
    public var recipe: Recipe
    public var seed: UInt64
    public var threads: Int
    /// Use only the first N training / test images (quick runs and CI).
    public var trainLimit: Int?
    public var testLimit: Int?
    /// Image folders: the side images are resized to (nil: the first image's size), the channels
    /// (nil: detected), centre-crop instead of stretching, and the held-out share without a `val/` tree.
    public var imageSize: Int?
    public var channels: Int?
    public var centerCrop: Bool?
    public var validationSplit: Double?
    /// Processes of a data-parallel run (nil: one); `recipe.batchSize` is per process.
    public var ranks: Int?
    /// Fine-tuning: the pretrained weights the backbone starts from (a new head is made for the
    /// dataset's classes; inputs are normalized as the weights expect).
    public var pretrained: String?
    /// Fine-tuning: epochs with the backbone frozen before everything trains (fastai's `fine_tune`).
    public var freezeEpochs: Int?
    /// Fine-tuning: the backbone stays frozen throughout (a linear probe).
    public var linearProbe: Bool?

    /// - Parameters:
    ///   - model: the zoo model to train.
    ///   - dataset: a built-in dataset's name (`mnist`, `cifar10`, …) or an image folder's path.
    ///   - recipe: hyper-parameters (default: the model's own).
    ///   - seed: seeds initialization, shuffling, augmentation and dropout.
    ///   - threads: worker threads (results depend on the thread count, not on scheduling).
    ///   - trainLimit: train on only the first N images.
    ///   - testLimit: test on only the first N images.
    ///   - imageSize: image folders: resize every image to this square size.
    ///   - channels: image folders: 1 or 3 (nil: grey only if every image is).
    ///   - centerCrop: image folders: crop to a square before resizing.
    ///   - validationSplit: image folders without `val/`: the share held out (nil: 0.2).
    public init(model: ZooModel, dataset: String = DatasetKind.mnist.rawValue, recipe: Recipe? = nil, seed: UInt64 = 0,
                threads: Int = Parallel.threads, trainLimit: Int? = nil, testLimit: Int? = nil, imageSize: Int? = nil,
                channels: Int? = nil, centerCrop: Bool? = nil, validationSplit: Double? = nil) {
        self.model = model.rawValue; self.dataset = dataset; self.recipe = recipe ?? model.defaults
        self.seed = seed; self.threads = threads; self.trainLimit = trainLimit; self.testLimit = testLimit
        self.imageSize = imageSize; self.channels = channels; self.centerCrop = centerCrop; self.validationSplit = validationSplit
    }

    /// How an image folder named by `dataset` becomes samples.
    public var folderOptions: ImageFolder.Options {
        ImageFolder.Options(imageSize: imageSize.map { ($0, $0) }, channels: channels, centerCrop: centerCrop ?? false,
                            validationSplit: validationSplit, seed: seed)
    }
}
