import CEngineAVX512
import COneDNN
import Foundation

/// How many levels the int8 operands use on this CPU.
///
/// With VNNI (`vpdpbusd`) every u8×s8 product is accumulated exactly in int32, so activations use
/// all of 0...255 and weights −127...127. Without it (AVX2, AVX-512 without VNNI) oneDNN's kernel
/// multiplies with `vpmaddubsw`, which adds two adjacent products in a saturating int16: full-range
/// operands overflow it (9 % error measured on Zen 3). Halving one operand's range keeps every
/// pair sum within int16 (2·127·127 < 32,767, 2·255·63 < 32,767), so the integer product is exact
/// again. Which operand gives up a bit was measured with `bgem3 eval` (the arithmetic is the
/// same on every CPU, so it was measured on both code paths on one machine): see
/// ``withoutVNNI``.
public struct Int8Levels: Sendable, Equatable, CustomStringConvertible {
    /// Activations are quantised to `0...activationMaximum` (per row, with a zero point).
    public let activationMaximum: Int
    /// Weights are quantised to `-weightMaximum...weightMaximum` (per output channel, symmetric).
    public let weightMaximum: Int

    /// VNNI: exact int32 accumulation of full-range operands.
    public static let full = Int8Levels(activationMaximum: 255, weightMaximum: 127)
    /// No VNNI: 7-bit weights and 8-bit activations. Per-channel weight scales already follow
    /// each output's range, while activations of one row mix channels of very different sizes
    /// (the outlier dimensions of transformer hidden states), so the activations keep their 8th
    /// bit. Measured with `bgem3 eval` on all-MiniLM-L6-v2: dense cosine min/mean 0.9972/0.9982
    /// with 7-bit weights against 0.9948/0.9966 with 7-bit activations (0.9986/0.9990 full range).
    public static let withoutVNNI = Int8Levels(activationMaximum: 255, weightMaximum: 63)

    /// The levels this CPU multiplies exactly (oneDNN's effective ISA decides, so
    /// `DNNL_MAX_CPU_ISA=AVX2` selects the AVX2 path on any CPU).
    public static var forThisCPU: Int8Levels {
        let levels = OneDNNRuntime.hasVNNI ? Int8Levels.full : .withoutVNNI
        guard let maximum = testActivationMaximum else { return levels }
        return Int8Levels(activationMaximum: maximum, weightMaximum: levels.weightMaximum)
    }

    /// A test hook, `BGE_M3_TEST_INT8_ACTIVATION_MAXIMUM`: fewer activation levels (3 gives 2-bit
    /// activations), an int8 that fails the accuracy gates on any model, so that tests of
    /// `--precision auto` on the tiny model can see it fall back. Not a setting.
    static let testActivationMaximum: Int? = ProcessInfo.processInfo.environment["BGE_M3_TEST_INT8_ACTIVATION_MAXIMUM"]
        .flatMap { Int($0) }.flatMap { (1...255).contains($0) ? $0 : nil }

    public var description: String { "u8 0...\(activationMaximum) × s8 ±\(weightMaximum)" }
}

/// Weights of one `Linear` layer quantised per output channel: `W[n][k] ≈ scale[n] · q[n][k]`.
struct QuantizedWeights {
    /// `outputs × inputs` row-major, as `Linear.weight`.
    let values: [Int8]
    let scales: [Float]
    /// `scale[n] · Σₖ q[n][k]`: what a zero point contributes to output `n` per unit.
    let scaledRowSums: [Float]

    init(_ weight: UnsafePointer<Float>, outputs: Int, inputs: Int, maximum: Int) {
        var values = [Int8](repeating: 0, count: outputs * inputs)
        var scales = [Float](repeating: 1, count: outputs)
        var sums = [Float](repeating: 0, count: outputs)
        let limit = Float(maximum)
        for n in 0..<outputs {
            let row = weight + n * inputs
            var largest: Float = 0
            for k in 0..<inputs { largest = max(largest, abs(row[k])) }
            let scale = largest > 0 ? largest / limit : 1
            var sum = 0
            for k in 0..<inputs {
                let q = Int(min(limit, max(-limit, (row[k] / scale).rounded(.toNearestOrEven))))
                values[n * inputs + k] = Int8(q)
                sum += q
            }
            scales[n] = scale
            sums[n] = scale * Float(sum)
        }
        self.values = values
        self.scales = scales
        self.scaledRowSums = sums
    }
}

