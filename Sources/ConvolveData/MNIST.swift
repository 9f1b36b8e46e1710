import Foundation
import Convolve

/// The MNIST-format datasets Convolve knows: same four-file layout, 28×28 gray, 10 classes.
public enum DatasetKind: String, CaseIterable, Sendable {
    case mnist
    case fashionMNIST = "fashion-mnist"
    case kmnist

    /// Display name.
    public var displayName: String {
        switch self { case .mnist: "MNIST"; case .fashionMNIST: "Fashion-MNIST"; case .kmnist: "KMNIST" }
    }

    /// Class names, indexed by label.
    public var classNames: [String] {
        switch self {
        case .mnist: return (0..<10).map(String.init)
        case .fashionMNIST:
            return ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
        case .kmnist: return ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
        }
    }

    /// Images in the training and test splits.
    public var splitSizes: (train: Int, test: Int) { (60_000, 10_000) }

    /// Approximate size of the four gzip files.
    public var downloadSize: String {
        switch self { case .mnist: "11 MB"; case .fashionMNIST: "30 MB"; case .kmnist: "21 MB" }
    }

    /// The shape every image must have: 28×28, one channel.
    public var imageShape: (height: Int, width: Int, channels: Int) { (28, 28, 1) }

    /// The four standard file names (gzip), train images/labels then test images/labels.
    public static let fileNames = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                   "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]

    /// SHA-256 of each file in `fileNames`.
    public var sha256: [String: String] {
        switch self {
        case .mnist: return [
            "train-images-idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
            "train-labels-idx1-ubyte.gz": "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
            "t10k-images-idx3-ubyte.gz": "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
            "t10k-labels-idx1-ubyte.gz": "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b"]
        case .fashionMNIST: return [
            "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
            "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
            "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
            "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"]
        case .kmnist: return [
            "train-images-idx3-ubyte.gz": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            "train-labels-idx1-ubyte.gz": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            "t10k-images-idx3-ubyte.gz": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            "t10k-labels-idx1-ubyte.gz": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"]
        }
    }

    /// Download mirrors, tried in order (the original MNIST host is often down).
    public var mirrors: [String] {
        switch self {
        case .mnist: return ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                             "https://storage.googleapis.com/cvdf-datasets/mnist/",
                             "http://yann.lecun.com/exdb/mnist/"]
        case .fashionMNIST: return ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"]
        case .kmnist: return ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
                              "https://codh.rois.ac.jp/kmnist/dataset/kmnist/"]
        }
    }

    /// Loads the train or test split from `directory`, which holds the four files (gzipped or not),
    /// directly or in a `<kind>` subfolder. Never touches the network.
    /// - Parameters:
    ///   - train: the training split (else the test split).
    ///   - directory: holds the files, directly or in a subfolder named after the dataset.
    public func load(train: Bool, directory: String) throws -> ImageDataset {
        let base = train ? "train" : "t10k"
        func find(_ stem: String) throws -> String {
            guard let path = file(stem, in: directory) else {
                throw DataError.missingData(dataset: displayName, directory: directory, files: Self.fileNames)
            }
            return path
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw DataError.unreadable(path: directory, reason: "no such directory")
        }
        let imagesPath = try find("\(base)-images-idx3-ubyte"), labelsPath = try find("\(base)-labels-idx1-ubyte")
        return try Self.loadPair(images: imagesPath, labels: labelsPath, name: displayName, classNames: classNames,
                                 imageShape: imageShape)
    }

    /// Where the file `stem` (gzipped or not) is under `directory`: directly, or in a subfolder named
    /// after the dataset.
    /// - Parameters:
    ///   - stem: a file name without `.gz` (`train-images-idx3-ubyte`).
    ///   - directory: the data directory.
    func file(_ stem: String, in directory: String) -> String? {
        for dir in [directory + "/" + rawValue, directory] {
            for name in [stem + ".gz", stem] where FileManager.default.isReadableFile(atPath: dir + "/" + name) {
                return dir + "/" + name
            }
        }
        return nil
    }

    /// The directory under `directory` that holds all four files, if there is one.
    /// - Parameter directory: a data directory (the files directly, or in a `<dataset>` subfolder).
    public func location(in directory: String) -> String? {
        let stems = Self.fileNames.map { String($0.dropLast(3)) }
        guard let first = file(stems[0], in: directory) else { return nil }
        let dir = (first as NSString).deletingLastPathComponent
        return stems.allSatisfy({ file($0, in: directory) != nil }) ? dir : nil
    }

    /// Reads and validates an images/labels IDX pair: unsigned-byte images `[N, H, W]` or `[N, H, W, C]`
    /// (of `imageShape` when given), at least one of them, and as many labels, each below the class count.
    ///
    /// - Parameters:
    ///   - imagesPath: the images file.
    ///   - labelsPath: the labels file.
    ///   - name: the dataset's name, for messages.
    ///   - classNames: one name per class.
    ///   - imageShape: the shape every image must have, or nil for any.
    public static func loadPair(images imagesPath: String, labels labelsPath: String, name: String,
                                classNames: [String], imageShape: (height: Int, width: Int, channels: Int)? = nil)
        throws -> ImageDataset {
        let images = try IDX.read(imagesPath)
        guard images.type == .uint8, images.shape.count == 3 || images.shape.count == 4 else {
            throw DataError.badShape(path: imagesPath, reason: "expected unsigned-byte images [N, H, W] or [N, H, W, C], got \(images.type) \(images.shape)")
        }
        let declared = (h: images.shape[1], w: images.shape[2], c: images.shape.count == 4 ? images.shape[3] : 1)
        if let e = imageShape, declared != (e.height, e.width, e.channels) {
            throw DataError.badShape(path: imagesPath, reason: "\(name) images must be \(e.height)x\(e.width) with \(e.channels) channel(s), "
                + "the file holds \(images.shape[0]) of \(declared.h)x\(declared.w) with \(declared.c) channel(s)")
        }
        guard images.shape[0] >= 1, declared.h >= 1, declared.w >= 1, declared.c >= 1 else {
            throw DataError.badShape(path: imagesPath, reason: "no images (shape \(images.shape))")
        }
        let labels = try IDX.read(labelsPath)
        guard labels.type == .uint8, labels.shape.count == 1 else {
            throw DataError.badShape(path: labelsPath, reason: "expected unsigned-byte labels [N], got \(labels.type) \(labels.shape)")
        }
        guard images.shape[0] == labels.shape[0] else {
            throw DataError.countMismatch(images: imagesPath, imageCount: images.shape[0], labels: labelsPath,
                                          labelCount: labels.shape[0])
        }
        if let bad = labels.bytes.firstIndex(where: { Int($0) >= classNames.count }) {
            throw DataError.labelOutOfRange(path: labelsPath, index: bad, label: Int(labels.bytes[bad]), classes: classNames.count)
        }
        let (h, w) = (images.shape[1], images.shape[2])
        let c = images.shape.count == 4 ? images.shape[3] : 1
        let pixels = PixelLayout.planar(images.bytes, channels: c, plane: h * w)
        // Held packed (zero runs squeezed out) where that saves memory: MNIST 55 → 14 MB.
        return ImageDataset(name: name, pixels: pixels, labels: labels.bytes, channels: c, height: h, width: w,
                            classNames: classNames).packed()
    }
}

