/// Element-wise kernels of the forward pass, vectorised with `SIMD8<Float>` (AVX2 lanes; the
/// package builds Swift code for Haswell). They work on raw buffers and never allocate.
enum VectorMath {
    typealias Vector = SIMD8<Float>

    @inline(__always)
    static func load(_ pointer: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(pointer).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    static func store(_ value: Vector, _ pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: Vector.self)
    }

    /// `row = LayerNorm(row + residual) · gamma + beta`, as PyTorch computes it (biased variance).
    /// `residual` may be nil.
    static func layerNorm(_ row: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?, count: Int,
                          gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, epsilon: Float) {
        let vectorEnd = count & ~7
        // The sums run in four independent chains of vectors, the residual added in the first:
        // one chain waits out the addition's latency at every step (four cycles for eight values).
        // LayerNorms at int8 1×128 took 0.0033 s before, 0.0027 s after (Emerald Rapids pair).
        let quadEnd = count & ~31
        var sums = (Vector.zero, Vector.zero, Vector.zero, Vector.zero)
        var i = 0
        if let residual {
            @inline(__always) func added(_ offset: Int) -> Vector {
                let value = load(row + offset) + load(residual + offset)
                store(value, row + offset)
                return value
            }
            while i < quadEnd {
                sums.0 += added(i); sums.1 += added(i + 8); sums.2 += added(i + 16); sums.3 += added(i + 24)
                i += 32
            }
            while i < vectorEnd { sums.0 += added(i); i += 8 }
            while i < count { row[i] += residual[i]; i += 1 }
        } else {
            while i < quadEnd {
                sums.0 += load(row + i); sums.1 += load(row + i + 8); sums.2 += load(row + i + 16); sums.3 += load(row + i + 24)
                i += 32
            }
            while i < vectorEnd { sums.0 += load(row + i); i += 8 }
        }
        var total = ((sums.0 + sums.1) + (sums.2 + sums.3)).sum()
        i = vectorEnd
        while i < count { total += row[i]; i += 1 }
        let mean = total / Float(count)
        let meanVector = Vector(repeating: mean)
        @inline(__always) func deviation(_ offset: Int) -> Vector { load(row + offset) - meanVector }
        var squares = (Vector.zero, Vector.zero, Vector.zero, Vector.zero)
        i = 0
        while i < quadEnd {
            let (a, b, c, d) = (deviation(i), deviation(i + 8), deviation(i + 16), deviation(i + 24))
            squares = (squares.0.addingProduct(a, a), squares.1.addingProduct(b, b), squares.2.addingProduct(c, c), squares.3.addingProduct(d, d))
            i += 32
        }
        while i < vectorEnd { let d = deviation(i); squares.0 = squares.0.addingProduct(d, d); i += 8 }
        var variance = ((squares.0 + squares.1) + (squares.2 + squares.3)).sum()
        while i < count { let d = row[i] - mean; variance += d * d; i += 1 }
        variance /= Float(count)
        let scale = 1 / (variance + epsilon).squareRoot()
        let scaleVector = Vector(repeating: scale)
        i = 0
        while i < vectorEnd {
            let normalized = (load(row + i) - meanVector) * scaleVector
            store(normalized * load(gamma + i) + load(beta + i), row + i)
            i += 8
        }
        while i < count { row[i] = (row[i] - mean) * scale * gamma[i] + beta[i]; i += 1 }
    }

