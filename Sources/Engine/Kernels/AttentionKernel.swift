import COneDNN

/// The operand type of the oneDNN attention products (scores and softmax stay fp32).
public enum AttentionOperands: String, Sendable, Equatable {
    /// bf16 operands, fp32 accumulation: where bf16 products run faster than fp32
    /// (``Precision/bf16IsFasterThanFP32``).
    case bf16
    /// fp32 operands.
    case f32

    var dataType: dnnl_data_type_t { self == .bf16 ? dnnl_bf16 : dnnl_f32 }

    /// Bytes per element.
    var bytes: Int { self == .bf16 ? 2 : 4 }

    /// Writes `count` floats into `target` in this type.
    @inline(__always)
    func store(_ source: UnsafePointer<Float>, into target: UnsafeMutableRawPointer, count: Int) {
        switch self {
        case .bf16:
            BFloat16Conversion.convert(source, into: target.assumingMemoryBound(to: UInt16.self), count: count, threads: 1)
        case .f32:
            target.assumingMemoryBound(to: Float.self).update(from: source, count: count)
        }
    }
}

/// Which kernel computes self-attention.
public enum AttentionKernel: Sendable, Equatable, CustomStringConvertible {
    /// ``BlockedAttention``: the engine's own fp32 kernel, 8 lanes wide (the binary is built for
    /// `haswell`), for every sequence.
    case blocked
    /// ``MatmulAttention``: oneDNN's products and softmax (dispatched to the CPU's widest
    /// instructions at run time) for sequences of ``MatmulAttention/shortest`` to
    /// ``MatmulAttention/longest`` tokens, ``BlockedAttention`` for the others.
    case products(AttentionOperands)

    /// The kernel for a model at `precision` on this CPU.
    ///
    /// With AVX-512, oneDNN's products: on an Emerald Rapids vCPU pair, fp32 products took 1×512
    /// attention from 0.29-0.38 s (blocked) to 0.13-0.18 s, and their results are fp32 like the
    /// blocked kernel's. bf16 operands for the reduced precisions only where bf16 runs faster than
    /// fp32 (they already trade exactness for speed). Without AVX-512 (Zen 3), the blocked kernel,
    /// which was tuned there; oneDNN's products were not measured on such a CPU.
    public static func forThisCPU(precision: Precision) -> AttentionKernel {
        guard OneDNNRuntime.hasAVX512 else { return .blocked }
        if precision != .fp32 && Precision.bf16IsFasterThanFP32 { return .products(.bf16) }
        return .products(.f32)
    }

    /// Why this kernel cannot run here, or nil.
    public var unsupportedReason: String? {
        self == .products(.bf16) ? Precision.bf16.unsupportedReason : nil
    }

    /// The operands of ``MatmulAttention``, or nil for ``blocked``.
    var operands: AttentionOperands? {
        if case .products(let operands) = self { return operands }
        return nil
    }

    /// A short name: "blocked fp32", "oneDNN f32 products".
    public var name: String {
        switch self {
        case .blocked: "blocked fp32"
        case .products(let operands): "oneDNN \(operands.rawValue) products"
        }
    }

    public var description: String {
        self == .blocked ? name : "\(name) for \(MatmulAttention.shortest)...\(MatmulAttention.longest) tokens, blocked fp32 otherwise"
    }
}
