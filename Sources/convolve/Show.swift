import Foundation
import ArgumentParser
import Convolve
import ConvolveNN
import ConvolveData
import ConvolveTraining

// `convolve show`: dataset images as a PNG grid and a terminal preview.

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Look at dataset images: a PNG grid with labels, and a terminal preview on a terminal.")
    @Option(help: "Dataset: \(DatasetCatalog.names.joined(separator: ", ")) (see `convolve datasets`), or an image folder.",
            transform: parseDataset) var dataset: String = "mnist"
    @Option(help: "train or test (image folders: test is the validation split).") var split: String = "train"
    @Option(help: "Number of images.") var count: Int = 9
    @Option(help: "Index of the first image.") var start: Int = 0
    @Option(help: "Write a PNG grid here.") var output: String?
    @Option(help: "Image folders: resize every image to N x N (default: the first image's size).") var imageSize: Int?
    @Flag(help: "Print the terminal preview even when stdout is not a terminal.") var preview = false
    @OptionGroup var data: DataOptions
    @OptionGroup var limits: LimitOptions

    func validate() throws {
        guard split == "train" || split == "test" else { throw ValidationError("--split must be train or test") }
        guard count >= 1 && count <= 1000 else { throw ValidationError("--count must be between 1 and 1000") }
        try check("--start", start, in: 0...Int(Int32.max))
        if let imageSize, imageSize < 1 || imageSize > 1024 { throw ValidationError("--image-size must be between 1 and 1024") }
    }

    func run() throws {
        limits.apply()
        try guarded {
            let provider = try DatasetCatalog.resolve(dataset, options: ImageFolder.Options(imageSize: imageSize.map { ($0, $0) }))
            let ds = try provider.load(train: split == "train", from: data.location, progress: isatty(STDERR_FILENO) != 0)
            if let folder = provider as? ImageFolder { print(try folder.summary()) }
            guard start + count <= ds.count else {
                throw DataError.badShape(path: "\(dataset) \(split)", reason: "only \(ds.count) images; --start + --count is \(start + count)")
            }
            let indices = Array(start..<(start + count))
            print("\(provider.displayName) \(split): \(ds.count) images of \(ds.height)x\(ds.width)\(ds.channels == 3 ? " RGB" : ""); showing \(count) from index \(start)")
            print("labels: " + indices.map { ds.classNames[Int(ds.labels[$0])] }.joined(separator: " "))
            if preview || isatty(STDOUT_FILENO) != 0 {
                for i in indices.prefix(12) {
                    print("[\(i)] label \(ds.classNames[Int(ds.labels[i])])")
                    print(terminalPreview(ds, i))
                }
            }
            if let output {
                try PNG.write(grid(ds, indices), to: output)
                print("wrote \(output)")
            }
        }
    }
}

/// Unicode half-block rendering of one image's luminance (two pixel rows per text line).
func terminalPreview(_ ds: ImageDataset, _ i: Int) -> String {
    let ramp: [Character] = [" ", "░", "▒", "▓", "█"]
    let image = sampleImage(ds, i).grayscale()
    var lines: [String] = []
    for y in stride(from: 0, to: image.height, by: 2) {
        var line = ""
        for x in 0..<image.width {
            let a = Int(image.pixels[y * image.width + x])
            let b = y + 1 < image.height ? Int(image.pixels[(y + 1) * image.width + x]) : 0
            line.append(ramp[Swift.min(4, (a + b) / 2 * 5 / 256)])
        }
        lines.append(line)
    }
    return lines.joined(separator: "\n")
}

/// Sample `i` of a dataset as an interleaved image (CHW bytes → HWC).
func sampleImage(_ ds: ImageDataset, _ i: Int) -> Image {
    let px = PixelLayout.interleaved(ds.pixels(ofImage: i), channels: ds.channels, plane: ds.height * ds.width)
    return Image(width: ds.width, height: ds.height, channels: ds.channels, pixels: px)
}

/// A grid of samples (small images scaled up) with each class name under its image.
func grid(_ ds: ImageDataset, _ indices: [Int]) -> Image {
    let scale = Swift.max(1, 64 / Swift.max(ds.height, ds.width))
    let names = indices.map { ds.classNames[Int(ds.labels[$0])] }
    let labelWidth = names.map { Canvas.textWidth(String($0.prefix(16))) }.max() ?? 0
    let cell = Swift.max(ds.width * scale, labelWidth), pad = 6, label = Canvas.lineHeight + 4
    let cols = Int(Double(indices.count).squareRoot().rounded(.up))
    let rows = (indices.count + cols - 1) / cols
    var canvas = Canvas(width: cols * (cell + pad) + pad, height: rows * (ds.height * scale + label + pad) + pad, background: (40, 40, 40))
    for (k, i) in indices.enumerated() {
        let ox = pad + (k % cols) * (cell + pad), oy = pad + (k / cols) * (ds.height * scale + label + pad)
        canvas.draw(sampleImage(ds, i).rgb(), x: ox + (cell - ds.width * scale) / 2, y: oy, scale: scale)
        canvas.text(String(names[k].prefix(16)), centerX: ox + cell / 2, centerY: oy + ds.height * scale + label / 2, (255, 255, 255))
    }
    return canvas.image
}
