import ArgumentParser
import Engine
import Foundation
import Logging
import Scheduling
import Server
import Tokenizer

struct EmbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed JSON lines in bulk, without HTTP: dense, sparse and ColBERT from one forward pass.",
        discussion: """
            Input: one JSON object per line with a "text" string; other fields are carried through to \
            the output. Output: one JSON line per input, in order: {"index", "tokens", "truncated", \
            "dense": [...], "sparse": {"indices": [...], "values": [...]}, "colbert": [[...], ...]} with \
            only the outputs asked for (dense when none is named). Texts go through the server's own \
            batch scheduler: read in windows, packed by length without padding within the memory budget \
            (the cost model from the probe cache, or measured on first use and cached, as serve does), \
            and written in order while the next window is computed. A progress bar is drawn on a terminal.
            """)

    @OptionGroup var modelOptions: ModelOptions
    var model: String { modelOptions.model }
    var threads: Int? { modelOptions.threads }

    @Flag(name: .long, help: "Output the dense vector.") var dense = false
    @Flag(name: .long, help: "Output the lexical weights.") var sparse = false
    @Flag(name: .long, help: "Output the ColBERT vectors.") var colbert = false

    @Option(name: .long, help: "Truncate texts to N tokens, <s> and </s> included (2 to the model's maximum, 8192 for BGE-M3).")
    var maxLength: Int?

    @Option(name: .long, help: ArgumentHelp("Input file, or '-' for standard input.", valueName: "file"))
    var input: String = "-"

    @Option(name: .long, help: ArgumentHelp("Output file, or '-' for standard output.", valueName: "file"))
    var output: String = "-"


    @Option(name: .long, help: "Matrix-product precision, as serve takes it: auto measures on the weights and caches the figures as serve does (fp32 for exact parity with FlagEmbedding).")
    var precision: PrecisionChoice = .auto

    @Option(name: .long, help: "Most tokens per batch (a batch's memory is also held within the budget).")
    var batchTokens: Int = SchedulerSettings().maxBatchTokens

    @Option(name: .long, help: ArgumentHelp("Memory the command may use, e.g. 4GiB (default: the cgroup limit, else MemTotal).", valueName: "size"))
    var memoryLimit: String?

    func validate() throws {
        if batchTokens < 1 { throw ValidationError("--batch-tokens must be at least 1") }
        if let memoryLimit, (MemoryLimit.parseSize(memoryLimit) ?? 0) <= 0 {
            throw ValidationError("--memory-limit must be a size above 0 such as 4GiB, not \(memoryLimit)")
        }
    }

    private struct Line: Decodable {
        let text: String
    }

    /// One window of input: texts read and tokenised together, computed as one job of the scheduler.
    private struct Window {
        var encodings: [Encoding] = []
        var carried: [[String: JSONAny]] = []
        var resultBytes = 0
    }

    func run() async throws {
        var asked: EmbeddingOutputs = []
        if dense { asked.insert(.dense) }
        if sparse { asked.insert(.sparse) }
        if colbert { asked.insert(.colbert) }
        let outputs = asked.isEmpty ? .dense : asked

        // Warnings (a probe that fell back, an unusable cache) go to standard error; progress too.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        ProcessMemory.configureAllocator()
        let (environment, limit) = try limitFromSettings()
        let loaded = try precision.load(directory: URL(fileURLWithPath: model), threads: threads, limit: limit,
                                        cacheDirectory: ProbeCache.defaultDirectory(environment: environment), logger: Logger(label: "bgem3.embed")).model
        do { _ = try loaded.requireTokenizer() } catch { throw CommandFailure("\(error)") }
        let maxLength = self.maxLength ?? loaded.maximumSequenceLength
        guard (2...loaded.maximumSequenceLength).contains(maxLength) else {
            throw CommandFailure("--max-length \(maxLength) is outside 2...\(loaded.maximumSequenceLength)")
        }
        let plan = try memoryPlan(for: loaded, maxLength: maxLength)
        var settings = SchedulerSettings()
        settings.maxBatchTokens = batchTokens
        let scheduler = BatchScheduler(encoder: loaded, settings: settings, gauge: ProcessMemoryGauge())
        defer { scheduler.stop() }
        scheduler.open(SchedulerBudget(cost: plan.cost, bytes: plan.budgetBytes))
        // Two windows are held at a time (one computed, one written): each gets half of what
        // requests may hold in the server.
        let windowBytes = max(1, plan.requestBytes / 2)

        var lines = try InputLines(path: input)
        var sink = try OutputSink(path: output)
        var progress = ProgressBar(total: Self.lineCount(input), unit: "texts")
        var computing: (window: Window, first: Int, task: Task<ScheduledResult, any Error>)?
        var done = 0
        var window = Window()
        func submit(_ window: Window) -> Task<ScheduledResult, any Error> {
            let sequences = window.encodings.map(\.ids)
            return Task { try await scheduler.submit(sequences, outputs: outputs, deadline: .now + .seconds(366 * 86_400)) }
        }
        func write(_ finished: (window: Window, first: Int, task: Task<ScheduledResult, any Error>)) async throws {
            let result: ScheduledResult
            do { result = try await finished.task.value } catch { throw CommandFailure("\(error)") }
            for (offset, embedding) in result.embeddings.enumerated() {
                sink.write(render(index: finished.first + offset, encoding: finished.window.encodings[offset], embedding: embedding,
                                  extra: finished.window.carried[offset]))
            }
            done += result.embeddings.count
            progress.update(done)
        }
        while let line = try lines.next() {
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            let (text, extra) = try parse(line, number: lines.lineNumber)
            let encoding = try loaded.requireTokenizer().encode(text, options: EncodeOptions(maxLength: maxLength))
            window.encodings.append(encoding)
            window.carried.append(extra)
            window.resultBytes += RequestFootprint.item(tokens: encoding.ids.count, outputs: outputs, dimension: loaded.dimension)
            if window.resultBytes >= windowBytes || window.encodings.count >= 4096 {
                let first = done + (computing?.window.encodings.count ?? 0)
                let next = (window, first, submit(window))
                if let computing { try await write(computing) }
                computing = next
                window = Window()
            }
        }
        if !window.encodings.isEmpty {
            let first = done + (computing?.window.encodings.count ?? 0)
            let next = (window, first, submit(window))
            if let computing { try await write(computing) }
            computing = next
        }
        if let computing { try await write(computing) }
        sink.flush()
        progress.finish()
    }

    /// The environment with `--memory-limit` applied, and the limit it gives.
    private func limitFromSettings() throws -> (environment: [String: String], limit: MemoryLimit) {
        var environment = ProcessInfo.processInfo.environment
        if let memoryLimit { environment["BGE_M3_MEMORY_LIMIT"] = String(MemoryLimit.parseSize(memoryLimit) ?? 0) }
        do { return (environment, try MemoryLimit.detect(environment: environment)) } catch { throw CommandFailure("\(error)") }
    }

    /// The server's memory plan for this model (the probe cache shared with serve, or a probe now).
    private func memoryPlan(for model: BGEM3Model, maxLength: Int) throws -> MemoryPlan {
        let (environment, limit) = try limitFromSettings()
        var settings = MemorySettings()
        settings.cacheDirectory = ProbeCache.defaultDirectory(environment: environment)
        return MemoryPlanner.plan(model: model, limit: limit, settings: settings, engineVersion: BGEM3Version.string,
                                  maxSequenceLength: maxLength, gauge: ProcessMemoryGauge(),
                                  logger: Logger(label: "bgem3.embed"))
    }

    private func parse(_ line: String, number: Int) throws -> (String, [String: JSONAny]) {
        do {
            let text = try JSONDecoder().decode(Line.self, from: Data(line.utf8)).text
            guard case .object(var fields) = try JSONDecoder().decode(JSONAny.self, from: Data(line.utf8)) else { throw CommandFailure("") }
            fields["text"] = nil
            return (text, fields)
        } catch {
            throw CommandFailure("line \(number): expected a JSON object with a \"text\" string")
        }
    }

    /// Lines in a regular input file (for the progress bar's total); nil for standard input.
    private static func lineCount(_ path: String) -> Int? {
        guard path != "-", isatty(STDERR_FILENO) != 0, let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        var count = 0
        while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty { count += chunk.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } }
        return count
    }

    private func render(index: Int, encoding: Encoding, embedding: SequenceEmbedding, extra: [String: JSONAny]) -> String {
        var line = "{\"index\":\(index),\"tokens\":\(encoding.ids.count),\"truncated\":\(encoding.isTruncated)"
        if let dense = embedding.dense { line += ",\"dense\":" + Self.floats(dense) }
        if let sparse = embedding.sparse {
            let indices = sparse.ids.map(String.init).joined(separator: ",")
            line += ",\"sparse\":{\"indices\":[\(indices)],\"values\":\(Self.floats(sparse.weights))}"
        }
        if let colbert = embedding.colbert {
            let vectors: [String] = (0..<colbert.count).map { Self.floats(Array(colbert.vector($0))) }
            line += ",\"colbert\":[\(vectors.joined(separator: ","))]"
        }
        for key in extra.keys.sorted() where !["index", "tokens", "truncated", "dense", "sparse", "colbert"].contains(key) {
            line += "," + JSONOutput.string(key) + ":" + extra[key]!.json
        }
        return line + "}\n"
    }

    private static func floats(_ values: [Float]) -> String {
        JSONOutput.floats(values)
    }
}
