import Foundation
/// The int8 product's own state: what the epilogue needs after oneDNN's integer product, and the
/// outlier columns computed apart in fp32.
///
/// Weights are s8 per output channel (their scales are fixed in the primitive, as its fast kernel
/// requires); activations are u8 per row (``Int8Activations``). A few input columns whose values
/// stand far above the rest (``OutlierColumns``) would make every row's scale spend nearly all its
/// levels on them and round the other columns to a handful of values, so those columns are taken
/// out of the integer product and added back in fp32 — the decomposition of LLM.int8() (Dettmers
/// et al. 2022), for the few columns a model has.
struct Int8Operands: @unchecked Sendable {
    let levels: Int8Levels
    /// `scale[n] · Σₖ q[n][k]`: what a zero point contributes to output `n` per unit.
    let scaledRowSums: [Float]
    let outliers: OutlierColumns?

    /// Quantises `weight` (`outputs × inputs`, `Linear.weight`); returns the state and the s8
    /// weights with their per-channel scales, for the primitive.
    static func make(_ weight: UnsafePointer<Float>, outputs: Int, inputs: Int, outlierColumns: [Int])
        -> (operands: Int8Operands, weights: QuantizedWeights) {
        let levels = Int8Levels.forThisCPU
        let quantized = QuantizedWeights(weight, outputs: outputs, inputs: inputs, maximum: levels.weightMaximum)
        let outliers = outlierColumns.isEmpty ? nil : OutlierColumns(columns: outlierColumns, weight: weight, outputs: outputs, inputs: inputs)
        return (Int8Operands(levels: levels, scaledRowSums: quantized.scaledRowSums, outliers: outliers), quantized)
    }

    /// Bytes kept beside the primitive's weights.
    var residentBytes: Int { scaledRowSums.count * 4 + (outliers?.weights.count ?? 0) * 4 }

    /// Quantises `rows` rows of `input` into `buffer`: the u8 rows, then each row's scale and
    /// offset (``finish(_:rows:columns:input:buffer:bias:threads:)`` reads them from there).
    func prepare(_ input: UnsafePointer<Float>, rows: Int, columns: Int, buffer: ConversionBuffer, threads: Int) -> UnsafeMutableRawPointer {
        let count = rows * columns
        let base = buffer.reserve(bytes: Self.scalesOffset(count) + rows * 8)
        let scales = (base + Self.scalesOffset(count)).bindMemory(to: Float.self, capacity: 2 * rows)
        Int8Activations.quantize(input, rows: rows, columns: columns, maximum: levels.activationMaximum, skipping: outliers,
                                 into: base.bindMemory(to: UInt8.self, capacity: count), scales: scales, offsets: scales + rows, threads: threads)
        return base
    }

    /// Turns the primitive's output into the layer's: row scales, zero points, bias, and the
    /// outlier columns' fp32 contribution.
    func finish(_ output: UnsafeMutablePointer<Float>, rows: Int, columns: Int, input: UnsafePointer<Float>, inputColumns: Int,
                buffer: ConversionBuffer, bias: UnsafePointer<Float>, threads: Int) {
        let base = buffer.reserve(bytes: Self.scalesOffset(rows * inputColumns) + rows * 8)
        let scales = (base + Self.scalesOffset(rows * inputColumns)).bindMemory(to: Float.self, capacity: 2 * rows)
        scaledRowSums.withUnsafeBufferPointer { sums in
            Int8Activations.finish(output, rows: rows, columns: columns, scales: scales, offsets: scales + rows, scaledRowSums: sums.baseAddress!,
                                   bias: bias, outliers: outliers.map { ($0, input, inputColumns) }, threads: threads)
        }
    }

    /// Where the row scales start in the buffer: after the u8 rows, 64-byte aligned.
    private static func scalesOffset(_ count: Int) -> Int { (count + 63) & ~63 }
}

/// Input columns of one product computed apart, in fp32: their indices and the weights they
/// multiply (`W[n][column]` for every output `n`, one column after another).
struct OutlierColumns: Sendable {
    let columns: [Int]
    let weights: [Float]
    /// For each 8-column block of a row, whether it holds an outlier column (the quantiser takes
    /// those blocks apart from its vector loop).
    let blocks: [Bool]
    /// For each 16 columns, a bit per column outside the outliers (the AVX-512 range's lane mask).
    let keptLanes: [UInt16]

    /// Whether int8 layers take outlier columns apart: always, except under the test hook
    /// `BGE_M3_TEST_INT8_OUTLIERS=off`, which shows what int8 costs without it.
    static let areHandled = ProcessInfo.processInfo.environment["BGE_M3_TEST_INT8_OUTLIERS"] != "off"

    init(columns: [Int], weight: UnsafePointer<Float>, outputs: Int, inputs: Int) {
        self.columns = columns.sorted()
        var weights = [Float](repeating: 0, count: columns.count * outputs)
        for (o, column) in self.columns.enumerated() {
            for n in 0..<outputs { weights[o * outputs + n] = weight[n * inputs + column] }
        }
        self.weights = weights
        var blocks = [Bool](repeating: false, count: (inputs + 7) / 8)
        var kept = [UInt16](repeating: 0xFFFF, count: (inputs + 15) / 16)
        for column in columns {
            blocks[column / 8] = true
            kept[column / 16] &= ~(UInt16(1) << UInt16(column % 16))
        }
        self.blocks = blocks
        self.keptLanes = kept
    }

    /// The input columns that a LayerNorm with these parameters makes stand out: `|γ| + |β|` more
    /// than 6 times the median, at most 16, the largest first. What a LayerNorm writes in dimension
    /// `j` is `γⱼ·n + βⱼ` with `n` of order 1, so these columns' values are 6× and more the others'.
    /// Trained BERT and RoBERTa models have 2-6 such dimensions with activations 10-100× the rest
    /// (Kovaleva et al. 2021; Bondarenko et al. 2021; Dettmers et al. 2022); a model without them
    /// gets none, and its products run as before.
    static func detect(gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, count: Int) -> [Int] {
        let sizes = (0..<count).map { abs(gamma[$0]) + abs(beta[$0]) }
        let median = sizes.sorted()[count / 2]
        guard median > 0 else { return [] }
        return Array(sizes.indices.filter { sizes[$0] > 6 * median }.sorted { sizes[$0] > sizes[$1] }.prefix(16))
    }
}
