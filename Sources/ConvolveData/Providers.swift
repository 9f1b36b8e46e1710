import Foundation

/// A dataset Convolve can train on: what its samples are and where it comes from. Built in:
/// `mnist`, `fashion-mnist`, `kmnist` (``DatasetKind``), `cifar10`, `cifar100` (``CIFAR``); any
/// directory with a folder per class is an ``ImageFolder``. ``DatasetCatalog/resolve(_:options:)``
/// turns a name or a path into one.
public protocol DatasetProvider: Sendable {
    /// The name users type (`cifar10`), or the folder's path.
    var name: String { get }
    /// The name shown in messages (`CIFAR-10`).
    var displayName: String { get }
    /// One line on where the data comes from.
    var origin: String { get }
    /// Loads the training or test split.
    /// - Parameters:
    ///   - train: the training split (else the test or validation split).
    ///   - location: an explicit data directory, or the cache (downloading what is missing).
    ///   - progress: show a download progress line.
    func load(train: Bool, from location: DataLocation, progress: Bool) throws -> ImageDataset
    /// Per-channel mean and standard deviation of the training pixels scaled to [0, 1] (what
    /// `Normalize` needs). Known datasets give their published values; folders are measured.
    /// - Parameter train: the loaded training split.
    func statistics(of train: ImageDataset) -> (mean: [Double], std: [Double])
    /// The lines `convolve datasets` prints for it: size, classes, download, and whether and where it
    /// is available (the first of `directories` that holds it).
    /// - Parameter directories: where to look, in order.
    func catalogEntry(searching directories: [String]) -> [String]
    /// Fetches its files into `directory`, each verified against its checksum (files already there and
    /// verified are kept); one line per file for the user.
    /// - Parameters:
    ///   - directory: where the files go.
    ///   - mirrors: base URLs to use instead of its own (a private mirror), or empty.
    ///   - progress: show a download progress line.
    func download(into directory: String, mirrors: [String], progress: Bool) throws -> [String]
    /// Whether its images are drawings to be centred by ink mass in a 20×20 box, as MNIST's were made
    /// (what `predict` does to a photo of a digit).
    var centresInkByMass: Bool { get }
}

extension DatasetProvider {
    public func statistics(of train: ImageDataset) -> (mean: [Double], std: [Double]) { train.channelStatistics() }
    public func catalogEntry(searching directories: [String]) -> [String] { [] }
    public func download(into directory: String, mirrors: [String], progress: Bool) throws -> [String] {
        throw DataError.badShape(path: name, reason: "only built-in datasets can be downloaded (\(DatasetCatalog.names.joined(separator: ", ")))")
    }
    public var centresInkByMass: Bool { false }
}

extension ImageDataset {
    /// Mean and standard deviation of each channel over all pixels, scaled to [0, 1].
    public func channelStatistics() -> (mean: [Double], std: [Double]) {
        let plane = height * width
        var sum = [Double](repeating: 0, count: channels), squares = sum
        for i in 0..<count {
            pixels(ofImage: i).withUnsafeBufferPointer { px in
                for c in 0..<channels {
                    var s = 0, q = 0
                    let base = px.baseAddress! + c * plane
                    for k in 0..<plane { let v = Int(base[k]); s += v; q += v * v }
                    sum[c] += Double(s); squares[c] += Double(q)
                }
            }
        }
        let n = Double(Swift.max(1, count * plane))
        let mean = sum.map { $0 / n / 255 }
        let std = zip(squares, mean).map { q, m in Swift.max(1e-3, (q / n / 65025 - m * m).squareRoot()) }
        return (mean, std)
    }
}

extension DatasetKind: DatasetProvider {
    public var name: String { rawValue }
    public var origin: String { "four IDX files (\(downloadSize)) from \(mirrors.first ?? "")" }
    public func load(train: Bool, from location: DataLocation, progress: Bool) throws -> ImageDataset {
        try location.load(self, train: train, mirrors: location.mirrors, checksums: location.checksums, progress: progress)
    }
    /// The published statistics of the training images.
    public var mean: [Double] {
        switch self { case .mnist: [0.1307]; case .fashionMNIST: [0.2860]; case .kmnist: [0.1918] }
    }
    public var std: [Double] {
        switch self { case .mnist: [0.3081]; case .fashionMNIST: [0.3530]; case .kmnist: [0.3483] }
    }
    public func statistics(of train: ImageDataset) -> (mean: [Double], std: [Double]) { (mean, std) }
    public var centresInkByMass: Bool { true }

