/// Multi-head self-attention over unpadded sequences, computed flash-attention style: queries in
/// blocks of 30 rows, keys in blocks of 128, with an online softmax, so that nothing of size S × S
/// exists and the working set stays in cache. Memory grows linearly with sequence length (one
/// transposed copy of a head's keys per thread).
///
/// Input is the fused projection `qkv` (`tokens × 3·hidden`: queries, keys, values side by side);
/// each sequence attends only to itself, so no padding or mask is needed. Work items are
/// (sequence, head) pairs spread over the threads; the inner products are SIMD micro-kernels
/// (6 query rows × 16 keys for the scores, 6 rows × 16 value columns for the output).
///
/// Each head's keys and values are first copied into contiguous panels: read in place, rows of
/// `qkv` lie 12 KB apart, and the micro-kernels' 64 loads per step all fell into the same L1
/// cache set (29 GFLOP/s on one Zen 3 core before packing).
struct BlockedAttention {
    let heads: Int
    let headSize: Int
    let threads: Int
    /// Query rows per block (a multiple of ``tileRows``): the most that leaves room in the largest
    /// block for every query block to reuse the head's key and value panels from cache.
    let queryBlock = 126

    /// Query rows per block for a sequence: short sequences keep the block within L1 (32 rows ran
    /// 101 GFLOP/s at 128 tokens against 74 for 128 rows); long ones read each key/value panel
    /// less often (128 rows: 122 GFLOP/s at 8192 tokens, two Zen 3 cores). Both are rounded to
    /// multiples of ``tileRows``.
    private func rowsPerBlock(length: Int) -> Int {
        length > 1024 ? queryBlock : 30
    }
    /// Keys per block (a multiple of 16). 128 rather than 64: half the online-softmax rescaling
    /// of the output, and no rescaling at all for sequences up to 128 tokens (1×512 attention
    /// 0.170 s against 0.178 s, median of five alternated runs on Zen 4).
    let keyBlock = 128

    var hidden: Int { heads * headSize }

    init(heads: Int, headSize: Int, threads: Int) {
        precondition(headSize % 8 == 0, "head size must be a multiple of 8")
        self.heads = heads
        self.headSize = headSize
        self.threads = threads
    }

    /// Floats of scratch one thread needs for sequences up to `longest` tokens.
    private func floatsPerThread(longest: Int) -> Int {
        let paddedKeys = (longest + 15) & ~15
        return 2 * headSize * paddedKeys + queryBlock * keyBlock + 2 * queryBlock * headSize + 2 * queryBlock
    }

    /// Bytes of scratch for sequences up to `longest` tokens.
    func scratchBytes(longest: Int) -> Int {
        longest == 0 ? 0 : threads * floatsPerThread(longest: longest) * MemoryLayout<Float>.size
    }

    /// `context[token, head·headSize ..< (head+1)·headSize]` for every token of every sequence.
    /// - Parameters:
    ///   - sequences: start row and length of each sequence in `qkv` and `context`.
    ///   - scratch: at least ``scratchBytes(longest:)`` bytes.
    ///   - lane: the team to run on (at most ``threads`` of its threads work: the scratch is sized for that many).
    ///   - checkpoint: called between rounds of about ``roundWork`` row·key products per thread
    ///     (a few milliseconds), outside any parallel region, so that a scheduler can run urgent work
    ///     in the middle of a long batch. Without it, everything runs in one round.
    func run(qkv: UnsafePointer<Float>, context: UnsafeMutablePointer<Float>, sequences: [(start: Int, length: Int)],
             scratch: UnsafeMutableRawPointer, lane: ComputeLane, checkpoint: (() -> Void)? = nil) {
        let longest = sequences.map(\.length).max() ?? 0
        guard longest > 0 else { return }
        var items: [Item] = []
        items.reserveCapacity(sequences.count * heads)
        for sequence in sequences where sequence.length > 0 {
            for head in 0..<heads { items.append(Item(start: sequence.start, length: sequence.length, head: head)) }
        }
        // Longest first, so the threads finish together.
        items.sort { $0.length > $1.length }
        let perThread = floatsPerThread(longest: longest)
        let workers = min(threads, lane.threads, items.count)
        // Each worker takes items worker, worker + workers, …; its progress survives between rounds
        // (as does its scratch, where the current head's keys and values stay packed).
        var progress = [Progress](repeating: Progress(), count: workers)
        let shared = Shared((qkv: qkv, context: context, scratch: scratch.bindMemory(to: Float.self, capacity: perThread * workers)))
        let workItems = items
        let kernel = self
        let budget = checkpoint == nil ? Int.max : Self.roundWork
        while true {
            progress.withUnsafeMutableBufferPointer { buffer in
                let states = Shared(buffer)
                runWorkers(workers) { worker in
                    let (qkv, context, scratch) = shared.value
                    kernel.advance(&states.value[worker], worker: worker, workers: workers, items: workItems, budget: budget,
                                   qkv: qkv, context: context, scratch: scratch + worker * perThread)
                }
            }
            if progress.allSatisfy({ $0.item >= workItems.count }) { break }
            checkpoint?()
        }
    }

