import Foundation
import Convolve
import ConvolveData

/// Pictures of a run, drawn without Python (`convolve plot`): learning curves, the confusion matrix as
/// a heat map, and a grid of misclassified test images.
public enum Plots {
    static let blue: Canvas.Color = (31, 119, 180), orange: Canvas.Color = (255, 127, 14)
    static let grey: Canvas.Color = (120, 120, 120), light: Canvas.Color = (225, 225, 225)

    /// "Nice" tick values covering `lo...hi` (steps of 1, 2 or 5 × 10ⁿ); at most a few dozen, whatever
    /// the values (a span too small for the magnitude gives just its ends).
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        let span = Swift.max(hi - lo, 1e-12), raw = span / Double(count)
        let magnitude = Foundation.pow(10, Foundation.floor(Foundation.log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var t = Foundation.ceil(lo / step - 1e-9) * step, out: [Double] = []
        while t <= hi + step * 1e-9 && out.count <= 4 * count {
            out.append(t)
            guard t + step > t else { return [lo, hi] }   // the step is below the values' precision
            t += step
        }
        return out
    }

    /// The largest magnitude a chart draws: beyond it a point is reported, not plotted (the chart's
    /// arithmetic would overflow).
    static let largestDrawable = 1e300

    /// What a chart cannot draw: `(series, epoch, value)` for every value that is NaN, infinite or
    /// beyond ``largestDrawable``.
    /// - Parameter history: one row of logs per epoch.
    public static func undrawable(_ history: [[String: Double]]) -> [(key: String, epoch: Int, value: Double)] {
        var out: [(key: String, epoch: Int, value: Double)] = []
        for (i, row) in history.enumerated() {
            for key in ["loss", "val_loss", "accuracy", "val_accuracy"] {
                if let v = row[key], !(v.isFinite && Swift.abs(v) <= largestDrawable) { out.append((key, i + 1, v)) }
            }
        }
        return out
    }

    static func label(_ v: Double) -> String {
        let a = Swift.abs(v)
        if a != 0 && (a < 0.001 || a >= 10000) { return String(format: "%.1e", v) }
        return String(format: a >= 100 ? "%.0f" : a >= 1 ? "%.2g" : "%.3g", v)
    }

    /// One chart: axes with ticks and labels, a line per series, a legend.
    static func chart(_ canvas: inout Canvas, x0: Int, y0: Int, w: Int, h: Int, title: String, yLabel: String,
                      series: [(name: String, values: [Double], color: Canvas.Color)], legendAtBottom: Bool = false) {
        func drawable(_ v: Double) -> Bool { v.isFinite && Swift.abs(v) <= largestDrawable }
        let all = series.flatMap { $0.values }.filter(drawable)
        let n = series.map { $0.values.count }.max() ?? 0
        guard n > 0, var lo = all.min(), var hi = all.max() else { return }
        let least = Swift.max(1e-9, Swift.max(Swift.abs(lo), Swift.abs(hi)) * 1e-6)
        if hi - lo < least { lo -= Swift.max(0.5, least); hi += Swift.max(0.5, least) }
        let pad = (hi - lo) * 0.08
        lo -= pad; hi += pad
        let left = x0 + 62, right = x0 + w - 12, top = y0 + 28, bottom = y0 + h - 44
        func px(_ i: Int) -> Double { n == 1 ? Double(left + right) / 2 : Double(left) + Double(i) / Double(n - 1) * Double(right - left) }
        func py(_ v: Double) -> Double { Double(bottom) - (v - lo) / (hi - lo) * Double(bottom - top) }
        canvas.text(title, centerX: (left + right) / 2, centerY: y0 + 12)
        for t in ticks(lo, hi) {
            let y = Int(py(t).rounded())
            canvas.line(Double(left), Double(y), Double(right), Double(y), light)
            let s = label(t)
            canvas.text(s, x: left - 6 - Canvas.textWidth(s), y: y - Canvas.lineHeight / 2, grey)
        }
        let every = Swift.max(1, Int((Double(n) / 10).rounded(.up)))
        for i in stride(from: 0, to: n, by: every) {
            let x = px(i)
            canvas.line(x, Double(bottom), x, Double(bottom + 4), grey)
            canvas.text(String(i + 1), centerX: Int(x.rounded()), centerY: bottom + 13, grey)
        }
        canvas.line(Double(left), Double(top), Double(left), Double(bottom), (0, 0, 0))
        canvas.line(Double(left), Double(bottom), Double(right), Double(bottom), (0, 0, 0))
        canvas.text("epoch", centerX: (left + right) / 2, centerY: bottom + 31)
        canvas.text(yLabel, x: x0 + 4, y: top - 22)
        for s in series {
            let pts = s.values.enumerated().filter { drawable($0.element) }.map { (px($0.offset), py($0.element)) }
            for (a, b) in zip(pts, pts.dropFirst()) { canvas.line(a.0, a.1, b.0, b.1, s.color, thickness: 2) }
            for p in pts { canvas.fill(x: Int(p.0.rounded()) - 2, y: Int(p.1.rounded()) - 2, w: 5, h: 5, s.color) }
        }
        let shown = series.filter { !$0.values.isEmpty }
        var ly = legendAtBottom ? bottom - 8 - shown.count * (Canvas.lineHeight + 2) : top + 6
        for s in shown {
            let lx = right - 8 - Canvas.textWidth(s.name) - 22
            canvas.fill(x: lx, y: ly + 6, w: 16, h: 3, s.color)
            canvas.text(s.name, x: lx + 22, y: ly)
            ly += Canvas.lineHeight + 2
        }
    }

    /// Loss and accuracy per epoch, training and validation, side by side.
    /// - Parameter history: one row of logs per epoch (`loss`, `accuracy`, `val_loss`, `val_accuracy`).
    public static func learningCurves(_ history: [[String: Double]]) -> Image {
        var canvas = Canvas(width: 900, height: 360)
        func column(_ key: String) -> [Double] { history.map { $0[key] ?? .nan } }
        chart(&canvas, x0: 0, y0: 0, w: 450, h: 360, title: "loss", yLabel: "loss",
              series: [("train", column("loss"), blue), ("validation", column("val_loss"), orange)])
        chart(&canvas, x0: 450, y0: 0, w: 450, h: 360, title: "accuracy", yLabel: "accuracy",
              series: [("train", column("accuracy"), blue), ("validation", column("val_accuracy"), orange)],
              legendAtBottom: true)
        return canvas.image
    }

    /// The confusion matrix as a heat map: rows are true classes, columns predictions, each cell shaded
    /// by its share of the row and labelled with its count.
    /// - Parameters:
    ///   - confusion: `confusion[true][predicted]` counts.
    ///   - classNames: a name per class.
    public static func confusionMatrix(_ confusion: [[Int]], classNames: [String]) -> Image {
        let k = confusion.count, cell = 44
        let nameWidth = (classNames.map { Canvas.textWidth($0) }.max() ?? 0) + 12
        let left = nameWidth + 26, top = 40
        let width = left + k * cell + 20, height = top + k * cell + nameWidth + 30
        var canvas = Canvas(width: width, height: height)
        canvas.text("confusion matrix (rows: true class, columns: predicted)", x: 8, y: 10)
        for (r, row) in confusion.enumerated() {
            let total = Swift.max(1, row.reduce(0, +))
            for (c, count) in row.enumerated() {
                let share = Double(count) / Double(total)
                let color: Canvas.Color = (UInt8(255 - 224 * share), UInt8(255 - 136 * share), UInt8(255 - 75 * share))
                canvas.fill(x: left + c * cell, y: top + r * cell, w: cell - 1, h: cell - 1, color)
                canvas.text(String(count), centerX: left + c * cell + cell / 2, centerY: top + r * cell + cell / 2,
                            share > 0.5 ? (255, 255, 255) : (0, 0, 0))
            }
            let name = classNames.indices.contains(r) ? classNames[r] : String(r)
            canvas.text(name, x: left - 8 - Canvas.textWidth(name), y: top + r * cell + cell / 2 - Canvas.lineHeight / 2)
        }
        // Column names, one character per line, under the matrix.
        for c in 0..<k {
            let name = Array(classNames.indices.contains(c) ? classNames[c] : String(c))
            for (j, ch) in name.enumerated() {
                canvas.text(String(ch), centerX: left + c * cell + cell / 2, centerY: top + k * cell + 10 + j * (Canvas.lineHeight - 3))
            }
        }
        return canvas.image
    }

    /// Misclassified images in a grid, each captioned `true -> predicted` (class names).
    /// - Parameters:
    ///   - images: grey or RGB images of one size.
    ///   - captions: one caption per image.
    ///   - columns: images per row.
    public static func mistakes(_ images: [Image], captions: [String], columns: Int = 6) -> Image {
        guard let first = images.first else {
            var canvas = Canvas(width: 300, height: 40)
            canvas.text("no misclassified images", x: 10, y: 12)
            return canvas.image
        }
        let scale = Swift.max(1, 56 / first.width)
        let captionWidth = (captions.map { Canvas.textWidth($0) }.max() ?? 0) + 8
        let cellW = Swift.max(first.width * scale, captionWidth) + 10, cellH = first.height * scale + Canvas.lineHeight + 12
        let cols = Swift.min(columns, images.count), rows = (images.count + cols - 1) / cols
        let title = "misclassified test images (true -> predicted)"
        var canvas = Canvas(width: Swift.max(cols * cellW + 10, Canvas.textWidth(title) + 16), height: rows * cellH + 36)
        canvas.text(title, x: 8, y: 8)
        for (i, (image, caption)) in zip(images, captions).enumerated() {
            let x = 10 + (i % cols) * cellW, y = 30 + (i / cols) * cellH
            canvas.draw(image, x: x + (cellW - 10 - image.width * scale) / 2, y: y, scale: scale)
            canvas.text(caption, centerX: x + (cellW - 10) / 2, centerY: y + image.height * scale + 10, (180, 30, 30))
        }
        return canvas.image
    }
}
