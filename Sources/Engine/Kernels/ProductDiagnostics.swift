import Foundation

/// The matrix products alone on random data, for tests.
public enum ProductDiagnostics {
    /// The largest difference between products run by the engine's few-rows loop
    /// (``FewRowsProduct``) and by oneDNN's primitive, on one random layer with the bias and GELU
    /// (and at int8 an outlier column), for each of `rowCounts` rows. int8's integer sums are the
    /// same, so its answer should be 0; fp32 may add in another order.
    /// - Returns: nil where the loop does not run at this precision (a CPU without the
    ///   instructions, or oneDNN chose another weight layout); the difference otherwise (infinity
    ///   for a NaN).
    public static func fewRowsDifference(precision: Precision, rowCounts: [Int], inputs: Int = 256, outputs: Int = 192, threads: Int,
                                         seed: UInt64 = 5) throws -> Float? {
        var generator = NormalGenerator(seed: seed)
        let weight = (0..<(inputs * outputs)).map { _ in generator.next() * 0.05 }
        let bias = (0..<outputs).map { _ in generator.next() }
        let product = try weight.withUnsafeBufferPointer { w in
            try bias.withUnsafeBufferPointer { b in
                try PackedMatmul(weight: w.baseAddress!, bias: b.baseAddress!, outputSize: outputs, inputSize: inputs, gelu: true,
                                 precision: precision, outlierColumns: precision == .int8 ? [7] : [], runtime: try OneDNNRuntime.shared(threads: threads))
            }
        }
        guard product.fewRows != nil else { return nil }
        let lane = ComputeLane(threads: threads)
        var largest: Float = 0
        for rows in rowCounts {
            var input = (0..<(rows * inputs)).map { _ in generator.next() }
            for row in 0..<rows { input[row * inputs + 7] *= 40 }
            var expected = [Float](repeating: .nan, count: rows * outputs)
            var got = [Float](repeating: .nan, count: rows * outputs)
            try input.withUnsafeBufferPointer { x throws(OneDNNError) in
                try expected.withUnsafeMutableBufferPointer { e throws(OneDNNError) in
                    try product.run(rows: rows, input: x.baseAddress!, output: e.baseAddress!, lane: lane, fewRowsLoop: false)
                }
                try got.withUnsafeMutableBufferPointer { g throws(OneDNNError) in
                    try product.run(rows: rows, input: x.baseAddress!, output: g.baseAddress!, lane: lane)
                }
            }
            for (a, b) in zip(expected, got) { largest = max(largest, abs(a - b).isNaN ? .infinity : abs(a - b)) }
        }
        return largest
    }
}
