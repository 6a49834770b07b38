import Engine
import Foundation

/// The fixed model workloads of `bgem3 bench`: token ids from a fixed seed (the speed of the
/// forward pass does not depend on which ids), each workload in a fresh state after a warm-up.
struct ModelBenchmark {
    struct Workload: Sendable {
        let name: String
        let lengths: [Int]
        /// Median of this many timed runs (1 for the 8192-token workload).
        let runs: Int
    }

    struct Result: Sendable {
        let name: String
        let sequences: Int
        let tokens: Int
        let lengths: [Int]
        let secondsMedian: Double
        let secondsMin: Double
        let tokensPerSecond: Double
        let peakResidentBytes: Int
        let residentBytesBefore: Int
        /// The time by stage of the median run (the lower one of an even count, so it is no longer than the median).
        let profile: PassProfile
    }

    static let names = ["1x16", "1x32", "1x128", "8x16", "1x512", "1x8192", "64xmixed"]

    static func workload(_ name: String, runs: Int) -> Workload? {
        switch name {
        // One short query: where per-call overheads show.
        case "1x16": return Workload(name: name, lengths: [16], runs: max(runs, 20))
        case "1x32": return Workload(name: name, lengths: [32], runs: max(runs, 20))
        case "1x128": return Workload(name: name, lengths: [128], runs: runs)
        // Eight short queries in one batch: the pass of 8 concurrent clients (scripts/load/short_queries.py),
        // the same 128 tokens as 1x128 with eight sequences' attention.
        case "8x16": return Workload(name: name, lengths: Array(repeating: 16, count: 8), runs: runs)
        case "1x512": return Workload(name: name, lengths: [512], runs: runs)
        case "1x8192": return Workload(name: name, lengths: [8192], runs: 1)
        case "64xmixed":
            var generator = SeededGenerator(seed: 64)
            return Workload(name: name, lengths: (0..<64).map { _ in 16 + Int(generator.next() % 497) }, runs: runs)
        default: return nil
        }
    }

    let model: BGEM3Model

    func run(_ workload: Workload) throws -> Result {
        var generator = SeededGenerator(seed: UInt64(workload.lengths.count * 1000 + workload.lengths[0]))
        let vocabulary = UInt64(model.config.vocabularySize - 5)
        let lengths = workload.lengths.map { min($0, model.maximumSequenceLength) }
        let sequences: [[Int32]] = lengths.map { length in
            [0] + (0..<(length - 2)).map { _ in Int32(5 + generator.next() % vocabulary) } + [2]
        }
        model.releaseWorkspace()
        ProcessMemory.resetPeak()
        let before = ProcessMemory.residentBytes ?? 0
        _ = try model.encode(sequences, outputs: .all)
        _ = model.takeProfile()
        var runs: [(seconds: Double, profile: PassProfile)] = []
        for _ in 0..<workload.runs {
            let start = Clock.now
            _ = try model.encode(sequences, outputs: .all)
            runs.append((Clock.seconds(since: start), model.takeProfile()))
        }
        let tokens = lengths.reduce(0, +)
        let ordered = runs.sorted { $0.seconds < $1.seconds }
        let median = Statistics.median(runs.map(\.seconds))
        return Result(name: workload.name, sequences: sequences.count, tokens: tokens, lengths: lengths, secondsMedian: median,
                      secondsMin: ordered.first?.seconds ?? median, tokensPerSecond: Double(tokens) / median,
                      peakResidentBytes: ProcessMemory.peakResidentBytes ?? 0, residentBytesBefore: before,
                      profile: ordered[(ordered.count - 1) / 2].profile)
    }
}
