import Foundation

/// The attention kernels alone on random data: timing for `bench` and tuning, and agreement of
/// oneDNN's products with the blocked fp32 kernel for tests.
public enum AttentionDiagnostics {
    /// Seconds for one layer's attention over one sequence of `length` tokens (median of `runs`).
    public static func measure(_ kernel: AttentionKernel, length: Int, heads: Int = 16, headSize: Int = 64, threads: Int, runs: Int = 5) throws -> Double {
        let blocked = BlockedAttention(heads: heads, headSize: headSize, threads: threads)
        let products = try kernel.operands.map {
            MatmulAttention(heads: heads, headSize: headSize, threads: threads, operands: $0, runtime: try OneDNNRuntime.shared(threads: threads))
        }
        let lane = ComputeLane(threads: threads)
        let qkv = randomProjection(tokens: length, hidden: heads * headSize, seed: 3)
        var context = [Float](repeating: 0, count: length * heads * headSize)
        let bytes = max(blocked.scratchBytes(longest: length), kernel.operands.map {
            MatmulAttention.scratchBytes(longest: length, heads: heads, headSize: headSize, threads: threads, operands: $0)
        } ?? 0)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { scratch.deallocate() }
        var times: [Double] = []
        try qkv.withUnsafeBufferPointer { q in
            try context.withUnsafeMutableBufferPointer { c in
                for _ in 0...runs {
                    let start = DispatchTime.now().uptimeNanoseconds
                    if let products, MatmulAttention.takes(length: length) {
                        try products.run(qkv: q.baseAddress!, context: c.baseAddress!, sequences: [(0, length)], scratch: scratch, lane: lane, checkpoint: nil)
                    } else {
                        blocked.run(qkv: q.baseAddress!, context: c.baseAddress!, sequences: [(0, length)], scratch: scratch, lane: lane)
                    }
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
            }
        }
        return times.dropFirst().sorted()[runs / 2]
    }

    /// How closely oneDNN's attention products with these operands follow the blocked fp32
    /// kernel, over one batch of sequences of `lengths` tokens (those outside the products' range
    /// go through the blocked kernel in both runs).
    /// - Returns: the smallest cosine between corresponding context rows of one head, the largest
    ///   absolute difference, the checkpoint rounds the products' run took, and whether anything was
    ///   written past the scratch size the kernels ask for (a guard area after it is checked);
    ///   nil where the CPU cannot run these operands.
    public static func agreement(of operands: AttentionOperands, lengths: [Int], heads: Int = 4, headSize: Int = 64, threads: Int,
                                 seed: UInt64 = 11) throws
        -> (minimumCosine: Float, maximumDifference: Float, rounds: Int, scratchOverrun: Bool)? {
        guard AttentionKernel.products(operands).unsupportedReason(headSize: headSize) == nil else { return nil }
        let runtime = try OneDNNRuntime.shared(threads: threads)
        let hidden = heads * headSize
        let tokens = lengths.reduce(0, +)
        let sequences = consecutive(lengths)
        let qkv = randomProjection(tokens: tokens, hidden: hidden, seed: seed)
        let blocked = BlockedAttention(heads: heads, headSize: headSize, threads: threads)
        let products = MatmulAttention(heads: heads, headSize: headSize, threads: threads, operands: operands, runtime: runtime)
        let lane = ComputeLane(threads: threads)
        let longest = lengths.max() ?? 0
        let bytes = max(blocked.scratchBytes(longest: longest),
                        MatmulAttention.scratchBytes(longest: longest, heads: heads, headSize: headSize, threads: threads, operands: operands))
        let guardBytes = 4096
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(64, bytes) + guardBytes, alignment: 64)
        defer { scratch.deallocate() }
        let guardArea = (scratch + max(64, bytes)).bindMemory(to: UInt8.self, capacity: guardBytes)
        guardArea.update(repeating: 0xA5, count: guardBytes)
        var expected = [Float](repeating: .nan, count: tokens * hidden)
        var got = [Float](repeating: .nan, count: tokens * hidden)
        var rounds = 0
        try qkv.withUnsafeBufferPointer { q throws(OneDNNError) in
            expected.withUnsafeMutableBufferPointer { e in
                blocked.run(qkv: q.baseAddress!, context: e.baseAddress!, sequences: sequences, scratch: scratch, lane: lane)
            }
            let taken = sequences.filter { MatmulAttention.takes(length: $0.length) }
            let others = sequences.filter { !MatmulAttention.takes(length: $0.length) }
            try got.withUnsafeMutableBufferPointer { g throws(OneDNNError) in
                if !taken.isEmpty {
                    try products.run(qkv: q.baseAddress!, context: g.baseAddress!, sequences: taken, scratch: scratch, lane: lane) { rounds += 1 }
                }
                if !others.isEmpty { blocked.run(qkv: q.baseAddress!, context: g.baseAddress!, sequences: others, scratch: scratch, lane: lane) }
            }
        }
        var minimumCosine: Float = 1
        var maximumDifference: Float = 0
        for token in 0..<tokens {
            for head in 0..<heads {
                let offset = token * hidden + head * headSize
                var dot: Float = 0, normE: Float = 0, normG: Float = 0
                for k in 0..<headSize {
                    let (a, b) = (expected[offset + k], got[offset + k])
                    dot += a * b
                    normE += a * a
                    normG += b * b
                    maximumDifference = max(maximumDifference, abs(a - b).isNaN ? .infinity : abs(a - b))
                }
                let cosine = dot / (normE.squareRoot() * normG.squareRoot())
                minimumCosine = min(minimumCosine, cosine.isNaN ? -1 : cosine)
            }
        }
        let overrun = (0..<guardBytes).contains { guardArea[$0] != 0xA5 }
        return (minimumCosine, maximumDifference, rounds, overrun)
    }

