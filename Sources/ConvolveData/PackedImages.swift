// Images held with their runs of zero bytes squeezed out: handwritten-digit datasets are mostly
// background (MNIST's 70,000 images: 81% zeros), so holding them packed takes MNIST from 55 MB in
// memory to ~14 MB, while any image is still one lookup away (the loader's shuffled batches read
// images in any order). Each image is a sequence of segments `zeros, count, count literal bytes`
// (both counts 0…255); `offsets` says where each image's segments start. Decoding is a sequential
// pass over a few hundred bytes, done on the loader's background thread as a batch is built.

import Convolve
import Synchronization

/// A dataset's images, each packed as zero runs and literal bytes (see `ImageDataset.packed()`).
struct PackedImages: Sendable {
    /// Bytes per image (channels × height × width).
    let imageSize: Int
    /// Every image's segments, back to back.
    let bytes: [UInt8]
    /// Image i's segments are `bytes[offsets[i]..<offsets[i + 1]]`.
    let offsets: [Int]
    var count: Int { offsets.count - 1 }

    /// Packs `count` images of `imageSize` bytes from `dense`: one pass sizes each image's segments,
    /// a second writes them into an array of exactly that size (both in parallel over images).
    init(_ dense: UnsafeBufferPointer<UInt8>, imageSize: Int, count: Int) {
        self.imageSize = imageSize
        let source = dense.baseAddress!
        var sizes = [Int](repeating: 0, count: count)
        sizes.withUnsafeMutableBufferPointer { size in
            Parallel.forChunks(count, work: count * imageSize) { range in
                for i in range { size[i] = Self.pack(source + i * imageSize, imageSize, into: nil) }
            }
        }
        var offsets = [Int](repeating: 0, count: count + 1)
        for i in 0..<count { offsets[i + 1] = offsets[i] + sizes[i] }
        bytes = [UInt8](unsafeUninitializedCapacity: offsets[count]) { out, filled in
            Parallel.forChunks(count, work: count * imageSize) { range in
                for i in range { _ = Self.pack(source + i * imageSize, imageSize, into: out.baseAddress! + offsets[i]) }
            }
            filled = offsets[count]
        }
        self.offsets = offsets
    }

    /// Writes one image's segments to `out` (if given) and returns their size in bytes. Runs are
    /// found 8 bytes at a time where they allow (a zero word; a word without a zero byte).
    private static func pack(_ image: UnsafePointer<UInt8>, _ size: Int, into out: UnsafeMutablePointer<UInt8>?) -> Int {
        let raw = UnsafeRawPointer(image)
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        var p = 0, written = 0
        while p < size {
            var zeros = 0
            while p + zeros + 8 <= size && zeros <= 255 - 8 && raw.loadUnaligned(fromByteOffset: p + zeros, as: UInt64.self) == 0 {
                zeros += 8
            }
            while p + zeros < size && zeros < 255 && image[p + zeros] == 0 { zeros += 1 }
            p += zeros
            var literals = 0
            while p + literals + 8 <= size && literals <= 255 - 8 {
                let word = raw.loadUnaligned(fromByteOffset: p + literals, as: UInt64.self)
                if (word &- ones) & ~word & highs != 0 { break }   // some byte is zero
                literals += 8
            }
            while p + literals < size && literals < 255 && image[p + literals] != 0 { literals += 1 }
            if let out {
                out[written] = UInt8(zeros); out[written + 1] = UInt8(literals)
                (out + written + 2).update(from: image + p, count: literals)
            }
            written += 2 + literals
            p += literals
        }
        return written
    }

    /// Reads the first and last byte of each image's segments (independent loads the processor
    /// overlaps), so that a shuffled batch's cache misses are taken together rather than one image
    /// at a time as its decoding reaches them.
    func touch(_ indices: ArraySlice<Int>) {
        var sum: UInt8 = 0
        bytes.withUnsafeBufferPointer { b in offsets.withUnsafeBufferPointer { o in
            for i in indices where o[i + 1] > o[i] { sum &+= b[o[i]] &+ b[o[i + 1] - 1] }
        } }
        PackedImages.touched.store(sum, ordering: .relaxed)
    }
    /// Where `touch` leaves its sum, so the loads are not optimized away (atomic: loaders on several
    /// threads may touch at once).
    static let touched = Atomic<UInt8>(0)

    /// Writes image `i` into `out` (`imageSize` values), each byte converted by `value`: the whole
    /// image is zero-filled first (whole vectors), then only the literal runs are written.
    @inline(__always)
    func decode<T>(_ i: Int, into out: UnsafeMutablePointer<T>, zero: T, _ value: (UInt8) -> T) {
        out.update(repeating: zero, count: imageSize)
        bytes.withUnsafeBufferPointer { b in
            let base = b.baseAddress!
            var s = offsets[i], p = 0
            let end = offsets[i + 1]
            while s < end {
                p += Int(base[s])
                let literals = Int(base[s + 1]), src = base + s + 2, dst = out + p
                for k in 0..<literals { dst[k] = value(src[k]) }
                p += literals
                s += 2 + literals
            }
        }
    }
}
