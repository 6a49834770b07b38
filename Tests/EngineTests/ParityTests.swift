import Engine
import Foundation
import Testing
import Tokenizer

/// Exact parity with FlagEmbedding 1.4.2 (`BGEM3FlagModel`, fp32, CPU) on the tiny model.
@Suite struct ParityTests {
    static let tolerance: Float = 1e-4

    @Test func goldenCasesAreThere() throws {
        let golden = try #require(EngineFixtures.golden)
        #expect(golden.cases.count == 53)
        #expect(golden.scores.pairs.count == golden.scores.dense.count)
    }

    /// Every case, encoded in mixed-length batches of 7 as the reference did.
    @Test func denseSparseAndColbertMatchTheReference() throws {
        let model = try EngineFixtures.model.get()
        let golden = try #require(EngineFixtures.golden)
        var worstDense: Float = 0, worstColbert: Float = 0, worstSparse: Float = 0
        for batch in stride(from: 0, to: golden.cases.count, by: 7).map({ Array(golden.cases[$0..<min($0 + 7, golden.cases.count)]) }) {
            let ids = batch.map { model.tokenizer!.encode($0.text, options: EncodeOptions(maxLength: $0.max_length)).ids }
            #expect(ids == batch.map(\.input_ids))
            let outputs = try model.encode(ids, outputs: .all)
            for (reference, output) in zip(batch, outputs) {
                let dense = try #require(output.dense)
                worstDense = max(worstDense, maxAbsoluteDifference(dense, reference.dense))
                let colbert = try #require(output.colbert)
                #expect(colbert.count == reference.colbert.count, "\(reference.text)")
                worstColbert = max(worstColbert, maxAbsoluteDifference(colbert.values, reference.colbert.flatMap { $0 }))
                let sparse = try #require(output.sparse)
                let mine = Dictionary(uniqueKeysWithValues: zip(sparse.ids, sparse.weights))
                for (key, weight) in reference.sparse {
                    let id = try #require(Int32(key))
                    if weight > Self.tolerance { #expect(mine[id] != nil, "token \(id) of \(reference.text.debugDescription)") }
                    worstSparse = max(worstSparse, abs((mine[id] ?? 0) - weight))
                }
                for (id, weight) in mine where reference.sparse[String(id)] == nil {
                    worstSparse = max(worstSparse, weight)
                }
            }
        }
        #expect(worstDense <= Self.tolerance, "dense differs by \(worstDense)")
        #expect(worstColbert <= Self.tolerance, "ColBERT differs by \(worstColbert)")
        #expect(worstSparse <= Self.tolerance, "sparse differs by \(worstSparse)")
    }

    @Test func scoresMatchTheReference() throws {
        let model = try EngineFixtures.model.get()
        let scores = try #require(EngineFixtures.golden?.scores)
        func embed(_ text: String, _ maxLength: Int) throws -> SequenceEmbedding {
            let ids = model.tokenizer!.encode(text, options: EncodeOptions(maxLength: maxLength)).ids
            return try model.encode([ids], outputs: .all)[0]
        }
        for (index, pair) in scores.pairs.enumerated() {
            let result = M3Score.scores(query: try embed(pair[0], 512), passage: try embed(pair[1], scores.max_passage_length),
                                        weights: scores.weights)
            #expect(abs(result.dense - scores.dense[index]) <= Self.tolerance, "pair \(index) dense")
            #expect(abs(result.sparse - scores.sparse[index]) <= Self.tolerance * max(1, abs(scores.sparse[index])), "pair \(index) sparse")
            #expect(abs(result.colbert - scores.colbert[index]) <= Self.tolerance, "pair \(index) colbert")
            #expect(abs(result.sparseDense - scores.sparseDense[index]) <= Self.tolerance * max(1, abs(scores.sparseDense[index])), "pair \(index) sparse+dense")
            #expect(abs(result.all - scores.all[index]) <= Self.tolerance * max(1, abs(scores.all[index])), "pair \(index) all")
        }
    }

    @Test func aTextAloneAndInAMixedBatchAgree() throws {
        let model = try EngineFixtures.model.get()
        let golden = try #require(EngineFixtures.golden)
        let texts = golden.cases.prefix(12).map { model.tokenizer!.encode($0.text, options: EncodeOptions(maxLength: $0.max_length)).ids }
        let together = try model.encode(texts, outputs: .all)
        for (ids, batched) in zip(texts, together) {
            let alone = try model.encode([ids], outputs: .all)[0]
            #expect(maxAbsoluteDifference(alone.dense!, batched.dense!) <= 1e-5)
            #expect(maxAbsoluteDifference(alone.colbert!.values, batched.colbert!.values) <= 1e-5)
            #expect(alone.sparse!.ids == batched.sparse!.ids)
            #expect(maxAbsoluteDifference(alone.sparse!.weights, batched.sparse!.weights) <= 1e-5)
        }
    }

    @Test func safetensorsAndPyTorchCheckpointsGiveIdenticalOutputs() throws {
        let directory = try EngineFixtures.scratchModel(excluding: ["model.safetensors"])
        defer { try? FileManager.default.removeItem(at: directory) }
        let fromPickle = try BGEM3Model(directory: directory, threads: 2)
        #expect(fromPickle.weightsFile.lastPathComponent == "pytorch_model.bin")
        let model = try EngineFixtures.model.get()
        #expect(model.weightsFile.lastPathComponent == "model.safetensors")
        let ids = ["What is BGE M3?", "Defination of BM25", "a b c"].map { model.tokenizer!.encode($0).ids }
        #expect(try fromPickle.encode(ids, outputs: .all) == model.encode(ids, outputs: .all))
    }

    @Test func onlyTheRequestedOutputsAreComputed() throws {
        let model = try EngineFixtures.model.get()
        let ids = [model.tokenizer!.encode("hello world").ids]
        let dense = try model.encode(ids, outputs: .dense)[0]
        #expect(dense.dense != nil && dense.sparse == nil && dense.colbert == nil)
        let sparse = try model.encode(ids, outputs: .sparse)[0]
        #expect(sparse.dense == nil && sparse.sparse != nil && sparse.colbert == nil)
    }

    @Test func badInputsAreNamedErrors() throws {
        let model = try EngineFixtures.model.get()
        #expect(throws: EngineError.emptySequence(index: 1)) { try model.encode([[0, 2], []], outputs: .dense) }
        #expect(throws: EngineError.tokenOutOfRange(index: 0, token: 6002, vocabularySize: 6002)) { try model.encode([[0, 6002, 2]], outputs: .dense) }
        let tooLong = [Int32](repeating: 5, count: model.maximumSequenceLength + 1)
        #expect(throws: EngineError.sequenceTooLong(index: 0, length: 1025, limit: 1024)) { try model.encode([tooLong], outputs: .dense) }
        #expect(try model.encode([], outputs: .all).isEmpty)
    }
}
