import Foundation
import Convolve

/// Batch normalization over channels of NCHW input (`torch.nn.BatchNorm2d`).
/// Parameters `weight`/`bias`; buffers `running_mean`, `running_var`, `num_batches_tracked`.
public final class BatchNorm2d: Module, Layer {
    public let numFeatures: Int
    public let eps: Double, momentum: Double
    public let affine: Bool, trackRunningStats: Bool
    public var weight: Tensor?
    public var bias: Tensor?
    public var runningMean: Tensor?
    public var runningVar: Tensor?
    /// Count of training batches seen (an integer in PyTorch; stored as a one-element float tensor).
    public var numBatchesTracked: Tensor?

    /// Batch normalization of NCHW input `[N, numFeatures, H, W]` per channel.
    ///
    /// - Parameters:
    ///   - numFeatures: channels of the input.
    ///   - eps: added to the variance before the square root.
    ///   - momentum: weight of each batch in the running statistics.
    ///   - affine: learn a per-channel scale (`weight`) and shift (`bias`).
    ///   - trackRunningStats: keep running mean and variance for eval mode.
    ///
    /// ### See Also
    /// - `batchNorm`, ``Conv2d``
    public init(_ numFeatures: Int, eps: Double = 1e-5, momentum: Double = 0.1, affine: Bool = true,
                trackRunningStats: Bool = true) {
        self.numFeatures = numFeatures; self.eps = eps; self.momentum = momentum
        self.affine = affine; self.trackRunningStats = trackRunningStats
        if affine {
            weight = Tensor.ones([numFeatures], requiresGrad: true)
            bias = Tensor.zeros([numFeatures], requiresGrad: true)
        }
        if trackRunningStats {
            runningMean = Tensor.zeros([numFeatures])
            runningVar = Tensor.ones([numFeatures])
            numBatchesTracked = Tensor(scalar: 0)
        }
    }

    public override var bufferNames: Set<String> { ["running_mean", "running_var", "num_batches_tracked"] }

    public func callAsFunction(_ input: Tensor) -> Tensor { callAsFunction(input, fusedReLU: false) }

    /// `relu(self(input))` when `fusedReLU`, the ReLU applied as the output is written (one pass fewer
    /// forward and backward); `Sequential` fuses a BatchNorm2d followed by a ReLU this way.
    ///
    /// - Parameters:
    ///   - input: `[N, numFeatures, H, W]` (or `[N, numFeatures]`).
    ///   - fusedReLU: apply a ReLU to the normalized output.
    public func callAsFunction(_ input: Tensor, fusedReLU: Bool) -> Tensor {
        normalize(input) { training in
            batchNorm(input, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias,
                      training: training, momentum: Float(momentum), eps: Float(eps), fusedReLU: fusedReLU)
        }
    }

    /// `relu(self(input) + residual)` as one op (a residual block's end): the normalized values are never
    /// stored, one pass fewer forward and backward than `addReLU(self(input), residual)`.
    ///
    /// - Parameters:
    ///   - input: `[N, numFeatures, H, W]` (or `[N, numFeatures]`).
    ///   - residual: a tensor of `input`'s shape (the block's shortcut).
    ///
    /// ### See Also
    /// - `batchNormAddReLU`, ``BasicBlock``
    public func callAsFunction(_ input: Tensor, addingReLU residual: Tensor) -> Tensor {
        normalize(input) { training in
            batchNormAddReLU(input, residual: residual, runningMean: runningMean, runningVar: runningVar, weight: weight,
                             bias: bias, training: training, momentum: Float(momentum), eps: Float(eps))
        }
    }

    /// Checks the input, counts a training batch and runs `body(training)` (batch statistics when
    /// training or when no running statistics are kept).
    private func normalize(_ input: Tensor, _ body: (Bool) -> Tensor) -> Tensor {
        precondition(input.rank == 4 || input.rank == 2, "BatchNorm2d expects NCHW input, got \(input.shape)")
        precondition(input.shape[1] == numFeatures,
                     "BatchNorm2d(\(numFeatures)) got \(input.shape[1]) channels")
        if training, let n = numBatchesTracked { n.scalars[0] += 1 }
        return Profiler.measure("BatchNorm2d forward") { body(training || runningMean == nil) }
    }

    public override var extraDescription: String {
        "\(numFeatures), eps=\(pyRepr(eps)), momentum=\(pyRepr(momentum)), affine=\(affine ? "True" : "False"), bias=\(affine ? "True" : "False"), track_running_stats=\(trackRunningStats ? "True" : "False")"
    }
}
