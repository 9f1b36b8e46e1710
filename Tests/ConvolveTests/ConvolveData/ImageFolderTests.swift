import Foundation
import Testing
import Convolve
@testable import ConvolveData

/// A grey or RGB image whose pixels say which class it is: bright top half for `bright`, else bright bottom.
func classImage(width: Int, height: Int, channels: Int, brightTop: Bool, seed: Int) -> Image {
    var px = [UInt8](repeating: 0, count: width * height * channels)
    for y in 0..<height { for x in 0..<width { for c in 0..<channels {
        let bright = (y < height / 2) == brightTop
        px[(y * width + x) * channels + c] = UInt8(bright ? 200 + (x + seed + c) % 50 : (x * y + seed) % 40)
    } } }
    return Image(width: width, height: height, channels: channels, pixels: px)
}

/// photos/{top,bottom}/…: PNGs of mixed sizes and modes (some in a nested folder), plus two JPEGs,
/// a text file in a class folder, a README at the top and a hidden file — 14 images in all.
func makePhotoFolder(_ root: String, jpegs: Bool = true) throws {
    let fm = FileManager.default
    for (cls, top) in [("top", true), ("bottom", false)] {
        try fm.createDirectory(atPath: "\(root)/\(cls)/nested", withIntermediateDirectories: true)
        for i in 0..<6 {
            let img = classImage(width: 12 + 4 * i, height: 20 + 2 * i, channels: i % 2 == 0 ? 1 : 3, brightTop: top, seed: i)
            try PNG.write(img, to: "\(root)/\(cls)/\(i < 4 ? "" : "nested/")img\(i).\(i == 1 ? "PNG" : "png")")
        }
    }
    if jpegs {
        for (i, name) in ["class-red-0.jpg", "class-blue-1.jpg"].enumerated() {
            try fm.copyItem(atPath: try imageFixture(name), toPath: "\(root)/\(i == 0 ? "top" : "bottom")/photo.JPG")
        }
    }
    fm.createFile(atPath: "\(root)/top/notes.txt", contents: Data("not an image".utf8))
    fm.createFile(atPath: "\(root)/README.txt", contents: Data("read me".utf8))
    fm.createFile(atPath: "\(root)/bottom/.DS_Store", contents: Data([0, 1, 2]))
}

@Suite struct ImageFolderTests {
    @Test(needsJPEG) func classFoldersWithASeededSplit() throws {
        let dir = TempDir()
        try makePhotoFolder(dir.path)
        let options = ImageFolder.Options(imageSize: (16, 16), validationSplit: 0.25, seed: 3)
        let folder = try ImageFolder(root: dir.path, options: options)
        #expect(folder.classNames == ["bottom", "top"])
        #expect(folder.trainFiles.count + folder.validationFiles.count == 14 && folder.validationFiles.count == 4)
        #expect(folder.ignoredFiles == 2)
        #expect(Set(folder.trainFiles.map(\.path)).isDisjoint(with: folder.validationFiles.map(\.path)))
        let train = try folder.load(train: true), val = try folder.load(train: false)
        #expect(train.sampleShape == [3, 16, 16] && val.sampleShape == [3, 16, 16])   // some images are RGB
        #expect(train.count == 10 && val.count == 4)
        let summary = try folder.summary()
        #expect(summary.contains("2 classes (bottom, top)") && summary.contains("2 non-image files ignored") && summary.contains("16x16 RGB"), "\(summary)")
        // The same seed gives the same split; another seed another one.
        let same = try ImageFolder(root: dir.path, options: options)
        #expect(same.validationFiles.map(\.path) == folder.validationFiles.map(\.path))
        var other = options; other.seed = 4
        #expect(try ImageFolder(root: dir.path, options: other).validationFiles.map(\.path) != folder.validationFiles.map(\.path))
        // Forced grey; labels follow the class folders; statistics are per channel.
        var grey = options; grey.channels = 1
        let g = try ImageFolder(root: dir.path, options: grey).load(train: true)
        #expect(g.sampleShape == [1, 16, 16] && g.channelStatistics().mean.count == 1)
        #expect(train.channelStatistics().mean.count == 3)
        for (i, file) in folder.trainFiles.enumerated() {
            #expect(Int(train.labels[i]) == (file.path.contains("/top/") ? 1 : 0))
        }
        // Keras' spelling: 256x256 RGB by default, a validation set only when asked for.
        let keras = try imageDatasetFromDirectory(dir.path, imageSize: (20, 24))
        #expect(keras.train.count == 14 && keras.validation == nil && keras.train.sampleShape == [3, 20, 24])
        let split = try imageDatasetFromDirectory(dir.path, imageSize: (8, 8), colorMode: "grayscale", validationSplit: 0.5, seed: 1)
        #expect(split.train.count == 7 && split.validation?.count == 7 && split.train.channels == 1)
    }

