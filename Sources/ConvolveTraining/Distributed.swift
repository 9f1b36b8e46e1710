import Foundation
import Dispatch
import CConvolveSupport
import Convolve
import ConvolveNN
import ConvolveData

/// A fixed group of processes training one model together (data parallelism): `size` ranks, this one
/// `rank`. ``MPICommunicator`` is the implementation; the engine needs only these collectives.
public protocol Communicator: AnyObject {
    /// This process's index, `0..<size`.
    var rank: Int { get }
    /// Number of processes.
    var size: Int { get }
    /// Replaces `values` on every rank by their sum over all ranks.
    /// - Parameter values: the same number of floats on every rank.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws
    /// Replaces `values` on every rank by their sum over all ranks.
    /// - Parameter values: the same number of doubles on every rank.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws
    /// Copies rank `root`'s bytes into every rank's buffer.
    /// - Parameters:
    ///   - bytes: the same number of bytes on every rank.
    ///   - root: the rank whose bytes are sent.
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws
    /// Ends every process of the job (a failure on one rank must not leave the others waiting).
    /// - Parameter code: the exit status.
    func abort(code: Int32) -> Never
}

/// Errors of the collectives (a lost peer, a failed call).
public struct DistributedError: Error, CustomStringConvertible {
    public let message: String
    /// - Parameter message: what failed.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// MPI_COMM_WORLD through Open MPI, loaded at run time (`libmpi.so.40`; see ARCHITECTURE.md): start
/// the processes with `mpirun -np N convolve train --distributed …`. ``start()`` initializes MPI once
/// per process; MPI is finalized when the process exits.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    /// Ranks on this machine and this one's index among them (Open MPI's `OMPI_COMM_WORLD_LOCAL_*`),
    /// for dividing the cores between them.
    public let localSize: Int, localRank: Int
    /// Seconds spent inside all-reduce calls so far (the benchmark's communication share).
    public private(set) var allReduceSeconds = 0.0

    nonisolated(unsafe) private static var shared: MPICommunicator?
    private static let lock = NSLock()

    private init(rank: Int, size: Int) {
        self.rank = rank; self.size = size
        let env = ProcessInfo.processInfo.environment
        localSize = env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1
        localRank = env["OMPI_COMM_WORLD_LOCAL_RANK"].flatMap(Int.init) ?? 0
    }

    /// Initializes MPI (once per process) and returns the world communicator. Throws, saying what to
    /// install, when Open MPI is missing.
    public static func start() throws -> MPICommunicator {
        lock.lock(); defer { lock.unlock() }
        if let shared { return shared }
        var rank: Int32 = 0, size: Int32 = 0
        var message = [CChar](repeating: 0, count: 512)
        guard convolve_mpi_init(&rank, &size, &message, Int32(message.count)) == 0 else {
            throw DistributedError(String(cString: message))
        }
        let world = MPICommunicator(rank: Int(rank), size: Int(size))
        shared = world
        atexit { _ = convolve_mpi_finalize() }
        return world
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let rc = convolve_mpi_allreduce_float(values.baseAddress, values.count)
        allReduceSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        if rc != 0 { throw DistributedError("MPI_Allreduce failed (error \(rc)): a rank has stopped") }
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        if convolve_mpi_allreduce_double(values.baseAddress, values.count) != 0 {
            throw DistributedError("MPI_Allreduce failed: a rank has stopped")
        }
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        if convolve_mpi_broadcast(bytes.baseAddress, bytes.count, Int32(root)) != 0 {
            throw DistributedError("MPI_Bcast failed: a rank has stopped")
        }
    }

    public func abort(code: Int32) -> Never {
        convolve_mpi_abort(code)
        exit(code)
    }
}

extension Communicator {
    /// Rank `root`'s tensors into every rank's (same shapes everywhere, e.g. a model's `stateDict()`).
    /// - Parameters:
    ///   - tensors: this rank's tensors, overwritten in place on the other ranks.
    ///   - root: the sending rank.
    public func broadcast(_ tensors: [Tensor], root: Int = 0) throws {
        for t in tensors {
            try t.withUnsafeMutableBytes { try broadcast($0, root: root) }
        }
    }

