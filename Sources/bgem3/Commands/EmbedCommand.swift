import ArgumentParser
import Engine
import Foundation
import Server
import Tokenizer

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed JSON lines in bulk, without HTTP: dense, sparse and ColBERT from one forward pass.",
        discussion: """
            Input: one JSON object per line with a "text" string; other fields are carried through to \
            the output. Output: one JSON line per input, in order: {"index", "tokens", "truncated", \
            "dense": [...], "sparse": {"indices": [...], "values": [...]}, "colbert": [[...], ...]} with \
            only the outputs asked for (dense when none is named). Texts are sorted by length and \
            batched without padding; a progress bar is drawn on a terminal.
            """)

    @Option(name: .long, help: ArgumentHelp("The model directory (config.json, weights, tokenizer.json, heads).", valueName: "dir"))
    var model: String

    @Flag(name: .long, help: "Output the dense vector.") var dense = false
    @Flag(name: .long, help: "Output the lexical weights.") var sparse = false
    @Flag(name: .long, help: "Output the ColBERT vectors.") var colbert = false

    @Option(name: .long, help: "Truncate texts to N tokens, <s> and </s> included (2 to the model's maximum, 8192 for BGE-M3).")
    var maxLength: Int?

    @Option(name: .long, help: ArgumentHelp("Input file, or '-' for standard input.", valueName: "file"))
    var input: String = "-"

    @Option(name: .long, help: ArgumentHelp("Output file, or '-' for standard output.", valueName: "file"))
    var output: String = "-"

    @Option(name: .long, help: "Threads for the kernels (default: the container's CPU quota).")
    var threads: Int?

    @Option(name: .long, help: "Matrix-product precision, as serve takes it (fp32 for exact parity with FlagEmbedding).")
    var precision: PrecisionChoice = .auto

    @Option(name: .long, help: "Tokens per batch (memory grows with it).")
    var batchTokens: Int = 16384

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if batchTokens < 1 { throw ValidationError("--batch-tokens must be at least 1") }
    }

    private struct Line: Decodable {
        let text: String
    }

    func run() throws {
        var outputs: EmbeddingOutputs = []
        if dense { outputs.insert(.dense) }
        if sparse { outputs.insert(.sparse) }
        if colbert { outputs.insert(.colbert) }
        if outputs.isEmpty { outputs = .dense }

        let loaded: BGEM3Model
        do {
            loaded = try BGEM3Model(directory: URL(fileURLWithPath: model), threads: threads, precision: precision.precision)
        } catch { throw CommandFailure(error.description) }
        let maxLength = self.maxLength ?? loaded.maximumSequenceLength
        guard (2...loaded.maximumSequenceLength).contains(maxLength) else {
            throw CommandFailure("--max-length \(maxLength) is outside 2...\(loaded.maximumSequenceLength)")
        }

        // Read and tokenise everything first, so batches can be sorted by length.
        var lines = try InputLines(path: input)
        var encodings: [Encoding] = []
        var carried: [[String: JSONAny]] = []
        while let line = try lines.next() {
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            let number = lines.lineNumber
            let text: String
            var extra: [String: JSONAny]
            do {
                text = try JSONDecoder().decode(Line.self, from: Data(line.utf8)).text
                guard case .object(let fields) = try JSONDecoder().decode(JSONAny.self, from: Data(line.utf8)) else { throw CommandFailure("") }
                extra = fields
            } catch {
                throw CommandFailure("line \(number): expected a JSON object with a \"text\" string")
            }
            extra["text"] = nil
            encodings.append(try loaded.requireTokenizer().encode(text, options: EncodeOptions(maxLength: maxLength)))
            carried.append(extra)
        }

        var sink = try OutputSink(path: output)
        var progress = ProgressBar(total: encodings.count, unit: "texts")
        let order = encodings.indices.sorted { encodings[$0].ids.count < encodings[$1].ids.count }
        var results = [SequenceEmbedding?](repeating: nil, count: encodings.count)
        var nextToWrite = 0
        var done = 0
        var batch: [Int] = []
        var batchTokensUsed = 0
        func flush() throws {
            guard !batch.isEmpty else { return }
            let embeddings: [SequenceEmbedding]
            do { embeddings = try loaded.encode(batch.map { encodings[$0].ids }, outputs: outputs) } catch { throw CommandFailure("\(error)") }
            for (index, embedding) in zip(batch, embeddings) { results[index] = embedding }
            done += batch.count
            batch.removeAll()
            batchTokensUsed = 0
            // Write every result that is ready, in input order.
            while nextToWrite < results.count, let result = results[nextToWrite] {
                sink.write(render(index: nextToWrite, encoding: encodings[nextToWrite], embedding: result, extra: carried[nextToWrite]))
                results[nextToWrite] = nil
                nextToWrite += 1
            }
            progress.update(done)
        }
        for index in order {
            let length = encodings[index].ids.count
            if !batch.isEmpty && batchTokensUsed + length > batchTokens { try flush() }
            batch.append(index)
            batchTokensUsed += length
        }
        try flush()
        sink.flush()
        progress.finish()
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
