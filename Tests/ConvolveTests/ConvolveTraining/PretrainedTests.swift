import Foundation
import Testing
import Convolve
import ConvolveNN
@testable import ConvolveTraining

/// scikit-image's sample photographs (never committed): `CONVOLVE_WEIGHTS_DIR/photos` (CI copies
/// chelsea.png, coffee.png, rocket.jpg, astronaut.png and motorcycle_left.png there from the wheel).
let photosDirectory: String? = {
    guard let dir = ProcessInfo.processInfo.environment["CONVOLVE_WEIGHTS_DIR"], !dir.isEmpty,
          FileManager.default.fileExists(atPath: dir + "/photos/chelsea.png") else { return nil }
    return dir + "/photos"
}()
let needsLite0AndPhotos: ConditionTrait = .enabled(
    if: (lite0WeightsPath != nil && photosDirectory != nil) || ProcessInfo.processInfo.environment["CONVOLVE_REQUIRE_DATA"] == "1",
    "EfficientNet-Lite0 weights or photos not found: CONVOLVE_WEIGHTS_DIR needs efficientnet-lite0-57934424.pth and photos/ (scikit-image's chelsea.png, coffee.png, rocket.jpg, astronaut.png, motorcycle_left.png)")

/// Pretrained models: one command from a weight file to a prediction on a photograph.
@Suite struct PretrainedTests {
    static let photos = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png"]

