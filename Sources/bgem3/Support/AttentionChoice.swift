import ArgumentParser
import Engine

/// An `--attention` value (`bench`, `eval`, `serve`): `auto` or one kernel by name, to compare kernels on a
/// new CPU, measure what int8 attention costs on a model's weights, and serve without it where
/// that cost is too large.
enum AttentionChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, blocked, f32, bf16, int8

    /// The kernel, or nil for this CPU's choice (``AttentionKernel/forThisCPU(precision:headSize:)``).
    var kernel: AttentionKernel? {
        switch self {
        case .auto: nil
        case .blocked: .blocked
        case .f32: .products(.f32)
        case .bf16: .products(.bf16)
        case .int8: .products(.int8)
        }
    }

    /// What `auto` chooses, in words (`bench`, `eval` and `serve` help).
    static let automatic = """
        this CPU's choice: the blocked fp32 kernel without AVX-512; oneDNN's products with it, with int8 \
        operands at int8 where the CPU has VNNI, bf16 operands at the reduced precisions where bf16 runs \
        faster than fp32, fp32 operands otherwise
        """

    static let help = ArgumentHelp(
        "The attention kernel: auto (\(automatic)), or blocked, f32, bf16 or int8 (oneDNN's products with those operands).",
        valueName: "kernel")
}
