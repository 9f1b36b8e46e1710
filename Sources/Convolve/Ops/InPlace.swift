import Foundation

// In-place updates, the vocabulary optimizer rules are written in (PyTorch's `mul_`, `add_`,
// `addcmul_`, `addcdiv_`, `lerp_`, `sqrt_`): each changes the tensor's own values, records nothing
// for autograd or export, and returns the tensor for chaining. The operands must have the tensor's
// element count (no broadcasting). A second backend implements these, and optimizers stay as written.

extension Tensor {
    /// Runs `body` over this tensor's elements (mutable) and the operands' (read-only), checked to
    /// have as many elements.
    @inline(__always)
    private func updateElements(_ name: StaticString, _ operands: Tensor...,
                                body: (UnsafeMutablePointer<Float>, [UnsafePointer<Float>], Int) -> Void) -> Tensor {
        for o in operands { precondition(o.count == count, "\(name): \(o.shape) operand for a \(shape) tensor") }
        let n = count
        // Operands are copied out first when one of them is this tensor (`x.addProduct(x, x)`), so the
        // reads never see half-written values and the array is never borrowed twice.
        let inputs = operands.map { $0 === self ? Tensor($0.storage, shape: $0.shape) : $0 }
        storage.withUnsafeMutableBufferPointer { out in
            func with(_ i: Int, _ pointers: [UnsafePointer<Float>]) {
                if i == inputs.count { body(out.baseAddress!, pointers, n); return }
                inputs[i].storage.withUnsafeBufferPointer { with(i + 1, pointers + [$0.baseAddress!]) }
            }
            if n > 0 { with(0, []) }
        }
        return self
    }

    /// Multiplies every element by `s`, in place (`mul_`).
    /// - Parameter s: the factor.
    @discardableResult public func scale(by s: Float) -> Tensor {
        updateElements("scale(by:)") { y, _, n in for j in 0..<n { y[j] *= s } }
    }

    /// Adds `s` to every element, in place (`add_` with a number).
    /// - Parameter s: the number added.
    @discardableResult public func add(scalar s: Float) -> Tensor {
        updateElements("add(scalar:)") { y, _, n in for j in 0..<n { y[j] += s } }
    }

    /// `self += alpha · x`, in place (`add_(x, alpha=)`).
    /// - Parameters:
    ///   - x: as many elements as this tensor.
    ///   - alpha: the factor on `x`.
    @discardableResult public func add(_ x: Tensor, scaledBy alpha: Float = 1) -> Tensor {
        updateElements("add(_:scaledBy:)", x) { y, p, n in let x = p[0]; for j in 0..<n { y[j] += alpha * x[j] } }
    }

    /// `self += value · a · b`, in place (`addcmul_`).
    /// - Parameters:
    ///   - a: as many elements as this tensor.
    ///   - b: as many elements as this tensor.
    ///   - value: the factor on the product.
    @discardableResult public func addProduct(_ a: Tensor, _ b: Tensor, scaledBy value: Float = 1) -> Tensor {
        updateElements("addProduct", a, b) { y, p, n in
            let (a, b) = (p[0], p[1]); for j in 0..<n { y[j] += value * a[j] * b[j] }
        }
    }

    /// `self += value · a / b`, in place (`addcdiv_`).
    /// - Parameters:
    ///   - a: the dividends, as many as this tensor's elements.
    ///   - b: the divisors.
    ///   - value: the factor on the quotient.
    @discardableResult public func addQuotient(_ a: Tensor, _ b: Tensor, scaledBy value: Float = 1) -> Tensor {
        updateElements("addQuotient", a, b) { y, p, n in
            let (a, b) = (p[0], p[1]); for j in 0..<n { y[j] += value * a[j] / b[j] }
        }
    }

    /// Multiplies elementwise by `x`, in place (`mul_` with a tensor).
    /// - Parameter x: as many elements as this tensor.
    @discardableResult public func multiply(by x: Tensor) -> Tensor {
        updateElements("multiply(by:)", x) { y, p, n in let x = p[0]; for j in 0..<n { y[j] *= x[j] } }
    }

    /// Divides elementwise by `x`, in place (`div_` with a tensor).
    /// - Parameter x: the divisors, as many as this tensor's elements.
    @discardableResult public func divide(by x: Tensor) -> Tensor {
        updateElements("divide(by:)", x) { y, p, n in let x = p[0]; for j in 0..<n { y[j] /= x[j] } }
    }

    /// Moves each element toward `end` by `weight` of the distance, in place (`lerp_`, with PyTorch's
    /// two formulas: from this side when `weight` < 0.5, from `end`'s otherwise, for exact end points).
    /// - Parameters:
    ///   - end: the targets, as many as this tensor's elements.
    ///   - weight: 0 keeps this tensor, 1 gives `end`.
    @discardableResult public func interpolate(toward end: Tensor, weight: Float) -> Tensor {
        updateElements("interpolate(toward:weight:)", end) { y, p, n in
            let e = p[0]
            if Swift.abs(weight) < 0.5 {
                for j in 0..<n { y[j] += weight * (e[j] - y[j]) }
            } else {
                for j in 0..<n { y[j] = e[j] - (e[j] - y[j]) * (1 - weight) }
            }
        }
    }

    /// Replaces each element by its square root, in place (`sqrt_`).
    @discardableResult public func formSquareRoot() -> Tensor {
        updateElements("formSquareRoot") { y, _, n in for j in 0..<n { y[j] = y[j].squareRoot() } }
    }

    /// One Adam step on this parameter, in place, in a single pass (PyTorch's fused Adam): updates
    /// the moment estimates `firstMoment` (m) and `secondMoment` (v) from `gradient` (g) and then the
    /// parameter: `g += coupledDecay·w; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
    /// w −= stepSize · m / (√v / √biasCorrection2 + eps)`.
    ///
    /// - Parameters:
    ///   - gradient: the parameter's gradient.
    ///   - firstMoment: the running mean of the gradient, updated.
    ///   - secondMoment: the running mean of its square, updated.
    ///   - beta1: decay of the first moment.
    ///   - beta2: decay of the second moment.
    ///   - stepSize: the learning rate over the first moment's bias correction.
    ///   - sqrtBiasCorrection2: the square root of the second moment's bias correction (1 for Keras' placement of eps).
    ///   - eps: added to the denominator.
    ///   - coupledDecay: L2 penalty added to the gradient (0 for AdamW, whose decay is applied to the weights).
    @discardableResult
    public func adamUpdate(gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor, beta1: Float, beta2: Float,
                           stepSize: Float, sqrtBiasCorrection2: Float, eps: Float, coupledDecay: Float) -> Tensor {
        precondition(firstMoment !== secondMoment && firstMoment !== self && secondMoment !== self,
                     "adamUpdate: the parameter and its two moments must be three tensors")
        precondition(firstMoment.count == count && secondMoment.count == count, "adamUpdate: moments of another size")
        return updateElements("adamUpdate", gradient) { w, p, n in
            firstMoment.storage.withUnsafeMutableBufferPointer { m in
                secondMoment.storage.withUnsafeMutableBufferPointer { v in
                    adamKernel(weights: w, gradient: p[0], firstMoment: m.baseAddress!, secondMoment: v.baseAddress!,
                              count: n, beta1: beta1, beta2: beta2, stepSize: stepSize,
                               invSqrtBiasCorrection2: 1 / sqrtBiasCorrection2, eps: eps, coupledDecay: coupledDecay)
                }
            }
        }
    }
}