/// Dynamic per-row quantisation of activations and the matching epilogue.
///
/// Each row gets its own affine map `x ≈ scale · (q − zeroPoint)` over its own [min, max] (zero
/// included): rows differ in size by orders of magnitude (`<s>` rows, padding-free batches of
/// different texts), so one scale per tensor would waste most levels on the largest row.
/// oneDNN 2.6's fast int8 kernel (brgemm) only takes scales fixed when the primitive is made, so
/// the primitive applies the per-channel weight scales and ``finish`` applies the per-row ones.
enum Int8Activations {
    typealias Vector = SIMD8<Float>

    /// Whether rows of a multiple of 16 values go through the 16-lane AVX-512 loops in
    /// `CEngineAVX512` (the same arithmetic as the 8-lane Swift loops here, so the same bytes and
    /// floats). The test hook `BGE_M3_TEST_AVX512_PASSES=off` keeps the Swift loops, for A/B runs.
    static let avx512 = bgem3_int8_passes_supported() != 0 && ProcessInfo.processInfo.environment["BGE_M3_TEST_AVX512_PASSES"] != "off"

    /// Quantises `rows × columns` values into `target`, writing each row's scale and
    /// `scale · zeroPoint` (the offset ``finish`` subtracts).
    ///
    /// The `skipping` columns take no part in a row's range and are written as its zero point, so
    /// the integer product gets nothing from them (they are added back in fp32 by ``finish``).
    static func quantize(_ source: UnsafePointer<Float>, rows: Int, columns: Int, maximum: Int, skipping outliers: OutlierColumns? = nil,
                         into target: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float>,
                         offsets: UnsafeMutablePointer<Float>, threads: Int, avx512: Bool = Int8Activations.avx512) {
        let workers = workerCount(values: rows * columns, threads: threads)
        let shared = Shared((source: source, target: target, scales: scales, offsets: offsets, outliers: outliers))
        let wide = avx512 && columns % 16 == 0
        runWorkers(workers) { worker in
            let (source, target, scales, offsets, outliers) = shared.value
            var row = worker
            while row < rows {
                let (scale, zeroPoint) = wide
                    ? quantizeRowWide(source + row * columns, count: columns, maximum: Float(maximum), skipping: outliers, into: target + row * columns)
                    : quantizeRow(source + row * columns, count: columns, maximum: Float(maximum), skipping: outliers, into: target + row * columns)
                scales[row] = scale
                offsets[row] = scale * zeroPoint
                row += workers
            }
        }
    }

    /// A row's scale and zero point for its range [low, high] (zero included): `maximum` levels
    /// over the range.
    @inline(__always)
    private static func affineMap(low: Float, high: Float, maximum: Float) -> (scale: Float, zeroPoint: Float) {
        let scale = high > low ? (high - low) / maximum : 1
        return (scale, (-low / scale).rounded(.toNearestOrEven))
    }

    /// One row of a multiple of 16 values through the AVX-512 loops; returns its scale and zero point.
    @inline(__always)
    private static func quantizeRowWide(_ row: UnsafePointer<Float>, count: Int, maximum: Float, skipping outliers: OutlierColumns?,
                                        into target: UnsafeMutablePointer<UInt8>) -> (Float, Float) {
        var low: Float = 0, high: Float = 0
        if let outliers {
            outliers.keptLanes.withUnsafeBufferPointer { bgem3_int8_row_range(row, Int32(count), $0.baseAddress!, &low, &high) }
        } else {
            bgem3_int8_row_range(row, Int32(count), nil, &low, &high)
        }
        let (scale, zeroPoint) = affineMap(low: low, high: high, maximum: maximum)
        bgem3_int8_quantize_row(row, Int32(count), 1 / scale, zeroPoint, maximum, target)
        if let outliers {
            for column in outliers.columns { target[column] = UInt8(zeroPoint) }
        }
        return (scale, zeroPoint)
    }

