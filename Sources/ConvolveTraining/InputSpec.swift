import Foundation
import Convolve
import ConvolveNN
import ConvolveData

/// What a trained model needs to know about its input, saved in every checkpoint (metadata `input`):
/// the sample shape, the class names and the normalization, so `evaluate`, `predict` and `export`
/// need no flags.
public struct InputSpec: Codable, Sendable, Equatable {
    /// The dataset's name, or the image folder's path.
    public var dataset: String
    public var channels: Int, height: Int, width: Int
    public var classNames: [String]
    /// `Normalize` after pixels / 255, per channel (one value for all); nil: none.
    public var mean: [Double]?, std: [Double]?
    /// Images of another size are centre-cropped to the aspect ratio before resizing (else stretched).
    public var centerCrop: Bool
    /// Pretrained models' evaluation transform: the shorter side resized to this (Pillow's bilinear),
    /// then the centre `height × width` cropped (torchvision's `Resize(256)` + `CenterCrop(224)`);
    /// nil: the image is fitted as `centerCrop` says.
    public var resize: Int?
    /// The filter of that resize (nil: bilinear; torchvision's EfficientNet weights want bicubic).
    public var filter: ResizeFilter?

    /// - Parameters:
    ///   - dataset: the dataset's name or folder path.
    ///   - channels: channels per sample.
    ///   - height: sample height.
    ///   - width: sample width.
    ///   - classNames: a name per class.
    ///   - mean: channel means for `Normalize` (after / 255), or nil.
    ///   - std: channel standard deviations, or nil.
    ///   - centerCrop: crop other-sized images to the aspect ratio before resizing.
    ///   - resize: resize the shorter side to this, then crop the centre (pretrained models' evaluation).
    ///   - filter: the filter of that resize (nil: bilinear).
    public init(dataset: String, channels: Int, height: Int, width: Int, classNames: [String],
                mean: [Double]?, std: [Double]?, centerCrop: Bool = false, resize: Int? = nil, filter: ResizeFilter? = nil) {
        self.dataset = dataset; self.channels = channels; self.height = height; self.width = width
        self.classNames = classNames; self.mean = mean; self.std = std; self.centerCrop = centerCrop
        self.resize = resize; self.filter = filter
    }

    /// The spec of a training set under a recipe: the dataset's shape and classes, and the recipe's
    /// normalization resolved (dataset statistics from `provider`).
    /// - Parameters:
    ///   - provider: the dataset (its statistics).
    ///   - train: the loaded training set.
    ///   - recipe: the normalization choice.
    ///   - centerCrop: how other-sized images were made to fit.
    public init(provider: any DatasetProvider, train: ImageDataset, recipe: Recipe, centerCrop: Bool = false) {
        var mean: [Double]?, std: [Double]?
        switch recipe.normalization {
        case .none: break
        case let .fixed(m, s): mean = [m]; std = [s]
        case .dataset: (mean, std) = provider.statistics(of: train)
        }
        self.init(dataset: provider.name, channels: train.channels, height: train.height, width: train.width,
                  classNames: train.classNames, mean: mean, std: std, centerCrop: centerCrop)
    }

    /// The spec of a built-in MNIST-family dataset under a recipe (checkpoints written before specs).
    /// - Parameters:
    ///   - dataset: the dataset.
    ///   - recipe: the normalization choice.
    public init(dataset: DatasetKind, recipe: Recipe) {
        var mean: [Double]?, std: [Double]?
        switch recipe.normalization {
        case .none: break
        case let .fixed(m, s): mean = [m]; std = [s]
        case .dataset: (mean, std) = (dataset.mean, dataset.std)
        }
        self.init(dataset: dataset.rawValue, channels: 1, height: 28, width: 28, classNames: dataset.classNames,
                  mean: mean, std: std)
    }

    /// The input of ImageNet weights: RGB `size × size` cut from the centre of the image resized to
    /// `resize` on its shorter side (torchvision's evaluation transform), normalized by `mean` and
    /// `std`, the 1000 ImageNet classes.
    /// - Parameters:
    ///   - size: the crop's side (224).
    ///   - resize: the shorter side before cropping (256).
    ///   - mean: per-channel means (ImageNet's).
    ///   - std: per-channel standard deviations (ImageNet's).
    ///   - filter: the resize's filter (bilinear; torchvision's EfficientNet weights: bicubic).
    public static func imageNet(size: Int = 224, resize: Int = 256, mean: [Double] = ImageNet.mean,
                                std: [Double] = ImageNet.std, filter: ResizeFilter = .bilinear) -> InputSpec {
        InputSpec(dataset: "imagenet", channels: 3, height: size, width: size, classNames: ImageNet.classNames,
                  mean: mean, std: std, resize: resize, filter: filter == .bilinear ? nil : filter)
    }

    /// `[channels, height, width]`.
    public var sampleShape: [Int] { [channels, height, width] }

    /// Pixels to [0, 1], then `Normalize(mean, std)` if the spec has one.
    public var transform: any Transform {
        guard let mean, let std else { return ToTensor() }
        return Compose(ToTensor(), Normalize(mean: mean.map(Float.init), std: std.map(Float.init)))
    }

    /// Raw pixel bytes (`[N, C, H, W]`) as the tensor `transform` makes of them.
    /// - Parameters:
    ///   - pixels: bytes 0…255, NCHW.
    ///   - shape: `[N, C, H, W]`.
    public func tensor(pixels: [UInt8], shape: [Int]) -> Tensor {
        var values = pixels.map { Float($0) }
        values.withUnsafeMutableBufferPointer { transform.apply($0, shape: shape) }
        return Tensor(values, shape: shape)
    }

    /// An image file's pixels as one sample: converted to the spec's channels, then — with `resize` —
    /// its shorter side resized and the centre cropped as torchvision's evaluation transform does, or
    /// else centre-cropped to the aspect ratio if the spec says so and resized (bilinear) to its size;
    /// CHW bytes. Throws when the resized image would exceed ``Limits/maxImagePixels``.
    /// - Parameters:
    ///   - image: a decoded image of any size.
    ///   - path: the image's file, for messages.
    public func sample(from image: Image, path: String) throws -> [UInt8] {
        var img = image.converted(channels: channels)
        if let resize, img.width != width || img.height != height {
            let (short, long) = (Swift.min(img.width, img.height), Swift.max(img.width, img.height))
            let pixels = Double(resize) * (Double(resize) * Double(long) / Double(short))
            guard pixels <= Double(Limits.maxImagePixels) else {
                throw DataError.badImage(path: path, reason: "\(img.width)x\(img.height) resized to \(resize) on its shorter side "
                    + "would have more than \(Limits.maxImagePixels) pixels (--max-image-pixels)")
            }
            img = img.resized(shorterSide: resize, filter: filter ?? .bilinear).centerCropped(width: width, height: height)
        } else if img.width != width || img.height != height {
            if centerCrop { img = img.centerCropped(aspectWidth: width, aspectHeight: height) }
            img = img.resized(width: width, height: height)
        }
        return PixelLayout.planar(img.pixels, channels: channels, plane: height * width)
    }
}
