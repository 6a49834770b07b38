import COneDNN

/// The number format of the matrix products' operands (`--precision`). Accumulation, LayerNorm,
/// softmax, attention and the heads' reductions stay fp32 whatever the choice.
public enum Precision: String, Sendable, CaseIterable {
    case fp32
    /// bfloat16 weights and activations, fp32 accumulation and output: CPUs with AVX512-BF16.
    case bf16
    /// s8 weights (per output channel) × u8 activations (quantised per row as they arrive), int32
    /// accumulation, fp32 output; levels per CPU in ``Int8Levels``.
    case int8

    /// What `--precision auto` runs: the fastest precision that passes the accuracy gates
    /// (``PrecisionComparison/passesGates(for:)``) on this CPU. int8 is the fastest everywhere
    /// (VNNI: 3×, AVX2: about 2× the fp32 matrix-product rate) and `bgem3 eval` measured it within
    /// the gates on both code paths (full-range with VNNI, 7-bit weights without; see the README).
    public static var automatic: Precision { .int8 }

    /// The names `--precision` accepts: `auto` and every case.
    public static let choices = ["auto"] + allCases.map(\.rawValue)

    /// `auto` resolved for this CPU, or the named precision; nil for an unknown name.
    public init?(choice: String) {
        if choice == "auto" { self = Self.automatic; return }
        self.init(rawValue: choice)
    }

    /// Nil when this CPU runs the precision; otherwise what is missing, for the error at start.
    public var unsupportedReason: String? {
        switch self {
        case .fp32, .int8:
            return nil
        case .bf16:
            let isa = dnnl_get_effective_cpu_isa()
            if isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx { return nil }
            return "bf16 needs a CPU with AVX512-BF16 (the avx512_bf16 flag); oneDNN found \(OneDNNRuntime.effectiveISA) here"
        }
    }

    /// The operands' type in the matrix library (activations; int8 weights are s8).
    var dataType: dnnl_data_type_t {
        switch self {
        case .fp32: return dnnl_f32
        case .bf16: return dnnl_bf16
        case .int8: return dnnl_u8
        }
    }

    var weightDataType: dnnl_data_type_t { self == .int8 ? dnnl_s8 : dataType }
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