    /// Rank `root`'s bytes on every rank (other ranks pass anything; their length need not match).
    /// - Parameters:
    ///   - data: the bytes on `root`.
    ///   - root: the sending rank.
    public func broadcast(_ data: [UInt8], root: Int = 0) throws -> [UInt8] {
        var length = [Int64(data.count)]
        try length.withUnsafeMutableBytes { try broadcast($0, root: root) }
        var bytes = rank == root ? data : [UInt8](repeating: 0, count: Int(length[0]))
        try bytes.withUnsafeMutableBytes { try broadcast($0, root: root) }
        return bytes
    }

    /// The sum of every rank's tally (what one process training on all the shards would have counted).
    /// - Parameter tally: this rank's.
    public func sum(_ tally: ClassificationTally) throws -> ClassificationTally {
        var v = [Double(tally.count), Double(tally.correct), tally.lossSum, tally.batchLossSum]
        try v.withUnsafeMutableBufferPointer { try allReduceSum($0) }
        var out = tally
        out.count = Int(v[0]); out.correct = Int(v[1]); out.lossSum = v[2]; out.batchLossSum = v[3] / Double(size)
        return out
    }

    /// Whether a model's parameters are bit-identical on every rank (each rank compares its FNV-1a
    /// hash of them with rank 0's; the mismatches are summed).
    /// - Parameter model: the model.
    public func parametersAgree(_ model: Module) throws -> Bool {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for p in model.parameters() {
            for v in p.scalars { h = (h ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 }
        }
        var root = [h]
        try root.withUnsafeMutableBytes { try broadcast($0, root: 0) }
        var mismatches = [root[0] == h ? 0.0 : 1.0]
        try mismatches.withUnsafeMutableBufferPointer { try allReduceSum($0) }
        return mismatches[0] == 0
    }
}

/// The gradient all-reduce of data-parallel training (DDP, Horovod), run after every backward pass:
/// each rank's mean gradient is weighted by its batch size, summed over ranks in buckets of about
/// `bucketBytes`, and divided by the total batch — exactly the gradient of one process training on
/// the union of the ranks' batches (to float rounding). A rank with an empty batch takes part with
/// weight 0. Parameters without a gradient count as zeros.
public final class GradientAllReduce {
    public let communicator: Communicator
    public let parameters: [Tensor]
    public let bucketBytes: Int
    private var buffer: [Float] = []

    /// - Parameters:
    ///   - parameters: the parameters whose gradients are averaged, in the same order on every rank.
    ///   - communicator: the ranks.
    ///   - bucketBytes: gradient bytes per all-reduce call.
    public init(parameters: [Tensor], communicator: Communicator, bucketBytes: Int = 8 << 20) {
        self.parameters = parameters; self.communicator = communicator; self.bucketBytes = max(4, bucketBytes)
    }

    /// Averages the gradients over all ranks' samples.
    /// - Parameter localCount: samples in this rank's batch.
    public func callAsFunction(localCount: Int) throws {
        let floatsPerBucket = bucketBytes / 4
        // Frozen parameters take no part: every rank froze the same ones, and they get no gradient.
        let parameters = self.parameters.filter(\.requiresGrad)
        var start = 0
        var total = 0.0
        // Buckets of whole parameters (the last slot of the first bucket carries the sample count).
        while start < parameters.count {
            var end = start, floats = 0
            while end < parameters.count && (floats == 0 || floats + parameters[end].count <= floatsPerBucket) {
                floats += parameters[end].count; end += 1
            }
            let withCount = start == 0
            let needed = floats + (withCount ? 1 : 0)
            if buffer.count < needed { buffer = [Float](repeating: 0, count: needed) }
            var offset = 0
            let weight = Float(localCount)
            for p in parameters[start..<end] {
                if let g = p.grad {
                    g.withUnsafeBufferPointer { src in for k in 0..<p.count { buffer[offset + k] = src[k] * weight } }
                } else {
                    for k in 0..<p.count { buffer[offset + k] = 0 }
                }
                offset += p.count
            }
            if withCount { buffer[offset] = weight }
            try buffer.withUnsafeMutableBufferPointer { try communicator.allReduceSum(UnsafeMutableBufferPointer(rebasing: $0[0..<needed])) }
            if withCount { total = Double(buffer[offset]) }
            let scale = total > 0 ? Float(1 / total) : 0
            offset = 0
            for p in parameters[start..<end] {
                if p.grad == nil { p.grad = Tensor.zeros(p.shape) }
                p.grad!.withUnsafeMutableBufferPointer { dst in for k in 0..<p.count { dst[k] = buffer[offset + k] * scale } }
                offset += p.count
            }
            start = end
        }
    }
}

/// Horovod's `DistributedOptimizer` for hand-written loops: `step(localCount:)` averages the
/// gradients over all ranks first, then steps the wrapped optimizer.
///
/// ```swift
/// let world = try MPICommunicator.start()
/// let optimizer = DistributedOptimizer(SGD(model.parameters(), lr: 0.1 * Double(world.size)), communicator: world)
/// try optimizer.broadcastState(of: model)            // rank 0's initial weights everywhere
/// for (x, y) in DataLoader(train, batchSize: 32, shuffle: true, seed: 0, shard: (world.rank, world.size)) {
///     optimizer.zeroGrad()
///     crossEntropy(model(x), y).backward()
///     try optimizer.step(localCount: y.count)
/// }
/// ```
public final class DistributedOptimizer {
    public let optimizer: Optimizer
    public let allReduce: GradientAllReduce

