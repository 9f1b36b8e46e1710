import Foundation
import Convolve

/// Base class of optimizers (`torch.optim.Optimizer`): holds the parameters and each one's state, and
/// steps them all by one rule per parameter (`applySingle`, as mlx-swift's optimizers), written on
/// tensors with the core's in-place ops — so a second backend changes kernels, not optimizers.
open class Optimizer {
    /// The parameters updated by `step()`.
    public let parameters: [Tensor]
    /// Learning rate (schedulers change it).
    public var lr: Double
    /// Number of `step()` calls so far.
    public internal(set) var stepCount: Int = 0
    /// Each parameter's state tensors by name (e.g. "exp_avg"); `state[i]` belongs to `parameters[i]`.
    public internal(set) var state: [[String: Tensor]]

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
        Profiler.measure("optimizer step") {
            stepCount += 1
            for (i, p) in parameters.enumerated() {
                guard let g = p.grad else { continue }
                applySingle(gradient: g, parameter: p, state: &state[i])
            }
        }
    }

    /// The rule: updates `parameter` in place from `gradient`, reading and updating its `state`.
    /// Subclasses implement it with in-place tensor ops; `gradient` must not be changed.
    ///
    /// - Parameters:
    ///   - gradient: the parameter's gradient.
    ///   - parameter: the tensor updated in place.
    ///   - state: the parameter's state tensors by name (``zeros(_:like:in:)`` creates one on first use).
    open func applySingle(gradient: Tensor, parameter: Tensor, state: inout [String: Tensor]) {}

    /// State tensor `name`, created as zeros shaped like `parameter` on first use.
    ///
    /// - Parameters:
    ///   - name: the state's name (PyTorch's, so checkpoints read alike).
    ///   - parameter: the parameter it belongs to.
    ///   - state: the parameter's state.
    public final func zeros(_ name: String, like parameter: Tensor, in state: inout [String: Tensor]) -> Tensor {
        if let t = state[name] { return t }
        let t = Tensor.zeros(parameter.shape)
        state[name] = t
        return t
    }

    /// The optimizer's state as named tensors (`state.<i>.<name>`, plus `step` and `lr`) for checkpoints.
    public func stateDict() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = [("step", Tensor(scalar: Float(stepCount))), ("lr", Tensor(scalar: Float(lr)))]
        for (i, tensors) in state.enumerated() {
            for name in tensors.keys.sorted() { out.append(("state.\(i).\(name)", tensors[name]!.detach())) }
        }
        return out
    }

    /// Restores state saved by `stateDict()`. Errors name the offending key.
    ///
    /// - Parameter dict: tensors saved by `stateDict()` (`step`, `lr`, `state.<i>.<name>`).
    public func loadStateDict(_ dict: [String: Tensor]) throws {
        var newState: [[String: Tensor]] = parameters.map { _ in [:] }
        for (key, t) in dict where key.hasPrefix("state.") {
            let parts = key.split(separator: ".", maxSplits: 2).map(String.init)
            guard parts.count == 3, let i = Int(parts[1]), i >= 0, i < parameters.count else {
                throw StateDictError.keyMismatch(missing: [], unexpected: [key])
            }
            guard t.count == parameters[i].count else {
                throw StateDictError.shapeMismatch(key: key, expected: parameters[i].shape, got: t.shape)
            }
            newState[i][parts[2]] = Tensor(t.scalars, shape: parameters[i].shape)
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
    public override func applySingle(gradient: Tensor, parameter: Tensor, state: inout [String: Tensor]) {
        var d = gradient
        if weightDecay != 0 { d = gradient.detach().add(parameter, scaledBy: weightDecay) }
        if momentum != 0 {
            let buffer: Tensor
            if let b = state["momentum_buffer"] {
                buffer = b.scale(by: momentum).add(d, scaledBy: 1 - dampening)
            } else {
                buffer = d.detach()  // the first step takes the gradient as it is
                state["momentum_buffer"] = buffer
            }
            d = nesterov ? d.detach().add(buffer, scaledBy: momentum) : buffer
        }
        parameter.add(d, scaledBy: -Float(lr))
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

    public override func applySingle(gradient: Tensor, parameter: Tensor, state: inout [String: Tensor]) {
        let t = Double(stepCount), lr = Float(self.lr)
        let bc1 = 1 - Foundation.pow(Double(beta1), t), bc2 = 1 - Foundation.pow(Double(beta2), t)
        if decoupled && weightDecay != 0 { parameter.scale(by: 1 - lr * weightDecay) }
        // PyTorch: w -= lr/bc1 · m / (√v/√bc2 + eps);  Keras: w -= lr·√bc2/bc1 · m / (√v + eps)
        let stepSize: Float, sqrtBc2: Float
        switch epsilonStyle {
        case .pytorch: stepSize = Float(Double(lr) / bc1); sqrtBc2 = Float(bc2.squareRoot())
        case .keras: stepSize = Float(Double(lr) * bc2.squareRoot() / bc1); sqrtBc2 = 1
        }
        parameter.adamUpdate(gradient: gradient, firstMoment: zeros("exp_avg", like: parameter, in: &state),
                             secondMoment: zeros("exp_avg_sq", like: parameter, in: &state), beta1: beta1, beta2: beta2,
                             stepSize: stepSize, sqrtBiasCorrection2: sqrtBc2, eps: eps,
                             coupledDecay: decoupled ? 0 : weightDecay)
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
    public override func applySingle(gradient: Tensor, parameter: Tensor, state: inout [String: Tensor]) {
        let g = weightDecay != 0 ? gradient.detach().add(parameter, scaledBy: weightDecay) : gradient
        let squareAverage = zeros("square_avg", like: parameter, in: &state).scale(by: alpha).addProduct(g, g, scaledBy: 1 - alpha)
        let denominator: Tensor
        if centered {
            let gradAverage = zeros("grad_avg", like: parameter, in: &state).interpolate(toward: g, weight: 1 - alpha)
            denominator = squareAverage.detach().addProduct(gradAverage, gradAverage, scaledBy: -1)
        } else {
            denominator = squareAverage.detach()
        }
        denominator.formSquareRoot().add(scalar: eps)
        if momentum > 0 {
            let buffer = zeros("momentum_buffer", like: parameter, in: &state).scale(by: momentum).addQuotient(g, denominator)
            parameter.add(buffer, scaledBy: -Float(lr))
        } else {
            parameter.addQuotient(g, denominator, scaledBy: -Float(lr))
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
    public override func applySingle(gradient: Tensor, parameter: Tensor, state: inout [String: Tensor]) {
        let g = weightDecay != 0 ? gradient.detach().add(parameter, scaledBy: weightDecay) : gradient
        let squareAverage = zeros("square_avg", like: parameter, in: &state).scale(by: rho).addProduct(g, g, scaledBy: 1 - rho)
        let accumulatedDelta = zeros("acc_delta", like: parameter, in: &state)
        let std = squareAverage.detach().add(scalar: eps).formSquareRoot()
        let delta = accumulatedDelta.detach().add(scalar: eps).formSquareRoot().divide(by: std).multiply(by: g)
        accumulatedDelta.scale(by: rho).addProduct(delta, delta, scaledBy: 1 - rho)
        parameter.add(delta, scaledBy: -Float(lr))
    }
}