    /// One row; returns its scale and zero point.
    @inline(__always)
    private static func quantizeRow(_ row: UnsafePointer<Float>, count: Int, maximum: Float, skipping outliers: OutlierColumns?,
                                    into target: UnsafeMutablePointer<UInt8>) -> (Float, Float) {
        let vectorEnd = count & ~7
        var (low, high) = vectorRange(row, vectorEnd: vectorEnd, skipping: outliers)
        var i = vectorEnd
        // The scalar pass: the tail, and the blocks holding outlier columns, without those columns.
        if let outliers {
            for block in 0..<(vectorEnd >> 3) where outliers.blocks[block] {
                for column in (block << 3)..<((block << 3) + 8) where !outliers.columns.contains(column) {
                    low = min(low, row[column])
                    high = max(high, row[column])
                }
            }
        }
        while i < count {
            if outliers?.columns.contains(i) != true { low = min(low, row[i]); high = max(high, row[i]) }
            i += 1
        }
        let (scale, zeroPoint) = affineMap(low: low, high: high, maximum: maximum)
        let inverse = Vector(repeating: 1 / scale)
        let shift = Vector(repeating: zeroPoint)
        let top = Vector(repeating: maximum)
        // Adding 1.5·2²³ leaves round-to-nearest(t) in the low mantissa bits (see VectorMath.exp).
        let magic = Vector(repeating: 12_582_912.0)
        let magicBits = unsafeBitCast(magic, to: SIMD8<Int32>.self)
        i = 0
        while i < vectorEnd {
            var t = VectorMath.load(row + i) * inverse + shift
            t.replace(with: 0, where: t .< 0)
            t.replace(with: top, where: t .> top)
            let integers = unsafeBitCast(t + magic, to: SIMD8<Int32>.self) &- magicBits
            UnsafeMutableRawPointer(target + i).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: integers), as: SIMD8<UInt8>.self)
            i += 8
        }
        while i < count {
            let t = min(maximum, max(0, (row[i] / scale + zeroPoint).rounded(.toNearestOrEven)))
            target[i] = UInt8(t)
            i += 1
        }
        if let outliers {
            for column in outliers.columns { target[column] = UInt8(zeroPoint) }
        }
        return (scale, zeroPoint)
    }

    /// The smallest and largest of `row[0..<vectorEnd]` and zero, leaving out the 8-column blocks
    /// that hold an outlier column (the caller's scalar pass takes those).
    ///
    /// Four independent minimum/maximum chains in local variables: one chain waits out the
    /// instruction's latency at every step (product inputs at int8 1×128: 0.0104 s with one,
    /// 0.0097 s with four, on an Emerald Rapids pair), and chains kept in a struct's tuple were
    /// left in memory behind a call per vector once the loop ran inside a parallel region.
    @inline(__always)
    private static func vectorRange(_ row: UnsafePointer<Float>, vectorEnd: Int, skipping outliers: OutlierColumns?) -> (Float, Float) {
        var (low0, low1, low2, low3) = (Vector.zero, Vector.zero, Vector.zero, Vector.zero)
        var (high0, high1, high2, high3) = (Vector.zero, Vector.zero, Vector.zero, Vector.zero)
        var i = 0
        if let outliers {
            while i < vectorEnd {
                if !outliers.blocks[i >> 3] {
                    let v = VectorMath.load(row + i)
                    low0 = VectorMath.minimum(low0, v); high0 = VectorMath.maximum(high0, v)
                }
                i += 8
            }
        } else {
            let quadEnd = vectorEnd & ~31
            while i < quadEnd {
                let (a, b, c, d) = (VectorMath.load(row + i), VectorMath.load(row + i + 8), VectorMath.load(row + i + 16), VectorMath.load(row + i + 24))
                low0 = VectorMath.minimum(low0, a); high0 = VectorMath.maximum(high0, a)
                low1 = VectorMath.minimum(low1, b); high1 = VectorMath.maximum(high1, b)
                low2 = VectorMath.minimum(low2, c); high2 = VectorMath.maximum(high2, c)
                low3 = VectorMath.minimum(low3, d); high3 = VectorMath.maximum(high3, d)
                i += 32
            }
            while i < vectorEnd {
                let v = VectorMath.load(row + i)
                low0 = VectorMath.minimum(low0, v); high0 = VectorMath.maximum(high0, v)
                i += 8
            }
        }
        let low = VectorMath.minimum(VectorMath.minimum(low0, low1), VectorMath.minimum(low2, low3))
        let high = VectorMath.maximum(VectorMath.maximum(high0, high1), VectorMath.maximum(high2, high3))
        return (min(-VectorMath.horizontalMaximum(-low), 0), max(VectorMath.horizontalMaximum(high), 0))
    }

    /// Turns the primitive's `z[m][n] = weightScale[n] · Σₖ q[m][k]·w[n][k]` into the layer's output:
    /// `y[m][n] = scale[m] · z[m][n] − offset[m] · scaledRowSums[n] + bias[n]`, in place, plus
    /// `Σ x[m][c] · W[n][c]` over the outlier columns `c` of `input` (`inputColumns` wide), in fp32.
    static func finish(_ output: UnsafeMutablePointer<Float>, rows: Int, columns: Int, scales: UnsafePointer<Float>,
                       offsets: UnsafePointer<Float>, scaledRowSums: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                       outliers: (OutlierColumns, input: UnsafePointer<Float>, inputColumns: Int)? = nil, threads: Int,
                       avx512: Bool = Int8Activations.avx512) {
        let workers = workerCount(values: rows * columns, threads: threads)
        let shared = Shared((output: output, scales: scales, offsets: offsets, sums: scaledRowSums, bias: bias, outliers: outliers))
        if avx512 && columns % 16 == 0 {
            runWorkers(workers) { worker in
                let (output, scales, offsets, sums, bias, outliers) = shared.value
                finishRowsWide(output, rows: rows, columns: columns, first: worker, step: workers, scales: scales, offsets: offsets,
                               sums: sums, bias: bias, outliers: outliers)
            }
            return
        }
        runWorkers(workers) { worker in
            let (output, scales, offsets, sums, bias, outliers) = shared.value
            let vectorEnd = columns & ~7
            var row = worker
            while row < rows {
                let y = output + row * columns
                let scale = scales[row]
                let offset = offsets[row]
                let scaleVector = Vector(repeating: scale)
                let offsetVector = Vector(repeating: -offset)
                var i = 0
                while i < vectorEnd {
                    let value = VectorMath.load(y + i) * scaleVector + (VectorMath.load(sums + i) * offsetVector + VectorMath.load(bias + i))
                    VectorMath.store(value, y + i)
                    i += 8
                }
                while i < columns { y[i] = y[i] * scale - offset * sums[i] + bias[i]; i += 1 }
                if let (columnsApart, input, inputColumns) = outliers {
                    columnsApart.weights.withUnsafeBufferPointer { weights in
                        for (o, column) in columnsApart.columns.enumerated() {
                            let x = input[row * inputColumns + column]
                            VectorMath.addScaled(weights.baseAddress! + o * columns, by: x, into: y, count: columns)
                        }
                    }
                }
                row += workers
            }
        }
    }

    /// ``finish`` for rows `first`, `first + step`, … through the AVX-512 loop, outlier columns
    /// included in the same pass.
    private static func finishRowsWide(_ output: UnsafeMutablePointer<Float>, rows: Int, columns: Int, first: Int, step: Int,
                                       scales: UnsafePointer<Float>, offsets: UnsafePointer<Float>, sums: UnsafePointer<Float>,
                                       bias: UnsafePointer<Float>, outliers: (OutlierColumns, input: UnsafePointer<Float>, inputColumns: Int)?) {
        let apart = outliers?.0.columns ?? []
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, apart.count)) { x in
            (outliers?.0.weights ?? []).withUnsafeBufferPointer { weights in
                var row = first
                while row < rows {
                    if let (_, input, inputColumns) = outliers {
                        for (o, column) in apart.enumerated() { x[o] = input[row * inputColumns + column] }
                    }
                    bgem3_int8_finish_row(output + row * columns, Int32(columns), scales[row], offsets[row], sums, bias,
                                          Int32(apart.count), x.baseAddress!, weights.baseAddress)
                    row += step
                }
            }
        }
    }
}