    /// The largest difference between int8 attention in ``AttentionProducts``' loops and with
    /// oneDNN's products and ``AttentionQuantization``'s passes, over one batch of sequences of
    /// `lengths` tokens (each within ``MatmulAttention``'s range); nil where the loops do not run.
    /// Both sum exactly in int32 and the passes repeat each other's operations, so it should be 0.
    public static func int8ProductsDifference(lengths: [Int], heads: Int = 4, headSize: Int = 64, threads: Int, seed: UInt64 = 5) throws -> Float? {
        guard AttentionKernel.products(.int8).unsupportedReason(headSize: headSize) == nil, AttentionProducts.run(headSize: headSize) else { return nil }
        precondition(lengths.allSatisfy { MatmulAttention.takes(length: $0) })
        let runtime = try OneDNNRuntime.shared(threads: threads)
        let hidden = heads * headSize
        let tokens = lengths.reduce(0, +)
        let sequences = consecutive(lengths)
        let qkv = randomProjection(tokens: tokens, hidden: hidden, seed: seed)
        let lane = ComputeLane(threads: threads)
        let bytes = MatmulAttention.scratchBytes(longest: lengths.max() ?? 0, heads: heads, headSize: headSize, threads: threads, operands: .int8)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(64, bytes), alignment: 64)
        defer { scratch.deallocate() }
        var contexts: [[Float]] = []
        for own in [true, false] {
            let attention = MatmulAttention(heads: heads, headSize: headSize, threads: threads, operands: .int8, runtime: runtime, ownInt8Products: own)
            var context = [Float](repeating: .nan, count: tokens * hidden)
            try qkv.withUnsafeBufferPointer { q throws(OneDNNError) in
                try context.withUnsafeMutableBufferPointer { c throws(OneDNNError) in
                    try attention.run(qkv: q.baseAddress!, context: c.baseAddress!, sequences: sequences, scratch: scratch, lane: lane, checkpoint: nil)
                }
            }
            contexts.append(context)
        }
        return zip(contexts[0], contexts[1]).map { abs($0 - $1).isNaN ? .infinity : abs($0 - $1) }.max() ?? 0
    }

    /// Sequences of `lengths` tokens one after another in one batch.
    private static func consecutive(_ lengths: [Int]) -> [(start: Int, length: Int)] {
        var sequences: [(start: Int, length: Int)] = []
        for length in lengths { sequences.append((sequences.last.map { $0.start + $0.length } ?? 0, length)) }
        return sequences
    }

    /// A fused query-key-value projection of `tokens` rows with the spread of real activations.
    private static func randomProjection(tokens: Int, hidden: Int, seed: UInt64) -> [Float] {
        var generator = NormalGenerator(seed: seed)
        return (0..<(tokens * 3 * hidden)).map { _ in generator.next() }
    }
}
