import Foundation
import ArgumentParser
import Convolve
import ConvolveData
import ConvolveTraining

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the model zoo: parameters, what each recipe reaches and in how long, which inputs fit.")

    func run() throws {
        print("model       parameters  test accuracy (defaults)                            time (2 cores)            recipe")
        for zoo in ZooModel.allCases {
            let r = zoo.defaults
            let recipe = "\(r.epochs) epoch\(r.epochs == 1 ? "" : "s"), batch \(r.batchSize), \(r.optimizer) lr \(r.lr)"
                + (r.weightDecay.map { ", weight decay \($0)" } ?? "")
                + (r.stepLRGamma.map { ", StepLR \($0)" } ?? "") + (r.oneCycle ? ", one-cycle schedule" : r.cosine ? ", cosine schedule" : "")
            let params = zoo.make().parameterCount.formatted()
            print(zoo.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)
                  + params.leftPadded(10) + "  " + zoo.expected.accuracy.padding(toLength: 52, withPad: " ", startingAt: 0)
                  + zoo.expected.time.padding(toLength: 26, withPad: " ", startingAt: 0) + recipe)
            print("            \(zoo.about); any dataset with images of at least \(zoo.minimumSize)x\(zoo.minimumSize), "
                  + "any channels and classes (parameters above: MNIST)")
        }
    }
}

struct Datasets: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the known datasets: images, classes, download size, and whether and where each is cached.")
    @OptionGroup var data: DataOptions

    func run() throws {
        for kind in DatasetKind.allCases {
            let sizes = kind.splitSizes
            print("\(kind.rawValue) (\(kind.displayName)): \(sizes.train.formatted()) training + \(sizes.test.formatted()) test images, "
                  + "28x28 grey, \(kind.classNames.count) classes, \(kind.downloadSize) download")
            print("  classes: " + kind.classNames.joined(separator: ", "))
            let roots = (data.location.directory.map { [$0] } ?? []) + [DataLocation.cacheRoot + "/" + kind.rawValue]
            let found = roots.lazy.compactMap { kind.location(in: $0) }.first
            print("  " + (found.map { "available in \($0)" } ?? "not downloaded (convolve download \(kind.rawValue))"))
        }
        for cifar in [CIFAR.cifar10, CIFAR.cifar100] {
            let sizes = cifar.splitSizes
            print("\(cifar.name) (\(cifar.displayName)): \(sizes.train.formatted()) training + \(sizes.test.formatted()) test images, "
                  + "32x32 RGB, \(cifar.classNames.count) classes, \(cifar.downloadSize) download (\(cifar.archive))")
            if cifar.classNames.count <= 10 { print("  classes: " + cifar.classNames.joined(separator: ", ")) }
            let roots = (data.location.directory.map { [$0] } ?? []) + [DataLocation.cacheRoot + "/" + cifar.name]
            let found = roots.lazy.compactMap { cifar.location(in: $0) }.first
            print("  " + (found.map { "available: \($0)" } ?? "not downloaded (convolve download \(cifar.name))"))
        }
        print("an image folder (convolve train --dataset DIR): one sub-folder of PNG/JPEG images per class, or train/ and val/ trees of them")
        print("  JPEG: " + (JPEG.loadError ?? "available (libjpeg-turbo)"))
    }
}

struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch a dataset ahead of time, each file verified against its checksum, into the cache or --data-dir.")
    @Argument(help: "Dataset: \(DatasetCatalog.names.joined(separator: ", ")).", transform: parseDataset)
    var dataset: String
    @OptionGroup var data: DataOptions
    @Option(help: "Download from this base URL instead of the dataset's mirrors (a private mirror).") var mirror: [String] = []

    func run() throws {
        try guarded {
            guard let provider = DatasetCatalog.named(dataset) else {
                throw DataError.badShape(path: dataset, reason: "only built-in datasets can be downloaded (\(DatasetCatalog.names.joined(separator: ", ")))")
            }
            let dir = data.dataDir.map { $0 + "/" + provider.name } ?? DataLocation.cacheRoot + "/" + provider.name
            let downloader = Downloader(progress: isatty(STDERR_FILENO) != 0)
            if let kind = provider as? DatasetKind {
                for name in DatasetKind.fileNames {
                    let path = dir + "/" + name
                    if FileManager.default.fileExists(atPath: path), (try? SHA256.file(path)) == kind.sha256[name] {
                        print("\(name): already there, verified")
                        continue
                    }
                    try downloader.fetch(name, mirrors: mirror.isEmpty ? kind.mirrors : mirror, sha256: kind.sha256[name], into: dir)
                    print("\(name): downloaded, SHA-256 verified")
                }
            } else if let cifar = provider as? CIFAR {
                if cifar.location(in: dir) != nil {
                    print("\(cifar.archive): already there")
                } else {
                    try downloader.fetch(cifar.archive, mirrors: mirror.isEmpty ? cifar.mirrors : mirror, sha256: cifar.sha256,
                                         md5: cifar.md5, into: dir)
                    print("\(cifar.archive): downloaded, \(cifar.sha256 == nil ? "MD5" : "SHA-256 and MD5") verified")
                }
            }
            // The files must also load: shapes, counts and labels checked.
            let location = DataLocation(directory: dir, readEnvironment: false)
            let train = try provider.load(train: true, from: location, progress: false)
            let test = try provider.load(train: false, from: location, progress: false)
            print("\(provider.displayName): \(train.count) training and \(test.count) test images in \(dir)")
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: Swift.max(0, width - count)) + self }
}
