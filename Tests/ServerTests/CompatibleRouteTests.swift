import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Server
import Testing

/// The other servers' shapes (TEI, Ollama, Cohere) and the token-id policy, in-process against a
/// fake backend: what each route sends the engine and what it makes of the answer.
@Suite struct CompatibleRouteTests {
    @Test func teiEmbedAndTheRootRouteAnswerAListOfVectors() async throws {
        let fixture = try await RouterFixture()
        try await fixture.application.test(.router) { client in
            for path in ["/embed", "/"] {
                let answer = try await client.post(path, #"{"inputs": ["hello", "hello world"], "normalize": false, "prompt_name": null}"#)
                #expect(answer.status == .ok)
                let vectors = try #require(answer.body as? [[Double]])
                let expected = [try fixture.tokenizer.ids("hello"), try fixture.tokenizer.ids("hello world")].map(fixture.backend.dense)
                #expect(vectors.count == 2)
                for (got, want) in zip(vectors, expected) { #expect(zip(got, want).allSatisfy { abs($0 - Double($1)) < 1e-6 }) }
            }
            // A single string is one input; dimensions shortens and re-normalises.
            let short = try await client.post("/embed", #"{"inputs": "hello", "dimensions": 8}"#)
            let vector = try #require((short.body as? [[Double]])?.first)
            #expect(vector.count == 8 && abs(vector.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
        }
    }

    @Test func teiTruncationIsOffByDefaultAndLeftKeepsTheLastTokens() async throws {
        var limits = ServerLimits()
        limits.maxSequenceLength = 6
        let fixture = try await RouterFixture(limits: limits)
        let text = "one two three four five six seven eight"
        let full = try fixture.tokenizer.ids(text)
        try #require(full.count > 6)
        try await fixture.application.test(.router) { client in
            let refused = try await client.post("/embed", #"{"inputs": "\#(text)"}"#)
            #expect(refused.status == .badRequest)
            #expect(((refused.body as? [String: Any])?["error"] as? [String: Any])?["code"] as? String == "input_too_long")
            #expect(fixture.backend.received.isEmpty, "refused before the engine")

            _ = try await client.post("/embed", #"{"inputs": "\#(text)", "truncate": true, "truncation_direction": "Left"}"#)
            #expect(fixture.backend.received.last == [[full[0]] + full.suffix(5).dropLast() + [full.last!]])
            _ = try await client.post("/embed", #"{"inputs": "\#(text)", "truncate": true, "truncation_direction": "right"}"#)
            #expect(fixture.backend.received.last == [try fixture.tokenizer.ids(text, maxLength: 6)])
            let bad = try await client.post("/embed", #"{"inputs": "x", "truncation_direction": "middle"}"#)
            #expect(bad.status == .badRequest)
        }
    }

    @Test func embedSparseAndEmbedAllCarryBGEM3sLexicalWeightsAndColBERTRows() async throws {
        let fixture = try await RouterFixture()
        let ids = try fixture.tokenizer.ids("hello world")
        try await fixture.application.test(.router) { client in
            let sparse = try #require(try await client.post("/embed_sparse", #"{"inputs": "hello world"}"#).body as? [[[String: Any]]])
            let expected = fixture.backend.sparse(ids)
            #expect(sparse.count == 1 && sparse[0].map { $0["index"] as? Int } == expected.ids.map { Int($0) })
            #expect(zip(sparse[0], expected.weights).allSatisfy { abs(($0["value"] as? Double ?? -1) - Double($1)) < 1e-6 })
            let all = try #require(try await client.post("/embed_all", #"{"inputs": ["hello world"]}"#).body as? [[[Double]]])
            #expect(all.count == 1 && all[0].count == ids.count - 1 && all[0].last == [Double](repeating: Double(ids.count - 2), count: 4))
        }
    }

    @Test func rerankSpeaksTEIWithTextsAndCohereWithDocuments() async throws {
        let fixture = try await RouterFixture()
        // The fake's dense vectors favour longer texts, so the order is known.
        let documents = #"["a", "a b c d e f", "a b c"]"#
        try await fixture.application.test(.router) { client in
            let tei = try #require(try await client.post("/rerank", #"{"query": "q", "texts": \#(documents), "return_text": true, "raw_scores": true}"#).body
                as? [[String: Any]])
            let order = tei.map { $0["index"] as? Int ?? -1 }
            #expect(tei.count == 3 && tei[0]["text"] as? String != nil)
            let scores = tei.map { $0["score"] as? Double ?? .nan }
            #expect(scores == scores.sorted(by: >), "by descending score: \(scores)")

            let answer = try await client.post("/v2/rerank", #"{"model": "m", "query": "q", "documents": \#(documents), "top_n": 2}"#,
                                               headers: [HTTPField.Name("X-Request-ID")!: "req-7"])
            let cohere = try #require(answer.body as? [String: Any])
            #expect(cohere["id"] as? String == "req-7")
            #expect((cohere["results"] as? [[String: Any]])?.map { $0["index"] as? Int ?? -1 } == Array(order.prefix(2)))
            #expect(cohere["meta"] != nil)
            // Infinity's and Cohere v1's documents as objects, on /rerank.
            let objects = try #require(try await client.post("/rerank", #"{"query": "q", "documents": [{"text": "a"}, {"text": "a b c d e f"}]}"#).body
                as? [String: Any])
            #expect((objects["results"] as? [[String: Any]])?.first?["index"] as? Int == 1)
            let neither = try await client.post("/rerank", #"{"query": "q"}"#)
            #expect(neither.status == .badRequest)
        }
    }

    @Test func ollamaRoutesAnswerInOllamasShapes() async throws {
        let fixture = try await RouterFixture()
        try await fixture.application.test(.router) { client in
            let embed = try #require(try await client.post("/api/embed", #"{"model": "bge-m3", "input": ["hi", "hi there"], "keep_alive": "5m", "options": {"num_ctx": 8192}}"#).body
                as? [String: Any])
            #expect(embed["model"] as? String == "bge-m3")
            #expect((embed["embeddings"] as? [[Double]])?.count == 2 && embed["prompt_eval_count"] as? Int != nil)
            let legacy = try #require(try await client.post("/api/embeddings", #"{"model": "bge-m3", "prompt": "hi"}"#).body as? [String: Any])
            let vector = try #require(legacy["embedding"] as? [Double])
            #expect(zip(vector, fixture.backend.dense(try fixture.tokenizer.ids("hi"))).allSatisfy { abs($0 - Double($1)) < 1e-6 })
        }
    }

    @Test func tokenIDsAreRefusedByDefaultNamingLangChainsSettingAndAcceptedWhenAllowed() async throws {
        let fixture = try await RouterFixture()
        try await fixture.application.test(.router) { client in
            for (path, body) in [("/v1/embeddings", #"{"input": [[9906, 1917]]}"#), ("/embed", #"{"inputs": [9906, 1917]}"#),
                                 ("/api/embed", #"{"input": [[9906]]}"#)] {
                let answer = try await client.post(path, body)
                #expect(answer.status == .badRequest, "\(path)")
                let error = try #require((answer.body as? [String: Any])?["error"] as? [String: Any])
                #expect(error["code"] as? String == "token_ids_not_accepted")
                #expect((error["message"] as? String ?? "").contains("check_embedding_ctx_length=False"))
            }
            #expect(fixture.backend.received.isEmpty)
        }
        var limits = ServerLimits()
        limits.acceptsTokenIDs = true
        let accepting = try await RouterFixture(limits: limits)
        try await accepting.application.test(.router) { client in
            let answer = try await client.post("/v1/embeddings", #"{"input": [[35, 36]]}"#)
            #expect(answer.status == .ok)
            #expect(accepting.backend.received == [[[0, 35, 36, 2]]])
        }
    }

    @Test func decodeTokenizeAndInfoSpeakTEI() async throws {
        let fixture = try await RouterFixture()
        let ids = try fixture.tokenizer.ids("hello world")
        try await fixture.application.test(.router) { client in
            let one = try await client.post("/decode", #"{"ids": \#(ids)}"#)
            #expect(one.body as? String == "hello world")
            let many = try await client.post("/decode", #"{"ids": [\#(ids), \#(ids)], "skip_special_tokens": false}"#)
            #expect((many.body as? [String])?.first?.hasPrefix("<s>") == true)
            let tokens = try #require(try await client.post("/tokenize", #"{"inputs": "hello world"}"#).body as? [[[String: Any]]])
            #expect(tokens.first?.map { $0["id"] as? Int ?? -1 } == ids.map { Int($0) })
            let info = try await client.execute(uri: "/info", method: .get) { try JSONSerialization.jsonObject(with: Data(buffer: $0.body)) as? [String: Any] }
            #expect(info?["model_type"] as? [String: [String: String]] == ["embedding": ["pooling": "cls"]])
            #expect(info?["max_client_batch_size"] as? Int == 256 && info?["model_dtype"] as? String == "float32")
        }
    }
}
