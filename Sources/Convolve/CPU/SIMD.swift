/// The 512-bit vector every kernel works in (16 floats; one AVX-512 register with `-march=native`).
typealias V16 = SIMD16<Float>

/// 16 floats from `p`, any alignment.
@inline(__always) func ld(_ p: UnsafePointer<Float>) -> V16 {
    UnsafeRawPointer(p).loadUnaligned(as: V16.self)
}

/// Stores 16 floats at `p`, any alignment.
@inline(__always) func st(_ v: V16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self)
}
