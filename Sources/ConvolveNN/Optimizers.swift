import Foundation
import Convolve

/// Base class of optimizers (`torch.optim.Optimizer`): holds parameters and per-parameter state.
open class Optimizer {
    /// The parameters updated by `step()`.
    public let parameters: [Tensor]
    /// Learning rate (schedulers change it).
    public var lr: Double
    /// Number of `step()` calls so far.
    public internal(set) var stepCount: Int = 0
    /// Per-parameter state buffers by name (e.g. "exp_avg"); `state[i]` belongs to `parameters[i]`.
    public internal(set) var state: [[String: StateBuffer]]

    /// - Parameters:
    ///   - parameters: the tensors updated by `step()` (usually `model.parameters()`).
    ///   - lr: learning rate.
    public init(_ parameters: [Tensor], lr: Double) {
        self.parameters = parameters
        self.lr = lr
        state = parameters.map { _ in [:] }
    }

    /// Clears gradients (PyTorch's default `set_to_none=True`).
    ///
    /// - Parameter setToNone: drop the gradients (PyTorch's default) instead of zeroing them.
    public func zeroGrad(setToNone: Bool = true) {
        for p in parameters {
            if setToNone { p.grad = nil } else if let g = p.grad {
                g.fill(0)
            }
        }
    }

    /// Applies one update using each parameter's `.grad` (parameters without a gradient are skipped).
    public func step() {
        Profiler.measure("optimizer step") { stepAll() }
    }

    private func stepAll() {
        stepCount += 1
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            p.withUnsafeMutableBufferPointer { w in
                g.withUnsafeBufferPointer { gr in update(i, w, gr) }
            }
        }
    }

    /// Updates parameter `index` in place from its gradient. Subclasses implement the rule.
    ///
    /// - Parameters:
    ///   - i: the parameter's position in `parameters`.
    ///   - w: its values, updated in place.
    ///   - g: its gradient.
    open func update(_ i: Int, _ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>) {}

    /// Whether parameter `index` already has a state buffer `name`.
    func hasBuffer(_ name: String, _ index: Int) -> Bool { state[index][name] != nil }

    /// Runs `body` on state buffer `name` of parameter `index`, zero-filled on first use.
    @inline(__always)
    func withBuffer(_ name: String, _ index: Int, _ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let buf: StateBuffer
        if let b = state[index][name] { buf = b } else {
            buf = StateBuffer(count: parameters[index].shape.reduce(1, *))  // not .count: storage is borrowed during step()
            state[index][name] = buf
        }
        buf.values.withUnsafeMutableBufferPointer { body($0) }
    }

    /// The optimizer's state as named tensors (`state.<i>.<name>`, plus `step` and `lr`) for checkpoints.
    public func stateDict() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = [("step", Tensor(scalar: Float(stepCount))), ("lr", Tensor(scalar: Float(lr)))]
        for (i, bufs) in state.enumerated() {
            for name in bufs.keys.sorted() {
                out.append(("state.\(i).\(name)", Tensor(bufs[name]!.values, shape: parameters[i].shape)))
            }
        }
        return out
    }

    /// Restores state saved by `stateDict()`. Errors name the offending key.
    ///
    /// - Parameter dict: tensors saved by `stateDict()` (`step`, `lr`, `state.<i>.<name>`).
    public func loadStateDict(_ dict: [String: Tensor]) throws {
        var newState: [[String: StateBuffer]] = parameters.map { _ in [:] }
        for (key, t) in dict where key.hasPrefix("state.") {
            let parts = key.split(separator: ".", maxSplits: 2).map(String.init)
            guard parts.count == 3, let i = Int(parts[1]), i >= 0, i < parameters.count else {
                throw StateDictError.keyMismatch(missing: [], unexpected: [key])
            }
            guard t.count == parameters[i].count else {
                throw StateDictError.shapeMismatch(key: key, expected: parameters[i].shape, got: t.shape)
            }
            let b = StateBuffer(count: 0)
            b.values = t.scalars
            newState[i][parts[2]] = b
        }
        // Values from a file: checked before use (a NaN or huge step count must not trap).
        var steps = stepCount, rate = lr
        if let s = dict["step"] {
            guard s.count == 1, let v = s.scalars.first, v.isFinite, v >= 0, v <= 16_777_216, v == v.rounded() else {
                throw StateDictError.badValue(key: "step", reason: "must be one whole number in 0...16777216, got \(s.scalars.prefix(3))")
            }
            steps = Int(v)
        }
        if let l = dict["lr"] {
            guard l.count == 1, let v = l.scalars.first, v.isFinite, v >= 0 else {
                throw StateDictError.badValue(key: "lr", reason: "must be one finite, non-negative number, got \(l.scalars.prefix(3))")
            }
            rate = Double(v)
        }
        state = newState
        stepCount = steps
        lr = rate
    }
}

/// One optimizer state buffer (a reference, so several can be updated together in place).
public final class StateBuffer {
    public var values: [Float]
    init(count: Int) { values = [Float](repeating: 0, count: count) }
}

/// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (`torch.optim.SGD`).
public final class SGD: Optimizer {
    public let momentum: Float, dampening: Float, weightDecay: Float, nesterov: Bool
    /// - Parameters:
    ///   - parameters: the tensors updated by `step()`.
    ///   - lr: learning rate.
    ///   - momentum: momentum factor (0: plain SGD).
    ///   - dampening: dampening of the momentum.
    ///   - weightDecay: L2 penalty added to the gradient.
    ///   - nesterov: Nesterov momentum.
    ///
    /// ### See Also
    /// - ``StepLR``, ``OneCycleLR``
    public init(_ parameters: [Tensor], lr: Double, momentum: Double = 0, dampening: Double = 0,
                weightDecay: Double = 0, nesterov: Bool = false) {
        self.momentum = Float(momentum); self.dampening = Float(dampening)
        self.weightDecay = Float(weightDecay); self.nesterov = nesterov
        super.init(parameters, lr: lr)
    }
    public override func update(_ i: Int, _ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>) {
        let lr = Float(self.lr), wd = weightDecay, mom = momentum, damp = dampening
        if mom == 0 {
            for j in 0..<w.count { w[j] -= lr * (g[j] + wd * w[j]) }
            return
        }
        let first = !hasBuffer("momentum_buffer", i)
        withBuffer("momentum_buffer", i) { buf in
            for j in 0..<w.count {
                let d = g[j] + wd * w[j]
                buf[j] = first ? d : mom * buf[j] + (1 - damp) * d
                w[j] -= lr * (nesterov ? d + mom * buf[j] : buf[j])
            }
        }
    }
}

/// Adam (`torch.optim.Adam`), or with `decoupledWeightDecay` AdamW. `epsilonInsideSqrtCorrection`
/// selects where epsilon goes: PyTorch adds it after bias-correcting √v; Keras adds it to √v directly.
public class Adam: Optimizer {
    /// Where epsilon enters the update denominator.
    public enum EpsilonStyle: String, Sendable { case pytorch, keras }
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public let decoupled: Bool, epsilonStyle: EpsilonStyle

    /// - Parameters:
    ///   - parameters: the tensors updated by `step()`.
    ///   - lr: learning rate.
    ///   - betas: decay rates of the first and second moment estimates.
    ///   - eps: added to the denominator.
    ///   - weightDecay: L2 penalty added to the gradient.
    ///   - epsilonStyle: where epsilon goes (PyTorch's or Keras' placement).
    ///
    /// ### See Also
    /// - ``AdamW``
    public init(_ parameters: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                eps: Double = 1e-8, weightDecay: Double = 0, epsilonStyle: EpsilonStyle = .pytorch) {
        beta1 = Float(betas.0); beta2 = Float(betas.1); self.eps = Float(eps); self.weightDecay = Float(weightDecay)
        decoupled = false; self.epsilonStyle = epsilonStyle
        super.init(parameters, lr: lr)
    }
    init(_ parameters: [Tensor], lr: Double, betas: (Double, Double), eps: Double, weightDecay: Double,
         decoupled: Bool) {
        beta1 = Float(betas.0); beta2 = Float(betas.1); self.eps = Float(eps); self.weightDecay = Float(weightDecay)
        self.decoupled = decoupled; epsilonStyle = .pytorch
        super.init(parameters, lr: lr)
    }

    public override func update(_ i: Int, _ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>) {
        let t = Double(stepCount)
        let bc1 = 1 - Foundation.pow(Double(beta1), t), bc2 = 1 - Foundation.pow(Double(beta2), t)
        let b1 = beta1, b2 = beta2, eps = self.eps, wd = weightDecay, lr = Float(self.lr)
        if decoupled && wd != 0 { for j in 0..<w.count { w[j] *= 1 - lr * wd } }
        let coupledWD: Float = decoupled ? 0 : wd
        // PyTorch: w -= lr/bc1 * m / (√v/√bc2 + eps);  Keras: w -= lr·√bc2/bc1 * m / (√v + eps)
        let stepSize: Float, sqrtBc2: Float
        switch epsilonStyle {
        case .pytorch: stepSize = Float(Double(lr) / bc1); sqrtBc2 = Float(bc2.squareRoot())
        case .keras: stepSize = Float(Double(lr) * bc2.squareRoot() / bc1); sqrtBc2 = 1
        }
        let invSqrtBc2 = 1 / sqrtBc2
        withBuffer("exp_avg", i) { m in withBuffer("exp_avg_sq", i) { v in
            Parallel.forChunks(w.count, work: w.count * 8, streaming: true) { range in
                // 16 lanes at a time (the same operations in the same order as the scalar tail, so the
                // result is identical): the square root and division are otherwise ~12 cycles/element.
                typealias V = SIMD16<Float>
                @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
                @inline(__always) func store(_ x: V, _ p: UnsafeMutablePointer<Float>) {
                    UnsafeMutableRawPointer(p).storeBytes(of: x, as: V.self)
                }
                let (wp, gp, mp, vp) = (w.baseAddress!, g.baseAddress!, m.baseAddress!, v.baseAddress!)
                var j = range.lowerBound
                while j + 16 <= range.upperBound {
                    let wj = load(wp + j)
                    let gj = load(gp + j) + coupledWD * wj
                    let mj = b1 * load(mp + j) + (1 - b1) * gj
                    let vj = b2 * load(vp + j) + (1 - b2) * gj * gj
                    store(mj, mp + j); store(vj, vp + j)
                    store(wj - stepSize * mj / (vj.squareRoot() * invSqrtBc2 + eps), wp + j)
                    j += 16
                }
                while j < range.upperBound {
                    let gj = g[j] + coupledWD * w[j]
                    m[j] = b1 * m[j] + (1 - b1) * gj
                    v[j] = b2 * v[j] + (1 - b2) * gj * gj
                    w[j] -= stepSize * m[j] / (v[j].squareRoot() * invSqrtBc2 + eps)
                    j += 1
                }
            }
        } }
    }
}

