import Foundation

// Single-precision matrix multiply, BLIS-style: B is packed into 32-column panels, A into 8-row
// panels, and an 8x32 micro-kernel keeps 16 SIMD16 accumulators (AVX-512 zmm registers when built
// with a CPU target) in registers across the K loop.

private let MR = 8, NR = 32
private let KC = 256, MC = 128, NC = 1024

/// Row addressing of B and C, and what the GEMM does when it writes C: store or add, an optional
/// per-row bias, an optional ReLU.
struct GemmOptions {
    /// Row r of the stored B matrix (of Bᵀ when transposed) starts at `b + bRows[r]` instead of `b + r * ldb`
    /// (a convolution reads shifted rows of an image this way instead of building im2col columns).
    /// Untransposed, such rows are read in place by the micro-kernel, not packed: each row must have 15
    /// readable floats past column n (a partial tile loads whole 16-float vectors).
    var bRows: UnsafePointer<Int>? = nil
    /// Row i of C starts at `c + cRows[i]` (rows may overlap: a convolution's input gradient adds every
    /// kernel tap's row into the image). Only with beta == 1.
    var cRows: UnsafePointer<Int>? = nil
    /// With `bRows`, untransposed: 32-column panel j of B starts at `b + bCols[j]` instead of `b + 32·j`
    /// (a channels-last image: each panel is one kernel tap's 32 channels).
    var bCols: UnsafePointer<Int>? = nil
    /// Store the first K block's result instead of adding it (beta == 0: C is never read).
    var overwrite = false
    /// Added to every element of row i (with `overwrite`): `C[i, j] = bias[i] + ...` (a conv's bias).
    var rowBias: UnsafePointer<Float>? = nil
    /// `max(C, 0)` after the last K block (a fused ReLU).
    var relu = false
}

/// `C = alpha * op(A) * op(B) + beta * C` for row-major matrices, where `op(X)` is `X` or `Xᵀ`.
/// `op(A)` is m×k, `op(B)` is k×n, `C` is m×n with leading dimensions (row strides) `lda`, `ldb`, `ldc`.
/// Splits columns (or rows) across threads when the product is large.
/// - Parameters:
///   - transA: use `Aᵀ`.
///   - transB: use `Bᵀ`.
///   - m: rows of `op(A)` and `C`.
///   - n: columns of `op(B)` and `C`.
///   - k: columns of `op(A)`, rows of `op(B)`.
///   - alpha: scales the product.
///   - a: `A`, row stride `lda`.
///   - lda: `A`'s row stride.
///   - b: `B`, row stride `ldb`.
///   - ldb: `B`'s row stride.
///   - beta: scales `C` first (0: `C` is only written).
///   - c: `C`, row stride `ldc`.
///   - ldc: `C`'s row stride.
///   - threads: threads to use (default: `Parallel.threads` for large products).
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int? = nil) {
    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
          beta: beta, c: c, ldc: ldc, threads: threads, rowBias: nil, relu: false)
}

