import Foundation
import Dispatch
import Convolve

/// A directory of images with one sub-folder per class, like torchvision's `ImageFolder` and Keras'
/// `image_dataset_from_directory`:
///
/// ```
/// photos/cat/0001.jpg        photos/train/cat/…   photos/val/cat/…   (or test/)
/// photos/dog/a/b/x.png       photos/train/dog/…   photos/val/dog/…
/// ```
///
/// Classes are the sorted sub-folder names; files are found recursively; `.png`, `.jpg`, `.jpeg`
/// (any case) are images and other files are ignored (and counted). With `train/` and `val/` (or
/// `validation/`, `test/`) sub-trees those are the splits; otherwise a seeded ``Options/validationSplit``
/// of the files is held out. Every image is decoded once (in parallel), optionally centre-cropped to
/// the target's aspect ratio, resized (bilinear, antialiased) to the target size and converted to the
/// dataset's channels — grey if every image is grey, else RGB, unless ``Options/channels`` says.
public final class ImageFolder: DatasetProvider, @unchecked Sendable {
    /// How folder images become samples.
    public struct Options: Sendable, Equatable, Codable {
        /// Target height and width; nil: the size of the first training image (others are resized to it).
        public var height: Int?, width: Int?
        /// 1 (grey) or 3 (RGB); nil: grey only if every image is grey.
        public var channels: Int?
        /// Crop each image to the target's aspect ratio (centred) before resizing, instead of stretching.
        public var centerCrop: Bool
        /// Share of the files held out for validation when the folder has no `val/`/`test/` tree (default 0.2).
        public var validationSplit: Double?
        /// Seeds that split.
        public var seed: UInt64

        /// - Parameters:
        ///   - imageSize: target `(height, width)`; nil: the first training image's size.
        ///   - channels: 1 or 3; nil: detected.
        ///   - centerCrop: crop to the target's aspect ratio before resizing.
        ///   - validationSplit: share held out when there is no validation tree (nil: 0.2).
        ///   - seed: seeds the split.
        public init(imageSize: (height: Int, width: Int)? = nil, channels: Int? = nil, centerCrop: Bool = false,
                    validationSplit: Double? = nil, seed: UInt64 = 0) {
            height = imageSize?.height; width = imageSize?.width
            self.channels = channels; self.centerCrop = centerCrop; self.validationSplit = validationSplit; self.seed = seed
        }
    }

    public let root: String
    public let options: Options
    /// Sorted class (sub-folder) names; a sample's label indexes them.
    public let classNames: [String]
    /// Image files of each split with their labels, in sorted order.
    public let trainFiles: [(path: String, label: Int)], validationFiles: [(path: String, label: Int)]
    /// Whether the splits come from `train/` and `val/` (or `test/`) sub-trees.
    public let hasSplitTrees: Bool
    /// Files that are not images (by extension), skipped.
    public let ignoredFiles: Int
    private let lock = NSLock()
    private var decoded: (train: ImageDataset, validation: ImageDataset, resized: Int)?

    public var name: String { root }
    public var displayName: String { (root as NSString).lastPathComponent }
    public var origin: String { "image folder \(root)" }

