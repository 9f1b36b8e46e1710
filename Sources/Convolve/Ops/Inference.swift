import Foundation

/// Runs an inference `body` (a model's forward pass in eval mode) on slices of `input` of at most
/// `slice` items along dimension 0 (64 measured best for mnist-cnn: 32 re-reads the fc1 weights twice as
/// often, 128 falls out of cache), slices in parallel on the worker pool, without recording
/// gradients, and concatenates the results along dimension 0.
///
/// For a model whose items do not interact in eval mode (every layer here: batch norm uses its running
/// statistics) the result equals `body(input)`. A batch of 1000 images then never holds 1000 images'
/// activations at once (the peak is two slices' worth), and each slice's activations stay in cache
/// while they pass through all layers. Kernels inside `body` run on their slice's thread.
///
/// - Parameters:
///   - input: a batch, `[N, ...]`.
///   - slice: images per slice.
///   - body: the forward pass (eval mode: items must be independent).
public func inferInSlices(_ input: Tensor, slice: Int = 64, _ body: (Tensor) -> Tensor) -> Tensor {
    let n = input.rank == 0 ? 0 : input.shape[0]
    let size = Swift.max(1, slice)
    if n <= size || Parallel.threads <= 1 && n <= 4 * size {
        return withNoGrad { body(input) }
    }
    let chunks = (n + size - 1) / size
    let results = UnsafeMutablePointer<Tensor?>.allocate(capacity: chunks)
    results.initialize(repeating: nil, count: chunks)
    defer { results.deinitialize(count: chunks); results.deallocate() }
    let x = input.detach()
    withoutActuallyEscaping(body) { body in
        WorkerPool.shared.run(chunks: chunks, workers: Swift.min(Parallel.threads, chunks) - 1) { i in
            let part = x[(i * size)..<Swift.min(n, (i + 1) * size)]
            results[i] = withNoGrad { body(part) }
        }
    }
    return withNoGrad { Tensor.cat((0..<chunks).map { results[$0]! }) }
}
