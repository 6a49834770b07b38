import COneDNN

/// The number format of the matrix products' operands (`--precision`). Accumulation, LayerNorm,
/// softmax, attention and the heads' reductions stay fp32 whatever the choice.
public enum Precision: String, Sendable, CaseIterable {
    case fp32
    /// bfloat16 weights and activations, fp32 accumulation and output: CPUs with AVX512-BF16.
    case bf16

    /// Nil when this CPU runs the precision; otherwise what is missing, for the error at start.
    public var unsupportedReason: String? {
        switch self {
        case .fp32:
            return nil
        case .bf16:
            let isa = dnnl_get_effective_cpu_isa()
            if isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx { return nil }
            return "bf16 needs a CPU with AVX512-BF16 (the avx512_bf16 flag); oneDNN found \(OneDNNRuntime.effectiveISA) here"
        }
    }

    /// Bytes of one operand element.
    var elementSize: Int { self == .bf16 ? 2 : 4 }
    var dataType: dnnl_data_type_t { self == .bf16 ? dnnl_bf16 : dnnl_f32 }
}

/// fp32 → bf16 with round-to-nearest-even (inputs are finite), spread over the threads.
enum BFloat16Conversion {
    static func convert(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<UInt16>, count: Int, threads: Int) {
        let workers = count >= 1 << 16 ? max(1, threads) : 1
        let chunk = (count / workers + 15) & ~15
        let shared = Shared((source: source, target: target))
        runWorkers(workers) { worker in
            let (source, target) = shared.value
            let start = min(count, worker * chunk)
            let end = min(count, start + chunk)
            var i = start
            while i + 16 <= end {
                let bits = UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<UInt32>.self)
                let rounded = bits &+ (SIMD16<UInt32>(repeating: 0x7FFF) &+ ((bits &>> 16) & 1))
                UnsafeMutableRawPointer(target + i).storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: rounded &>> 16), as: SIMD16<UInt16>.self)
                i += 16
            }
            while i < end {
                let bits = source[i].bitPattern
                target[i] = UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
                i += 1
            }
        }
    }
}
