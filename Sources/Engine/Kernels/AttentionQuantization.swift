/// The passes around ``MatmulAttention``'s int8 products: queries and keys to s8 with a scale
/// per row, values to s8 with a scale per column, and the softmax that turns the s32 scores into
/// u8 weights.
///
/// Why no scales inside the oneDNN products: oneDNN 2.6.3 gives a product with run-time output
/// scales to its older `gemm:jit` kernel, at about half the rate of the VNNI `brg` kernel it picks
/// for a product without them (one Emerald Rapids thread: 128×64×512 s8·s8 0.029 against 0.025 ms,
/// 128×512×64 u8·s8 0.031 against 0.016 ms; fp32 0.066 and 0.061 ms). The scales are applied here
/// instead, in passes that read those values anyway.
enum AttentionQuantization {
    typealias Vector = SIMD8<Float>

    /// round(t) for |t| < 2²², by adding 1.5·2²³, which leaves it in the low mantissa bits (see
    /// ``VectorMath/exp(_:)``).
    @inline(__always)
    private static func rounded(_ t: Vector) -> SIMD8<Int32> {
        let magic = Vector(repeating: 12_582_912.0)
        return unsafeBitCast(t + magic, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    }

    /// `target = round(row / scale)` in −127...127 with `scale = max|row| / 127`; returns the
    /// scale (0 for a row of zeros, which is written as zeros). `count` is a multiple of 8.
    @inline(__always)
    static func quantizeRow(_ row: UnsafePointer<Float>, count: Int, into target: UnsafeMutablePointer<Int8>) -> Float {
        var largest = Vector.zero
        var i = 0
        while i < count {
            let v = VectorMath.load(row + i)
            largest = VectorMath.maximum(largest, VectorMath.maximum(v, -v))
            i += 8
        }
        let maximum = VectorMath.horizontalMaximum(largest)
        guard maximum > 0 else {
            target.initialize(repeating: 0, count: count)
            return 0
        }
        let inverse = Vector(repeating: 127 / maximum)
        i = 0
        while i < count {
            let integers = rounded(VectorMath.load(row + i) * inverse)
            store(integers, into: target + i)
            i += 8
        }
        return maximum / 127
    }

    /// Quantises `rows` rows of `count` values (`stride` floats apart in `source`) to s8 with one
    /// scale per column, `scales[c] = max over rows |x[·][c]| / 127`, into `target` (`count` bytes
    /// per row), row `r` at ``position(ofKey:)`` (the weights' order). `count` is a multiple of 8.
    static func quantizeColumns(_ source: UnsafePointer<Float>, stride: Int, rows: Int, count: Int,
                                into target: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>) {
        // `scales` holds the columns' largest magnitudes, then their inverses, then the scales.
        // Row by row in both passes: a column-by-column pass read each row's cache lines once per
        // 8 columns, rows 12 KiB apart in the fused projection.
        scales.initialize(repeating: 0, count: count)
        for r in 0..<rows {
            var i = 0
            while i < count {
                let v = VectorMath.load(source + r * stride + i)
                VectorMath.store(VectorMath.maximum(VectorMath.load(scales + i), VectorMath.maximum(v, -v)), scales + i)
                i += 8
            }
        }
        divide(127, by: scales, count: count)
        for r in 0..<rows {
            let row = target + position(ofKey: r) * count
            var i = 0
            while i < count {
                store(rounded(VectorMath.load(source + r * stride + i) * VectorMath.load(scales + i)), into: row + i)
                i += 8
            }
        }
        divide(1, by: scales, count: count)
    }

    /// `values[i] = numerator / values[i]`, a zero staying zero (a column of zeros). `count` is a
    /// multiple of 8.
    @inline(__always)
    private static func divide(_ numerator: Float, by values: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i < count {
            let value = VectorMath.load(values + i)
            var quotient = Vector(repeating: numerator) / value
            quotient.replace(with: 0, where: value .== 0)
            VectorMath.store(quotient, values + i)
            i += 8
        }
    }

    /// One row of attention weights from the integer scores: `s[j] = raw[j] · rowScale · keyScales[j]`
    /// for the first `length` keys, then `weights[j] = round(255 · e^(s[j] − max s))` as u8 for
    /// every one of `keys` (the padding keys get 0), in the order of ``position(ofKey:)``. Returns
    /// `1 / Σ weights`, by which the row's product with the values is multiplied: the weights used
    /// are exactly those quantised, so they sum to one.
    ///
    /// The weights are the softmax's numerators rather than the probabilities, so that the largest
    /// is 255 in every row: a long row's probabilities are all small (1/512 each when the scores
    /// are equal), which u8 steps of 1/255 could not tell apart. Weights under 1/510 of the row's
    /// largest round to zero; `bgem3 eval` measures what that costs on the weights loaded.
    static func weights(_ raw: UnsafeMutablePointer<Float>, length: Int, keys: Int, rowScale: Float, keyScales: UnsafePointer<Float>,
                        into weights: UnsafeMutablePointer<UInt8>) -> Float {
        precondition(keys % 32 == 0, "weights are written in groups of 32 keys")
        let whole = length & ~7
        let end = (length + 7) & ~7
        let scale = Vector(repeating: rowScale)
        @inline(__always) func scaled(_ i: Int) -> Vector {
            let s = VectorMath.load(raw + i) * scale * VectorMath.load(keyScales + i)
            VectorMath.store(s, raw + i)
            return s
        }
        // Two maximum chains: with one, the loop waited out the instruction's latency at every step.
        var (largest0, largest1) = (Vector(repeating: -.infinity), Vector(repeating: -.infinity))
        var i = 0
        while i + 16 <= whole {
            largest0 = VectorMath.maximum(largest0, scaled(i))
            largest1 = VectorMath.maximum(largest1, scaled(i + 8))
            i += 16
        }
        if i < whole { largest0 = VectorMath.maximum(largest0, scaled(i)) }
        if whole < length {
            var s = scaled(whole)
            s.replace(with: -.infinity, where: SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) .>= SIMD8<Int32>(repeating: Int32(length - whole)))
            VectorMath.store(s, raw + whole)
            largest1 = VectorMath.maximum(largest1, s)
        }
        let largest = VectorMath.horizontalMaximum(VectorMath.maximum(largest0, largest1))
        // Whole groups of 32 keys (`keys` is a multiple of 64): the padding in the last one weighs 0.
        let groupEnd = (length + 31) & ~31
        i = end
        while i < groupEnd { VectorMath.store(Vector(repeating: -.infinity), raw + i); i += 8 }
        let total = exponentiated(raw, count: groupEnd, minus: largest, into: weights)
        if groupEnd < keys { (weights + groupEnd).initialize(repeating: 0, count: keys - groupEnd) }
        return 1 / Float(total)
    }