/// Where datasets live and how they are obtained: an explicit directory (flag or `CONVOLVE_DATA_DIR`)
/// is used as is and the network is never touched; otherwise files are cached in
/// `$XDG_CACHE_HOME/convolve/<dataset>` (or `~/.cache/convolve/<dataset>`) and downloaded if missing.
public struct DataLocation: Sendable {
    /// The environment variable naming a data directory (skips the network).
    public static let environmentVariable = "CONVOLVE_DATA_DIR"

    /// Explicit directory, if any.
    public let directory: String?
    /// Download sources to use instead of each dataset's own (private mirrors, tests).
    public var mirrors: [String]?
    /// Expected SHA-256 per file name instead of each dataset's own (with `mirrors`).
    public var checksums: [String: String]?

    /// `directory` wins; otherwise `CONVOLVE_DATA_DIR` is read unless `readEnvironment` is false.
    ///
    /// - Parameters:
    ///   - directory: a directory holding the files (skips cache and network).
    ///   - readEnvironment: fall back to `CONVOLVE_DATA_DIR` when `directory` is nil.
    ///   - mirrors: download sources to use instead of each dataset's own.
    ///   - checksums: SHA-256 per file name instead of each dataset's own.
    public init(directory: String? = nil, readEnvironment: Bool = true, mirrors: [String]? = nil,
                checksums: [String: String]? = nil) {
        self.mirrors = mirrors; self.checksums = checksums
        let env = readEnvironment ? ProcessInfo.processInfo.environment[Self.environmentVariable] : nil
        self.directory = directory ?? env.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The cache root (`$XDG_CACHE_HOME/convolve` or `~/.cache/convolve`).
    public static var cacheRoot: String {
        let env = ProcessInfo.processInfo.environment
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/convolve" }
        return (env["HOME"] ?? NSHomeDirectory()) + "/.cache/convolve"
    }

    /// Loads a split: from the explicit directory, or from the cache after downloading missing files.
    /// `mirrors` and `checksums` override the dataset's own (for private mirrors and tests).
    ///
    /// - Parameters:
    ///   - kind: the dataset.
    ///   - train: the training split (else the test split).
    ///   - mirrors: download sources to use instead of the dataset's own.
    ///   - checksums: SHA-256 per file name instead of the dataset's own.
    ///   - progress: show a download progress line.
    public func load(_ kind: DatasetKind, train: Bool, mirrors: [String]? = nil, checksums: [String: String]? = nil,
                     progress: Bool = isatty(STDERR_FILENO) != 0) throws -> ImageDataset {
        if let directory { return try kind.load(train: train, directory: directory) }
        let dir = Self.cacheRoot + "/" + kind.rawValue
        let needed = train ? Array(DatasetKind.fileNames[0..<2]) : Array(DatasetKind.fileNames[2..<4])
        for name in needed where !FileManager.default.fileExists(atPath: dir + "/" + name) {
            do {
                try Downloader(progress: progress).fetch(name, mirrors: mirrors ?? kind.mirrors,
                                                         sha256: (checksums ?? kind.sha256)[name], into: dir)
            } catch let error as DataError {
                throw DataError.missingData(dataset: kind.displayName, directory: dir,
                                            files: DatasetKind.fileNames, cause: error.description)
            }
        }
        return try kind.load(train: train, directory: dir)
    }
}