/// `C = relu?(alpha * op(A) * op(B) + beta * C + rowBias[i])`, the bias and ReLU applied as C is
/// written (no extra passes over C).
func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int?,
           rowBias: UnsafePointer<Float>?, relu: Bool,
           bRows: UnsafePointer<Int>? = nil, cRows: UnsafePointer<Int>? = nil, bCols: UnsafePointer<Int>? = nil) {
    if m == 0 || n == 0 { return }
    precondition(cRows == nil || (beta == 1 && rowBias == nil && !relu), "sgemm: cRows needs beta 1, no epilogue")
    precondition(bCols == nil || (bRows != nil && !transB && threads == 1), "sgemm: bCols needs bRows, no transpose")
    var ep = GemmOptions(bRows: bRows, cRows: cRows, bCols: bCols, overwrite: beta == 0 && k > 0 && alpha != 0,
                         rowBias: nil, relu: relu)
    if cRows != nil {
        // accumulate into the rows as given
    } else if !ep.overwrite || beta != 0 {
        // beta != 0, or nothing to multiply: scale C and add the bias here.
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 { row.update(repeating: 0, count: n) } else if beta != 1 { for j in 0..<n { row[j] *= beta } }
            if let rowBias { for j in 0..<n { row[j] += rowBias[i] } }
        }
    } else {
        ep.rowBias = rowBias
    }
    if k == 0 || alpha == 0 {
        if relu { for i in 0..<m { for j in 0..<n { c[i * ldc + j] = Swift.max(c[i * ldc + j], 0) } } }
        return
    }
    let work = m * n * k
    let maxThreads = Parallel.available(threads)
    // Split by rows or columns, every thread packs all of the other operand: worth avoiding only where
    // that copy is big (≥ 1 MB; smaller, the split would only change the sums' rounding).
    let kParts = Swift.min(maxThreads, k / KC), repacked = k * (n >= m ? m : n)
    if kParts > 1 && repacked >= 1 << 18 && k >= 8 * Swift.max(m, n) && !relu && cRows == nil && bRows == nil {
        gemmSplitK(transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc, ep, parts: kParts)
        return
    }
    let t = work >= Parallel.minWorkToSplit ? Swift.min(maxThreads, Swift.max(1, Swift.max(m / MR, n / NR))) : 1
    if t <= 1 {
        gemmSerial(transA, transB, 0, m, 0, n, k, alpha, a, lda, b, ldb, c, ldc, ep)
        return
    }
    // Split the larger dimension into whole panels, one chunk per thread, on the shared worker pool (a
    // hot pool hands work out in ~1 µs, GCD's concurrentPerform wakes threads in ~30 µs). More chunks
    // would re-pack the other operand per chunk: 4 per thread measured 150–160 GF/s vs 196–205 here.
    // Where that operand is small (≤ 64 KB: fc1's backward, A = the batch's 64 × 128 gradient), 4 per
    // thread cost nothing and let a thread the machine slows hand over the rest.
    let splitN = n >= m
    let panels = splitN ? (n + NR - 1) / NR : (m + MR - 1) / MR
    let perThread = (splitN ? m : n) * k <= 1 << 14 ? Parallel.chunksPerThread : 1
    let chunks = Swift.min(panels, t * perThread)
    WorkerPool.shared.run(chunks: chunks, workers: t - 1) { i in
        if splitN {
            let lo = Swift.min(n, panels * i / chunks * NR), hi = Swift.min(n, panels * (i + 1) / chunks * NR)
            if hi > lo { gemmSerial(transA, transB, 0, m, lo, hi, k, alpha, a, lda, b, ldb, c, ldc, ep) }
        } else {
            let lo = Swift.min(m, panels * i / chunks * MR), hi = Swift.min(m, panels * (i + 1) / chunks * MR)
            if hi > lo { gemmSerial(transA, transB, lo, hi, 0, n, k, alpha, a, lda, b, ldb, c, ldc, ep) }
        }
    }
}

/// A long, thin product (K much larger than M and N: a fully connected layer's forward pass with a
/// small batch) split along K, one part per thread: each thread packs its own part of A and of B once.
/// Split by rows or columns, every thread would pack the whole of the other operand (fc1 of mnist-cnn:
/// 64 × 9216 floats of A, twice). The first part is written to C as `ep` says (with the bias); the
/// others into scratch, added to C in part order afterwards (deterministic for a thread count).
/// `parts` (at least 2): one per thread, each at least one K block long.
private func gemmSplitK(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ ep: GemmOptions, parts: Int) {
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: (parts - 1) * m * n)
    defer { scratch.deallocate() }
    // Part boundaries on multiples of 16 (whole vectors of a K row).
    @inline(__always) func start(_ i: Int) -> Int { i == parts ? k : k * i / parts / 16 * 16 }
    WorkerPool.shared.run(chunks: parts, workers: parts - 1) { i in
        let k0 = start(i), k1 = start(i + 1)
        let aPart = transA ? a + k0 * lda : a + k0, bPart = transB ? b + k0 : b + k0 * ldb
        if i == 0 {
            gemmSerial(transA, transB, 0, m, 0, n, k1 - k0, alpha, aPart, lda, bPart, ldb, c, ldc, ep)
        } else {
            var own = ep
            own.overwrite = true; own.rowBias = nil
            gemmSerial(transA, transB, 0, m, 0, n, k1 - k0, alpha, aPart, lda, bPart, ldb,
                       scratch + (i - 1) * m * n, n, own)
        }
    }
    for i in 1..<parts {
        let part = scratch + (i - 1) * m * n
        for r in 0..<m {
            let src = part + r * n, dst = c + r * ldc
            for j in 0..<n { dst[j] += src[j] }
        }
    }
}

