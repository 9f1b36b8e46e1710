import Foundation
import Testing
@testable import ConvolveData

@Suite struct PNGTests {
    static let names = ["gray1.png", "gray8.png", "gray16.png", "gray_alpha8.png", "rgb8.png", "rgba8.png",
                        "palette8.png", "palette_trns.png"]

    static func fixtureBytes(_ name: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/png/" + name, withExtension: nil))
        return [UInt8](try Data(contentsOf: url))
    }

    /// Files written by Pillow in every colour type and bit depth decode to the pixels Pillow wrote.
    @Test(arguments: names)
    func decodesWhatPillowWrote(_ name: String) throws {
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(Self.fixtureBytes("expected.json"))) as? [String: Any])
        let e = try #require(expected[name] as? [String: Any])
        let image = try PNG.decode(try Self.fixtureBytes(name))
        #expect(image.width == e["width"] as? Int && image.height == e["height"] as? Int)
        #expect(image.channels == e["channels"] as? Int)
        #expect(image.pixels == (e["pixels"] as? [Int])?.map(UInt8.init), "\(name)")
    }

    /// A wrong CRC in any chunk is refused, as libpng refuses it.
    @Test func wrongCRCIsRefused() throws {
        var bytes = try Self.fixtureBytes("rgb8.png")
        bytes[bytes.count - 20] ^= 0x40   // inside the IDAT chunk's data
        #expect { try PNG.decode(bytes) } throws: { "\($0)".contains("wrong CRC") }
        var header = try Self.fixtureBytes("gray8.png")
        header[29] ^= 1                    // IHDR's CRC
        #expect { try PNG.decode(header) } throws: { "\($0)".contains("IHDR has a wrong CRC") }
    }

    /// A few dozen bytes declaring 16384×16383 RGBA are refused before ~1 GB is allocated.
    @Test func tinyFileDeclaringAHugeImageIsRefusedEarly() {
        var ihdr = Array("IHDR".utf8) + PNG.be32(16384) + PNG.be32(16383) + [8, 6, 0, 0, 0]
        var bytes = PNG.signature + PNG.be32(13) + ihdr + PNG.be32(PNG.crc(ihdr[...]))
        ihdr = Array("IDAT".utf8) + PNG.zlibCompress([0, 0, 0, 0])
        bytes += PNG.be32(UInt32(ihdr.count - 4)) + ihdr + PNG.be32(PNG.crc(ihdr[...]))
        #expect(bytes.count < 80)
        // Over the pixel cap (Pillow's), it is refused from the header; under a raised cap, the
        // compressed data is checked against what it can expand to before allocating.
        #expect { try PNG.decode(bytes) } throws: { "\($0)".contains("more than the limit of 89478485") }
        Limits.maxImagePixels = 1 << 30
        defer { Limits.maxImagePixels = Limits.defaultMaxImagePixels }
        #expect { try PNG.decode(bytes) } throws: { "\($0)".contains("truncated") }
    }

    @Test func encodeDecodeRoundTrip() throws {
        let gray = Image(width: 3, height: 2, channels: 1, pixels: [0, 50, 100, 150, 200, 250])
        #expect(try PNG.decode(PNG.encode(gray)) == gray)
        let rgb = Image(width: 2, height: 1, channels: 3, pixels: [1, 2, 3, 4, 5, 6])
        #expect(try PNG.decode(PNG.encode(rgb)) == rgb)
    }
}
