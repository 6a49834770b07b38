import COneDNN

/// The number format of the layers' matrix products' operands (`--precision`). Accumulation,
/// LayerNorm, the softmax's arithmetic and the heads' reductions stay fp32 whatever the choice;
/// attention's own products follow ``AttentionKernel/forThisCPU(precision:headSize:)`` (int8
/// operands at int8 where the CPU has VNNI).
public enum Precision: String, Sendable, CaseIterable {
    case fp32
    /// bfloat16 weights and activations, fp32 accumulation and output: CPUs with AVX512-BF16.
    case bf16
    /// s8 weights (per output channel) × u8 activations (quantised per row as they arrive), int32
    /// accumulation, fp32 output; levels per CPU in ``Int8Levels``.
    case int8

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

    /// Whether bf16 products run faster than fp32 ones on this CPU: with AMX, or with AVX512-BF16
    /// on AMD (Zen 4 and Zen 5: the bf16 matrix-product ceiling is about twice fp32's). Intel's
    /// AVX512-BF16 without AMX multiplies bf16 pairs at fp32's multiply-add rate: on an Emerald
    /// Rapids vCPU pair the bf16 encoder was slower than fp32 (1×512 2.41 s against 1.50 s, as was
    /// OpenVINO's), and bf16 attention products slower than fp32 ones (0.22 s against 0.14 s).
    public static var bf16IsFasterThanFP32: Bool {
        guard bf16.unsupportedReason == nil else { return false }
        return dnnl_get_effective_cpu_isa() == dnnl_cpu_isa_avx512_core_amx || CPUVendor.current == .amd
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

/// What `--precision` asks for: a precision by name, or `auto`.
public enum PrecisionRequest: Sendable, Equatable, CustomStringConvertible {
    /// The fastest precision that keeps the accuracy gates on the loaded weights, measured at
    /// start (``PrecisionCheck``): int8, else bf16 where it runs faster than fp32
    /// (``Precision/bf16IsFasterThanFP32``), else fp32.
    case automatic
    /// This precision, whatever the check says (a warning when it fails the gates).
    case fixed(Precision)

    /// The names `--precision` accepts: `auto` and every precision.
    public static let choices = ["auto"] + Precision.allCases.map(\.rawValue)

    /// Nil for an unknown name.
    public init?(_ name: String) {
        if name == "auto" { self = .automatic; return }
        guard let precision = Precision(rawValue: name) else { return nil }
        self = .fixed(precision)
    }

    public var description: String {
        switch self {
        case .automatic: return "auto"
        case .fixed(let precision): return precision.rawValue
        }
    }

    /// The precisions to measure against fp32, fastest first: those this CPU runs that are faster
    /// than fp32 (int8 at 3× the fp32 product rate with VNNI and about 2× without, bf16 at about
    /// 2× where ``Precision/bf16IsFasterThanFP32``), or the one asked for.
    public var candidates: [Precision] {
        switch self {
        case .automatic: return Precision.bf16IsFasterThanFP32 ? [.int8, .bf16] : [.int8]
        case .fixed(.fp32): return []
        case .fixed(let precision): return [precision]
        }
    }
}