/// Adds `alpha * op(A)[m0..<m1, :] * op(B)[:, n0..<n1]` into C on the calling thread, written as `ep` says.
private func gemmSerial(_ transA: Bool, _ transB: Bool, _ m0: Int, _ m1: Int, _ n0: Int, _ n1: Int, _ k: Int,
                        _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                        _ b: UnsafePointer<Float>, _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
                        _ ep: GemmOptions) {
    // K blocks of at most KC, split evenly (288 = one block of 288, not 256 + 32: a short last
    // block costs a full pass over C for little work).
    let kBlocks = (k + KC + 63) / (KC + 64)
    let kcMax = (k + kBlocks - 1) / kBlocks
    let ncMax = Swift.min(NC, (n1 - n0 + NR - 1) / NR * NR)
    let mcMax = Swift.min(MC, (m1 - m0 + MR - 1) / MR * MR)
    // 64-byte aligned panels: every SIMD16 load of a packed panel stays within one cache line.
    let bRaw = UnsafeMutableRawPointer.allocate(byteCount: kcMax * ncMax * 4, alignment: 64)
    let aRaw = UnsafeMutableRawPointer.allocate(byteCount: kcMax * mcMax * 4, alignment: 64)
    defer { bRaw.deallocate(); aRaw.deallocate() }
    let bp = bRaw.bindMemory(to: Float.self, capacity: kcMax * ncMax)
    // Untransposed B given by row offsets is read in place, not packed (see GemmOptions.bRows).
    let directB = !transB && ep.bRows != nil
    let ap = aRaw.bindMemory(to: Float.self, capacity: kcMax * mcMax)
    var jc = n0
    while jc < n1 {
        let nc = Swift.min(NC, n1 - jc)
        var pc = 0
        while pc < k {
            let kc = Swift.min(kcMax, k - pc)
            if !directB { packB(transB, b, ldb, ep.bRows, pc, kc, jc, nc, bp) }
            var ic = m0
            while ic < m1 {
                let mc = Swift.min(MC, m1 - ic)
                packA(transA, a, lda, ic, mc, pc, kc, ap)
                var jr = 0
                while jr < nc {
                    let nr = Swift.min(NR, nc - jr)
                    var ir = 0
                    while ir < mc {
                        let mr = Swift.min(MR, mc - ir)
                        let cRows = ep.cRows.map { $0 + ic + ir }
                        microKernel(kc, ap + ir * kc,
                                    directB ? b + (ep.bCols?[(jc + jr) / NR] ?? jc + jr) : UnsafePointer(bp + jr * kc),
                                    c + (cRows == nil ? (ic + ir) * ldc : 0) + jc + jr,
                                    ldc, cRows, alpha, mr, nr,
                                    accumulate: pc > 0 || !ep.overwrite,
                                    bias: pc == 0 ? ep.rowBias.map { $0 + ic + ir } : nil,
                                    relu: ep.relu && pc + kc >= k,
                                    bRows: directB ? ep.bRows! + pc : nil)
                        ir += MR
                    }
                    jr += NR
                }
                ic += MC
            }
            pc += kcMax
        }
        jc += NC
    }
}

