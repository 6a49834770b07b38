import COneDNN
import CVNNIProducts
import Foundation

/// The int8 product for a few rows (short queries), run by the engine's own AVX512-VNNI loop on
/// oneDNN's packed weights instead of oneDNN's primitive.
///
/// Why: at 16 rows the weights are read once and used 16 times, so the product is bound by how
/// fast they stream. oneDNN 2.6's brgemm streamed them at 12-15 GB/s on two Emerald Rapids vCPUs,
/// the loop in `CVNNIProducts` (a software prefetch 4 KiB ahead) at 15-20 GB/s; at 32 rows the two
/// were level (numbers in docs/commands.md). The integer sums are the same `vpdpbusd` sums and
/// the scale is applied the same way, so the output is bit-for-bit oneDNN's.
///
/// It runs only where the weights are in the layout the loop reads (`BA16a64b4a`, what oneDNN
/// picks on AVX-512 with VNNI and no AMX) and the CPU has AVX512-VNNI; elsewhere the primitive runs.
struct FewRowsInt8Product: @unchecked Sendable {
    /// The most rows it takes. In `bench` at int8 on BGE-M3 (Emerald Rapids, 2 threads), one
    /// 16-token query ran in 0.028 s against 0.031-0.033 s with the primitive, and 32 tokens in
    /// 0.043-0.044 s against 0.044-0.048 s; on one 1024×4096 product the loop's lead shrank from
    /// 1.3× at 4-8 rows to level at 32. The test hook `BGE_M3_TEST_FEW_ROWS_INT8=0` turns it off (for A/B runs and the
    /// test that compares both paths).
    static let rowLimit: Int = ProcessInfo.processInfo.environment["BGE_M3_TEST_FEW_ROWS_INT8"].flatMap { Int($0) } ?? 32

    /// The per-output-channel weight scales (the primitive's output scales).
    let scales: [Float]
    private let inputSize: Int
    private let outputSize: Int

    /// The loop for weights laid out as `layout`, or nil where it cannot run them.
    init?(layout: dnnl_memory_desc_t, scales: [Float], inputSize: Int, outputSize: Int) {
        guard Self.rowLimit > 0, bgem3_vnni_products_supported() != 0, inputSize % 64 == 0, outputSize % 64 == 0 else { return nil }
        var layout = layout
        var expected = dnnl_memory_desc_t()
        var dimensions: [dnnl_dim_t] = [dnnl_dim_t(inputSize), dnnl_dim_t(outputSize)]
        guard dnnl_memory_desc_init_by_tag(&expected, 2, &dimensions, dnnl_s8, dnnl_BA16a64b4a) == dnnl_success,
              dnnl_memory_desc_equal(&layout, &expected) != 0 else { return nil }
        self.scales = scales
        self.inputSize = inputSize
        self.outputSize = outputSize
    }

    /// Whether it takes a product of `rows` rows.
    func takes(rows: Int) -> Bool { rows <= Self.rowLimit }

    /// `output[rows × outputSize] = scales ⊙ (input[rows × inputSize] · weights)`, the 64-column
    /// blocks split among `threads` workers.
    func run(rows: Int, input: UnsafeRawPointer, weights: UnsafeRawPointer, output: UnsafeMutablePointer<Float>, threads: Int) {
        let blocks = outputSize / 64
        let workers = min(max(1, threads), blocks)
        let shared = Shared((input: input, weights: weights, output: output))
        let inputSize = Int32(inputSize), outputSize = Int32(outputSize)
        scales.withUnsafeBufferPointer { scales in
            let scales = Shared(scales.baseAddress!)
            runWorkers(workers) { worker in
                bgem3_vnni_product(Int32(rows), inputSize, outputSize,
                                   shared.value.input.assumingMemoryBound(to: UInt8.self),
                                   shared.value.weights.assumingMemoryBound(to: Int8.self),
                                   scales.value, shared.value.output,
                                   Int32(blocks * worker / workers), Int32(blocks * (worker + 1) / workers))
            }
        }
    }
}
