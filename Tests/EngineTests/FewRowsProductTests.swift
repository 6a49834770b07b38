import Engine
import Testing

/// The engine's own loop for products of a few rows against oneDNN's primitive on the same packed
/// weights, at int8 and fp32 (bf16 always runs the primitive).
@Suite struct FewRowsProductTests {
    /// Every row count the loop takes (its tiles are 1 to 7 rows high, balanced), and one past its
    /// limit, through the whole layer (input conversion, bias, GELU; int8's quantisation, outlier
    /// column and epilogue). int8: the same integer sums and scales, so the same floats; fp32 may
    /// add in another order.
    @Test(arguments: [(Precision.int8, Float(0)), (.fp32, 1e-5)])
    func theLoopFollowsThePrimitive(precision: Precision, bound: Float) throws {
        guard let difference = try ProductDiagnostics.fewRowsDifference(precision: precision, rowCounts: Array(1...33), threads: 2) else {
            print("few-rows \(precision) loop not run here: the CPU lacks its instructions, or oneDNN chose another weight layout")
            let avx512 = OneDNNRuntime.hasAVX512 && OneDNNRuntime.effectiveISA != "avx512_core_amx"
            let expected = switch precision {
            case .int8: avx512 && OneDNNRuntime.hasVNNI
            case .bf16: false
            case .fp32: avx512
            }
            #expect(!expected, "the \(precision) loop is off on a CPU that has what it needs")
            return
        }
        print("few-rows \(precision) loop vs oneDNN's primitive: largest difference \(difference)")
        #expect(difference <= bound, "largest difference \(difference)")
    }

    /// int8's 16-lane AVX-512 passes give the 8-lane Swift loops' bytes and floats: quantisation
    /// (with outlier columns left out of the range) and the epilogue (outlier columns added back).
    @Test func int8AVX512PassesGiveTheSwiftLoopsResults() {
        guard let difference = ProductDiagnostics.int8PassesDifference(threads: 2) else {
            print("int8 AVX-512 passes not run here: no AVX-512")
            return
        }
        #expect(difference.quantization == 0, "\(difference.quantization) quantised bytes, scales or offsets differ")
        #expect(difference.epilogue == 0, "largest epilogue difference \(difference.epilogue)")
    }
}