/// Packs op(B)[pc..<pc+kc, jc..<jc+nc] as consecutive kc×32 panels (row p of a panel is 32 floats),
/// zero-padding the last panel.
@inline(__always)
private func packB(_ trans: Bool, _ b: UnsafePointer<Float>, _ ldb: Int, _ rows: UnsafePointer<Int>?, _ pc: Int,
                   _ kc: Int, _ jc: Int, _ nc: Int, _ out: UnsafeMutablePointer<Float>) {
    @inline(__always) func row(_ r: Int) -> UnsafePointer<Float> { b + (rows?[r] ?? r * ldb) }
    if !trans {
        // Row by row: each source row is read front to back (prefetcher-friendly; rows of a shifted
        // image are scattered), its 32-float pieces go to consecutive panels.
        let full = nc / NR * NR
        for p in 0..<kc {
            let src = row(pc + p) + jc
            var dst = out + p * NR
            var j = 0
            while j < full {
                st(ld(src + j), dst); st(ld(src + j + 16), dst + 16)
                j += NR; dst += kc * NR
            }
            if j < nc {
                for q in 0..<(nc - j) { dst[q] = src[j + q] }
                for q in (nc - j)..<NR { dst[q] = 0 }
            }
        }
        return
    }
    var j = 0
    while j < nc {
        let w = Swift.min(NR, nc - j)
        let panel = out + j * kc
        do {
            // Column q of the panel is row (jc+j+q) of B: transpose 16×16 blocks in registers, then
            // the ragged edges element by element.
            if w < NR { for p in 0..<kc { for q in w..<NR { panel[p * NR + q] = 0 } } }
            let kc16 = kc & ~15, w16 = w & ~15
            var q = 0
            while q < w16 {
                var p = 0
                while p < kc16 {
                    let r0 = jc + j + q
                    transpose16x16({ row(r0 + $0) + pc + p }, panel + p * NR + q, NR)
                    p += 16
                }
                q += 16
            }
            for q in 0..<w {
                let src = row(jc + j + q) + pc
                for p in (q < w16 ? kc16 : 0)..<kc { panel[p * NR + q] = src[p] }
            }
        }
        j += NR
    }
}

/// Packs op(A)[ic..<ic+mc, pc..<pc+kc] as consecutive kc×8 panels, zero-padding the last panel.
@inline(__always)
private func packA(_ trans: Bool, _ a: UnsafePointer<Float>, _ lda: Int, _ ic: Int, _ mc: Int,
                   _ pc: Int, _ kc: Int, _ out: UnsafeMutablePointer<Float>) {
    var i = 0
    while i < mc {
        let h = Swift.min(MR, mc - i)
        let panel = out + i * kc
        if !trans {
            // Rows of A become the panel's 8-float columns: transpose 8×16 blocks in registers.
            let kc16 = h == MR ? kc & ~15 : 0
            var p = 0
            while p < kc16 {
                transpose8x16(a + (ic + i) * lda + pc + p, lda, panel + p * MR)
                p += 16
            }
            for r in 0..<MR {
                if r < h {
                    let src = a + (ic + i + r) * lda + pc
                    for p in kc16..<kc { panel[p * MR + r] = src[p] }
                } else {
                    for p in 0..<kc { panel[p * MR + r] = 0 }
                }
            }
        } else {
            for p in 0..<kc {
                let src = a + (pc + p) * lda + ic + i
                let dst = panel + p * MR
                for r in 0..<h { dst[r] = src[r] }
                if h < MR { for r in h..<MR { dst[r] = 0 } }
            }
        }
        i += MR
    }
}

/// One round of a perfect unshuffle of the `count`×16 floats held in `v` into `w` (even elements first,
/// then odd ones). For 2^k vectors of 16, `k + 4` rounds transpose; fewer rounds rotate the index bits.
@inline(__always)
private func unshuffle(_ v: UnsafeMutablePointer<V16>, _ w: UnsafeMutablePointer<V16>, _ count: Int) {
    let half = count / 2
    for j in 0..<half {
        w[j] = V16(lowHalf: v[2 * j].evenHalf, highHalf: v[2 * j + 1].evenHalf)
        w[j + half] = V16(lowHalf: v[2 * j].oddHalf, highHalf: v[2 * j + 1].oddHalf)
    }
}

/// `dst[i * ldd + j] = src(j)[i]` for a 16×16 block (`src(j)` is row j): 16 loads, four unshuffle rounds in
/// registers (the index bits rotate by four), 16 stores.
/// With `rows`, only those rows of the result are stored, the first at `dst`.
@inline(__always)
func transpose16x16(_ src: (Int) -> UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ ldd: Int,
                    rows: Range<Int> = 0..<16, add: Bool = false) {
    withUnsafeTemporaryAllocation(of: V16.self, capacity: 16) { v in
    withUnsafeTemporaryAllocation(of: V16.self, capacity: 16) { w in
        let v = v.baseAddress!, w = w.baseAddress!
        for i in 0..<16 { v[i] = ld(src(i)) }
        unshuffle(v, w, 16); unshuffle(w, v, 16); unshuffle(v, w, 16); unshuffle(w, v, 16)
        if add {
            for i in rows { let d = dst + (i - rows.lowerBound) * ldd; st(v[i] + ld(d), d) }
        } else {
            for i in rows { st(v[i], dst + (i - rows.lowerBound) * ldd) }
        }
    } }
}

