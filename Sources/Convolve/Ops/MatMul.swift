import Foundation
import RealModule

// MARK: - Matrix multiply

extension Tensor {
    /// Matrix product. `a` is `[..., M, K]` (leading dimensions flattened into rows) and `b` is `[K, N]`,
    /// or both are `[B, M, K]` / `[B, K, N]` for a batched product.
    ///
    /// - Parameter b: `[k, n]` (or batched `[batch, k, n]`) for this `[m, k]` (or `[batch, m, k]`).
    public func matmul(_ b: Tensor) -> Tensor {
        let a = self
        precondition(a.rank >= 1 && b.rank >= 1, "matmul of scalars")
        if a.rank == 3 && b.rank == 3 {
            let (bs, m, k, n) = (a.shape[0], a.shape[1], a.shape[2], b.shape[2])
            precondition(b.shape[0] == bs && b.shape[1] == k, "matmul shapes \(a.shape) and \(b.shape)")
            var out = [Float](repeating: 0, count: bs * m * n)
            a.storage.withUnsafeBufferPointer { pa in b.storage.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { pc in
                for i in 0..<bs {
                    sgemm(transA: false, transB: false, m: m, n: n, k: k, a: pa.baseAddress! + i * m * k, lda: k,
                          b: pb.baseAddress! + i * k * n, ldb: n, c: pc.baseAddress! + i * m * n, ldc: n)
                }
            } } }
            return Tensor.result(out, [bs, m, n], [a, b], op: "bmm") { g in
                g.withUnsafeBufferPointer { pg in
                    a.accumulate { da in b.storage.withUnsafeBufferPointer { pb in
                        for i in 0..<bs {
                            sgemm(transA: false, transB: true, m: m, n: k, k: n, a: pg.baseAddress! + i * m * n, lda: n,
                                  b: pb.baseAddress! + i * k * n, ldb: n, beta: 1, c: da.baseAddress! + i * m * k, ldc: k)
                        }
                    } }
                    b.accumulate { db in a.storage.withUnsafeBufferPointer { pa in
                        for i in 0..<bs {
                            sgemm(transA: true, transB: false, m: k, n: n, k: m, a: pa.baseAddress! + i * m * k, lda: k,
                                  b: pg.baseAddress! + i * m * n, ldb: n, beta: 1, c: db.baseAddress! + i * k * n, ldc: n)
                        }
                    } }
                }
            }
        }
        let k = a.shape[a.rank - 1]
        let m = a.count / Swift.max(k, 1)
        let bMat = b.rank == 1 ? 1 : b.shape[1]
        precondition(b.rank <= 2 && b.shape[0] == k, "matmul shapes \(a.shape) and \(b.shape)")
        let n = bMat
        var out = [Float](repeating: 0, count: m * n)
        a.storage.withUnsafeBufferPointer { pa in b.storage.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { pc in
            sgemm(transA: false, transB: false, m: m, n: n, k: k, a: pa.baseAddress!, lda: k,
                  b: pb.baseAddress!, ldb: n, c: pc.baseAddress!, ldc: n)
        } } }
        var outShape = Array(a.shape.dropLast())
        if b.rank == 2 { outShape.append(n) }
        return Tensor.result(out, outShape, [a, b], op: "matmul") { g in
            g.withUnsafeBufferPointer { pg in
                a.accumulate { da in b.storage.withUnsafeBufferPointer { pb in
                    sgemm(transA: false, transB: true, m: m, n: k, k: n, a: pg.baseAddress!, lda: n,
                          b: pb.baseAddress!, ldb: n, beta: 1, c: da.baseAddress!, ldc: k)
                } }
                b.accumulate { db in a.storage.withUnsafeBufferPointer { pa in
                    sgemm(transA: true, transB: false, m: k, n: n, k: m, a: pa.baseAddress!, lda: k,
                          b: pg.baseAddress!, ldb: n, beta: 1, c: db.baseAddress!, ldc: n)
                } }
            }
        }
    }
}
