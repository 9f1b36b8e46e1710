import Foundation
import Testing
import ConvolveData
@testable import ConvolveTraining

@Suite struct PlotsTests {
    @Test func ticksAreRoundAndCoverTheRange() {
        #expect(Plots.ticks(0.12, 0.93) == [0.2, 0.4, 0.6000000000000001, 0.8])
        #expect(Plots.ticks(0, 10).first == 0 && Plots.ticks(0, 10).last == 10)
    }

    /// The three pictures decode, have their size, and hold what they draw: the curves in both series'
    /// colours, a dark cell per diagonal count in the heat map, the text's ink.
    @Test func picturesDrawWhatTheyShow() throws {
        var history: [[String: Double]] = []
        for e in 0..<4 {
            let t = Double(e)
            history.append(["loss": 1 / (t + 1), "accuracy": 0.7 + 0.05 * t, "val_loss": 1.2 / (t + 1), "val_accuracy": 0.72 + 0.04 * t])
        }
        let curves = Plots.learningCurves(history)
        let decoded = try PNG.decode(PNG.encode(curves))
        #expect(decoded == curves && curves.width == 900)
        func count(_ image: Image, _ color: (UInt8, UInt8, UInt8)) -> Int {
            (0..<(image.width * image.height)).filter {
                (image.pixels[3 * $0], image.pixels[3 * $0 + 1], image.pixels[3 * $0 + 2]) == color
            }.count
        }
        #expect(count(curves, Plots.blue) > 200 && count(curves, Plots.orange) > 200)
        let confusion = Plots.confusionMatrix([[9, 1], [0, 10]], classNames: ["cat", "dog"])
        #expect(count(confusion, (31, 119, 180)) > 40 * 40, "the full-row cell is the darkest blue")
        let digit = Image(width: 28, height: 28, channels: 1, pixels: [UInt8](repeating: 200, count: 784))
        let mistakes = Plots.mistakes([digit, digit], captions: ["7 -> 1", "3 -> 8"])
        #expect(mistakes.width > 2 * 56 && count(mistakes, (200, 200, 200)) == 2 * 56 * 56)
        #expect(count(Plots.mistakes([], captions: []), (0, 0, 0)) > 20, "an empty grid says so")
    }
}
