import Foundation

/// Learning-rate schedule stepped once per epoch (or per batch for OneCycle), like `torch.optim.lr_scheduler`.
public protocol LRScheduler: AnyObject {
    /// The optimizer whose `lr` is set.
    var optimizer: Optimizer { get }
    /// Advances the schedule by one step and sets the optimizer's learning rate.
    func step()
    /// Steps taken so far (PyTorch's `last_epoch`): what a checkpoint saves.
    var stepsTaken: Int { get }
    /// Continues a schedule after `stepsTaken` steps: sets the count and the optimizer's learning rate
    /// from the schedule's own initial rate (never from the optimizer's current, already-scheduled one).
    func restore(stepsTaken: Int)
}

/// Multiplies the learning rate by `gamma` every `stepSize` steps (`StepLR`).
public final class StepLR: LRScheduler {
    public let optimizer: Optimizer
    public let stepSize: Int, gamma: Double, baseLR: Double
    public private(set) var lastEpoch = 0
    /// - Parameters:
    ///   - optimizer: whose learning rate is set; its current rate is the schedule's initial rate.
    ///   - stepSize: steps between decays.
    ///   - gamma: factor applied at each decay.
    ///
    /// ### See Also
    /// - `LRSchedule` (ConvolveTraining), which steps it from the training engine
    public init(_ optimizer: Optimizer, stepSize: Int, gamma: Double = 0.1) {
        self.optimizer = optimizer; self.stepSize = stepSize; self.gamma = gamma; baseLR = optimizer.lr
    }
    public func step() { restore(stepsTaken: lastEpoch + 1) }
    public var stepsTaken: Int { lastEpoch }
    public func restore(stepsTaken: Int) {
        lastEpoch = stepsTaken
        optimizer.lr = baseLR * Foundation.pow(gamma, Double(lastEpoch / stepSize))
    }
}

/// Cosine annealing from the initial rate to `etaMin` over `tMax` steps (`CosineAnnealingLR`, closed form).
public final class CosineAnnealingLR: LRScheduler {
    public let optimizer: Optimizer
    public let tMax: Int, etaMin: Double, baseLR: Double
    public private(set) var lastEpoch = 0
    /// - Parameters:
    ///   - optimizer: whose learning rate is set; its current rate is the schedule's initial rate.
    ///   - tMax: steps of one half cosine.
    ///   - etaMin: the rate at the end.
    public init(_ optimizer: Optimizer, tMax: Int, etaMin: Double = 0) {
        self.optimizer = optimizer; self.tMax = tMax; self.etaMin = etaMin; baseLR = optimizer.lr
    }
    public func step() { restore(stepsTaken: lastEpoch + 1) }
    public var stepsTaken: Int { lastEpoch }
    public func restore(stepsTaken: Int) {
        lastEpoch = stepsTaken
        optimizer.lr = etaMin + (baseLR - etaMin) * (1 + Foundation.cos(Double.pi * Double(lastEpoch) / Double(tMax))) / 2
    }
}

/// The 1cycle policy (`OneCycleLR`, two phases, cosine annealing): warm up from `maxLR/divFactor`
/// to `maxLR` over `pctStart` of `totalSteps`, then anneal to `initial/finalDivFactor`. Step per batch.
/// Momentum is not cycled.
public final class OneCycleLR: LRScheduler {
    public let optimizer: Optimizer
    public let maxLR: Double, totalSteps: Int, pctStart: Double, divFactor: Double, finalDivFactor: Double
    public private(set) var stepNumber = 0
    /// - Parameters:
    ///   - optimizer: whose learning rate is set (to `maxLR / divFactor` at once).
    ///   - maxLR: the peak rate.
    ///   - totalSteps: steps of the whole cycle (step it per batch).
    ///   - pctStart: share of the steps spent warming up.
    ///   - divFactor: initial rate = `maxLR / divFactor`.
    ///   - finalDivFactor: final rate = initial rate / `finalDivFactor`.
    public init(_ optimizer: Optimizer, maxLR: Double, totalSteps: Int, pctStart: Double = 0.3,
                divFactor: Double = 25, finalDivFactor: Double = 1e4) {
        self.optimizer = optimizer; self.maxLR = maxLR; self.totalSteps = totalSteps; self.pctStart = pctStart
        self.divFactor = divFactor; self.finalDivFactor = finalDivFactor
        optimizer.lr = maxLR / divFactor
    }
    public func step() { restore(stepsTaken: stepNumber + 1) }
    public var stepsTaken: Int { stepNumber }
    public func restore(stepsTaken: Int) {
        stepNumber = stepsTaken
        let initial = maxLR / divFactor, minLR = initial / finalDivFactor
        let phase1End = pctStart * Double(totalSteps) - 1
        let s = Double(Swift.min(stepNumber, totalSteps - 1))
        func anneal(_ start: Double, _ end: Double, _ pct: Double) -> Double {
            end + (start - end) / 2 * (Foundation.cos(Double.pi * pct) + 1)
        }
        if s <= phase1End {
            optimizer.lr = anneal(initial, maxLR, s / phase1End)
        } else {
            optimizer.lr = anneal(maxLR, minLR, (s - phase1End) / (Double(totalSteps) - 1 - phase1End))
        }
    }
}