    /// Row·key products one thread computes per round when rounds are asked for: 256 MFLOP with
    /// 64-wide heads, 2-3 ms on one core, so urgent work waits little; a round costs one dispatch
    /// to the threads (tens of microseconds).
    static let roundWork = 1 << 20

    /// One (sequence, head) pair.
    private struct Item {
        var start: Int
        var length: Int
        var head: Int
    }

    /// Where a worker is: its current item and the next query row in it.
    private struct Progress {
        var item = -1
        var row = 0
        var packed = false
    }

    /// Computes query blocks of this worker's items until about `budget` row·key products are done
    /// (at least one block) or its items are finished.
    private func advance(_ state: inout Progress, worker: Int, workers: Int, items: [Item], budget: Int,
                         qkv: UnsafePointer<Float>, context: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        if state.item < 0 { state.item = worker }
        var done = 0
        while state.item < items.count && done < budget {
            let item = items[state.item]
            if !state.packed {
                packKeysAndValues(qkv: qkv, start: item.start, length: item.length, head: item.head, scratch: scratch)
                state.packed = true
            }
            let blockRows = rowsPerBlock(length: item.length)
            let wanted = budget == Int.max ? item.length : max(blockRows, (budget - done) / item.length / blockRows * blockRows)
            let end = min(item.length, state.row + wanted)
            attend(qkv: qkv, context: context, start: item.start, length: item.length, head: item.head, rows: state.row..<end, scratch: scratch)
            done += (end - state.row) * item.length
            state.row = end
            if end == item.length {
                state.item += workers
                state.row = 0
                state.packed = false
            }
        }
    }

    /// Copies one head's keys and values into the panels at the start of `scratch`.
    private func packKeysAndValues(qkv: UnsafePointer<Float>, start: Int, length: Int, head: Int, scratch: UnsafeMutablePointer<Float>) {
        let stride = 3 * hidden
        let d = headSize
        let paddedKeys = (length + 15) & ~15
        let keysT = scratch                                   // paddedKeys/16 panels of d × 16
        let packedValues = keysT + d * paddedKeys              // paddedKeys × d
        // Keys in panels of 16: within a panel, the 16 keys' values of one dimension are contiguous.
        for j in 0..<paddedKeys {
            let panel = keysT + (j >> 4) * (d * 16) + (j & 15)
            if j < length {
                let key = qkv + (start + j) * stride + hidden + head * d
                for k in 0..<d { panel[k * 16] = key[k] }
            } else {
                for k in 0..<d { panel[k * 16] = 0 }
            }
        }
        for j in 0..<length {
            (packedValues + j * d).update(from: qkv + (start + j) * stride + 2 * hidden + head * d, count: d)
        }
    }

    /// Query rows `rows` of one head of one sequence, whose keys and values are already packed in `scratch`.
    private func attend(qkv: UnsafePointer<Float>, context: UnsafeMutablePointer<Float>, start: Int, length: Int, head: Int,
                        rows queryRows: Range<Int>, scratch: UnsafeMutablePointer<Float>) {
        let stride = 3 * hidden
        let d = headSize
        let paddedKeys = (length + 15) & ~15
        let keysT = scratch
        let packedValues = keysT + d * paddedKeys
        let scores = packedValues + d * paddedKeys             // queryBlock × keyBlock
        let queries = scores + queryBlock * keyBlock           // queryBlock × d
        let output = queries + queryBlock * d                  // queryBlock × d
        let rowMax = output + queryBlock * d                   // queryBlock
        let rowSum = rowMax + queryBlock                       // queryBlock
        let scale = 1 / Float(d).squareRoot()

        let blockRows = rowsPerBlock(length: length)
        var firstRow = queryRows.lowerBound
        while firstRow < queryRows.upperBound {
            let rows = min(blockRows, queryRows.upperBound - firstRow)
            let paddedRows = (rows + Self.tileRows - 1) / Self.tileRows * Self.tileRows
            for r in 0..<paddedRows {
                let target = queries + r * d
                if r < rows {
                    let query = qkv + (start + firstRow + r) * stride + head * d
                    for k in 0..<d { target[k] = query[k] * scale }
                } else {
                    target.update(repeating: 0, count: d)
                }
            }
            output.update(repeating: 0, count: paddedRows * d)
            rowMax.update(repeating: -.infinity, count: paddedRows)
            rowSum.update(repeating: 0, count: paddedRows)

            var firstKey = 0
            while firstKey < length {
                let keys = min(keyBlock, length - firstKey)
                let paddedBlock = (keys + 15) & ~15
                Self.scores(queries: queries, keyPanels: keysT + (firstKey >> 4) * (d * 16), into: scores, scoresStride: keyBlock,
                            rows: paddedRows, keys: paddedBlock, depth: d)
                for r in 0..<paddedRows {
                    let row = scores + r * keyBlock
                    for j in keys..<paddedBlock { row[j] = -.infinity }
                    Self.onlineSoftmaxStep(row: row, count: paddedBlock, maximum: &rowMax[r], sum: &rowSum[r], output: output + r * d, depth: d)
                }
                Self.accumulate(probabilities: scores, probabilitiesStride: keyBlock, values: packedValues + firstKey * d, valuesStride: d,
                                into: output, rows: paddedRows, keys: keys, depth: d)
                firstKey += keyBlock
            }
            for r in 0..<rows {
                let inverse = 1 / rowSum[r]
                let source = output + r * d
                let target = context + (start + firstRow + r) * hidden + head * d
                for k in 0..<d { target[k] = source[k] * inverse }
            }
            firstRow += blockRows
        }
    }

