import Testing
import ConvolveData

@Suite struct PixelLayoutTests {
    /// Two 2×1 RGB images: interleaved r g b per pixel become three planes per image, and back.
    @Test func planarAndInterleavedAreInverse() {
        let hwc: [UInt8] = [1, 2, 3, 4, 5, 6,   11, 12, 13, 14, 15, 16]
        let chw = PixelLayout.planar(hwc, channels: 3, plane: 2)
        #expect(chw == [1, 4, 2, 5, 3, 6,   11, 14, 12, 15, 13, 16])
        #expect(PixelLayout.interleaved(chw, channels: 3, plane: 2) == hwc)
        #expect(PixelLayout.planar([7, 8, 9], channels: 1, plane: 3) == [7, 8, 9])
    }
}
