import Foundation

/// Times the attention kernel alone on random data: a diagnostic for `bench` and tuning.
public enum AttentionTiming {
    /// Seconds for one layer's attention over one sequence of `length` tokens (median of `runs`).
    public static func measure(length: Int, heads: Int = 16, headSize: Int = 64, threads: Int, runs: Int = 5) -> Double {
        let attention = BlockedAttention(heads: heads, headSize: headSize, threads: threads)
        let hidden = heads * headSize
        var generator = NormalGenerator(seed: 3)
        let qkv = (0..<(length * 3 * hidden)).map { _ in generator.next() }
        var context = [Float](repeating: 0, count: length * hidden)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: attention.scratchBytes(longest: length), alignment: 64)
        defer { scratch.deallocate() }
        var times: [Double] = []
        qkv.withUnsafeBufferPointer { q in
            context.withUnsafeMutableBufferPointer { c in
                for _ in 0...runs {
                    let start = DispatchTime.now().uptimeNanoseconds
                    attention.run(qkv: q.baseAddress!, context: c.baseAddress!, sequences: [(0, length)], scratch: scratch)
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
            }
        }
        return times.dropFirst().sorted()[runs / 2]
    }
}

/// A nanosecond total that several threads may add to and one reads and resets.
final class NanosecondCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total: UInt64 = 0

    func add(_ nanoseconds: UInt64) { lock.withLock { total += nanoseconds } }

    func take() -> UInt64 {
        lock.withLock {
            defer { total = 0 }
            return total
        }
    }
}
