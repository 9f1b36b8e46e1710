import Foundation
import Testing
import Convolve
@testable import ConvolveData
@testable import ConvolveTraining

/// A colour task in CIFAR-10's exact binary layout: noise with one square of the class's hue (10 hues
/// around the colour wheel) at a random place and size. A recipe that learns must solve it.
func colourTaskArchive(train perBatch: Int, test: Int, seed: UInt64) -> [UInt8] {
    var g = Xoshiro256StarStar(seed: seed)
    func r(_ n: Int) -> Int { Int(g.next() % UInt64(n)) }
    func records(_ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<n {
            let c = r(10)
            // HSV (c / 10, 0.9, 0.95) to RGB.
            let h = Double(c) / 10 * 6, f = h - h.rounded(.down), (v, s) = (0.95, 0.9)
            let (p, q, t) = (v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f)))
            let rgb = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][Int(h) % 6].map { Int($0 * 255) }
            let size = 10 + r(10), x0 = r(32 - size), y0 = r(32 - size)
            out.append(UInt8(c))
            for ch in 0..<3 { for y in 0..<32 { for x in 0..<32 {
                let inside = x >= x0 && x < x0 + size && y >= y0 && y < y0 + size
                out.append(UInt8(inside ? Swift.max(0, Swift.min(255, rgb[ch] + r(30) - 15)) : r(70)))
            } } }
        }
        return out
    }
    var members: [(name: String, bytes: [UInt8])] = (1...5).map { ("cifar-10-batches-bin/data_batch_\($0).bin", records(perBatch)) }
    members.append(("cifar-10-batches-bin/test_batch.bin", records(test)))
    return Gzip.compress(tarArchive(members))
}

@Suite(.serialized) struct DatasetRecipeTests {
    /// The zoo's CIFAR recipe (resnet8: SGD 0.1, momentum 0.9, weight decay 5e-4, cosine, crops + flips)
    /// learns a generated colour task read from an archive in CIFAR-10's layout, through the run driver.
    @Test func resnetRecipeLearnsAColourTaskInCIFARLayout() throws {
        let data = TempDir(), out = TempDir()
        _ = data.write("cifar-10-binary.tar.gz", colourTaskArchive(train: 240, test: 300, seed: 4))
        var recipe = ZooModel.resnet8.defaults
        recipe.epochs = 3
        recipe.augmentation = .crops
        let run = TrainingRun(config: RunConfig(model: .resnet8, dataset: "cifar10", recipe: recipe, seed: 0, threads: 2),
                              outputDir: out.path + "/run", dataLocation: DataLocation(directory: data.path, readEnvironment: false),
                              checkpointInterval: .never, progress: .silent, log: { _ in })
        run.tensorBoard = false
        let result = try run.run()
        #expect(result.testAccuracy >= 0.9, "test accuracy \(result.testAccuracy)")
        // The checkpoint carries the input: CIFAR-10's shape, class names and per-channel statistics.
        let (_, _, _, spec) = try loadCheckpointWithInput(out.path + "/run/model.safetensors")
        #expect(spec.sampleShape == [3, 32, 32] && spec.classNames[0] == "airplane" && spec.mean?.count == 3)
        #expect(spec.mean == CIFAR.cifar10.mean && spec.std == CIFAR.cifar10.std)
    }

    /// MNIST with the digits augmentation and the ResNet recipe, at reduced size (6,000 images, 2 epochs
    /// annealed per batch; the full recipe is in RESULTS.md).
    @Test(needsMNIST) func mnistAugmentationRecipeAtReducedSize() throws {
        guard let dir = mnistDirectory() else { _ = requireMNIST(); return }
        let out = TempDir()
        var recipe = ZooModel.resnet8.defaults
        recipe.epochs = 2
        recipe.augmentation = .digits
        // Annealed per batch: with the per-epoch cosine, 2 epochs end at half the peak rate and the
        // result swung from 72% to 95% with the seed and with last-bit changes in the kernels; one-cycle
        // gave 93.6 / 91.9 / 92.6% for seeds 0 / 1 / 2.
        recipe.oneCycle = true
        let seed: UInt64 = 1
        let run = TrainingRun(config: RunConfig(model: .resnet8, dataset: "mnist", recipe: recipe, seed: seed, threads: 2,
                                                trainLimit: 6000, testLimit: 1000),
                              outputDir: out.path + "/run", dataLocation: DataLocation(directory: dir, readEnvironment: false),
                              checkpointInterval: .never, progress: .silent, log: { _ in })
        run.tensorBoard = false
        let result = try run.run()
        #expect(result.testAccuracy >= 0.9, "test accuracy \(result.testAccuracy)")
    }
}
