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
            lines); 1x128, 1x512 and 1x8192 (one sequence of that many tokens); 64xmixed (64 sequences \
            of 16 to 512 tokens from a fixed seed). Default: all but 1x8192. Each model workload runs in \
            a fresh state after one warm-up; the median of --runs runs is reported (1 run for 1x8192), \
            with the workload's own peak RSS. The matrix-product ceiling at the benchmarked precision (a \
            512x1024x4096 product with the engine's kernel set-up) is measured in the same run, so figures from different \
            machines can be compared as fractions of it.
            """)

    @Option(name: .long, help: ArgumentHelp("The model directory (its tokenizer.json serves the tokenizer workload).", valueName: "dir"))
    var model: String?

    @Option(name: .long, help: ArgumentHelp("A tokenizer.json, for the tokenizer workload alone.", valueName: "file"))
    var tokenizer: String?

    @Option(name: .long, help: "Comma-separated workloads: tokenizer, 1x128, 1x512, 1x8192, 64xmixed.")
    var workloads: String?

    @Option(name: .long, help: "Runs per workload; the median is reported.")
    var runs: Int = 5

    @Option(name: .long, help: "Threads for the kernels (default: the container's CPU quota).")
    var threads: Int?

    @Option(name: .long, help: "Precision of the matrix products (bf16 needs AVX512-BF16).")
    var precision: Precision = .fp32

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
        let list = workloads ?? (model == nil ? "tokenizer" : "tokenizer,1x128,1x512,64xmixed")
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
        var attentionKernel = "none"
        let modelNames = names.filter { $0 != "tokenizer" }
        if let model, !modelNames.isEmpty {
            let loaded: BGEM3Model
            do {
                loaded = try BGEM3Model(directory: URL(fileURLWithPath: model), threads: threads, precision: precision)
            } catch { throw CommandFailure(error.description) }
            implementation = loaded.matmulImplementation
            attentionKernel = loaded.attentionKernel
            ceiling = try MatmulCeiling.measure(threads: threads, precision: loaded.precision)
            let benchmark = ModelBenchmark(model: loaded)
            for name in modelNames {
                let result = try benchmark.run(ModelBenchmark.workload(name, runs: runs)!)
                results.append(result)
                rows.append(["name": result.name, "sequences": result.sequences, "tokens": result.tokens,
                             "seconds_median": result.secondsMedian, "seconds_min": result.secondsMin,
                             "tokens_per_s": result.tokensPerSecond, "peak_rss_bytes": result.peakResidentBytes,
                             "rss_before_bytes": result.residentBytesBefore, "matmul_seconds": result.matmulSeconds])
            }
        }
        if json {
            let object: [String: Any] = [
                "version": BGEM3Version.string, "precision": precision.rawValue, "isa": OneDNNRuntime.effectiveISA, "attention": attentionKernel, "threads": threads, "cpu": CPUDescription.current,
                "matmul_gflops": ceiling.map { $0 as Any } ?? NSNull(), "workloads": rows,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("cpu: \(CPUDescription.current); oneDNN ISA \(OneDNNRuntime.effectiveISA); \(threads) threads; precision \(precision.rawValue)")
        if let ceiling {
            print(String(format: "%@ matmul ceiling (512x1024x4096): %.1f %@; layers run %@; attention: %@", precision.rawValue, ceiling,
                         precision == .int8 ? "GOP/s" : "GFLOP/s", implementation, attentionKernel))
            let seconds = AttentionDiagnostics.measure(length: 512, threads: threads)
            print(String(format: "blocked fp32 attention kernel (one layer, 16 heads, 512 tokens): %.1f GFLOP/s", 16.0 * 4 * 512 * 512 * 64 / seconds / 1e9))
        }
        if let t = tokenizerResult {
            print(String(format: "tokenizer: load %.3f s, %.2f MB/s, %.0f tokens/s (one thread, median of %d)", t.loadSeconds, t.megabytesPerSecond, t.tokensPerSecond, runs))
        }
        if !results.isEmpty {
            print("workload   seqs  tokens   median s    min s   tokens/s  matmul s  matmul %  attention s   peak RSS MB  RSS before MB")
            for r in results {
                print(String(format: "%-9@ %5d %7d %10.3f %8.3f %10.1f %9.3f %9.0f%% %12.3f %13.0f %14.0f", r.name as NSString, r.sequences, r.tokens,
                             r.secondsMedian, r.secondsMin, r.tokensPerSecond, r.matmulSeconds, 100 * r.matmulSeconds / r.secondsMedian, r.attentionSeconds,
                             Double(r.peakResidentBytes) / 1e6, Double(r.residentBytesBefore) / 1e6))
            }
        }
    }
}