    /// The real EfficientNet-Lite0 weights on real photographs, preprocessed from the registry's record
    /// of what those weights expect: the resized and cropped bytes equal Pillow's (torchvision's
    /// `Resize(256)` + `CenterCrop(224)`) bit for bit, and the top-5 classes equal PyTorch's with the
    /// same weights, probabilities within 10⁻³ (`Tools/make_model_fixtures.py`, `lite0_photos.json`).
    @Test(needsLite0AndPhotos) func realPhotosGetPyTorchsTopFive() throws {
        let weights = try #require(lite0WeightsPath), photos = try #require(photosDirectory)
        let want = try fixture("lite0_photos") as! [String: [String: Any]]
        let (model, spec) = try ZooModel.efficientnetLite0.loadPretrained(weights)
        #expect(spec.classNames[285] == "Egyptian cat" && spec.resize == 256 && spec.sampleShape == [3, 224, 224])
        for name in Self.photos {
            let reference = try #require(want[name])
            let pixels = try spec.sample(from: try ImageFile.read(photos + "/" + name), path: name)
            var digest = SHA256()
            digest.update(pixels)
            #expect(digest.hexDigest() == reference["crop_sha256"] as? String, "\(name): resized and cropped bytes differ from Pillow's")
            // torchvision's EfficientNet-B0 weights resize with Pillow's bicubic filter: the same, byte for byte.
            let bicubic = try #require(ZooModel.efficientnetB0.pretrained)
            var bicubicDigest = SHA256()
            bicubicDigest.update(try bicubic.sample(from: try ImageFile.read(photos + "/" + name), path: name))
            #expect(bicubicDigest.hexDigest() == reference["bicubic_crop_sha256"] as? String, "\(name): bicubic bytes differ from Pillow's")
            let p = withNoGrad { model(spec.tensor(pixels: pixels, shape: [1, 3, 224, 224])).softmax(dim: 1) }.scalars
            let top = (0..<1000).sorted { p[$0] > p[$1] }.prefix(5)
            let (indices, values) = (ints(reference["top5"]), (reference["probabilities"] as! [NSNumber]).map(\.doubleValue))
            #expect(Array(top) == indices, "\(name): top-5 \(Array(top)) vs PyTorch's \(indices)")
            for (i, v) in zip(indices, values) { #expect(abs(Double(p[i]) - v) < 1e-3, "\(name) class \(i): \(p[i]) vs \(v)") }
        }
    }

    /// `convolve import` writes a checkpoint that `predict` reads with no flags, and `predict --model
    /// --weights` reads the .pth directly: both name PyTorch's classes for the cat.
    @Test(needsLite0AndPhotos) func importThenPredictNeedsNoFlags() throws {
        let weights = try #require(lite0WeightsPath), photos = try #require(photosDirectory)
        let dir = TempDir()
        let checkpoint = dir.path + "/lite0.safetensors"
        let imported = try runCLI(["import", weights, "--model", "efficientnet-lite0", "--output", checkpoint])
        #expect(imported.status == 0, "\(imported.err)")
        #expect(imported.out.contains("4,652,008 parameters"))
        let want = ints((try fixture("lite0_photos") as! [String: [String: Any]])["chelsea.png"]?["top5"])
        for args in [[checkpoint], ["--model", "efficientnet_lite0", "--weights", weights]] {
            let r = try runCLI(["predict"] + args + [photos + "/chelsea.png", "--top-k", "5", "--json"])
            #expect(r.status == 0, "\(r.err)")
            let rows = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [[String: Any]]
            let top = (rows[0]["top"] as! [[String: Any]])
            #expect(top.map { ($0["class"] as! NSNumber).intValue } == want, "\(args)")
            #expect(top[0]["name"] as? String == "tiger cat")
        }
        let text = try runCLI(["predict", checkpoint, photos + "/chelsea.png"])
        #expect(text.out.hasPrefix(photos + "/chelsea.png: tiger cat 0.37"), "\(text.out)")
    }

    /// Weights for another architecture, a renamed key or a wrong shape are refused with the file and
    /// the keys named (as `load_state_dict` lists them), and nothing is written.
    @Test func mismatchedWeightsAreRefusedNamingTheKeys() throws {
        let dir = TempDir()
        let resnet18 = ResNet.resnet18(classes: 10)
        let file = dir.path + "/r18.safetensors"
        try SafeTensors.write(resnet18.stateDict(), to: file)
        // As another architecture: its keys are listed.
        var r = try runCLI(["import", file, "--model", "resnet34", "--output", dir.path + "/out.safetensors"])
        #expect(r.status == 1 && r.err.contains("r18.safetensors") && r.err.contains("layer1.2.conv1.weight"), "\(r.err)")
        // A key renamed.
        var state = resnet18.stateDict()
        state[0].0 = "stem.weight"
        try SafeTensors.write(state, to: file)
        r = try runCLI(["import", file, "--model", "resnet18", "--output", dir.path + "/out.safetensors"])
        #expect(r.status == 1 && r.err.contains("conv1.weight") && r.err.contains("stem.weight"), "\(r.err)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out.safetensors"))
        // The right weights with their 10 classes import, named by number unless names are given.
        try SafeTensors.write(resnet18.stateDict(), to: file)
        let names = dir.write("names.txt", Array((0..<10).map { "class \($0)" }.joined(separator: "\n").utf8))
        r = try runCLI(["import", file, "--model", "resnet18", "--output", dir.path + "/out.safetensors", "--class-names", names])
        #expect(r.status == 0, "\(r.err)")
        let (_, loaded, meta, spec) = try loadCheckpointWithInput(dir.path + "/out.safetensors")
        #expect(meta["model"] == "resnet18" && spec.classNames.last == "class 9" && spec.resize == 256)
        #expect(loaded.stateDict().map(\.1.scalars) == resnet18.stateDict().map(\.1.scalars))
        // Every problem at once, as load_state_dict lists them: a missing key and a mis-shaped one.
        var broken = resnet18.stateDict().filter { $0.0 != "bn1.running_var" }
        let index = try #require(broken.firstIndex { $0.0 == "layer1.0.conv1.weight" })
        broken[index].1 = Tensor.zeros([64, 64, 1, 1])
        try SafeTensors.write(broken, to: file)
        #expect {
            try ResNet.resnet18(classes: 10).load(.file(file))
        } throws: { error in
            let text = "\(error)"
            return text.contains("r18.safetensors") && text.contains("missing key(s): \"bn1.running_var\"")
                && text.contains("size mismatch for layer1.0.conv1.weight")
        }
        try SafeTensors.write(resnet18.stateDict(), to: file)
        // Too few names for the classifier.
        r = try runCLI(["import", file, "--model", "resnet18", "--output", dir.path + "/x.safetensors",
                        "--class-names", dir.write("few.txt", Array("a\nb\n".utf8))])
        #expect(r.status == 1 && r.err.contains("10 outputs but 2 class names"), "\(r.err)")
    }