    /// - Parameters:
    ///   - optimizer: updates the parameters from the averaged gradients.
    ///   - communicator: the ranks.
    ///
    /// ### See Also
    /// - ``GradientAllReduce``, ``Trainer/communicator``
    public init(_ optimizer: Optimizer, communicator: Communicator) {
        self.optimizer = optimizer
        allReduce = GradientAllReduce(parameters: optimizer.parameters, communicator: communicator)
    }

    /// Clears the gradients.
    public func zeroGrad() { optimizer.zeroGrad() }

    /// Averages the gradients over all ranks, then updates the parameters.
    /// - Parameter localCount: samples in this rank's batch.
    public func step(localCount: Int) throws {
        try allReduce(localCount: localCount)
        optimizer.step()
    }

    /// Rank 0's weights and buffers on every rank (at the start, as DDP does; fresh optimizers hold
    /// no state yet).
    /// - Parameter model: the model.
    public func broadcastState(of model: Module) throws {
        try allReduce.communicator.broadcast(model.stateDict().map(\.1))
    }
}

/// Data-parallel training over a communicator's ranks (PyTorch's `DistributedDataParallel`): each rank
/// trains on its shard of every global batch (give `fit` a sharded `DataLoader`); rank 0's weights and
/// buffers are broadcast when `fit` starts, gradients are averaged over all ranks' samples after every
/// backward pass (``GradientAllReduce``), the epoch's metrics are summed over ranks, and rank 0's
/// BatchNorm statistics are broadcast before each validation — so every rank holds the same weights
/// and reports the same numbers.
public final class DataParallel: Distribution {
    public let communicator: Communicator
    let allReduce: GradientAllReduce

    /// - Parameters:
    ///   - communicator: the ranks.
    ///   - parameters: the parameters whose gradients are averaged (the optimizer's).
    public init(communicator: Communicator, parameters: [Tensor]) {
        self.communicator = communicator
        allReduce = GradientAllReduce(parameters: parameters, communicator: communicator)
    }

    public func fitBegins(_ trainer: Trainer) throws {
        try communicator.broadcast(trainer.model.stateDict().map(\.1))
    }
    public func gradientsReady(_ trainer: Trainer, localCount: Int) throws {
        try Profiler.measure("gradient all-reduce") { try allReduce(localCount: localCount) }
    }
    public func epochEnds(_ trainer: Trainer, tally: ClassificationTally) throws -> ClassificationTally {
        let total = try communicator.sum(tally)
        try communicator.broadcast(trainer.model.namedBuffers().map(\.1))
        return total
    }
    public func globalTally(_ tally: ClassificationTally) throws -> ClassificationTally { try communicator.sum(tally) }
    public var carriesSavedTally: Bool { communicator.rank == 0 }
    public func fail(_ error: Error) -> Never {
        FileHandle.standardError.write(Data("convolve: error: \(error)\n".utf8))
        communicator.abort(code: 1)
    }
}

extension Trainer {
    /// Data-parallel training over these ranks: sets ``distribution`` to ``DataParallel`` over the
    /// optimizer's parameters (nil: one process).
    public var communicator: Communicator? {
        get { (distribution as? DataParallel)?.communicator }
        set { distribution = newValue.map { DataParallel(communicator: $0, parameters: optimizer.parameters) } }
    }
}
