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

    /// How int8's AVX-512 passes (``Int8Activations``, rows of a multiple of 16) differ from its
    /// 8-lane Swift loops on random rows with outlier columns, for the quantisation (bytes, row
    /// scales and offsets) and the epilogue (floats). They do the same arithmetic, so both answers
    /// should be 0.
    /// - Returns: nil where the CPU lacks AVX-512; else the count of quantised bytes, scales or
    ///   offsets that differ, and the largest difference of the epilogue's output.
    public static func int8PassesDifference(rows: Int = 37, columns: Int = 1024, outputs: Int = 320, outlierColumns: [Int] = [3, 17, 500],
                                            threads: Int, seed: UInt64 = 9) -> (quantization: Int, epilogue: Float)? {
        guard Int8Activations.avx512 else { return nil }
        var generator = NormalGenerator(seed: seed)
        var input = (0..<(rows * columns)).map { _ in generator.next() }
        for row in 0..<rows { for column in outlierColumns { input[row * columns + column] *= 30 } }
        let weight = (0..<(outputs * columns)).map { _ in generator.next() * 0.05 }
        let outliers = weight.withUnsafeBufferPointer {
            OutlierColumns(columns: outlierColumns, weight: $0.baseAddress!, outputs: outputs, inputs: columns)
        }
        let product = (0..<(rows * outputs)).map { _ in generator.next() * 10 }
        let sums = (0..<outputs).map { _ in generator.next() }
        let bias = (0..<outputs).map { _ in generator.next() }
        var quantizationDifferences = 0
        var epilogueDifference: Float = 0
        input.withUnsafeBufferPointer { x in
            var bytes = [[UInt8]](repeating: [UInt8](repeating: 0, count: rows * columns), count: 2)
            var rowScales = [[Float]](repeating: [Float](repeating: 0, count: 2 * rows), count: 2)
            var epilogues = [product, product]
            for (path, avx512) in [false, true].enumerated() {
                bytes[path].withUnsafeMutableBufferPointer { target in
                    rowScales[path].withUnsafeMutableBufferPointer { scales in
                        Int8Activations.quantize(x.baseAddress!, rows: rows, columns: columns, maximum: 255, skipping: outliers,
                                                 into: target.baseAddress!, scales: scales.baseAddress!, offsets: scales.baseAddress! + rows,
                                                 threads: threads, avx512: avx512)
                    }
                }
                epilogues[path].withUnsafeMutableBufferPointer { y in
                    rowScales[0].withUnsafeBufferPointer { scales in
                        Int8Activations.finish(y.baseAddress!, rows: rows, columns: outputs, scales: scales.baseAddress!,
                                               offsets: scales.baseAddress! + rows, scaledRowSums: sums, bias: bias,
                                               outliers: (outliers, x.baseAddress!, columns), threads: threads, avx512: avx512)
                    }
                }
            }
            quantizationDifferences = zip(bytes[0], bytes[1]).filter { $0 != $1 }.count
                + zip(rowScales[0], rowScales[1]).filter { $0.bitPattern != $1.bitPattern }.count
            for (a, b) in zip(epilogues[0], epilogues[1]) { epilogueDifference = max(epilogueDifference, abs(a - b).isNaN ? .infinity : abs(a - b)) }
        }
        return (quantizationDifferences, epilogueDifference)
    }
}
