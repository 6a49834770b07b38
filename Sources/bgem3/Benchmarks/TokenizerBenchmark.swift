import Foundation
import Tokenizer

/// Single-threaded tokenizer speed on short multilingual lines (48 lines, 30 scripts and
/// languages, the file `Resources/multilingual-lines.txt`): load time, MB/s and tokens/s.
struct TokenizerBenchmark {
    struct Result: Sendable {
        var loadSeconds: Double
        var megabytesPerSecond: Double
        var tokensPerSecond: Double
        var lines: Int
        var bytesPerPass: Int
    }

    let file: URL
    let runs: Int
    /// Each measured run encodes the corpus repeatedly for at least this long.
    var secondsPerRun = 1.0

    static var corpus: [String] {
        String(decoding: PackageResources.multilingual_lines_txt, as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: true)
            .map(String.init)
    }

    func run() throws -> Result {
        var loadTimes: [Double] = []
        var tokenizer: UnigramTokenizer?
        for _ in 0..<max(1, runs) {
            let start = Clock.now
            tokenizer = try UnigramTokenizer(contentsOf: file)
            loadTimes.append(Clock.seconds(since: start))
        }
        guard let tokenizer else { throw CommandFailure("the tokenizer did not load") }
        let lines = Self.corpus
        let bytesPerPass = lines.reduce(0) { $0 + $1.utf8.count }

        // Warm-up pass, not measured.
        var tokensPerPass = 0
        for line in lines { tokensPerPass += tokenizer.encode(line).ids.count }

        var megabytes: [Double] = []
        var tokens: [Double] = []
        for _ in 0..<max(1, runs) {
            var passes = 0
            var produced = 0
            let start = Clock.now
            var elapsed = 0.0
            repeat {
                for line in lines { produced += tokenizer.encode(line).ids.count }
                passes += 1
                elapsed = Clock.seconds(since: start)
            } while elapsed < secondsPerRun
            megabytes.append(Double(passes * bytesPerPass) / elapsed / 1e6)
            tokens.append(Double(produced) / elapsed)
        }
        return Result(
            loadSeconds: Statistics.median(loadTimes),
            megabytesPerSecond: Statistics.median(megabytes),
            tokensPerSecond: Statistics.median(tokens),
            lines: lines.count,
            bytesPerPass: bytesPerPass)
    }
}

enum Clock {
    static var now: UInt64 { DispatchTime.now().uptimeNanoseconds }
    static func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
}

enum Statistics {
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }
}