    @Test func trainAndValTreesAndGreyDetection() throws {
        let dir = TempDir()
        let fm = FileManager.default
        for split in ["train", "val"] { for cls in ["a", "b", "c"] where !(split == "val" && cls == "b") {
            try fm.createDirectory(atPath: "\(dir.path)/\(split)/\(cls)", withIntermediateDirectories: true)
            for i in 0..<(split == "train" ? 3 : 1) {
                try PNG.write(classImage(width: 10, height: 10, channels: 1, brightTop: cls == "a", seed: i), to: "\(dir.path)/\(split)/\(cls)/\(i).png")
            }
        } }
        let folder = try ImageFolder(root: dir.path)
        #expect(folder.hasSplitTrees && folder.classNames == ["a", "b", "c"])
        let train = try folder.load(train: true), val = try folder.load(train: false)
        #expect(train.count == 9 && val.count == 2 && train.sampleShape == [1, 10, 10])   // all grey, first image's size
        #expect(val.labels.map { Int($0) } == [0, 2])   // val/c is class 2 although val has no b
        // A validation class the training tree does not have.
        try fm.createDirectory(atPath: "\(dir.path)/val/zebra", withIntermediateDirectories: true)
        #expect { try ImageFolder(root: dir.path) } throws: { "\($0)".contains("val/zebra") && "\($0)".contains("not among the training classes") }
    }

    @Test func badFoldersGiveOneMessageNamingThePlace() throws {
        let fm = FileManager.default
        // No class folders.
        let flat = TempDir()
        try PNG.write(classImage(width: 4, height: 4, channels: 1, brightTop: true, seed: 0), to: flat.path + "/x.png")
        #expect { try ImageFolder(root: flat.path) } throws: { "\($0)".hasPrefix(flat.path) && "\($0)".contains("no class folders") }
        // An empty class folder, and one with only non-images.
        let dir = TempDir()
        try makePhotoFolder(dir.path, jpegs: false)
        try fm.createDirectory(atPath: dir.path + "/empty", withIntermediateDirectories: true)
        #expect { try ImageFolder(root: dir.path) } throws: { "\($0)".contains(dir.path + "/empty") && "\($0)".contains("has no images") }
        try fm.removeItem(atPath: dir.path + "/empty")
        try fm.createDirectory(atPath: dir.path + "/texts", withIntermediateDirectories: true)
        fm.createFile(atPath: dir.path + "/texts/a.txt", contents: Data("x".utf8))
        #expect { try ImageFolder(root: dir.path) } throws: { "\($0)".contains("/texts") }
        try fm.removeItem(atPath: dir.path + "/texts")
        // A corrupt and a truncated image inside a class folder: the load names the file.
        let png = PNG.encode(classImage(width: 8, height: 8, channels: 3, brightTop: true, seed: 1))
        for (name, bytes) in [("corrupt.png", Array(png.prefix(30)) + [UInt8](repeating: 7, count: 40)), ("cut.png", Array(png.prefix(png.count - 20)))] {
            let path = dir.path + "/top/" + name
            fm.createFile(atPath: path, contents: Data(bytes))
            let folder = try ImageFolder(root: dir.path)
            #expect { try folder.load(train: true) } throws: { "\($0)".hasPrefix(path) }
            try fm.removeItem(atPath: path)
        }
        // Not a directory; bad options.
        #expect(throws: DataError.self) { try ImageFolder(root: dir.path + "/README.txt") }
        #expect(throws: DataError.self) { try ImageFolder(root: dir.path, options: .init(validationSplit: 1.5)) }
        #expect { try DatasetCatalog.resolve("./no/such/folder") } throws: { "\($0)".contains("no such directory") }
        #expect { try DatasetCatalog.resolve("cifar11") } throws: { "\($0)".contains("unknown dataset") }
    }

    @Test func centreCropInsteadOfStretching() throws {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.path + "/b", withIntermediateDirectories: true)
        // 30 wide, 10 high: a bright middle third. Cropped to a square, it is all bright; stretched, a third.
        var px = [UInt8](repeating: 0, count: 300)
        for y in 0..<10 { for x in 10..<20 { px[y * 30 + x] = 255 } }
        try PNG.write(Image(width: 30, height: 10, channels: 1, pixels: px), to: dir.path + "/a/wide.png")
        try PNG.write(Image(width: 30, height: 10, channels: 1, pixels: px), to: dir.path + "/b/wide.png")
        let cropped = try ImageFolder(root: dir.path, options: .init(imageSize: (10, 10), centerCrop: true, validationSplit: 0)).load(train: true)
        let stretched = try ImageFolder(root: dir.path, options: .init(imageSize: (10, 10), validationSplit: 0)).load(train: true)
        let mean = { (d: ImageDataset) in Double(d.pixels.prefix(100).reduce(0) { $0 + Int($1) }) / 100 / 255 }
        #expect(mean(cropped) > 0.99 && abs(mean(stretched) - 1.0 / 3) < 0.08)
    }
}
