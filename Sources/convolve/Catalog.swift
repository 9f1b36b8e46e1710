import Foundation
import ArgumentParser
import Convolve
import ConvolveData
import ConvolveTraining

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the model zoo: parameters, what each recipe reaches and in how long, which datasets fit.")

    func run() throws {
        let datasets = DatasetKind.allCases.map(\.rawValue).joined(separator: ", ")
        print("model       parameters  test accuracy (MNIST, defaults)  time (2 cores)  recipe")
        for zoo in ZooModel.allCases {
            let r = zoo.defaults
            let recipe = "\(r.epochs) epochs, batch \(r.batchSize), \(r.optimizer) lr \(r.lr)"
                + (r.stepLRGamma.map { ", StepLR \($0)" } ?? "")
            let params = zoo.make().parameterCount.formatted()
            print(zoo.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)
                  + params.leftPadded(10) + "  " + zoo.expected.accuracy.padding(toLength: 33, withPad: " ", startingAt: 0)
                  + zoo.expected.time.padding(toLength: 16, withPad: " ", startingAt: 0) + recipe)
            print("            \(zoo.about); fits \(datasets) (28x28x1)")
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
    }
}

struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch a dataset ahead of time, each file verified against its SHA-256, into the cache or --data-dir.")
    @Argument(help: "Dataset: \(DatasetKind.allCases.map(\.rawValue).joined(separator: ", ")).", transform: parseDataset)
    var dataset: DatasetKind
    @OptionGroup var data: DataOptions
    @Option(help: "Download from this base URL instead of the dataset's mirrors (a private mirror).") var mirror: [String] = []

    func run() throws {
        try guarded {
            let dir = data.dataDir.map { $0 + "/" + dataset.rawValue } ?? DataLocation.cacheRoot + "/" + dataset.rawValue
            let downloader = Downloader(progress: isatty(STDERR_FILENO) != 0)
            for name in DatasetKind.fileNames {
                let path = dir + "/" + name
                if FileManager.default.fileExists(atPath: path), (try? SHA256.file(path)) == dataset.sha256[name] {
                    print("\(name): already there, verified")
                    continue
                }
                try downloader.fetch(name, mirrors: mirror.isEmpty ? dataset.mirrors : mirror,
                                     sha256: dataset.sha256[name], into: dir)
                print("\(name): downloaded, SHA-256 verified")
            }
            // The files must also load: shapes, counts and labels checked.
            let train = try dataset.load(train: true, directory: dir), test = try dataset.load(train: false, directory: dir)
            print("\(dataset.displayName): \(train.count) training and \(test.count) test images in \(dir)")
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: Swift.max(0, width - count)) + self }
}