    /// Scans `root` (classes and files); images are decoded on the first `load`.
    /// - Parameters:
    ///   - root: a directory with one sub-folder per class, or `train/` and `val/`/`test/` trees of them.
    ///   - options: target size, channels, crop and split.
    ///
    /// ### See Also
    /// - ``DatasetCatalog/resolve(_:options:)``, ``DataLoader``
    public init(root: String, options: Options = Options()) throws {
        let rootPath = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
        self.root = rootPath; self.options = options
        if let c = options.channels, c != 1 && c != 3 { throw DataError.badShape(path: rootPath, reason: "channels must be 1 or 3, not \(c)") }
        if let f = options.validationSplit, !(f >= 0 && f < 1) {
            throw DataError.badShape(path: rootPath, reason: "the validation split must be in [0, 1), not \(f)")
        }
        if let h = options.height, let w = options.width, h < 1 || w < 1 || h > 4096 || w > 4096 {
            throw DataError.badShape(path: rootPath, reason: "image size \(h)x\(w) is outside 1...4096")
        }
        let fm = FileManager.default
        func subdirectories(_ dir: String) throws -> [String] {
            guard let names = try? fm.contentsOfDirectory(atPath: dir) else {
                throw DataError.unreadable(path: dir, reason: "not a readable directory")
            }
            return names.filter { n in
                var isDir: ObjCBool = false
                return !n.hasPrefix(".") && fm.fileExists(atPath: dir + "/" + n, isDirectory: &isDir) && isDir.boolValue
            }.sorted()
        }
        var ignored = 0
        /// Every class folder's images (sorted, recursive), or an error for an empty class.
        func scan(_ dir: String, classes: [String]) throws -> [[String]] {
            try classes.map { cls in
                let classDir = dir + "/" + cls
                var images: [String] = []
                let walker = fm.enumerator(atPath: classDir)
                while let relative = walker?.nextObject() as? String {
                    let last = (relative as NSString).lastPathComponent
                    if last.hasPrefix(".") { if walker?.fileAttributes?[.type] as? FileAttributeType == .typeDirectory { walker?.skipDescendants() }; continue }
                    guard walker?.fileAttributes?[.type] as? FileAttributeType != .typeDirectory else { continue }
                    if ImageFile.hasImageExtension(last) { images.append(classDir + "/" + relative) } else { ignored += 1 }
                }
                guard !images.isEmpty else {
                    throw DataError.badShape(path: classDir, reason: "class folder '\(cls)' has no images (.png, .jpg, .jpeg)")
                }
                return images.sorted()
            }
        }
        let top = try subdirectories(rootPath)
        let trainTree = top.contains("train") ? "train" : nil
        let valTree = ["val", "validation", "test"].first { top.contains($0) }
        if let trainTree, let valTree {
            hasSplitTrees = true
            let classes = try subdirectories(rootPath + "/" + trainTree)
            guard !classes.isEmpty else { throw DataError.badShape(path: rootPath + "/" + trainTree, reason: "no class folders") }
            let valClasses = try subdirectories(rootPath + "/" + valTree)
            if let stray = valClasses.first(where: { !classes.contains($0) }) {
                throw DataError.badShape(path: rootPath + "/" + valTree + "/" + stray,
                                         reason: "class '\(stray)' is not among the training classes (\(classes.joined(separator: ", ")))")
            }
            classNames = classes
            let train = try scan(rootPath + "/" + trainTree, classes: classes)
            let val = try scan(rootPath + "/" + valTree, classes: valClasses)
            trainFiles = train.enumerated().flatMap { c, files in files.map { ($0, c) } }
            validationFiles = zip(valClasses, val).flatMap { cls, files in files.map { ($0, classes.firstIndex(of: cls)!) } }
        } else {
            hasSplitTrees = false
            let classes = top
            guard !classes.isEmpty else {
                throw DataError.badShape(path: rootPath, reason: "no class folders (expected one sub-folder of images per class)")
            }
            classNames = classes
            let all = try scan(rootPath, classes: classes).enumerated().flatMap { c, files in files.map { (path: $0, label: c) } }
            let fraction = options.validationSplit ?? 0.2
            let order = RandomGenerator(seed: options.seed).permutation(all.count)
            let held = Int((Double(all.count) * fraction).rounded())
            trainFiles = order[..<(all.count - held)].sorted().map { all[$0] }
            validationFiles = order[(all.count - held)...].sorted().map { all[$0] }
        }
        if let files = try? fm.contentsOfDirectory(atPath: rootPath) {   // loose files at the top are not samples
            ignored += files.filter { n in
                var isDir: ObjCBool = false
                return !n.hasPrefix(".") && fm.fileExists(atPath: rootPath + "/" + n, isDirectory: &isDir) && !isDir.boolValue
            }.count
        }
        ignoredFiles = ignored
        if let odd = classNames.first(where: { $0.unicodeScalars.contains { $0.properties.generalCategory == .control } }) {
            throw DataError.badShape(path: rootPath + "/" + odd, reason: "a class folder's name contains a control character (a tab or a newline); rename it")
        }
        guard classNames.count <= 256 else { throw DataError.badShape(path: rootPath, reason: "\(classNames.count) classes; at most 256 are supported") }
        guard !trainFiles.isEmpty else { throw DataError.badShape(path: rootPath, reason: "no training images") }
    }

    public func load(train: Bool, from location: DataLocation = DataLocation(), progress: Bool = false) throws -> ImageDataset {
        let d = try decodeAll()
        return train ? d.train : d.validation
    }

    /// One line on the folder: classes, images per split, size, files resized and ignored.
    public func summary() throws -> String {
        let d = try decodeAll()
        let split = hasSplitTrees ? "" : String(format: " (%.0f%% held out, seed %llu)", (options.validationSplit ?? 0.2) * 100, options.seed)
        let shown = classNames.prefix(8).joined(separator: ", ") + (classNames.count > 8 ? ", …" : "")
        return "\(displayName): \(classNames.count) classes (\(shown)), \(d.train.count) training + \(d.validation.count) validation images\(split), "
            + "\(d.train.height)x\(d.train.width) \(d.train.channels == 1 ? "grey" : "RGB"); \(d.resized) resized"
            + (options.centerCrop ? " (centre-cropped)" : "") + ", \(ignoredFiles) non-image file\(ignoredFiles == 1 ? "" : "s") ignored"
    }

