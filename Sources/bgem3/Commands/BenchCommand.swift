import ArgumentParser
import Engine
import Foundation
import Tokenizer

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure speed and memory on fixed workloads; print a table or one JSON object (--json).",
        discussion: """
            Workloads: tokenizer (one thread: load time, MB/s and tokens/s on 48 short multilingual \
            lines); 1x16, 1x32, 1x128, 1x512 and 1x8192 (one sequence of that many tokens); 8x16 (eight \
            16-token queries in one batch); 64xmixed (64 sequences of 16 to 512 tokens from a fixed seed). \
            Default: all but 1x8192 and 8x16. Each model workload \
            runs in a fresh state after one warm-up; the median of --runs runs is reported (at least 20 \
            for 1x16 and 1x32, 1 for 1x8192), with the workload's own peak RSS and where the median run \
            spent its time: products (oneDNN), their inputs (int8 quantisation, bf16 conversion) and \
            outputs (int8 scales, bias, outlier columns), GELU, attention, LayerNorms with residuals, \
            embeddings, heads. The matrix-product ceiling at the benchmarked precision (a \
            512x1024x4096 product with the engine's kernel set-up) is measured in the same run, so figures from different \
            machines can be compared as fractions of it.
            """)

    @Option(name: .long, help: ArgumentHelp("The model directory (its tokenizer.json serves the tokenizer workload).", valueName: "dir"))
    var model: String?

    @Option(name: .long, help: ArgumentHelp("A tokenizer.json, for the tokenizer workload alone.", valueName: "file"))
    var tokenizer: String?

    @Option(name: .long, help: "Comma-separated workloads: tokenizer, 1x16, 1x32, 1x128, 8x16, 1x512, 1x8192, 64xmixed.")
    var workloads: String?

    @Option(name: .long, help: "Runs per workload; the median is reported.")
    var runs: Int = 5

    @Option(name: .long, help: "Threads for the kernels (default: the container's CPU quota).")
    var threads: Int?

    @Option(name: .long, help: "Precision of the matrix products (bf16 needs AVX512-BF16).")
    var precision: Precision = .fp32

    @Option(name: .long, help: AttentionChoice.help)
    var attention: AttentionChoice = .auto

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if model == nil && tokenizer == nil { throw ValidationError("give --model DIR (or --tokenizer FILE for the tokenizer workload)") }
        for name in selectedWorkloads where name != "tokenizer" {
            guard ModelBenchmark.names.contains(name) else {
                throw ValidationError("unknown workload '\(name)'; available: tokenizer, \(ModelBenchmark.names.joined(separator: ", "))")
            }
            guard model != nil else { throw ValidationError("workload '\(name)' needs --model DIR") }
        }
    }

    private var selectedWorkloads: [String] {
        let list = workloads ?? (model == nil ? "tokenizer" : "tokenizer,1x16,1x32,1x128,1x512,64xmixed")
        return list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() throws {
        let names = selectedWorkloads
        let threads = self.threads ?? CPUQuota.available()
        var rows: [[String: Any]] = []
        var tokenizerResult: TokenizerBenchmark.Result?
        if names.contains("tokenizer") {
            let file = tokenizer.map { URL(fileURLWithPath: $0) } ?? URL(fileURLWithPath: model!).appendingPathComponent("tokenizer.json")
            tokenizerResult = try TokenizerBenchmark(file: file, runs: runs).run()
            rows.append(["name": "tokenizer", "load_seconds": tokenizerResult!.loadSeconds,
                         "mb_per_s": tokenizerResult!.megabytesPerSecond, "tokens_per_s": tokenizerResult!.tokensPerSecond])
        }
        var results: [ModelBenchmark.Result] = []
        var ceiling: Double?
        var implementation = "none"
        var kernel: AttentionKernel?
        let modelNames = names.filter { $0 != "tokenizer" }
        if let model, !modelNames.isEmpty {
            let loaded: BGEM3Model
            do {
                loaded = try BGEM3Model(directory: URL(fileURLWithPath: model), threads: threads, precision: precision, attention: attention.kernel)
            } catch { throw CommandFailure(error.description) }
            implementation = loaded.matmulImplementation
            kernel = loaded.attentionKernel
            ceiling = try MatmulCeiling.measure(threads: threads, precision: loaded.precision)
            let benchmark = ModelBenchmark(model: loaded)
            for name in modelNames {
                let result = try benchmark.run(ModelBenchmark.workload(name, runs: runs)!)
                results.append(result)
                rows.append(["name": result.name, "sequences": result.sequences, "tokens": result.tokens, "lengths": result.lengths,
                             "seconds_median": result.secondsMedian, "seconds_min": result.secondsMin,
                             "tokens_per_s": result.tokensPerSecond, "peak_rss_bytes": result.peakResidentBytes,
                             "rss_before_bytes": result.residentBytesBefore, "matmul_seconds": result.profile[.products],
                             "parts_seconds": Dictionary(uniqueKeysWithValues: PassProfile.Stage.allCases.map { ($0.rawValue, result.profile[$0]) })])
            }
        }
        if json {
            let object: [String: Any] = [
                "version": BGEM3Version.string, "precision": precision.rawValue, "isa": OneDNNRuntime.effectiveISA, "attention": kernel?.description ?? "none", "threads": threads, "cpu": CPUDescription.current,
                "matmul_gflops": ceiling.map { $0 as Any } ?? NSNull(), "workloads": rows,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("cpu: \(CPUDescription.current); oneDNN ISA \(OneDNNRuntime.effectiveISA); \(threads) threads; precision \(precision.rawValue)")
        if let ceiling, let kernel {
            print(String(format: "%@ matmul ceiling (512x1024x4096): %.1f %@; layers run %@; attention: %@", precision.rawValue, ceiling,
                         precision == .int8 ? "GOP/s" : "GFLOP/s", implementation, kernel.description))
            for measured in kernel == .blocked ? [kernel] : [.blocked, kernel] {
                let seconds = try AttentionDiagnostics.measure(measured, length: 512, threads: threads)
                print(String(format: "%@ attention (one layer, 16 heads, 512 tokens): %.1f GFLOP/s", measured.name, 16.0 * 4 * 512 * 512 * 64 / seconds / 1e9))
            }
        }
        if let t = tokenizerResult {
            print(String(format: "tokenizer: load %.3f s, %.2f MB/s, %.0f tokens/s (one thread, median of %d)", t.loadSeconds, t.megabytesPerSecond, t.tokensPerSecond, runs))
        }
        if !results.isEmpty {
            func cell(_ text: String, _ width: Int) -> String {
                String(repeating: " ", count: max(0, width - text.count)) + text
            }
            print("workload".padding(toLength: 9, withPad: " ", startingAt: 0) + ["seqs", "tokens", "median s", "min s", "tokens/s", "peak RSS MB", "RSS before MB"]
                .map { cell($0, 14) }.joined())
            for r in results {
                let values = [String(r.sequences), String(r.tokens), String(format: "%.4f", r.secondsMedian), String(format: "%.4f", r.secondsMin),
                              String(format: "%.1f", r.tokensPerSecond), String(format: "%.0f", Double(r.peakResidentBytes) / 1e6),
                              String(format: "%.0f", Double(r.residentBytesBefore) / 1e6)]
                print(r.name.padding(toLength: 9, withPad: " ", startingAt: 0) + values.map { cell($0, 14) }.joined())
            }
            // Shares of the median run; "other" is what no stage timed (calls, copies, the pass's set-up).
            let stages = PassProfile.Stage.allCases
            print("\nshare of the median run's time")
            print("workload".padding(toLength: 9, withPad: " ", startingAt: 0) + (stages.map(\.rawValue) + ["other"]).map { cell($0, 16) }.joined())
            for r in results {
                let shares = stages.map { 100 * r.profile[$0] / r.secondsMedian }
                let other = max(0, 100 - shares.reduce(0, +))
                print(r.name.padding(toLength: 9, withPad: " ", startingAt: 0) + (shares + [other]).map { cell(String(format: "%.1f%%", $0), 16) }.joined())
            }
        }
    }
}