    /// `e^x` for each lane, accurate to a few ulp for inputs above -87 (below, 0).
    ///
    /// Written with plain lane operations only: Swift's generic SIMD conversions
    /// (`SIMD8<Int32>(floats)`, `rounded`, `clamped`) were not vectorised and took most of the
    /// softmax time. Rounding uses the 1.5·2²³ trick: adding it leaves round(x) in the low
    /// mantissa bits. Products and sums are spelled as `addingProduct`, because Swift does not
    /// contract `a * b + c` into one fused instruction by itself (a third of the instructions
    /// here, and the softmax of attention is a quarter of its time).
    @inline(__always)
    static func exp(_ x: Vector) -> Vector {
        var clamped = x
        clamped.replace(with: -87.0, where: x .< -87.0)
        clamped.replace(with: 88.0, where: x .> 88.0)
        let magic = Vector(repeating: 12_582_912.0)
        let shifted = magic.addingProduct(clamped, Vector(repeating: 1.442_695_04))
        let n = shifted - magic
        var r = clamped.addingProduct(n, Vector(repeating: -0.693_359_375))
        r = r.addingProduct(n, Vector(repeating: 2.121_944_4e-4))
        var p = Vector(repeating: 1.398_199_950_7e-3).addingProduct(Vector(repeating: 1.987_569_15e-4), r)
        p = Vector(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
        p = Vector(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
        p = Vector(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
        p = Vector(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
        let y = r.addingProduct(p, r * r) + 1
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((integer &+ 127) &<< 23, to: Vector.self)
        var result = y * scale
        result.replace(with: 0, where: x .< -87.0)
        return result
    }

    /// `row[i] = e^(row[i] − shift)` for `count` (a multiple of 8) elements; returns their sum.
    ///
    /// One loop around ``exp(_:)`` rather than a call per vector: the compiler did not inline
    /// `exp` into the attention kernel, and each call reloaded the constants and split its
    /// argument into halves (the softmax took a third of the attention time).
    static func exponentiate(_ row: UnsafeMutablePointer<Float>, count: Int, minus shift: Float) -> Float {
        let broadcast = Vector(repeating: shift)
        var sums = Vector.zero
        var i = 0
        while i < count {
            let e = exp(load(row + i) - broadcast)
            store(e, row + i)
            sums += e
            i += 8
        }
        return sums.sum()
    }

    /// The largest lane (Swift's generic `max()` was not specialised here).
    @inline(__always)
    static func horizontalMaximum(_ v: Vector) -> Float {
        let a = maximum(v, Vector(v[4], v[5], v[6], v[7], v[0], v[1], v[2], v[3]))
        let b = maximum(a, Vector(a[2], a[3], a[0], a[1], a[6], a[7], a[4], a[5]))
        return Swift.max(b[0], b[1])
    }

    @inline(__always)
    static func maximum(_ a: Vector, _ b: Vector) -> Vector {
        var result = a
        result.replace(with: b, where: b .> a)
        return result
    }

    @inline(__always)
    static func minimum(_ a: Vector, _ b: Vector) -> Vector {
        var result = a
        result.replace(with: b, where: b .< a)
        return result
    }

    /// Softmax of one row in place.
    static func softmax(_ row: UnsafeMutablePointer<Float>, count: Int) {
        let vectorEnd = count & ~7
        var maxVector = Vector(repeating: -.infinity)
        var i = 0
        while i < vectorEnd { maxVector = maximum(maxVector, load(row + i)); i += 8 }
        var maximum = horizontalMaximum(maxVector)
        while i < count { maximum = Swift.max(maximum, row[i]); i += 1 }
        var total = exponentiate(row, count: vectorEnd, minus: maximum)
        i = vectorEnd
        while i < count {
            var tail = Vector(repeating: -.infinity)
            tail[0] = row[i] - maximum
            let e = exp(tail)[0]
            row[i] = e
            total += e
            i += 1
        }
        let inverse = Vector(repeating: 1 / total)
        i = 0
        while i < vectorEnd { store(load(row + i) * inverse, row + i); i += 8 }
        while i < count { row[i] *= inverse[0]; i += 1 }
    }

    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        let vectorEnd = count & ~7
        var sum = Vector.zero
        var i = 0
        while i < vectorEnd { sum = sum.addingProduct(load(a + i), load(b + i)); i += 8 }
        var total = sum.sum()
        while i < count { total += a[i] * b[i]; i += 1 }
        return total
    }

    /// Scales a vector to unit length (left as is when its norm is zero), like
    /// `torch.nn.functional.normalize` with its epsilon of 1e-12.
    static func normalize(_ vector: UnsafeMutablePointer<Float>, count: Int) {
        let norm = dot(vector, vector, count: count).squareRoot()
        let inverse = 1 / Swift.max(norm, 1e-12)
        for i in 0..<count { vector[i] *= inverse }
    }

    /// `destination += factor · source`.
    static func addScaled(_ source: UnsafePointer<Float>, by factor: Float, into destination: UnsafeMutablePointer<Float>, count: Int) {
        let scale = Vector(repeating: factor)
        var i = 0
        while i + 8 <= count {
            store(load(destination + i).addingProduct(scale, load(source + i)), destination + i)
            i += 8
        }
        while i < count { destination[i] += factor * source[i]; i += 1 }
    }

    /// `destination[i] += source[i]`.
    static func add(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        let vectorEnd = count & ~7
        var i = 0
        while i < vectorEnd { store(load(destination + i) + load(source + i), destination + i); i += 8 }
        while i < count { destination[i] += source[i]; i += 1 }
    }
}
