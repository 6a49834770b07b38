import ArgumentParser
import Foundation
import Tokenizer

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure speed on fixed workloads; print a table or one JSON object (--json).",
        discussion: """
            Workloads available in this build: tokenizer (single thread: load time, MB/s and tokens/s \
            on 48 short multilingual lines). Each figure is the median of --runs runs after a warm-up. \
            The model workloads (1x128, 1x512, 1x8192, 64xmixed) come with the engine.
            """)

    @OptionGroup var location: TokenizerLocation

    @Option(name: .long, help: "Comma-separated workloads to run.")
    var workloads: String = "tokenizer"

    @Option(name: .long, help: "Runs per workload; the median is reported.")
    var runs: Int = 5

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        for name in workloadNames where name != "tokenizer" {
            throw ValidationError("unknown workload '\(name)'; available in this build: tokenizer")
        }
    }

    private var workloadNames: [String] {
        workloads.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() throws {
        let result = try TokenizerBenchmark(file: location.fileURL, runs: runs).run()
        if json {
            let object: [String: Any] = [
                "version": BGEM3Version.string,
                "precision": NSNull(),
                "threads": 1,
                "cpu": CPUDescription.current,
                "matmul_gflops": NSNull(),
                "workloads": [[
                    "name": "tokenizer",
                    "load_seconds": result.loadSeconds,
                    "mb_per_s": result.megabytesPerSecond,
                    "tokens_per_s": result.tokensPerSecond,
                ]],
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("cpu: \(CPUDescription.current)")
            print("tokenizer: \(location.fileURL.path), \(result.lines) lines, \(result.bytesPerPass) bytes per pass, 1 thread, median of \(runs)")
            print("workload    load s   MB/s    tokens/s")
            print(String(format: "tokenizer   %6.3f   %5.2f   %9.0f", result.loadSeconds, result.megabytesPerSecond, result.tokensPerSecond))
        }
    }
}