/// Adam with decoupled weight decay (`torch.optim.AdamW`, default weight decay 0.01).
public final class AdamW: Adam {
    /// - Parameters:
    ///   - parameters: the tensors updated by `step()`.
    ///   - lr: learning rate.
    ///   - betas: decay rates of the moment estimates.
    ///   - eps: added to the denominator.
    ///   - weightDecay: decoupled weight decay (applied to the weights, not the gradient).
    public init(_ parameters: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                eps: Double = 1e-8, weightDecay: Double = 0.01) {
        super.init(parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: true)
    }
}

/// RMSprop (`torch.optim.RMSprop`), with optional momentum and centering.
public final class RMSprop: Optimizer {
    public let alpha: Float, eps: Float, weightDecay: Float, momentum: Float, centered: Bool
    /// - Parameters:
    ///   - parameters: the tensors updated by `step()`.
    ///   - lr: learning rate.
    ///   - alpha: smoothing constant of the squared-gradient average.
    ///   - eps: added to the denominator.
    ///   - weightDecay: L2 penalty added to the gradient.
    ///   - momentum: momentum factor.
    ///   - centered: normalize by the gradient's estimated variance.
    public init(_ parameters: [Tensor], lr: Double = 1e-2, alpha: Double = 0.99, eps: Double = 1e-8,
                weightDecay: Double = 0, momentum: Double = 0, centered: Bool = false) {
        self.alpha = Float(alpha); self.eps = Float(eps); self.weightDecay = Float(weightDecay)
        self.momentum = Float(momentum); self.centered = centered
        super.init(parameters, lr: lr)
    }
    public override func update(_ i: Int, _ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>) {
        let a = alpha, eps = self.eps, wd = weightDecay, lr = Float(self.lr), mom = momentum
        withBuffer("square_avg", i) { v in
            for j in 0..<w.count {
                let gj = g[j] + wd * w[j]
                v[j] = a * v[j] + (1 - a) * gj * gj
            }
            var avg = [Float](repeating: 0, count: w.count)
            if centered {
                withBuffer("grad_avg", i) { ga in
                    for j in 0..<w.count {
                        let gj = g[j] + wd * w[j]
                        ga[j] = a * ga[j] + (1 - a) * gj
                        avg[j] = (v[j] - ga[j] * ga[j]).squareRoot() + eps
                    }
                }
            } else {
                for j in 0..<w.count { avg[j] = v[j].squareRoot() + eps }
            }
            if mom > 0 {
                withBuffer("momentum_buffer", i) { buf in
                    for j in 0..<w.count {
                        buf[j] = mom * buf[j] + (g[j] + wd * w[j]) / avg[j]
                        w[j] -= lr * buf[j]
                    }
                }
            } else {
                for j in 0..<w.count { w[j] -= lr * (g[j] + wd * w[j]) / avg[j] }
            }
        }
    }
}

/// Adadelta (`torch.optim.Adadelta`, lr 1.0 by default as in pytorch/examples' MNIST).
public final class Adadelta: Optimizer {
    public let rho: Float, eps: Float, weightDecay: Float
    /// - Parameters:
    ///   - parameters: the tensors updated by `step()`.
    ///   - lr: scale of the update.
    ///   - rho: decay of the running averages.
    ///   - eps: added inside the square roots.
    ///   - weightDecay: L2 penalty added to the gradient.
    public init(_ parameters: [Tensor], lr: Double = 1.0, rho: Double = 0.9, eps: Double = 1e-6, weightDecay: Double = 0) {
        self.rho = Float(rho); self.eps = Float(eps); self.weightDecay = Float(weightDecay)
        super.init(parameters, lr: lr)
    }
    public override func update(_ i: Int, _ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>) {
        let rho = self.rho, eps = self.eps, wd = weightDecay, lr = Float(self.lr)
        withBuffer("square_avg", i) { v in withBuffer("acc_delta", i) { u in
            for j in 0..<w.count {
                let gj = g[j] + wd * w[j]
                v[j] = rho * v[j] + (1 - rho) * gj * gj
                let delta = (u[j] + eps).squareRoot() / (v[j] + eps).squareRoot() * gj
                u[j] = rho * u[j] + (1 - rho) * delta * delta
                w[j] -= lr * delta
            }
        } }
    }
}