    private typealias Vector = SIMD8<Float>

    /// Rows per micro-kernel tile: six rows × 16 columns is twelve accumulators, which with the
    /// two loaded vectors and one broadcast fills AVX2's sixteen registers. Measured no faster
    /// than four rows on Zen 4 (1×512 attention 0.183 s against 0.185 s), kept for CPUs with
    /// less load bandwidth per multiply-add.
    static let tileRows = 6

    /// `scores[r, j] = queries[r] · keys[j]` for `rows` (multiple of ``tileRows``) × `keys`
    /// (multiple of 16), keys given as consecutive panels of `depth × 16`.
    @inline(__always)
    private static func scores(queries: UnsafePointer<Float>, keyPanels: UnsafePointer<Float>,
                               into scores: UnsafeMutablePointer<Float>, scoresStride: Int, rows: Int, keys: Int, depth: Int) {
        var r = 0
        while r < rows {
            let q0 = queries + r * depth, q1 = q0 + depth, q2 = q1 + depth, q3 = q2 + depth, q4 = q3 + depth, q5 = q4 + depth
            var j = 0
            while j < keys {
                var a0 = Vector.zero, b0 = Vector.zero, a1 = Vector.zero, b1 = Vector.zero
                var a2 = Vector.zero, b2 = Vector.zero, a3 = Vector.zero, b3 = Vector.zero
                var a4 = Vector.zero, b4 = Vector.zero, a5 = Vector.zero, b5 = Vector.zero
                var k = keyPanels + (j >> 4) * (depth * 16)
                for dimension in 0..<depth {
                    let kLow = VectorMath.load(k), kHigh = VectorMath.load(k + 8)
                    var x = Vector(repeating: q0[dimension])
                    a0 = a0.addingProduct(x, kLow); b0 = b0.addingProduct(x, kHigh)
                    x = Vector(repeating: q1[dimension])
                    a1 = a1.addingProduct(x, kLow); b1 = b1.addingProduct(x, kHigh)
                    x = Vector(repeating: q2[dimension])
                    a2 = a2.addingProduct(x, kLow); b2 = b2.addingProduct(x, kHigh)
                    x = Vector(repeating: q3[dimension])
                    a3 = a3.addingProduct(x, kLow); b3 = b3.addingProduct(x, kHigh)
                    x = Vector(repeating: q4[dimension])
                    a4 = a4.addingProduct(x, kLow); b4 = b4.addingProduct(x, kHigh)
                    x = Vector(repeating: q5[dimension])
                    a5 = a5.addingProduct(x, kLow); b5 = b5.addingProduct(x, kHigh)
                    k += 16
                }
                var s = scores + r * scoresStride + j
                VectorMath.store(a0, s); VectorMath.store(b0, s + 8); s += scoresStride
                VectorMath.store(a1, s); VectorMath.store(b1, s + 8); s += scoresStride
                VectorMath.store(a2, s); VectorMath.store(b2, s + 8); s += scoresStride
                VectorMath.store(a3, s); VectorMath.store(b3, s + 8); s += scoresStride
                VectorMath.store(a4, s); VectorMath.store(b4, s + 8); s += scoresStride
                VectorMath.store(a5, s); VectorMath.store(b5, s + 8)
                j += 16
            }
            r += tileRows
        }
    }