    /// Decodes both splits once (in parallel) and keeps them.
    private func decodeAll() throws -> (train: ImageDataset, validation: ImageDataset, resized: Int) {
        lock.lock(); defer { lock.unlock() }
        if let decoded { return decoded }
        let files = trainFiles + validationFiles
        let first = try ImageFile.read(files[0].path)
        let (h, w) = (options.height ?? first.height, options.width ?? first.width)
        // Every image is held decoded at the target size, then copied into the dataset: refused before
        // decoding when that does not fit the memory limit.
        let needed = Double(files.count) * Double(h) * Double(w) * Double(options.channels ?? 3) * 2
        guard needed <= Double(Limits.memoryBytes) else {
            throw DataError.badShape(path: root, reason: "\(files.count) images of \(h)x\(w) need about "
                + "\(Limits.describe(bytes: needed >= 9e18 ? Int.max : Int(needed))) decoded, more than the limit of "
                + "\(Limits.describe(bytes: Limits.memoryBytes)) (--memory-limit): give a smaller --image-size")
        }
        var images = [Image?](repeating: nil, count: files.count)
        var errors = [Error?](repeating: nil, count: files.count)
        var resizedFlags = [Bool](repeating: false, count: files.count)
        let workers = Swift.max(1, Swift.min(Parallel.threads, files.count))
        images.withUnsafeMutableBufferPointer { imgs in
            errors.withUnsafeMutableBufferPointer { errs in
                resizedFlags.withUnsafeMutableBufferPointer { flags in
                    let (imgs, errs, flags) = (UncheckedBox(imgs), UncheckedBox(errs), UncheckedBox(flags))
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        for i in stride(from: worker, to: files.count, by: workers) {
                            do {
                                var image = try ImageFile.read(files[i].path)
                                if image.width != w || image.height != h {
                                    if options.centerCrop { image = image.centerCropped(aspectWidth: w, aspectHeight: h) }
                                    image = image.resized(width: w, height: h)
                                    flags.value[i] = true
                                }
                                imgs.value[i] = image
                            } catch { errs.value[i] = error }
                        }
                    }
                }
            }
        }
        if let error = errors.lazy.compactMap({ $0 }).first { throw error }
        let channels = options.channels ?? (images.contains { $0?.channels == 3 } ? 3 : 1)
        func dataset(_ range: Range<Int>, _ split: String) -> ImageDataset {
            var pixels = [UInt8](); pixels.reserveCapacity(range.count * channels * h * w)
            for i in range { pixels += PixelLayout.planar(images[i]!.converted(channels: channels).pixels, channels: channels, plane: h * w) }
            return ImageDataset(name: "\(displayName) \(split)", pixels: pixels, labels: files[range].map { UInt8($0.label) },
                                channels: channels, height: h, width: w, classNames: classNames)
        }
        let result = (dataset(0..<trainFiles.count, "train"), dataset(trainFiles.count..<files.count, "validation"),
                      resizedFlags.filter { $0 }.count)
        decoded = result
        return result
    }
}

/// Hands a buffer to `concurrentPerform`'s workers, each writing only its own elements.
struct UncheckedBox<T>: @unchecked Sendable { let value: T; init(_ value: T) { self.value = value } }

/// Keras' `image_dataset_from_directory`: an image folder as a training set and, with a
/// `validationSplit` (or `val/`/`test/` trees), a validation set. Keras' defaults: 256×256, RGB,
/// stretched (`cropToAspectRatio: false`); pixels are scaled to [0, 1] by the datasets' transform.
///
/// - Parameters:
///   - directory: one sub-folder of images per class (or `train/` and `val/` trees of them).
///   - imageSize: `(height, width)` every image is resized to.
///   - colorMode: `"rgb"` or `"grayscale"`.
///   - validationSplit: the share held out (nil: none, unless the folder has a validation tree).
///   - seed: seeds the split.
///   - cropToAspectRatio: centre-crop to the target's aspect ratio before resizing.
///
/// ### See Also
/// - ``ImageFolder``
public func imageDatasetFromDirectory(_ directory: String, imageSize: (height: Int, width: Int) = (256, 256),
                                      colorMode: String = "rgb", validationSplit: Double? = nil, seed: UInt64 = 0,
                                      cropToAspectRatio: Bool = false) throws -> (train: ImageDataset, validation: ImageDataset?) {
    guard colorMode == "rgb" || colorMode == "grayscale" else {
        throw DataError.badShape(path: directory, reason: "color mode must be \"rgb\" or \"grayscale\", not \"\(colorMode)\"")
    }
    let folder = try ImageFolder(root: directory, options: .init(imageSize: imageSize, channels: colorMode == "rgb" ? 3 : 1,
                                                                 centerCrop: cropToAspectRatio, validationSplit: validationSplit ?? 0,
                                                                 seed: seed))
    let validation = try folder.load(train: false)
    return (try folder.load(train: true), validation.count > 0 ? validation : nil)
}
