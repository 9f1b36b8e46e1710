import Foundation
import Testing
import Convolve
@testable import ConvolveData

/// The trait of the JPEG tests: they need libjpeg-turbo's TurboJPEG library at run time; skipped with
/// the reason where it is missing, a failure in CI (`CONVOLVE_REQUIRE_DATA=1`, which installs it).
let needsJPEG: ConditionTrait = .enabled(
    if: JPEG.isAvailable || realDataRequired,
    "libjpeg-turbo's TurboJPEG library is not installed (apt-get install libturbojpeg0): \(JPEG.loadError ?? "")")

/// A committed image fixture (written by Tools/make_image_fixtures.py with Pillow).
func imageFixture(_ name: String) throws -> String {
    try #require(Bundle.module.url(forResource: "Fixtures/jpeg/" + name, withExtension: nil)).path
}

/// Pillow's decoded pixels and bilinear resizes (reference.json beside the JPEGs).
let imageReference: [String: Any] = (try? fixture("jpeg/reference")) as? [String: Any] ?? [:]

@Suite struct ImageFileTests {
    static let photos: [String] = (imageReference["decoded"] as! [String: Any]).keys.sorted()

    @Test(needsJPEG, arguments: photos)
    func jpegDecodesAsPillowDoes(_ name: String) throws {
        let ref = (imageReference["decoded"] as! [String: Any])[name] as! [String: Any]
        let image = try ImageFile.read(try imageFixture(name))
        #expect(image.width == ref["width"] as! Int && image.height == ref["height"] as! Int)
        #expect(image.channels == ref["channels"] as! Int, "\(name): channels")
        let expected = (ref["pixels"] as! [NSNumber]).map(\.intValue)
        #expect(image.pixels.count == expected.count)
        let worst = zip(image.pixels, expected).map { abs(Int($0) - $1) }.max() ?? 0
        #expect(worst <= 1, "\(name): largest difference from Pillow is \(worst)")
    }

    @Test func resizeMatchesPillowsBilinear() throws {
        let src = imageReference["resize_source"] as! [String: Any]
        let image = Image(width: src["width"] as! Int, height: src["height"] as! Int, channels: 3,
                          pixels: (src["pixels"] as! [NSNumber]).map { UInt8($0.intValue) })
        for case let r as [String: Any] in imageReference["resized"] as! [Any] {
            let (w, h) = (r["width"] as! Int, r["height"] as! Int)
            let ours = image.resized(width: w, height: h)
            let expected = (r["pixels"] as! [NSNumber]).map(\.intValue)
            let worst = zip(ours.pixels, expected).map { abs(Int($0) - $1) }.max() ?? 0
            #expect(ours.pixels.count == expected.count && worst == 0, "\(w)x\(h): largest difference from Pillow is \(worst)")
        }
    }

    @Test func centreCropKeepsTheMiddle() {
        let image = Image(width: 6, height: 2, channels: 1, pixels: (0..<12).map(UInt8.init))
        let square = image.centerCropped(aspectWidth: 1, aspectHeight: 1)
        #expect(square.width == 2 && square.height == 2 && square.pixels == [2, 3, 8, 9])
        #expect(image.centerCropped(aspectWidth: 3, aspectHeight: 1) == image)
    }

    @Test(needsJPEG) func badJPEGsGiveOneMessageNamingTheFile() throws {
        for (name, words) in [("truncated.jpg", "corrupt or truncated"), ("cmyk.jpg", "CMYK")] {
            let path = try imageFixture(name)
            #expect {
                try ImageFile.read(path)
            } throws: { error in
                let text = "\(error)"
                return text.hasPrefix(path) && text.contains(words)
            }
        }
    }

    @Test func contentIsSniffedNotTheExtension() throws {
        let dir = TempDir()
        let png = dir.write("really-a-png.jpg", PNG.encode(Image(width: 2, height: 1, channels: 1, pixels: [0, 255])))
        #expect(try ImageFile.read(png).pixels == [0, 255])
        let text = dir.write("notes.png", Array("hello".utf8))
        #expect(throws: DataError.self) { try ImageFile.read(text) }
        let empty = dir.write("empty.png", [])
        #expect { try ImageFile.read(empty) } throws: { "\($0)".contains("empty file") }
        #expect(ImageFile.hasImageExtension("a/B.JPEG") && ImageFile.hasImageExtension("x.Png") && !ImageFile.hasImageExtension("x.txt"))
    }
}