    public func catalogEntry(searching directories: [String]) -> [String] {
        let sizes = splitSizes
        let found = directories.lazy.compactMap { location(in: $0) }.first
        return ["\(rawValue) (\(displayName)): \(sizes.train.formatted()) training + \(sizes.test.formatted()) test images, "
                    + "28x28 grey, \(classNames.count) classes, \(downloadSize) download",
                "  classes: " + classNames.joined(separator: ", "),
                "  " + (found.map { "available in \($0)" } ?? "not downloaded (convolve download \(rawValue))")]
    }

    public func download(into directory: String, mirrors: [String], progress: Bool) throws -> [String] {
        let downloader = Downloader(progress: progress)
        var lines: [String] = []
        for file in Self.fileNames {
            let path = directory + "/" + file
            if FileManager.default.fileExists(atPath: path), (try? SHA256.file(path)) == sha256[file] {
                lines.append("\(file): already there, verified")
                continue
            }
            try downloader.fetch(file, mirrors: mirrors.isEmpty ? self.mirrors : mirrors, sha256: sha256[file], into: directory)
            lines.append("\(file): downloaded, SHA-256 verified")
        }
        return lines
    }
}

extension CIFAR {
    public func statistics(of train: ImageDataset) -> (mean: [Double], std: [Double]) { (mean, std) }

    public func catalogEntry(searching directories: [String]) -> [String] {
        let sizes = splitSizes
        let found = directories.lazy.compactMap { location(in: $0) }.first
        var lines = ["\(name) (\(displayName)): \(sizes.train.formatted()) training + \(sizes.test.formatted()) test images, "
                     + "32x32 RGB, \(classNames.count) classes, \(downloadSize) download (\(archive))"]
        if classNames.count <= 10 { lines.append("  classes: " + classNames.joined(separator: ", ")) }
        let state = found.map { "available: \($0)" } ?? "not downloaded (convolve download \(name))"
        lines.append("  " + state)
        return lines
    }

    public func download(into directory: String, mirrors: [String], progress: Bool) throws -> [String] {
        if location(in: directory) != nil { return ["\(archive): already there"] }
        try Downloader(progress: progress).fetch(archive, mirrors: mirrors.isEmpty ? self.mirrors : mirrors, sha256: sha256,
                                                 md5: md5, into: directory)
        return ["\(archive): downloaded, \(sha256 == nil ? "MD5" : "SHA-256 and MD5") verified"]
    }
}

/// Looks datasets up by name or path.
public enum DatasetCatalog {
    /// The built-in datasets, in the order `convolve datasets` lists them.
    public static let builtIn: [any DatasetProvider] = DatasetKind.allCases.map { $0 as any DatasetProvider }
        + [CIFAR.cifar10, CIFAR.cifar100]

    /// The names of the built-in datasets.
    public static var names: [String] { builtIn.map(\.name) }

    /// A built-in dataset by name (case-insensitive), or nil.
    /// - Parameter name: `mnist`, `fashion-mnist`, `kmnist`, `cifar10`, `cifar100`.
    public static func named(_ name: String) -> (any DatasetProvider)? {
        builtIn.first { $0.name == name.lowercased() }
    }

    /// A built-in dataset by name, or an ``ImageFolder`` when `nameOrPath` is a directory (a path
    /// that contains `/`, starts with `.`, or exists). Folders are scanned here (classes, files); their
    /// images are decoded by `load`.
    /// - Parameters:
    ///   - nameOrPath: a dataset name or a directory with one sub-folder per class.
    ///   - options: how folder images become samples (size, channels, split).
    public static func resolve(_ nameOrPath: String, options: ImageFolder.Options = .init()) throws -> any DatasetProvider {
        if let known = named(nameOrPath) { return known }
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: nameOrPath, isDirectory: &isDir)
        if exists && isDir.boolValue { return try ImageFolder(root: nameOrPath, options: options) }
        if exists { throw DataError.badShape(path: nameOrPath, reason: "is a file; a dataset is a name (\(names.joined(separator: ", "))) or a directory with one folder per class") }
        if nameOrPath.contains("/") || nameOrPath.hasPrefix(".") {
            throw DataError.unreadable(path: nameOrPath, reason: "no such directory")
        }
        throw DataError.badShape(path: nameOrPath, reason: "unknown dataset (known: \(names.joined(separator: ", ")); or give a directory with one folder per class)")
    }
}
