import ArgumentParser
import Engine
import Foundation
import Tokenizer

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Measure what a precision costs in accuracy: fp32 and --precision on the same texts, compared.",
        discussion: """
            Runs the model at fp32 and at --precision on a fixed set of 20 queries and 100 passages \
            (20 topics, some in other languages; --texts replaces it) and reports: dense cosine \
            between the two precisions' vectors (min, mean over all texts), the relative error of the \
            lexical and ColBERT scores on each query's 5 relevant pairs (max, mean), and the overlap \
            of the top 10 passages by dense score (mean over queries). The gates: int8 dense cosine \
            mean >= 0.995 and min >= 0.99; bf16 min >= 0.999; the exit status is 1 when they fail.

            A model without a tokenizer this engine runs (a BERT WordPiece model) needs --token-ids: \
            a JSON file {"query_ids": [[int]], "passage_ids": [[int]]} of the same texts, made for \
            example by scripts/eval/wordpiece_ids.py.
            """)

    @Option(name: .long, help: ArgumentHelp("The model directory.", valueName: "dir"))
    var model: String

    @Option(name: .long, help: "The precision to measure against fp32.")
    var precision: PrecisionChoice = .auto

    @Option(name: .long, help: ArgumentHelp("Texts: {\"queries\": [...], \"passages\": [...], \"relevant\": [[passage index]]} (default: the built-in set).", valueName: "file"))
    var texts: String?

    @Option(name: .long, help: ArgumentHelp("Token ids of the texts, for a model whose tokenizer this engine does not run.", valueName: "file"))
    var tokenIds: String?

    @Option(name: .long, help: "Truncate texts to N tokens when tokenising.")
    var maxLength: Int = 512

    @Option(name: .long, help: "Threads for the kernels (default: the container's CPU quota).")
    var threads: Int?

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2") }
    }

    private struct TextSet: Decodable {
        let queries: [String]
        let passages: [String]
        let relevant: [[Int]]
    }

    private struct TokenIDs: Decodable {
        let query_ids: [[Int32]]
        let passage_ids: [[Int32]]
    }

    func run() throws {
        let chosen = precision.precision
        if let reason = chosen.unsupportedReason { throw CommandFailure("--precision \(precision): \(reason)") }
        let textData: Data
        if let texts {
            do { textData = try Data(contentsOf: URL(fileURLWithPath: texts)) } catch { throw CommandFailure("cannot read --texts \(texts): \(error.localizedDescription)") }
        } else {
            textData = Data(PackageResources.eval_texts_json)
        }
        let set: TextSet
        do { set = try JSONDecoder().decode(TextSet.self, from: textData) } catch {
            throw CommandFailure("\(texts ?? "the built-in text set") is not {\"queries\", \"passages\", \"relevant\"}: \(error)")
        }
        guard set.relevant.count == set.queries.count, set.relevant.allSatisfy({ $0.allSatisfy { set.passages.indices.contains($0) } }) else {
            throw CommandFailure("\"relevant\" must list, for each query, indices of passages (0..<\(set.passages.count))")
        }
        let directory = URL(fileURLWithPath: model)
        let sequences = try tokenIDs(set, directory: directory)
        let reference = try encode(sequences, directory: directory, precision: .fp32)
        let candidate = try encode(sequences, directory: directory, precision: chosen)
        let comparison = PrecisionComparison(reference: reference, candidate: candidate, queries: set.queries.count, relevant: set.relevant)
        let passes = comparison.passesGates(for: chosen)
        let levels = chosen == .int8 ? Int8Levels.forThisCPU.description : nil
        if json {
            var object: [String: Any] = [
                "precision": chosen.rawValue, "dense_cosine_min": comparison.denseCosineMin, "dense_cosine_mean": comparison.denseCosineMean,
                "lexical_rel_error_max": comparison.lexicalRelativeErrorMax, "lexical_rel_error_mean": comparison.lexicalRelativeErrorMean,
                "colbert_rel_error_max": comparison.colbertRelativeErrorMax, "colbert_rel_error_mean": comparison.colbertRelativeErrorMean,
                "top10_overlap": comparison.top10Overlap, "texts": comparison.texts, "pairs": comparison.pairs, "passes_gates": passes,
                "cpu": CPUDescription.current, "isa": OneDNNRuntime.effectiveISA, "model": directory.path,
            ]
            if let levels { object["int8_levels"] = levels }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("model \(directory.path); cpu: \(CPUDescription.current); oneDNN ISA \(OneDNNRuntime.effectiveISA)")
            print("precision \(chosen.rawValue)\(levels.map { " (\($0))" } ?? "") against fp32, \(comparison.texts) texts, \(comparison.pairs) query-passage pairs")
            print(String(format: "dense cosine        min %.5f  mean %.5f", comparison.denseCosineMin, comparison.denseCosineMean))
            print(String(format: "lexical rel. error  max %.5f  mean %.5f", comparison.lexicalRelativeErrorMax, comparison.lexicalRelativeErrorMean))
            print(String(format: "ColBERT rel. error  max %.5f  mean %.5f", comparison.colbertRelativeErrorMax, comparison.colbertRelativeErrorMean))
            print(String(format: "top-10 overlap      %.3f", comparison.top10Overlap))
            print("gates: \(passes ? "pass" : "FAIL")")
        }
        if !passes { throw ExitCode(1) }
    }

    /// Queries then passages, as token ids.
    private func tokenIDs(_ set: TextSet, directory: URL) throws -> [[Int32]] {
        if let tokenIds {
            let ids: TokenIDs
            do { ids = try JSONDecoder().decode(TokenIDs.self, from: Data(contentsOf: URL(fileURLWithPath: tokenIds))) } catch {
                throw CommandFailure("--token-ids \(tokenIds) is not {\"query_ids\": [[int]], \"passage_ids\": [[int]]}: \(error)")
            }
            guard ids.query_ids.count == set.queries.count, ids.passage_ids.count == set.passages.count else {
                throw CommandFailure("--token-ids has \(ids.query_ids.count) queries and \(ids.passage_ids.count) passages; the texts have \(set.queries.count) and \(set.passages.count)")
            }
            return ids.query_ids + ids.passage_ids
        }
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        let tokenizer: UnigramTokenizer
        do { tokenizer = try UnigramTokenizer(contentsOf: tokenizerURL) } catch {
            throw CommandFailure("\(tokenizerURL.path): \(error.description); for a model whose tokenizer this engine does not run, give --token-ids")
        }
        return (set.queries + set.passages).map { tokenizer.encode($0, options: EncodeOptions(maxLength: maxLength)).ids }
    }

    private func encode(_ sequences: [[Int32]], directory: URL, precision: Precision) throws -> [SequenceEmbedding] {
        do {
            let loaded = try BGEM3Model(directory: directory, threads: threads, precision: precision)
            // Batches of ~4k tokens keep the workspace small for the full-size model.
            var results: [SequenceEmbedding] = []
            var batch: [[Int32]] = []
            for sequence in sequences {
                if batch.reduce(0, { $0 + $1.count }) + sequence.count > 4096, !batch.isEmpty {
                    results += try loaded.encode(batch, outputs: .all)
                    batch = []
                }
                batch.append(sequence)
            }
            if !batch.isEmpty { results += try loaded.encode(batch, outputs: .all) }
            return results
        } catch let error as WeightLoadError {
            throw CommandFailure(error.description)
        } catch let error as EngineError {
            throw CommandFailure(error.description)
        }
    }
}