    /// Folds one block of scores into a row's running softmax: the scores become
    /// `exp(score − new maximum)`, and the row's output and sum are rescaled to the new maximum.
    @inline(__always)
    private static func onlineSoftmaxStep(row: UnsafeMutablePointer<Float>, count: Int, maximum: inout Float, sum: inout Float,
                                          output: UnsafeMutablePointer<Float>, depth: Int) {
        var maxVector = Vector(repeating: -.infinity)
        var j = 0
        while j < count { maxVector = VectorMath.maximum(maxVector, VectorMath.load(row + j)); j += 8 }
        let newMaximum = max(maximum, VectorMath.horizontalMaximum(maxVector))
        let blockSum = VectorMath.exponentiate(row, count: count, minus: newMaximum)
        var correction = Vector(repeating: -.infinity)
        correction[0] = maximum - newMaximum
        let factor = maximum == -.infinity ? 0 : VectorMath.exp(correction)[0]
        if factor != 1 {
            let f = Vector(repeating: factor)
            var k = 0
            while k < depth { VectorMath.store(VectorMath.load(output + k) * f, output + k); k += 8 }
        }
        sum = sum * factor + blockSum
        maximum = newMaximum
    }

    /// `output[r] += Σ_j p[r, j] · values[j]` for `rows` (multiple of ``tileRows``) and `keys` keys.
    @inline(__always)
    private static func accumulate(probabilities: UnsafePointer<Float>, probabilitiesStride: Int, values: UnsafePointer<Float>,
                                   valuesStride: Int, into output: UnsafeMutablePointer<Float>, rows: Int, keys: Int, depth: Int) {
        var r = 0
        while r < rows {
            let p0 = probabilities + r * probabilitiesStride, p1 = p0 + probabilitiesStride, p2 = p1 + probabilitiesStride
            let p3 = p2 + probabilitiesStride, p4 = p3 + probabilitiesStride, p5 = p4 + probabilitiesStride
            var column = 0
            while column < depth {
                let o = output + r * depth + column
                var a0 = VectorMath.load(o), a1 = VectorMath.load(o + depth), a2 = VectorMath.load(o + 2 * depth)
                var a3 = VectorMath.load(o + 3 * depth), a4 = VectorMath.load(o + 4 * depth), a5 = VectorMath.load(o + 5 * depth)
                if column + 16 <= depth {
                    var b0 = VectorMath.load(o + 8), b1 = VectorMath.load(o + depth + 8), b2 = VectorMath.load(o + 2 * depth + 8)
                    var b3 = VectorMath.load(o + 3 * depth + 8), b4 = VectorMath.load(o + 4 * depth + 8), b5 = VectorMath.load(o + 5 * depth + 8)
                    var v = values + column
                    for j in 0..<keys {
                        let vLow = VectorMath.load(v), vHigh = VectorMath.load(v + 8)
                        var x = Vector(repeating: p0[j])
                        a0 = a0.addingProduct(x, vLow); b0 = b0.addingProduct(x, vHigh)
                        x = Vector(repeating: p1[j])
                        a1 = a1.addingProduct(x, vLow); b1 = b1.addingProduct(x, vHigh)
                        x = Vector(repeating: p2[j])
                        a2 = a2.addingProduct(x, vLow); b2 = b2.addingProduct(x, vHigh)
                        x = Vector(repeating: p3[j])
                        a3 = a3.addingProduct(x, vLow); b3 = b3.addingProduct(x, vHigh)
                        x = Vector(repeating: p4[j])
                        a4 = a4.addingProduct(x, vLow); b4 = b4.addingProduct(x, vHigh)
                        x = Vector(repeating: p5[j])
                        a5 = a5.addingProduct(x, vLow); b5 = b5.addingProduct(x, vHigh)
                        v += valuesStride
                    }
                    VectorMath.store(b0, o + 8); VectorMath.store(b1, o + depth + 8); VectorMath.store(b2, o + 2 * depth + 8)
                    VectorMath.store(b3, o + 3 * depth + 8); VectorMath.store(b4, o + 4 * depth + 8); VectorMath.store(b5, o + 5 * depth + 8)
                } else {
                    var v = values + column
                    for j in 0..<keys {
                        let vLow = VectorMath.load(v)
                        a0 = a0.addingProduct(Vector(repeating: p0[j]), vLow)
                        a1 = a1.addingProduct(Vector(repeating: p1[j]), vLow)
                        a2 = a2.addingProduct(Vector(repeating: p2[j]), vLow)
                        a3 = a3.addingProduct(Vector(repeating: p3[j]), vLow)
                        a4 = a4.addingProduct(Vector(repeating: p4[j]), vLow)
                        a5 = a5.addingProduct(Vector(repeating: p5[j]), vLow)
                        v += valuesStride
                    }
                }
                VectorMath.store(a0, o); VectorMath.store(a1, o + depth); VectorMath.store(a2, o + 2 * depth)
                VectorMath.store(a3, o + 3 * depth); VectorMath.store(a4, o + 4 * depth); VectorMath.store(a5, o + 5 * depth)
                column += column + 16 <= depth ? 16 : 8
            }
            r += tileRows
        }
    }
}
