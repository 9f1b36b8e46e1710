import Foundation
import Testing
import Convolve
@testable import ConvolveData
import ConvolveTraining

/// A colour task a model must learn: each image is noise with one blob of its class's colour (red,
/// green or blue) somewhere, at a random size — like the committed JPEGs (a red disc, a green square,
/// a blue triangle, drawn by Pillow), which the trained model must then classify.
func makeColourFolder(_ root: String, perClass: Int, seed: UInt64) throws {
    var g = Xoshiro256StarStar(seed: seed)
    func r(_ n: Int) -> Int { Int(g.next() % UInt64(n)) }
    let colours: [(String, [Int])] = [("blue", [50, 70, 230]), ("green", [40, 200, 60]), ("red", [220, 40, 40])]
    for (name, colour) in colours {
        try FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true)
        for i in 0..<perClass {
            let size = 24 + r(20), blob = size / 4 + r(size / 4), cx = r(size - blob), cy = r(size - blob)
            var px = [UInt8](repeating: 0, count: size * size * 3)
            for y in 0..<size { for x in 0..<size {
                let inside = x >= cx && x < cx + blob && y >= cy && y < cy + blob
                for c in 0..<3 { px[(y * size + x) * 3 + c] = UInt8(inside ? Swift.max(0, Swift.min(255, colour[c] + r(30) - 15)) : r(60)) }
            } }
            try PNG.write(Image(width: size, height: size, channels: 3, pixels: px), to: "\(root)/\(name)/\(i).png")
        }
    }
}

@Suite(.serialized) struct ImageFolderCLITests {
    @Test(needsJPEG) func trainOnAnImageFolderThenPredictItsJPEGs() throws {
        let dir = TempDir()
        let photos = dir.path + "/photos", run = dir.path + "/run"
        try makeColourFolder(photos, perClass: 30, seed: 1)
        FileManager.default.createFile(atPath: photos + "/red/notes.txt", contents: Data("x".utf8))
        // Pillow's JPEGs (a red disc, a green square, a blue triangle; baseline and progressive) join the folder.
        var jpegs: [String] = []
        for cls in ["red", "green", "blue"] { for i in 0..<2 {
            let path = "\(photos)/\(cls)/pillow-\(i).jpg"
            try FileManager.default.copyItem(atPath: try imageFixture("class-\(cls)-\(i).jpg"), toPath: path)
            jpegs.append(path)
        } }
        let t = try runCLI(["train", "--model", "lenet5", "--dataset", photos, "--image-size", "16", "--epochs", "6",
                            "--batch-size", "16", "--augment", "--output", run, "--threads", "2", "--no-tensorboard"])
        #expect(t.status == 0, "\(t.err)")
        #expect(t.out.contains("3 classes (blue, green, red), 77 training + 19 validation images") && t.out.contains("1 non-image file ignored"),
                "\(t.out)")
        let accuracy = t.out.components(separatedBy: "Model Accuracy = ").last.flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect((accuracy ?? 0) >= 0.9, "validation accuracy \(accuracy ?? -1)")
        // The checkpoint knows its input: predict the folder's JPEGs (any size) with class names and no flags.
        let p = try runCLI(["predict", run + "/model.safetensors"] + jpegs + ["--top-k", "1", "--json"])
        #expect(p.status == 0, "\(p.err)")
        let results = try #require(try JSONSerialization.jsonObject(with: Data(p.out.utf8)) as? [[String: Any]])
        let predicted = results.map { (($0["top"] as? [[String: Any]])?.first?["name"] as? String) ?? "" }
        #expect(predicted == ["red", "red", "green", "green", "blue", "blue"], "\(p.out)")
        // evaluate needs no flags either; a dataset of another shape is refused with one message.
        let e = try runCLI(["evaluate", run + "/model.safetensors"])
        #expect(e.status == 0 && e.out.contains("Accuracy:") && e.out.contains("red"), "\(e.err)")
        let wrong = try runCLI(["evaluate", run + "/model.safetensors", "--dataset", "cifar10", "--data-dir", dir.path])
        #expect(wrong.status != 0 && wrong.err.contains("CIFAR-10") && wrong.err.split(separator: "\n").count == 1, "\(wrong.err)")
        // show draws the folder with its class names.
        let s = try runCLI(["show", "--dataset", photos, "--image-size", "16", "--count", "6", "--output", dir.path + "/grid.png"])
        #expect(s.status == 0 && s.out.contains("labels: blue") && FileManager.default.fileExists(atPath: dir.path + "/grid.png"), "\(s.err)")
        #expect(try PNG.read(dir.path + "/grid.png").channels == 3)
    }

    @Test func badFoldersFailBeforeWritingAnything() throws {
        let dir = TempDir()
        let photos = dir.path + "/photos"
        try makeColourFolder(photos, perClass: 3, seed: 2)
        FileManager.default.createFile(atPath: photos + "/green/broken.png", contents: Data([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]))
        let t = try runCLI(["train", "--model", "lenet5", "--dataset", photos, "--image-size", "16", "--epochs", "1", "--output", dir.path + "/o"])
        #expect(t.status != 0 && t.err.contains(photos + "/green/broken.png") && t.err.split(separator: "\n").count == 1, "\(t.err)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/o"))
        try FileManager.default.removeItem(atPath: photos + "/green/broken.png")
        // An image size the model cannot take, an empty class folder, an unknown dataset name.
        let small = try runCLI(["train", "--model", "lenet5", "--dataset", photos, "--image-size", "8", "--output", dir.path + "/o"])
        #expect(small.status != 0 && small.err.contains("at least 12x12"), "\(small.err)")
        try FileManager.default.createDirectory(atPath: photos + "/yellow", withIntermediateDirectories: true)
        let empty = try runCLI(["train", "--model", "lenet5", "--dataset", photos, "--output", dir.path + "/o"])
        #expect(empty.status != 0 && empty.err.contains(photos + "/yellow"), "\(empty.err)")
        let unknown = try runCLI(["train", "--dataset", "cifar1O"])
        #expect(unknown.status != 0 && unknown.err.contains("did you mean 'cifar10'"), "\(unknown.err)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/o"))
    }
}