/// Packs 8 rows of 16 floats (row stride `lds`) as 16 consecutive groups of 8 (`dst[p * 8 + r]`).
@inline(__always)
func transpose8x16(_ src: UnsafePointer<Float>, _ lds: Int, _ dst: UnsafeMutablePointer<Float>) {
    withUnsafeTemporaryAllocation(of: V16.self, capacity: 8) { v in
    withUnsafeTemporaryAllocation(of: V16.self, capacity: 8) { w in
        let v = v.baseAddress!, w = w.baseAddress!
        for i in 0..<8 { v[i] = ld(src + i * lds) }
        // 7 index bits (r: 3, p: 4); four right rotations move p above r.
        unshuffle(v, w, 8); unshuffle(w, v, 8); unshuffle(v, w, 8); unshuffle(w, v, 8)
        for i in 0..<8 { st(v[i], dst + i * 16) }
    } }
}

/// C[0..<mr, 0..<nr] += alpha * Apanel(8×kc) * Bpanel(kc×32) (`=` when not `accumulate`); row r of C
/// starts at `c + cRows[r]` when a table is given. With `bRows`, B's row k is read in place at
/// `b + bRows[k]`. A's k-th 8 values start `aStride` after the previous k's (default: packed; a
/// channels-last matrix read in place otherwise) and lie `aRowStride` apart (default: adjacent; the
/// channels-last Winograd forward reads its tiles' rows in place).
@inline(__always)
func microKernel(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                         _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ cRows: UnsafePointer<Int>?,
                         _ alpha: Float, _ mr: Int, _ nr: Int,
                         accumulate: Bool, bias: UnsafePointer<Float>?, relu: Bool,
                         bRows: UnsafePointer<Int>? = nil, aStride: Int = MR, aRowStride: Int = 1) {
    var c00 = V16(), c01 = V16(), c10 = V16(), c11 = V16(), c20 = V16(), c21 = V16(), c30 = V16(), c31 = V16()
    var c40 = V16(), c41 = V16(), c50 = V16(), c51 = V16(), c60 = V16(), c61 = V16(), c70 = V16(), c71 = V16()
    var pa = a, pb = b
    // The four loops below repeat one body on purpose: factoring it into a nested function that
    // updates the accumulators spills them to memory (measured: 40 GF/s instead of 99 on one core).
    if let bRows {
        // Unpacked B: row p is read in place at b + bRows[p] (a shifted image row; the ~19 KB a
        // 32-column window of all rows touches stays in L1 across the tile's 8-row panels).
        if nr <= 16 {
            for p in 0..<kc {
                let b0 = ld(b + bRows[p])
                c00.addProduct(V16(repeating: pa[0]), b0); c10.addProduct(V16(repeating: pa[1 * aRowStride]), b0)
                c20.addProduct(V16(repeating: pa[2 * aRowStride]), b0); c30.addProduct(V16(repeating: pa[3 * aRowStride]), b0)
                c40.addProduct(V16(repeating: pa[4 * aRowStride]), b0); c50.addProduct(V16(repeating: pa[5 * aRowStride]), b0)
                c60.addProduct(V16(repeating: pa[6 * aRowStride]), b0); c70.addProduct(V16(repeating: pa[7 * aRowStride]), b0)
                pa += aStride
            }
        } else {
            for p in 0..<kc {
                let row = b + bRows[p]
                let b0 = ld(row), b1 = ld(row + 16)
                var av = V16(repeating: pa[0]); c00.addProduct(av, b0); c01.addProduct(av, b1)
                av = V16(repeating: pa[1 * aRowStride]); c10.addProduct(av, b0); c11.addProduct(av, b1)
                av = V16(repeating: pa[2 * aRowStride]); c20.addProduct(av, b0); c21.addProduct(av, b1)
                av = V16(repeating: pa[3 * aRowStride]); c30.addProduct(av, b0); c31.addProduct(av, b1)
                av = V16(repeating: pa[4 * aRowStride]); c40.addProduct(av, b0); c41.addProduct(av, b1)
                av = V16(repeating: pa[5 * aRowStride]); c50.addProduct(av, b0); c51.addProduct(av, b1)
                av = V16(repeating: pa[6 * aRowStride]); c60.addProduct(av, b0); c61.addProduct(av, b1)
                av = V16(repeating: pa[7 * aRowStride]); c70.addProduct(av, b0); c71.addProduct(av, b1)
                pa += aStride
            }
        }
    } else if nr <= 16 {
        // Edge tile at most 16 wide: the panel's right half is zero padding, so skip its FMAs
        // (a 624-column wide convolution output would otherwise waste 2.5%).
        for _ in 0..<kc {
            let b0 = ld(pb)
            c00.addProduct(V16(repeating: pa[0]), b0); c10.addProduct(V16(repeating: pa[1 * aRowStride]), b0)
            c20.addProduct(V16(repeating: pa[2 * aRowStride]), b0); c30.addProduct(V16(repeating: pa[3 * aRowStride]), b0)
            c40.addProduct(V16(repeating: pa[4 * aRowStride]), b0); c50.addProduct(V16(repeating: pa[5 * aRowStride]), b0)
            c60.addProduct(V16(repeating: pa[6 * aRowStride]), b0); c70.addProduct(V16(repeating: pa[7 * aRowStride]), b0)
            pa += aStride; pb += NR
        }
    } else {
    for _ in 0..<kc {
        let b0 = ld(pb), b1 = ld(pb + 16)
        var av = V16(repeating: pa[0]); c00.addProduct(av, b0); c01.addProduct(av, b1)
        av = V16(repeating: pa[1 * aRowStride]); c10.addProduct(av, b0); c11.addProduct(av, b1)
        av = V16(repeating: pa[2 * aRowStride]); c20.addProduct(av, b0); c21.addProduct(av, b1)
        av = V16(repeating: pa[3 * aRowStride]); c30.addProduct(av, b0); c31.addProduct(av, b1)
        av = V16(repeating: pa[4 * aRowStride]); c40.addProduct(av, b0); c41.addProduct(av, b1)
        av = V16(repeating: pa[5 * aRowStride]); c50.addProduct(av, b0); c51.addProduct(av, b1)
        av = V16(repeating: pa[6 * aRowStride]); c60.addProduct(av, b0); c61.addProduct(av, b1)
        av = V16(repeating: pa[7 * aRowStride]); c70.addProduct(av, b0); c71.addProduct(av, b1)
        pa += aStride; pb += NR
    }
    }
    let al = V16(repeating: alpha)
    if mr == MR && (nr == NR || nr == 16) {
        // Whole rows of 32, or of 16 (a half-width edge tile: only the first vector of each row).
        let full = nr == NR
        @inline(__always) func put(_ v: V16, _ p: UnsafeMutablePointer<Float>, _ bias: Float?) {
            var r = al * v
            if accumulate { r += ld(p) }
            if let bias { r += V16(repeating: bias) }
            if relu { r = r.replacing(with: 0, where: r .< 0) }
            st(r, p)
        }
        @inline(__always) func upd(_ r: Int, _ v0: V16, _ v1: V16) {
            let p = c + (cRows?[r] ?? r * ldc), b = bias.map { $0[r] }
            put(v0, p, b)
            if full { put(v1, p + 16, b) }
        }
        upd(0, c00, c01); upd(1, c10, c11); upd(2, c20, c21); upd(3, c30, c31)
        upd(4, c40, c41); upd(5, c50, c51); upd(6, c60, c61); upd(7, c70, c71)
        return
    }
    withUnsafeTemporaryAllocation(of: V16.self, capacity: 16) { t in
        t[0] = c00; t[1] = c01; t[2] = c10; t[3] = c11; t[4] = c20; t[5] = c21; t[6] = c30; t[7] = c31
        t[8] = c40; t[9] = c41; t[10] = c50; t[11] = c51; t[12] = c60; t[13] = c61; t[14] = c70; t[15] = c71
        let f = UnsafeRawPointer(t.baseAddress!).assumingMemoryBound(to: Float.self)
        for r in 0..<mr {
            let p = c + (cRows?[r] ?? r * ldc), src = f + r * NR
            for q in 0..<nr {
                var v = alpha * src[q]
                if accumulate { v += p[q] }
                if let bias { v += bias[r] }
                p[q] = relu ? Swift.max(v, 0) : v
            }
        }
    }
}
