import Foundation
import ArgumentParser
import Convolve
import ConvolveData
import ConvolveTraining

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the model zoo: parameters, what each recipe reaches and in how long, which inputs fit.")

    func run() throws {
        let width = (ZooModel.allCases.map(\.rawValue.count).max() ?? 10) + 1
        print("model".padding(toLength: width, withPad: " ", startingAt: 0)
              + "parameters  test accuracy (defaults)                            time (2 cores)            recipe")
        for zoo in ZooModel.allCases {
            let r = zoo.defaults
            let recipe = "\(r.epochs) epoch\(r.epochs == 1 ? "" : "s"), batch \(r.batchSize), \(r.optimizer) lr \(r.lr)"
                + (r.weightDecay.map { ", weight decay \($0)" } ?? "")
                + (r.stepLRGamma.map { ", StepLR \($0)" } ?? "") + (r.oneCycle ? ", one-cycle schedule" : r.cosine ? ", cosine schedule" : "")
            let params = zoo.make().parameterCount.formatted()
            print(zoo.rawValue.padding(toLength: width, withPad: " ", startingAt: 0)
                  + params.leftPadded(10) + "  " + zoo.expected.accuracy.padding(toLength: 52, withPad: " ", startingAt: 0)
                  + zoo.expected.time.padding(toLength: 26, withPad: " ", startingAt: 0) + recipe)
            let input = zoo.inputShape
            print(String(repeating: " ", count: width) + "\(zoo.about); any dataset with images of at least \(zoo.minimumSize)x\(zoo.minimumSize), "
                  + "any channels and classes (parameters above: \(input[0])x\(input[1])x\(input[2]), \(zoo.defaultClasses) classes)"
                  + (zoo.pretrained != nil ? "; pretrained weights: `convolve import`" : ""))
        }
    }
}

struct Datasets: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the known datasets: images, classes, download size, and whether and where each is cached.")
    @OptionGroup var data: DataOptions

    func run() throws {
        for provider in DatasetCatalog.builtIn {
            let roots = (data.location.directory.map { [$0] } ?? []) + [DataLocation.cacheRoot + "/" + provider.name]
            for line in provider.catalogEntry(searching: roots) { print(line) }
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
            for line in try provider.download(into: dir, mirrors: mirror, progress: isatty(STDERR_FILENO) != 0) { print(line) }
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
