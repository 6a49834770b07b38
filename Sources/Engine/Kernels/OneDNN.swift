import COneDNN
import Foundation

/// A oneDNN call that failed; `call` names the function.
public struct OneDNNError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let status: Int32
    public var description: String { "oneDNN \(call) failed with status \(status)" }
}

@inline(__always)
func check(_ status: dnnl_status_t, _ call: @autoclosure () -> String) throws(OneDNNError) {
    if status != dnnl_success { throw OneDNNError(call: call(), status: Int32(bitPattern: status.rawValue)) }
}

/// The CPU engine and stream every primitive runs on, and the thread count oneDNN uses.
///
/// oneDNN (Debian's build) runs on GNU OpenMP, so threads are set through `omp_set_num_threads`.
public final class OneDNNRuntime: @unchecked Sendable {
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t
    /// Threads oneDNN's primitives use.
    public let threads: Int

    /// The process-wide runtime; its thread count is fixed by the first call.
    public static func shared(threads: Int) throws(OneDNNError) -> OneDNNRuntime {
        lock.lock()
        defer { lock.unlock() }
        if let existing = instance { return existing }
        let runtime = try OneDNNRuntime(threads: threads)
        instance = runtime
        return runtime
    }

    nonisolated(unsafe) private static var instance: OneDNNRuntime?
    private static let lock = NSLock()

    private init(threads: Int) throws(OneDNNError) {
        self.threads = max(1, threads)
        // OpenMP's wait policy is libgomp's default (spin a while, then sleep): libgomp reads
        // OMP_WAIT_POLICY once, when it loads, so only the environment sets it. Every kernel runs on
        // this one team, so nothing competes with the spinning; measured on Zen 5 (int8, 2 threads,
        // alternated processes) the default served 1x16 in 0.015-0.022 s and 1x128 in 0.077-0.092 s,
        // OMP_WAIT_POLICY=PASSIVE 0.025-0.046 s and 0.084-0.148 s (every parallel region then starts
        // by waking a sleeping thread).
        omp_set_num_threads(Int32(self.threads))
        var engine: dnnl_engine_t?
        try check(dnnl_engine_create(&engine, dnnl_cpu, 0), "dnnl_engine_create")
        var stream: dnnl_stream_t?
        try check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "dnnl_stream_create")
        self.engine = engine!
        self.stream = stream!
    }

    /// Whether oneDNN's int8 kernels accumulate u8×s8 products exactly here (VNNI).
    public static var hasVNNI: Bool {
        [dnnl_cpu_isa_avx512_core_vnni, dnnl_cpu_isa_avx512_core_bf16, dnnl_cpu_isa_avx512_core_amx, dnnl_cpu_isa_avx2_vnni]
            .contains(dnnl_get_effective_cpu_isa())
    }

    /// Whether oneDNN dispatches to AVX-512 here (Zen 4, Zen 5, Intel since Skylake-SP).
    public static var hasAVX512: Bool {
        [dnnl_cpu_isa_avx512_core, dnnl_cpu_isa_avx512_core_vnni, dnnl_cpu_isa_avx512_core_bf16, dnnl_cpu_isa_avx512_core_amx]
            .contains(dnnl_get_effective_cpu_isa())
    }

    /// The instruction set oneDNN dispatches to on this CPU.
    public static var effectiveISA: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx2: return "avx2"
        default: return "other"
        }
    }
}

/// A row-major matrix descriptor (f32 unless told).
func matrixDescriptor(rows: Int, columns: Int, tag: dnnl_format_tag_t, type: dnnl_data_type_t = dnnl_f32) throws(OneDNNError) -> dnnl_memory_desc_t {
    var descriptor = dnnl_memory_desc_t()
    let dims: [dnnl_dim_t] = [dnnl_dim_t(rows), dnnl_dim_t(columns)]
    try check(dnnl_memory_desc_init_by_tag(&descriptor, 2, dims, type, tag), "dnnl_memory_desc_init_by_tag")
    return descriptor
}

/// Row-major single-precision GEMM, `C = alpha · op(A) · op(B) + beta · C` (oneDNN's `dnnl_sgemm`).
@inline(__always)
func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let status = dnnl_sgemm(transposeA ? 84 : 78, transposeB ? 84 : 78, dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k),
                            alpha, a, dnnl_dim_t(lda), b, dnnl_dim_t(ldb), beta, c, dnnl_dim_t(ldc))
    precondition(status == dnnl_success, "dnnl_sgemm rejected valid arguments (status \(status.rawValue))")
}