    /// Where key `key`'s weight lies in a row of weights, and so its row in the values' panel.
    ///
    /// Weights are written 32 keys at a time, as four vectors of eight lanes packed into one
    /// (lane k's four bytes are keys k, 8 + k, 16 + k and 24 + k of the group) with three shifts and
    /// three ORs. Narrowing each vector to bytes in order took four shuffles per eight weights,
    /// all on one execution port (the softmax went from 5.5% to 4.9% of an int8 1×512 pass in
    /// perf). The product sums over keys, so the values only need their rows in the same order.
    @inline(__always)
    static func position(ofKey key: Int) -> Int {
        let within = key & 31
        return (key & ~31) | ((within & 7) << 2) | (within >> 3)
    }

    /// `round(255 · e^(row[i] − shift))` for `count` (a multiple of 32) elements, each at most
    /// `shift`, written as bytes in the order of ``position(ofKey:)``; returns the sum of the bytes.
    ///
    /// Its own `e^x`, coarser than ``VectorMath/exp(_:)`` and written into the loop: the result has
    /// 255 levels, so a degree-4 polynomial (relative error under 5·10⁻⁵, a hundredth of a level)
    /// and a one-constant range reduction do, and inputs at or below 0 need no upper clamp. With
    /// `VectorMath.exp` (degree 6, a call per vector from this file, whose result narrowed through
    /// another call) this pass was twice the time of the two int8 products it sits between.
    @inline(__always)
    private static func exponentiated(_ row: UnsafePointer<Float>, count: Int, minus shift: Float,
                                      into target: UnsafeMutablePointer<UInt8>) -> Int32 {
        let broadcast = Vector(repeating: shift)
        let magic = Vector(repeating: 12_582_912.0)
        let magicBits = unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let floor = Vector(repeating: -87)
        let log2e = Vector(repeating: 1.442_695_04)
        let minusLn2 = Vector(repeating: -0.693_147_18)
        let (c4, c3, c2, one) = (Vector(repeating: 1.0 / 24), Vector(repeating: 1.0 / 6), Vector(repeating: 0.5), Vector(repeating: 1))
        let levels = Vector(repeating: 255)
        let bias = SIMD8<Int32>(repeating: 127) &<< 23
        @inline(__always) func weight(_ i: Int) -> SIMD8<Int32> {
            // e^x = 2ⁿ·e^r with n = round(x·log₂e), |r| ≤ ln2/2; below −87 the result rounds to 0 anyway.
            let x = VectorMath.maximum(VectorMath.load(row + i) - broadcast, floor)
            let shifted = magic.addingProduct(x, log2e)
            let n = shifted - magic
            let r = x.addingProduct(n, minusLn2)
            var p = c3.addingProduct(c4, r)
            p = c2.addingProduct(p, r)
            p = one.addingProduct(p, r)
            p = one.addingProduct(p, r)
            let power = unsafeBitCast(((unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- magicBits) &<< 23) &+ bias, to: Vector.self)
            return unsafeBitCast(magic.addingProduct(levels, p * power), to: SIMD8<Int32>.self) &- magicBits
        }
        var sums = SIMD8<Int32>.zero
        var i = 0
        while i < count {
            let (a, b, c, d) = (weight(i), weight(i + 8), weight(i + 16), weight(i + 24))
            sums &+= (a &+ b) &+ (c &+ d)
            let packed = a | (b &<< 8) | (c &<< 16) | (d &<< 24)
            UnsafeMutableRawPointer(target + i).storeBytes(of: packed, as: SIMD8<Int32>.self)
            i += 32
        }
        return sums.wrappedSum()
    }

    /// The low byte of each lane, written as 8 bytes. Spelled as a shuffle of the lanes' bytes:
    /// `SIMD8<Int8>(truncatingIfNeeded:)` stayed a call per vector here.
    @inline(__always)
    private static func store(_ integers: SIMD8<Int32>, into target: UnsafeMutablePointer<Int8>) {
        let b = unsafeBitCast(integers, to: SIMD32<UInt8>.self)
        let bytes = SIMD8<UInt8>(b[0], b[4], b[8], b[12], b[16], b[20], b[24], b[28])
        UnsafeMutableRawPointer(target).storeBytes(of: bytes, as: SIMD8<UInt8>.self)
    }

    /// `target[c] = row[c] · factor · columnScales[c]`: one context row from the integer product of
    /// the weights and the values. `count` is a multiple of 8.
    @inline(__always)
    static func scaleRow(_ row: UnsafePointer<Float>, by factor: Float, columnScales: UnsafePointer<Float>, count: Int,
                         into target: UnsafeMutablePointer<Float>) {
        let broadcast = Vector(repeating: factor)
        var i = 0
        while i < count {
            VectorMath.store(VectorMath.load(row + i) * broadcast * VectorMath.load(columnScales + i), target + i)
            i += 8
        }
    }
}
