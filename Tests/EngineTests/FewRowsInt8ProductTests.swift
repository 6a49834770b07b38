import Engine
import Testing

/// The engine's own int8 loop for a few rows against oneDNN's primitive on the same packed weights.
@Suite struct FewRowsInt8ProductTests {
    /// Every row count the loop takes (its tiles are 1 to 7 rows high, balanced), and one past its
    /// limit, through the whole layer (quantised input, outlier column, epilogue, GELU): the same
    /// integer sums and scales, so the same floats.
    @Test func theLoopGivesThePrimitivesFloats() throws {
        guard let difference = try ProductDiagnostics.fewRowsInt8Difference(rowCounts: Array(1...33), threads: 2) else {
            print("few-rows int8 loop not run here: no AVX512-VNNI, or oneDNN chose another weight layout")
            #expect(!(OneDNNRuntime.hasAVX512 && OneDNNRuntime.hasVNNI && OneDNNRuntime.effectiveISA != "avx512_core_amx"),
                    "the loop is off on a CPU with AVX-512 VNNI")
            return
        }
        #expect(difference == 0, "largest difference \(difference)")
    }
}
