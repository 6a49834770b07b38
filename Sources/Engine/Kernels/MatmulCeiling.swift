import Foundation

/// The speed of the engine's own matrix product on this machine at one precision: a 512×1024 by
/// 1024×4096 product (the shape of BGE-M3's feed-forward on one 512-token sequence), with the
/// weights laid out, and at int8 the activations quantised, as the engine does it. Benchmarks
/// compare the model's matrix time against it.
public enum MatmulCeiling {
    /// GFLOP/s (GOP/s at int8), the median of `runs` timed products after one warm-up.
    public static func measure(threads: Int, precision: Precision = .fp32, runs: Int = 7) throws -> Double {
        let runtime = try OneDNNRuntime.shared(threads: threads)
        let (m, k, n) = (512, 1024, 4096)
        var generator = NormalGenerator(seed: 7)
        let weights = (0..<(n * k)).map { _ in generator.next() * 0.02 }
        let bias = [Float](repeating: 0, count: n)
        let input = (0..<(m * k)).map { _ in generator.next() }
        var output = [Float](repeating: 0, count: m * n)
        let layer = try weights.withUnsafeBufferPointer { w in
            try bias.withUnsafeBufferPointer { b in
                try PackedMatmul(weight: w.baseAddress!, bias: b.baseAddress!, outputSize: n, inputSize: k, gelu: false, precision: precision, runtime: runtime)
            }
        }
        let lane = ComputeLane(threads: threads)
        var times: [Double] = []
        try input.withUnsafeBufferPointer { x in
            try output.withUnsafeMutableBufferPointer { y in
                for run in 0...runs {
                    let start = DispatchTime.now().uptimeNanoseconds
                    try layer.run(rows: m, input: x.baseAddress!, output: y.baseAddress!, lane: lane)
                    if run > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
                }
            }
        }
        let median = times.sorted()[times.count / 2]
        return 2.0 * Double(m) * Double(k) * Double(n) / median / 1e9
    }
}
