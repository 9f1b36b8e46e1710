import Foundation
import RealModule

/// The untraced body of `linear` (see there).
func linearUntraced(_ input: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let k = weight.shape[1], nOut = weight.shape[0]
    precondition(input.rank >= 1 && input.shape[input.rank - 1] == k,
                 "linear: input \(input.shape) does not end in \(k) features")
    let m = input.count / k
    var out = [Float](repeating: 0, count: m * nOut)
    if let b = bias?.storage {
        for r in 0..<m { for j in 0..<nOut { out[r * nOut + j] = b[j] } }
    }
    input.storage.withUnsafeBufferPointer { px in weight.storage.withUnsafeBufferPointer { pw in
    out.withUnsafeMutableBufferPointer { po in
        sgemm(transA: false, transB: true, m: m, n: nOut, k: k, a: px.baseAddress!, lda: k,
              b: pw.baseAddress!, ldb: k, beta: bias == nil ? 0 : 1, c: po.baseAddress!, ldc: nOut)
    } } }
    var inputs = [input, weight]
    if let bias { inputs.append(bias) }
    return Tensor.result(out, Array(input.shape.dropLast()) + [nOut], inputs, op: "linear") { g in
        g.withUnsafeBufferPointer { pg in
            input.accumulate(overwriting: { dx, fresh in weight.storage.withUnsafeBufferPointer { pw in
                sgemm(transA: false, transB: false, m: m, n: k, k: nOut, a: pg.baseAddress!, lda: nOut,
                      b: pw.baseAddress!, ldb: k, beta: fresh ? 0 : 1, c: dx.baseAddress!, ldc: k)
            } })
            weight.accumulate(overwriting: { dw, fresh in input.storage.withUnsafeBufferPointer { px in
                sgemm(transA: true, transB: false, m: nOut, n: k, k: m, a: pg.baseAddress!, lda: nOut,
                      b: px.baseAddress!, ldb: k, beta: fresh ? 0 : 1, c: dw.baseAddress!, ldc: k)
            } })
            bias?.accumulate { db in
                for r in 0..<m { for j in 0..<nOut { db[j] += pg[r * nOut + j] } }
            }
        }
    }
}

/// `input · weightᵀ + bias` for `input` `[..., in]`, `weight` `[out, in]`, `bias` `[out]`
/// (`torch.nn.functional.linear`), with the bias fused into the output pass.
///
/// - Parameters:
///   - input: `[..., in]`.
///   - weight: `[out, in]` (PyTorch's layout).
///   - bias: `[out]`, or nil.
/// - Returns: `[..., out]`.
public func linear(_ input: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let y = OpTrace.suppressed { linearUntraced(input, weight: weight, bias: bias) }
    OpTrace.current?.count(multiplyAdds: y.count * weight.shape[1])
    if input.rank == 2 {
        OpTrace.record("Gemm", [input, weight, bias], output: y, [("transB", .int(1))])
    }
    return y
}