    /// Multiply-adds at 224×224 as torchvision's model tables give them (GFLOPS: ResNet-18 1.814,
    /// ResNet-34 3.664, ResNet-50 4.089, MobileNetV2 0.301, MobileNetV3-Large 0.217, -Small 0.057,
    /// EfficientNet-B0 0.386), counted by tracing one forward pass.
    @Test(arguments: [(ZooModel.resnet18, 1.814), (.resnet34, 3.664), (.resnet50, 4.089), (.mobilenetV2, 0.301),
                      (.mobilenetV3Large, 0.217), (.mobilenetV3Small, 0.057), (.efficientnetB0, 0.386)])
    func multiplyAddsMatchTorchvisionsTables(_ zoo: ZooModel, _ gigaFLOPs: Double) {
        let counted = Double(multiplyAdds(of: zoo.make(), input: [3, 224, 224])) / 1e9
        #expect(abs(counted - gigaFLOPs) < 0.0015, "\(zoo): \(counted) G")
    }

    /// From Swift, as torchvision's `resnet50(weights=...)`: the weights load strictly.
    @Test func swiftConstructorsLoadWeightFiles() throws {
        let dir = TempDir()
        let source = MobileNetV2(classes: 5)
        let file = dir.path + "/m.safetensors"
        try SafeTensors.write(source.stateDict(), to: file)
        let model = try MobileNetV2(weights: .file(file), classes: 5)
        #expect(!model.training && model.stateDict().map(\.1.scalars) == source.stateDict().map(\.1.scalars))
        #expect(throws: (any Error).self) { try MobileNetV2(weights: .file(file)) }   // 1000 classes: fc shape differs
        #expect(throws: (any Error).self) { try ResNet.resnet18(weights: .file(file)) }
    }

    /// Keras style on a pretrained backbone (`keras.applications.MobileNetV2(include_top=False,
    /// weights=...)`): the backbone's weights load, its classifier is left out of the model's
    /// parameters, its output is the network's last feature map, and the model on top of it fits.
    @Test func kerasModelOnAPretrainedBackbone() throws {
        let dir = TempDir()
        let source = MobileNetV2()
        let file = dir.path + "/mobilenet_v2.safetensors"
        try SafeTensors.write(source.stateDict(), to: file)
        let base = try KerasApplication(.mobilenetV2, weights: .file(file), inputShape: [64, 64, 3])
        let model = Model { base; GlobalAveragePooling2D(); Dense(3, activation: .softmax) }
        let keys = model.stateDict().map(\.0)
        #expect(keys.filter { $0.hasPrefix("mobilenet_v2.") }.count == source.stateDict().count - 2)
        #expect(keys.contains("mobilenet_v2.features.0.0.weight") && !keys.contains { $0.contains("classifier") })
        #expect(base.outputShape == [2, 2, 1280] && model.layers[2].outputShape == [3])
        #expect(model.parameterCount == source.parameterCount - 1_281_000 + 1280 * 3 + 3)
        source.eval(); model.eval()
        let x = formulaInput([2, 3, 64, 64])
        let (mine, theirs) = withNoGrad { (base(x), source.features(x)) }
        #expect(mine.shape == [2, 1280, 2, 2] && mine.scalars == theirs.scalars)
        #expect(model.summary().contains("Functional"))
        // With the top: ImageNet probabilities.
        let whole = try KerasApplication(.mobilenetV2, weights: .file(file), includeTop: true, inputShape: [64, 64, 3])
        whole.eval()
        let p = withNoGrad { whole(x) }
        #expect(p.shape == [2, 1000] && abs(p.sum().item - 2) < 1e-4)
        // Not an ImageNet architecture: one clear error.
        #expect(throws: RunError.self) { try KerasApplication(.lenet5) }
    }
}
