import Foundation
import Testing
@testable import Convolve

/// The in-place ops optimizer rules are written in: each equals its formula element by element, leaves
/// tensors that shared its values (copies, detached views) untouched, and reads an operand that is the
/// tensor itself as it was before the update.
@Suite struct InPlaceTests {
    let a: [Float] = (0..<37).map { Float($0) * 0.25 - 4 }       // 37: a SIMD body and a tail
    let b: [Float] = (0..<37).map { 1.5 + Float($0 % 5) }

    func t(_ v: [Float]) -> Tensor { Tensor(v, shape: [v.count]) }

    @Test func eachOpEqualsItsFormula() {
        func check(_ name: String, _ op: (Tensor) -> Void, _ formula: (Float, Float) -> Float) {
            let y = t(a)
            op(y)
            let expected = zip(a, b).map(formula)
            #expect(y.scalars == expected, "\(name)")
        }
        let x = t(b)
        check("scale", { $0.scale(by: -0.5) }) { y, _ in y * -0.5 }
        check("add scalar", { $0.add(scalar: 3) }) { y, _ in y + 3 }
        check("add", { $0.add(x, scaledBy: 0.3) }) { y, x in y + 0.3 * x }
        check("addProduct", { $0.addProduct(x, x, scaledBy: 0.1) }) { y, x in y + 0.1 * x * x }
        check("addQuotient", { $0.addQuotient(x, x.detach().add(scalar: 1), scaledBy: -2) }) { y, x in y + -2 * x / (x + 1) }
        check("multiply", { $0.multiply(by: x) }) { y, x in y * x }
        check("divide", { $0.divide(by: x) }) { y, x in y / x }
        check("lerp below ½", { $0.interpolate(toward: x, weight: 0.1) }) { y, x in y + 0.1 * (x - y) }
        check("lerp from ½", { $0.interpolate(toward: x, weight: 0.9) }) { y, x in x - (x - y) * (1 - 0.9) }
        check("sqrt", { $0.multiply(by: $0).formSquareRoot() }) { y, _ in (y * y).squareRoot() }
    }

    @Test func sharedValuesAreNotChanged() {
        let y = t(a)
        let copy = y.detach()                 // shares y's array until one of them is written
        let saved = y.scalars
        y.add(scalar: 1)
        #expect(copy.scalars == a)
        #expect(saved == a)
        #expect(y.scalars == a.map { $0 + 1 })
        let self2 = t(a)
        self2.addProduct(self2, self2)       // reads the values from before the update
        #expect(self2.scalars == a.map { $0 + $0 * $0 })
    }

    @Test func fusedAdamEqualsItsOpByOpFormula() {
        let w = t(a), g = t(b.map { $0 - 3 }), m = t(b.map { $0 * 0.01 }), v = t(b.map { $0 * 0.001 })
        let (b1, b2, step, sqrtBc2, eps, wd): (Float, Float, Float, Float, Float, Float) = (0.9, 0.999, 0.01, 0.3, 1e-8, 0.1)
        // The same element operations as separate in-place ops, in the fused kernel's order.
        let g2 = g.detach().add(w, scaledBy: wd)
        let m2 = m.detach().scale(by: b1).add(g2.detach().scale(by: 1 - b1))
        let v2 = v.detach().scale(by: b2).add(g2.detach().scale(by: 1 - b2).multiply(by: g2))
        let denominator = v2.detach().formSquareRoot().scale(by: 1 / sqrtBc2).add(scalar: eps)
        let w2 = w.detach().add(m2.detach().scale(by: step).divide(by: denominator), scaledBy: -1)
        w.adamUpdate(gradient: g, firstMoment: m, secondMoment: v, beta1: b1, beta2: b2, stepSize: step,
                     sqrtBiasCorrection2: sqrtBc2, eps: eps, coupledDecay: wd)
        #expect(m.scalars == m2.scalars)
        #expect(v.scalars == v2.scalars)
        #expect(w.scalars == w2.scalars)
    }
}
