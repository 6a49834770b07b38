import ArgumentParser
import Engine
import Foundation
import Scheduling
import Tokenizer

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Measure what a precision costs in accuracy: fp32 and --precision on the same texts, compared.",
        discussion: """
            Runs the model at fp32 and at --precision on a fixed set of 20 queries and 100 passages \
            (20 topics, some in other languages; --texts replaces it) and reports: dense cosine \
            between the two precisions' vectors (min, mean over all texts); the relative error of the \
            lexical score on the pairs whose fp32 score is at least a tenth of the query's best, and of \
            the ColBERT score on each query's 5 relevant pairs (max, mean); and the overlap of the top \
            10 passages ranked by dense, lexical, ColBERT and hybrid [0.4, 0.2, 0.4] score (mean over \
            queries). The gates: int8 dense cosine mean >= 0.995 and min >= 0.99 and every top-10 \
            overlap >= 0.85; bf16 cosine >= 0.999 and overlaps >= 0.9; the exit status is 1 when \
            they fail, and the failing figures are named.

            A model without a tokenizer this engine runs (a BERT WordPiece model) needs --token-ids: \
            a JSON file {"query_ids": [[int]], "passage_ids": [[int]]} of the same texts, made for \
            example by Tests/EndToEnd/minilm.py.
            """)

    @OptionGroup var modelOptions: ModelOptions
    var model: String { modelOptions.model }
    var threads: Int? { modelOptions.threads }

    @Option(name: .long, help: "The precision to measure against fp32.")
    var precision: Precision = .int8

    @Flag(name: .long, help: "Run what the start-up check of --precision auto runs: the built-in texts with passages cut to their first 64 tokens.")
    var checkSubset = false

    @Option(name: .long, help: ArgumentHelp("Texts: {\"queries\": [...], \"passages\": [...], \"relevant\": [[passage index]]} (default: the built-in set).", valueName: "file"))
    var texts: String?

    @Option(name: .long, help: ArgumentHelp("Token ids of the texts, for a model whose tokenizer this engine does not run.", valueName: "file"))
    var tokenIds: String?

    @Option(name: .long, help: "Truncate texts to N tokens when tokenising.")
    var maxLength: Int = 512

    @Option(name: .long, help: AttentionChoice.help)
    var attention: AttentionChoice = .auto

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2") }
    }

    private struct TokenIDs: Decodable {
        let query_ids: [[Int32]]
        let passage_ids: [[Int32]]
    }

    func run() throws {
        let chosen = precision
        if let reason = chosen.unsupportedReason { throw CommandFailure("--precision \(precision): \(reason)") }
        var set = EvalTexts.builtIn
        if let texts {
            do { set = try EvalTexts(json: Data(contentsOf: URL(fileURLWithPath: texts))) } catch {
                throw CommandFailure("\(texts) is not {\"queries\", \"passages\", \"relevant\"} with valid passage indices: \(error)")
            }
        }
        let directory = URL(fileURLWithPath: model)
        var sequences = try tokenIDs(set, directory: directory)
        if checkSubset { sequences = sequences.truncatingPassages(to: PrecisionPlanner.checkPassageTokens) }
        let comparison: PrecisionComparison
        let attentionName: String
        do {
            var check = try PrecisionCheck(directory: directory, threads: threads, sequences: sequences)
            check.attention = attention.kernel
            attentionName = (attention.kernel ?? AttentionKernel.forThisCPU(precision: chosen, headSize: check.config.headSize)).name
            comparison = try check.measure(chosen, against: try check.reference()).0.comparison
        } catch let error as WeightLoadError {
            throw CommandFailure(error.description)
        } catch let error as EngineError {
            throw CommandFailure(error.description)
        }
        let passes = comparison.passesGates(for: chosen)
        let levels = chosen == .int8 ? Int8Levels.forThisCPU.description : nil
        let overlap = comparison.top10Overlap
        if json {
            var object: [String: Any] = [
                "precision": chosen.rawValue, "dense_cosine_min": comparison.denseCosineMin, "dense_cosine_mean": comparison.denseCosineMean,
                "lexical_rel_error_max": comparison.lexicalRelativeErrorMax, "lexical_rel_error_mean": comparison.lexicalRelativeErrorMean,
                "lexical_pairs": comparison.lexicalPairs,
                "colbert_rel_error_max": comparison.colbertRelativeErrorMax, "colbert_rel_error_mean": comparison.colbertRelativeErrorMean,
                "top10_overlap": overlap.dense, "top10_overlap_lexical": overlap.lexical, "top10_overlap_colbert": overlap.colbert,
                "top10_overlap_hybrid": overlap.hybrid, "texts": comparison.texts, "pairs": comparison.pairs, "passes_gates": passes,
                "cpu": CPUDescription.current, "isa": OneDNNRuntime.effectiveISA, "model": directory.path, "attention": attentionName,
            ]
            if let levels { object["int8_levels"] = levels }
            if let failure = comparison.failure(for: chosen) { object["gate_failures"] = failure }
            // A figure with nothing to measure (no pair with a lexical score, say) is NaN: null in JSON.
            for (key, value) in object { if let number = value as? Float, !number.isFinite { object[key] = NSNull() } }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("model \(directory.path); cpu: \(CPUDescription.current); oneDNN ISA \(OneDNNRuntime.effectiveISA)")
            print("precision \(chosen.rawValue)\(levels.map { " (\($0))" } ?? ""), attention \(attentionName), against fp32, \(comparison.texts) texts, \(comparison.pairs) relevant query-passage pairs")
            print(String(format: "dense cosine        min %.5f  mean %.5f", comparison.denseCosineMin, comparison.denseCosineMean))
            print(String(format: "lexical rel. error  max %.5f  mean %.5f  (%d pairs with a score not near zero)", comparison.lexicalRelativeErrorMax,
                         comparison.lexicalRelativeErrorMean, comparison.lexicalPairs))
            print(String(format: "ColBERT rel. error  max %.5f  mean %.5f", comparison.colbertRelativeErrorMax, comparison.colbertRelativeErrorMean))
            print(String(format: "top-10 overlap      dense %.3f  lexical %.3f  ColBERT %.3f  hybrid %.3f", overlap.dense, overlap.lexical,
                         overlap.colbert, overlap.hybrid))
            print("gates: " + (comparison.failure(for: chosen).map { "FAIL: \($0)" } ?? "pass"))
        }
        if !passes { throw ExitCode(1) }
    }

    /// The texts as token ids: from --token-ids, or the model's tokenizer.
    private func tokenIDs(_ set: EvalTexts, directory: URL) throws -> EvalSequences {
        if let tokenIds {
            let ids: TokenIDs
            do { ids = try JSONDecoder().decode(TokenIDs.self, from: Data(contentsOf: URL(fileURLWithPath: tokenIds))) } catch {
                throw CommandFailure("--token-ids \(tokenIds) is not {\"query_ids\": [[int]], \"passage_ids\": [[int]]}: \(error)")
            }
            guard ids.query_ids.count == set.queries.count, ids.passage_ids.count == set.passages.count else {
                throw CommandFailure("--token-ids has \(ids.query_ids.count) queries and \(ids.passage_ids.count) passages; the texts have \(set.queries.count) and \(set.passages.count)")
            }
            return EvalSequences(queries: ids.query_ids, passages: ids.passage_ids, relevant: set.relevant)
        }
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        let tokenizer: UnigramTokenizer
        do { tokenizer = try UnigramTokenizer(contentsOf: tokenizerURL) } catch {
            throw CommandFailure("\(tokenizerURL.path): \(error.description); for a model whose tokenizer this engine does not run, give --token-ids")
        }
        return set.tokenized(by: tokenizer, maxLength: maxLength)
    }
}
