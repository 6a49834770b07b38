import CEngineAVX512
import COneDNN
import Foundation

/// A matrix product of a few rows (short queries) run by the engine's own AVX-512 loop on
/// oneDNN's packed weights instead of oneDNN's primitive.
///
/// Why: at 16 rows each weight is read once and used 16 times, so the product is bound by how
/// fast the weights stream, and oneDNN 2.6's kernels stream them slower than the loop in
/// `CEngineAVX512`, which prefetches 4 KiB ahead (numbers at ``rowLimit(for:)``). int8 sums are
/// the same `vpdpbusd` sums, scaled the same way, so int8 gives oneDNN's floats bit for bit; fp32
/// may add its terms in another order (in the test it too matched bit for bit). bf16 runs
/// oneDNN's primitive: the loop with `vdpbf16ps` was no faster at 16 rows.
///
/// It runs only where the weights are in the layout the loop reads (oneDNN's choice on AVX-512
/// without AMX) and the CPU has the instructions; elsewhere the primitive runs.
struct FewRowsProduct: @unchecked Sendable {
    private let kind: bgem3_few_rows_kind
    /// int8's per-output-channel weight scales (the primitive's output scales); nil otherwise.
    private let scales: [Float]?
    private let inputSize: Int
    private let outputSize: Int
    /// The most rows it takes, for this precision.
    let rowLimit: Int

    /// The most rows the loop takes at `precision` (0: it never runs). Measured with `bench` on
    /// BGE-M3 (Emerald Rapids, 2 threads, the loop against the primitive, alternated, three rounds):
    /// - int8: 16 tokens in 0.026-0.030 s against 0.031-0.033 s; 32 tokens level (0.042-0.048 s
    ///   both). On one 1024×4096 product it led oneDNN by 1.2-1.3× at 4-8 rows, 1.03-1.10× at 32,
    ///   and fell behind from 48.
    /// - fp32: 16 tokens in 0.083-0.100 s against 0.096-0.135 s; 32 tokens level (0.133-0.152 s
    ///   against 0.136-0.156 s).
    /// - bf16: not faster at 16 tokens, so never.
    ///
    /// The test hook `BGE_M3_TEST_FEW_ROWS` sets one limit for int8 and fp32 (0 turns the loop off,
    /// for A/B runs).
    static func rowLimit(for precision: Precision) -> Int {
        if precision == .bf16 { return 0 }
        return ProcessInfo.processInfo.environment["BGE_M3_TEST_FEW_ROWS"].flatMap { Int($0) } ?? 32
    }

    /// The loop for these weights laid out as `layout`, or nil where it cannot run them.
    /// - Parameter scales: int8's per-output-channel scales.
    init?(precision: Precision, layout: dnnl_memory_desc_t, scales: [Float]?, inputSize: Int, outputSize: Int) {
        let (kind, tag, type): (bgem3_few_rows_kind, dnnl_format_tag_t, dnnl_data_type_t)
        switch precision {
        case .int8: (kind, tag, type) = (bgem3_few_rows_int8, dnnl_BA16a64b4a, dnnl_s8)
        case .fp32: (kind, tag, type) = (bgem3_few_rows_fp32, dnnl_BA16a64b, dnnl_f32)
        case .bf16: return nil
        }
        let limit = Self.rowLimit(for: precision)
        // Whole 64×64 blocks: oneDNN pads other sizes, and the loop's strides assume none.
        guard limit > 0, bgem3_few_rows_supported(kind) != 0, inputSize % 64 == 0, outputSize % 64 == 0 else { return nil }
        var layout = layout
        var expected = dnnl_memory_desc_t()
        var dimensions: [dnnl_dim_t] = [dnnl_dim_t(inputSize), dnnl_dim_t(outputSize)]
        guard dnnl_memory_desc_init_by_tag(&expected, 2, &dimensions, type, tag) == dnnl_success,
              dnnl_memory_desc_equal(&layout, &expected) != 0 else { return nil }
        self.kind = kind
        self.scales = precision == .int8 ? scales : nil
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.rowLimit = limit
    }

    /// Whether it takes a product of `rows` rows.
    func takes(rows: Int) -> Bool { rows <= rowLimit }

    /// `output[rows × outputSize] = input[rows × inputSize] · weights` (int8: times the scales),
    /// plus `bias` where given, the 64-column blocks split among `threads` workers.
    func run(rows: Int, input: UnsafeRawPointer, weights: UnsafeRawPointer, bias: UnsafePointer<Float>?,
             output: UnsafeMutablePointer<Float>, threads: Int) {
        let blocks = outputSize / 64
        let workers = min(max(1, threads), blocks)
        let kind = kind, inputSize = Int32(inputSize), outputSize = Int32(outputSize)
        func run(_ scales: UnsafePointer<Float>?) {
            let pointers = Shared((input: input, weights: weights, scales: scales, bias: bias, output: output))
            runWorkers(workers) { worker in
                let p = pointers.value
                bgem3_few_rows_product(kind, Int32(rows), inputSize, outputSize, p.input, p.weights, p.scales, p.bias, p.output,
                                       Int32(blocks * worker / workers), Int32(blocks * (worker + 1) / workers))
            }
        }
        if let scales { scales.withUnsafeBufferPointer { run($0.baseAddress!) } } else { run(nil) }
    }
}
