import Foundation
import ConvolveIO

/// CIFAR-10 and CIFAR-100, binary version (`cifar-10-binary.tar.gz`, `cifar-100-binary.tar.gz`):
/// 32×32 RGB images, 50,000 for training and 10,000 for testing. Each record is its label byte(s) and
/// 3,072 pixel bytes — the red plane, then green, then blue, each 32 rows of 32 — which is already the
/// `C×H×W` layout a batch needs. The archive is read in place (no extraction); an extracted
/// `cifar-10-batches-bin/` folder works too.
public struct CIFAR: DatasetProvider, Sendable {
    /// CIFAR-10: 10 classes.
    public static let cifar10 = CIFAR(
        name: "cifar10", displayName: "CIFAR-10", archive: "cifar-10-binary.tar.gz", folder: "cifar-10-batches-bin",
        trainFiles: (1...5).map { "data_batch_\($0).bin" }, testFiles: ["test_batch.bin"], labelBytes: 1,
        labelNamesFile: "batches.meta.txt",
        defaultClassNames: ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", md5: "c32a1d4ab5d03f1284b67883e8d87530",
        mirrors: ["https://www.cs.toronto.edu/~kriz/", "https://cave.cs.toronto.edu/kriz/",
                  "https://mindspore-website.obs.cn-north-4.myhuaweicloud.com/notebook/datasets/"],
        downloadSize: "163 MB", mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616])

    /// CIFAR-100: 100 fine classes (the record's second label byte; the first is the coarse class).
    public static let cifar100 = CIFAR(
        name: "cifar100", displayName: "CIFAR-100", archive: "cifar-100-binary.tar.gz", folder: "cifar-100-binary",
        trainFiles: ["train.bin"], testFiles: ["test.bin"], labelBytes: 2, labelNamesFile: "fine_label_names.txt",
        defaultClassNames: (0..<100).map { "class \($0)" },
        sha256: nil, md5: "03b5dce01913d631647c71ecec9e9cb8",
        mirrors: ["https://www.cs.toronto.edu/~kriz/", "https://cave.cs.toronto.edu/kriz/"],
        downloadSize: "161 MB", mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762])

    public let name: String
    public let displayName: String
    /// The archive's file name (also what is downloaded).
    public let archive: String
    /// The folder inside the archive (or extracted beside it) holding the record files.
    public let folder: String
    public let trainFiles: [String], testFiles: [String]
    /// Label bytes per record (CIFAR-100: coarse then fine; the fine label is used).
    public let labelBytes: Int
    /// The file listing one class name per line.
    public let labelNamesFile: String
    let defaultClassNames: [String]
    /// The archive's SHA-256 (nil where its publisher gives only an MD5).
    public let sha256: String?
    /// The archive's MD5, as published on the dataset's page.
    public let md5: String
    /// Base URLs the archive is downloaded from, tried in order.
    public let mirrors: [String]
    public let downloadSize: String
    public let mean: [Double], std: [Double]

    /// Bytes in one record: the label byte(s) and 3 × 32 × 32 pixels.
    public var recordSize: Int { labelBytes + 3072 }
    public var sampleShape: [Int] { [3, 32, 32] }
    public var classNames: [String] { defaultClassNames }
    public var splitSizes: (train: Int, test: Int) { (50_000, 10_000) }
    public var origin: String { "\(archive) (\(downloadSize)) from \(mirrors.first ?? "")" }

    /// Where the archive or the extracted folder is under `directory` (directly or in a `<name>` subfolder).
    /// - Parameter directory: a data directory.
    public func location(in directory: String) -> String? {
        for dir in [directory + "/" + name, directory] {
            if FileManager.default.isReadableFile(atPath: dir + "/" + archive) { return dir + "/" + archive }
            let extracted = dir + "/" + folder
            if (trainFiles + testFiles).allSatisfy({ FileManager.default.isReadableFile(atPath: extracted + "/" + $0) }) {
                return extracted
            }
        }
        return nil
    }

    public func load(train: Bool, from location: DataLocation, progress: Bool) throws -> ImageDataset {
        if let directory = location.directory { return try load(train: train, directory: directory) }
        let dir = DataLocation.cacheRoot + "/" + name
        if self.location(in: dir) == nil {
            do {
                try Downloader(progress: progress).fetch(archive, mirrors: location.mirrors ?? mirrors,
                                                         sha256: location.checksums?[archive] ?? sha256,
                                                         md5: location.checksums == nil ? md5 : nil, into: dir)
            } catch let error as DataError {
                throw DataError.missingData(dataset: displayName, directory: dir, files: [archive], cause: error.description)
            }
        }
        return try load(train: train, directory: dir)
    }

    /// Loads a split from `directory`, which holds the archive or the extracted folder (directly or
    /// in a `<name>` subfolder). Never touches the network.
    /// - Parameters:
    ///   - train: the training split (else the test split).
    ///   - directory: the data directory.
    public func load(train: Bool, directory: String) throws -> ImageDataset {
        guard let found = location(in: directory) else {
            throw DataError.missingData(dataset: displayName, directory: directory, files: [archive + " (or the extracted " + folder + "/)"])
        }
        let files = train ? trainFiles : testFiles
        var contents: [(String, [UInt8])] = []
        var names: [UInt8]?
        if found.hasSuffix(archive) {
            let wanted = Set((files + [labelNamesFile]).map { folder + "/" + $0 })
            let members = try Tar.members(of: found, maxMemberBytes: largestFileBytes) { wanted.contains($0) }
            for f in files {
                guard let bytes = members[folder + "/" + f] else {
                    throw DataError.badShape(path: found, reason: "the archive has no \(folder)/\(f); is it \(archive)?")
                }
                contents.append((found + ": " + folder + "/" + f, bytes))
            }
            names = members[folder + "/" + labelNamesFile]
        } else {
            for f in files {
                let path = found + "/" + f
                do { contents.append((path, [UInt8](try readRegularFile(path, maxBytes: largestFileBytes, what: "a \(displayName) record file")))) }
                catch let e as IOError { throw DataError.unreadable(path: path, reason: e.reason) }
            }
            let namesPath = found + "/" + labelNamesFile
            if FileManager.default.fileExists(atPath: namesPath) {
                do { names = [UInt8](try readRegularFile(namesPath, maxBytes: largestFileBytes, what: "a class list")) }
                catch let e as IOError { throw DataError.unreadable(path: namesPath, reason: e.reason) }
            }
        }
        let classNames = try names.map { try parseClassNames($0, path: found + ": " + labelNamesFile) } ?? defaultClassNames
        return try records(contents, classNames: classNames)
    }

    /// The largest record file of the dataset (its biggest split over its files), in bytes: members and
    /// files declaring more are refused before they are read.
    var largestFileBytes: Int {
        Swift.max(splitSizes.train / Swift.max(1, trainFiles.count), splitSizes.test / Swift.max(1, testFiles.count)) * recordSize
    }

    /// One class name per line (blank lines ignored); as many as the dataset has classes.
    func parseClassNames(_ bytes: [UInt8], path: String) throws -> [String] {
        guard bytes.count <= 1 << 16 else {
            throw DataError.badShape(path: path, reason: "a class list of \(bytes.count) bytes (at most 65536)")
        }
        let lines = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard lines.count == defaultClassNames.count else {
            throw DataError.badShape(path: path, reason: "lists \(lines.count) class names; \(displayName) has \(defaultClassNames.count)")
        }
        return lines
    }

    /// Images and labels from whole record files, each checked for its size and labels.
    func records(_ files: [(String, [UInt8])], classNames: [String]) throws -> ImageDataset {
        var pixels: [UInt8] = [], labels: [UInt8] = []
        for (path, bytes) in files {
            guard !bytes.isEmpty, bytes.count % recordSize == 0 else {
                throw DataError.badShape(path: path, reason: "\(bytes.count) bytes is not a whole number of \(recordSize)-byte "
                    + "\(displayName) records (truncated or not a \(displayName) record file)")
            }
            let n = bytes.count / recordSize
            pixels.reserveCapacity(pixels.count + n * 3072)
            for i in 0..<n {
                let base = i * recordSize
                let label = bytes[base + labelBytes - 1]
                guard Int(label) < classNames.count else {
                    throw DataError.labelOutOfRange(path: path, index: i, label: Int(label), classes: classNames.count)
                }
                labels.append(label)
                pixels += bytes[(base + labelBytes)..<(base + recordSize)]
            }
        }
        return ImageDataset(name: displayName, pixels: pixels, labels: labels, channels: 3, height: 32, width: 32,
                            classNames: classNames)
    }
}

/// The CIFAR-10 training or test split (`torchvision.datasets.CIFAR10(train=...)`), from the data
/// location: its directory, or the cache after a verified download.
/// - Parameters:
///   - train: the training split (else the test split).
///   - location: where the archive is found or cached.
public func CIFAR10(train: Bool = true, location: DataLocation = DataLocation()) throws -> ImageDataset {
    try CIFAR.cifar10.load(train: train, from: location, progress: isatty(STDERR_FILENO) != 0)
}

/// The CIFAR-100 training or test split (fine labels), as ``CIFAR10(train:location:)``.
/// - Parameters:
///   - train: the training split (else the test split).
///   - location: where the archive is found or cached.
public func CIFAR100(train: Bool = true, location: DataLocation = DataLocation()) throws -> ImageDataset {
    try CIFAR.cifar100.load(train: train, from: location, progress: isatty(STDERR_FILENO) != 0)
}
