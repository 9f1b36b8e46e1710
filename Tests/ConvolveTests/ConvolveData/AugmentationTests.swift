import Foundation
import Testing
import Convolve
@testable import ConvolveData

@Suite struct AugmentationTests {
    /// 16 grey 8×8 images with distinct pixels, augmented.
    func dataset(_ transform: any Transform) -> ImageDataset {
        let pixels = (0..<(16 * 64)).map { UInt8(truncatingIfNeeded: $0 * 37 % 251 + 1) }
        return ImageDataset(name: "t", pixels: pixels, labels: (0..<16).map { UInt8($0 % 2) }, channels: 1, height: 8, width: 8,
                            classNames: ["a", "b"], transform: transform)
    }
    static let augment = Compose(RandomAffine(degrees: 10, translate: 0.1, scale: 0.9...1.1), RandomCrop(padding: 2),
                                 RandomHorizontalFlip(), ToTensor())

    func epochs(_ loader: DataLoader<ImageDataset>, _ n: Int) -> [[Float]] {
        (0..<n).flatMap { _ in loader.map { $0.0.storage } }
    }

    @Test func seededReproducibleAndDifferentEachEpoch() {
        let ds = dataset(Self.augment)
        // Built on a background thread (threshold 0: every batch counts as slow), when asked (the
        // default for cheap batches while every core computes), or never prefetched: the same batches.
        let background = DataLoader(ds, batchSize: 4, shuffle: true, seed: 5)
        background.backgroundBuildThreshold = 0
        let a = epochs(background, 2)
        #expect(background.buildsInBackground)
        let b = epochs(DataLoader(ds, batchSize: 4, shuffle: true, seed: 5, prefetch: false), 2)
        #expect(a == b)
        #expect(a == epochs(DataLoader(ds, batchSize: 4, shuffle: true, seed: 5), 2))
        // When a background build pays: a spare core (counting other ranks' threads), or a slow build.
        typealias Loader = DataLoader<ImageDataset>
        #expect(Loader.backgroundHelps(threads: 1, ranks: 1, cores: 2, lastBuild: 0, threshold: 5e-4))
        #expect(!Loader.backgroundHelps(threads: 2, ranks: 1, cores: 2, lastBuild: 2e-4, threshold: 5e-4))
        #expect(!Loader.backgroundHelps(threads: 1, ranks: 2, cores: 2, lastBuild: 2e-4, threshold: 5e-4))
        #expect(Loader.backgroundHelps(threads: 1, ranks: 2, cores: 2, lastBuild: 1e-3, threshold: 5e-4))
        let c = epochs(DataLoader(ds, batchSize: 4, shuffle: true, seed: 6), 2)
        #expect(a != c)
        // Epoch 2 augments differently from epoch 1 even with the same order (no shuffle).
        let fixed = DataLoader(ds, batchSize: 16, shuffle: false, seed: 5)
        let e = epochs(fixed, 2)
        #expect(e[0] != e[1])
        // A run resumed at batch 2 of an epoch sees the same augmented batches as one that got there.
        let loader = DataLoader(ds, batchSize: 4, shuffle: true, seed: 9)
        let order = loader.nextEpochOrder()
        let whole = Array(IteratorSequence(loader.makeIterator(order: order, epoch: 3)).map { $0.0.storage })
        let resumed = Array(IteratorSequence(loader.makeIterator(order: order, startBatch: 2, epoch: 3)).map { $0.0.storage })
        #expect(Array(whole.dropFirst(2)) == resumed)
        // Without augmentation the values are exactly the pixels / 255: evaluation sees plain images.
        let plain = dataset(ToTensor()).batch([3]).0.storage
        #expect(plain == dataset(ToTensor()).pixels[(3 * 64)..<(4 * 64)].map { Float($0) * (1 / 255) })
        #expect(!ToTensor().isRandom && Self.augment.isRandom)
    }

    @Test func eachAugmentationDoesWhatItSays() {
        var g = Xoshiro256StarStar(seed: 1)
        let base: [Float] = (0..<32).map(Float.init)   // 2 channels of 4×4
        // Flip with p = 1 mirrors every row of every channel.
        var x = base
        x.withUnsafeMutableBufferPointer { RandomHorizontalFlip(p: 1).apply($0, shape: [1, 2, 4, 4], generator: &g) }
        #expect(x[0..<4] == [3, 2, 1, 0] && x[16..<20] == [19, 18, 17, 16])
        // The identity affine keeps the image; a crop is a shift that keeps or zero-fills each pixel.
        x = base
        x.withUnsafeMutableBufferPointer { RandomAffine().apply($0, shape: [1, 2, 4, 4], generator: &g) }
        #expect(zip(x, base).allSatisfy { abs($0 - $1) < 1e-4 })
        // Crops in place on a non-square image, with a fill and shifts beyond the image (whole rows or
        // columns filled): every result is one of the shifts, and the draws reach them in every direction.
        let (h, w) = (3, 5), image: [Float] = (0..<(2 * h * w)).map { Float($0) + 0.5 }
        var seen = Set<Int>()
        for _ in 0..<400 {
            x = image
            x.withUnsafeMutableBufferPointer { RandomCrop(padding: 5, fill: -7).apply($0, shape: [1, 2, h, w], generator: &g) }
            let match = (-5...5).flatMap { dy in (-5...5).map { dx in (dy, dx) } }.firstIndex { dy, dx in
                x == (0..<(2 * h * w)).map { i -> Float in
                    let (c, y, xx) = (i / (h * w), i / w % h, i % w)
                    let (sy, sx) = (y + dy, xx + dx)
                    return sy >= 0 && sy < h && sx >= 0 && sx < w ? image[(c * h + sy) * w + sx] : -7
                }
            }
            #expect(match != nil)
            if let match { seen.insert(match) }
        }
        #expect(seen.count >= 40)   // 46 distinguishable results: shifts of 3+ rows fill the whole image
        // A 90° affine turn (degrees 90 drawn at the range's end) moves pixels, keeps their sum near.
        var rotated: [Float] = (0..<16).map { $0 == 1 ? 1 : 0 }
        var seedless = Xoshiro256StarStar(seed: 3)
        rotated.withUnsafeMutableBufferPointer { RandomAffine(degrees: 30).apply($0, shape: [1, 1, 4, 4], generator: &seedless) }
        #expect(rotated.reduce(0, +) > 0.3)
    }
}
