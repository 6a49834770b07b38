import COneDNN

/// The operand types of the oneDNN attention products.
public enum AttentionOperands: String, Sendable, Equatable {
    /// bf16 operands, fp32 accumulation, scores and softmax: where bf16 products run faster than
    /// fp32 (``Precision/bf16IsFasterThanFP32``).
    case bf16
    /// fp32 operands, scores and softmax.
    case f32
    /// s8 queries and keys (a scale per row), s32 scores, an fp32 softmax whose weights are
    /// quantised to u8, s8 values (a scale per column); see ``AttentionQuantization``. For models
    /// at int8 on CPUs with VNNI, where oneDNN runs these products at 3-4× the fp32 rate.
    case int8

    /// The type of the queries, keys and values.
    var dataType: dnnl_data_type_t {
        switch self {
        case .bf16: dnnl_bf16
        case .f32: dnnl_f32
        case .int8: dnnl_s8
        }
    }

    /// The type of the softmax's output, the context product's left operand.
    var probabilityType: dnnl_data_type_t { self == .int8 ? dnnl_u8 : dataType }

    /// Bytes per element.
    var bytes: Int {
        switch self {
        case .bf16: 2
        case .f32: 4
        case .int8: 1
        }
    }

    /// Writes `count` floats into `target` in this type (``f32`` and ``bf16``; int8 operands need
    /// their scales, from ``AttentionQuantization``).
    @inline(__always)
    func store(_ source: UnsafePointer<Float>, into target: UnsafeMutableRawPointer, count: Int) {
        switch self {
        case .bf16:
            BFloat16Conversion.convert(source, into: target.assumingMemoryBound(to: UInt16.self), count: count, threads: 1)
        case .f32:
            target.assumingMemoryBound(to: Float.self).update(from: source, count: count)
        case .int8:
            preconditionFailure("int8 attention operands are quantised with their scales")
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

    /// The kernel for a model at `precision`, with heads of `headSize` values, on this CPU.
    ///
    /// With AVX-512, oneDNN's products: on an Emerald Rapids vCPU pair, fp32 products took 1×512
    /// attention from 0.29-0.38 s (blocked) to 0.13-0.18 s, and their results are fp32 like the
    /// blocked kernel's. At int8 with VNNI, int8 operands: on that pair they took int8 1×512
    /// attention from 0.169 s to 0.101-0.116 s and the whole pass from 0.59-0.61 s to 0.52-0.56 s,
    /// for a dense cosine to fp32 of 0.9977 (min) and 0.9989 (mean) on MiniLM's trained weights
    /// against 0.9986 and 0.9990 with fp32 attention (`bgem3 eval`); on AMD (Zen 4, Zen 5) they
    /// replace the bf16 operands unmeasured. Otherwise bf16 operands for
    /// the reduced precisions where bf16 runs faster than fp32 (they already trade exactness for
    /// speed). Without AVX-512 (Zen 3), the blocked kernel, which was tuned there; oneDNN's
    /// products were not measured on such a CPU.
    public static func forThisCPU(precision: Precision, headSize: Int = 64) -> AttentionKernel {
        guard OneDNNRuntime.hasAVX512 else { return .blocked }
        if precision == .int8 && AttentionKernel.products(.int8).unsupportedReason(headSize: headSize) == nil { return .products(.int8) }
        if precision != .fp32 && Precision.bf16IsFasterThanFP32 { return .products(.bf16) }
        return .products(.f32)
    }

    /// Why this kernel cannot run here on heads of `headSize` values, or nil.
    public func unsupportedReason(headSize: Int = 64) -> String? {
        switch self {
        case .products(.bf16): Precision.bf16.unsupportedReason
        case .products(.int8) where !(OneDNNRuntime.hasAVX512 && OneDNNRuntime.hasVNNI):
            "int8 attention needs AVX-512 with VNNI; oneDNN found \(OneDNNRuntime.effectiveISA) here"
        case .products(.int8) where headSize % 8 != 0:
            "int8 attention needs a head size that is a multiple of 8 (this model's is \(headSize))"
        default: nil
        }
    }

    /// The operands of ``MatmulAttention``, or nil for ``blocked``.
    var operands: AttentionOperands? {
        if case .products(let operands) = self { return operands }
        return nil
    }

    /// A short name: "blocked fp32", "oneDNN f32 products", "int8 VNNI products" (the engine's
    /// own loops or oneDNN's primitives, by head size: see ``description``).
    public var name: String {
        switch self {
        case .blocked: "blocked fp32"
        case .products(.int8): "int8 VNNI products"
        case .products(let operands): "oneDNN \(operands.rawValue) products"
        }
    }

    public var description: String {
        let products = self == .products(.int8) && AttentionProducts.available
            ? "\(name) (the engine's own loops for heads of 64 values, oneDNN's otherwise)" : name
        return self == .blocked ? name : "\(products) for \(MatmulAttention.shortest)...\(MatmulAttention.longest) tokens, blocked fp32 otherwise"
    }
}
