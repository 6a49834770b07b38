import COneDNN

/// A matrix product's operands as its precision needs them, each precision with its own state:
/// the one place ``PackedMatmul`` branches on the precision (as candle keeps one case per kind of
/// weights in `QMatMul`).
enum ProductOperands: @unchecked Sendable {
    /// fp32 weights and activations.
    case fp32
    /// bf16 weights (converted when laid out) and activations (converted per call), fp32
    /// accumulation: CPUs with AVX512-BF16.
    case bf16
    /// s8 weights per output channel × u8 activations per row, int32 accumulation, an fp32
    /// epilogue, and outlier columns apart in fp32 (``Int8Operands``).
    case int8(Int8Operands)

    var precision: Precision {
        switch self {
        case .fp32: return .fp32
        case .bf16: return .bf16
        case .int8: return .int8
        }
    }

    /// Whether the primitive adds the bias and applies GELU itself; int8 does both in its epilogue,
    /// after the per-row scales.
    var primitiveFinishes: Bool {
        if case .int8 = self { return false }
        return true
    }

    /// Whether laying the weights out converts them (bf16); fp32 and quantised s8 weights are
    /// copied as they are unless the primitive wants a blocked layout.
    var convertsWeights: Bool {
        if case .bf16 = self { return true }
        return false
    }

    /// Bytes kept beside the primitive's weights.
    var residentBytes: Int {
        if case .int8(let operands) = self { return operands.residentBytes }
        return 0
    }

    /// The primitive's input for `rows` rows of `input`: the floats themselves, or bf16 or u8
    /// copies in `buffer` (whose lock the caller holds until ``finish``).
    func prepare(_ input: UnsafePointer<Float>, rows: Int, columns: Int, buffer: ConversionBuffer, threads: Int) -> UnsafeMutableRawPointer {
        switch self {
        case .fp32:
            return UnsafeMutableRawPointer(mutating: input)
        case .bf16:
            let count = rows * columns
            let converted = buffer.reserve(bytes: count * 2).bindMemory(to: UInt16.self, capacity: count)
            BFloat16Conversion.convert(input, into: converted, count: count, threads: threads)
            return UnsafeMutableRawPointer(converted)
        case .int8(let operands):
            return operands.prepare(input, rows: rows, columns: columns, buffer: buffer, threads: threads)
        }
    }

    /// What follows the primitive: nothing, or int8's epilogue.
    func finish(_ output: UnsafeMutablePointer<Float>, rows: Int, columns: Int, input: UnsafePointer<Float>, inputColumns: Int,
                buffer: ConversionBuffer, bias: UnsafePointer<Float>, threads: Int) {
        if case .int8(let operands) = self {
            operands.finish(output, rows: rows, columns: columns, input: input, inputColumns: inputColumns, buffer: buffer, bias: bias, threads: threads)
        }
    }
}
