import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

/// `bgem3 serve` end to end: real process, real HTTP on loopback, golden values.
@Suite(.serialized) struct ServerTests {
    struct Golden: Decodable {
        struct Case: Decodable { let text: String; let max_length: Int; let dense: [Float]; let sparse: [String: Float]; let colbert: [[Float]] }
        let cases: [Case]
    }

    static let golden: Golden? = {
        guard let data = try? Data(contentsOf: RepositoryFixtures.golden("tiny-model-public.json")) else { return nil }
        return try? JSONDecoder().decode(Golden.self, from: data)
    }()

    func json(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func quoted(_ text: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed]), as: UTF8.self).dropFirst().dropLast().description
    }

    @Test func embeddingsMatchTheReference() async throws {
        let server = try await ServerProcess()
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let cases = try #require(Self.golden).cases.filter { $0.max_length == 1024 }.prefix(8)
        let inputs = "[" + cases.map { quoted($0.text) }.joined(separator: ",") + "]"

        // OpenAI route, float and base64.
        let plain = try await server.post("/v1/embeddings", json: "{\"input\": \(inputs), \"model\": \"bge-m3\"}")
        #expect(plain.status == 200)
        #expect(plain.headers["x-request-id"] != nil)
        #expect(plain.headers["x-compute-tokens"] != nil && plain.headers["x-inference-time-ms"] != nil)
        let object = try json(plain.body)
        #expect(object["object"] as? String == "list")
        let data = try #require(object["data"] as? [[String: Any]])
        #expect(data.count == cases.count)
        for (item, reference) in zip(data, cases) {
            let vector = try #require(item["embedding"] as? [Double]).map(Float.init)
            #expect(zip(vector, reference.dense).allSatisfy { abs($0 - $1) <= 1e-4 })
        }
        // The same vectors as `bgem3 embed` (same engine, same batch).
        let lines = cases.map { String(decoding: try! JSONSerialization.data(withJSONObject: ["text": $0.text]), as: UTF8.self) }.joined(separator: "\n") + "\n"
        let embedded = try await BGEM3Process.run(["embed", "--model", RepositoryFixtures.tinyModel.path, "--precision", "fp32"], input: Data(lines.utf8))
        let embedVectors = try embedded.standardOutput.split(separator: "\n").map {
            try #require((try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["dense"] as? [Double])
        }
        for (item, vector) in zip(data, embedVectors) {
            let served = try #require(item["embedding"] as? [Double])
            #expect(zip(served, vector).allSatisfy { abs($0 - $1) <= 1e-6 })
        }
        let base64 = try await server.post("/v1/embeddings", json: "{\"input\": \(inputs), \"encoding_format\": \"base64\"}")
        let encoded = try #require((try json(base64.body)["data"] as? [[String: Any]])?.first?["embedding"] as? String)
        let bytes = try #require(Data(base64Encoded: encoded))
        let floats = bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
        #expect(zip(floats, cases.first!.dense).allSatisfy { abs($0 - $1) <= 1e-4 })
        let usage = try #require(object["usage"] as? [String: Any])
        #expect((usage["prompt_tokens"] as? Int ?? 0) > 0)

        // All three outputs in one pass.
        let m3 = try await server.post("/v1/m3/embeddings", json: "{\"input\": \(inputs), \"sparse\": true, \"colbert\": true}")
        #expect(m3.status == 200)
        let items = try #require(try json(m3.body)["data"] as? [[String: Any]])
        for (item, reference) in zip(items, cases) {
            let colbert = try #require(item["colbert"] as? [String: Any])
            let rows = try #require(colbert["data"] as? [[Double]]).flatMap { $0 }.map(Float.init)
            #expect(zip(rows, reference.colbert.flatMap { $0 }).allSatisfy { abs($0 - $1) <= 1e-4 })
            let sparse = try #require(item["sparse"] as? [String: Any])
            let ids = try #require(sparse["indices"] as? [Int])
            let values = try #require(sparse["values"] as? [Double])
            #expect(ids == ids.sorted())
            for (id, value) in zip(ids, values) { #expect(abs(Float(value) - (reference.sparse[String(id)] ?? 0)) <= 1e-4) }
        }
    }

    @Test func badRequestsGetTheDocumentedErrorsAndTheServerKeepsServing() async throws {
        let server = try await ServerProcess(arguments: ["--max-batch", "4", "--max-body-bytes", "4096", "--max-text-chars", "100"])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let cases: [(String, String?, Int, String)] = [
            ("{\"input\": ", "application/json", 400, "invalid_json"),
            ("{\"input\": 5}", "application/json", 400, "invalid_type"),
            ("{\"input\": []}", "application/json", 400, "empty_input"),
            ("{\"nothing\": 1}", "application/json", 400, "missing_field"),
            ("{\"input\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", "application/json", 400, "too_many_inputs"),
            ("{\"input\": \"\(String(repeating: "x", count: 101))\"}", "application/json", 400, "text_too_long"),
            ("{\"input\": \"\(String(repeating: "x", count: 5000))\"}", "application/json", 413, "body_too_large"),
            ("input=hello", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
            ("{\"input\": \"a\", \"encoding_format\": \"hex\"}", "application/json", 400, "invalid_value"),
            ("{\"input\": \"a\", \"dimensions\": 0}", "application/json", 400, "invalid_value"),
            // Half a surrogate pair, alone or in an array: named as such, not as a wrong type.
            ("{\"input\": \"a\\ud800b\"}", "application/json", 400, "invalid_unicode"),
            ("{\"input\": [\"ok\", \"\\udc00\"]}", "application/json", 400, "invalid_unicode"),
        ]
        for (body, type, status, code) in cases {
            let response = try await server.request("/v1/embeddings", method: "POST", body: Data(body.utf8), contentType: type)
            #expect(response.status == status, "\(body.prefix(40))")
            let error = try #require(try json(response.body)["error"] as? [String: Any], "\(body.prefix(40))")
            #expect(error["code"] as? String == code, "\(body.prefix(40))")
            #expect(error["message"] is String && error["type"] is String)
        }
        // A whole pair, and an escaped backslash before "ud800" (plain text), are fine.
        for body in ["{\"input\": \"\\ud83d\\ude00\"}", "{\"input\": \"\\\\ud800\"}"] {
            #expect(try await server.post("/v1/embeddings", json: body).status == 200, "\(body)")
        }
        // Invalid UTF-8 in the body.
        let invalid = try await server.request("/v1/embeddings", method: "POST", body: Data([0x7B, 0x22, 0x69, 0x6E, 0x70, 0x75, 0x74, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D]))
        #expect(invalid.status == 400)
        let tooLong = try await server.post("/v1/m3/embeddings", json: "{\"input\": \"a b c d e f g h\", \"max_length\": 4, \"truncate\": false}")
        #expect(tooLong.status == 400)
        #expect(String(decoding: tooLong.body, as: UTF8.self).contains("input[0]"))

        // A few hundred random malformed bodies, then a valid request still succeeds.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let length = Int.random(in: 0..<200, using: &generator)
            let junk = Data((0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let response = try await server.request(["/v1/embeddings", "/v1/m3/embeddings", "/tokenize"].randomElement()!, method: "POST", body: junk)
            #expect((400..<500).contains(response.status))
        }
        let ok = try await server.post("/v1/embeddings", json: "{\"input\": \"still serving\"}")
        #expect(ok.status == 200)
    }

    @Test func apiKeyIsRequiredWhenSet() async throws {
        let server = try await ServerProcess(environment: ["BGE_M3_API_KEY": "s3cret"])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        #expect(try await server.post("/v1/embeddings", json: "{\"input\": \"a\"}").status == 401)
        #expect(try await server.post("/v1/embeddings", json: "{\"input\": \"a\"}", headers: ["Authorization": "Bearer wrong"]).status == 401)
        #expect(try await server.post("/v1/embeddings", json: "{\"input\": \"a\"}", headers: ["Authorization": "Bearer s3cret"]).status == 200)
        #expect(try await server.request("/live").status == 200)
    }

    @Test func requestIDIsEchoedAndOperationsRoutesAnswer() async throws {
        let server = try await ServerProcess()
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let response = try await server.request("/health", headers: ["X-Request-ID": "abc-123"])
        #expect(response.status == 200)
        #expect(response.headers["x-request-id"] == "abc-123")
        #expect(try json(response.body)["status"] as? String == "ok")
        let info = try json(try await server.request("/info").body)
        #expect(info["dimensions"] as? Int == 64)
        #expect(info["precision"] as? String == "fp32")
        // The release binary is linked with a build ID (Package.swift), which keys the probe cache.
        let build = try #require(info["build"] as? String)
        #expect(build.hasPrefix("gnu-") && build.count == 4 + 40, "build \(build)")
        let models = try json(try await server.request("/v1/models").body)
        #expect((models["data"] as? [[String: Any]])?.count == 1)
        let tokens = try await server.post("/tokenize", json: "{\"input\": \"Hello world\"}")
        let lists = try #require(try JSONSerialization.jsonObject(with: tokens.body) as? [[[String: Any]]])
        #expect(lists.first?.first?["special"] as? Bool == true)
        #expect(lists.first?.count == 9)
        #expect(try await server.request("/no/such/route").status == 404)
        let metrics = String(decoding: try await server.request("/metrics").body, as: UTF8.self)
        #expect(metrics.contains("bgem3_requests_total{"))
        #expect(metrics.contains("route=\"/tokenize\""))
        #expect(metrics.contains("bgem3_request_duration_seconds"))
        #expect(metrics.contains("bgem3_memory_rss_bytes"))
    }

    /// `--workers 2`: two teams of one thread each compute batches at once, and every answer still
    /// matches the reference; `/health` and `/info` report the workers.
    @Test func workersComputeAtOnceAndAnswerAsTheReference() async throws {
        let server = try await ServerProcess(arguments: ["--workers", "2"])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let health = try json(try await server.request("/health").body)
        #expect(health["status"] as? String == "ok")
        let workers = try #require(health["workers"] as? [String: Any])
        #expect(workers["live"] as? Int == 2 && workers["total"] as? Int == 2)
        let info = try json(try await server.request("/info").body)
        #expect(info["workers"] as? Int == 2 && info["threads_per_worker"] as? Int == 1 && info["threads"] as? Int == 2)
        // One text per request, all at once: the scheduler spreads them over both workers.
        let cases = Array(try #require(Self.golden).cases.filter { $0.max_length == 1024 }.prefix(8))
        let answers = try await withThrowingTaskGroup(of: (Int, Int, [Float]).self) { group in
            for round in 0..<3 {
                for (index, reference) in cases.enumerated() {
                    group.addTask {
                        let response = try await server.post("/v1/embeddings", json: "{\"input\": [\(self.quoted(reference.text))]}")
                        let data = try #require(try self.json(response.body)["data"] as? [[String: Any]])
                        let vector = try #require(data.first?["embedding"] as? [Double]).map(Float.init)
                        return (round * 100 + index, response.status, vector)
                    }
                }
            }
            var all: [(Int, Int, [Float])] = []
            for try await answer in group { all.append(answer) }
            return all
        }
        #expect(answers.count == 3 * cases.count)
        for (key, status, vector) in answers {
            #expect(status == 200)
            let reference = cases[key % 100].dense
            #expect(vector.count == reference.count && zip(vector, reference).allSatisfy { abs($0 - $1) <= 1e-4 }, "text \(key % 100)")
        }
        let metrics = String(decoding: try await server.request("/metrics").body, as: UTF8.self)
        #expect(metrics.contains("bgem3_batch_size"))
    }

    @Test func concurrentClientsAllGetCorrectResultsAndSigtermLetsThemFinish() async throws {
        let server = try await ServerProcess()
        try await server.waitUntilReady()
        let reference = try JSONSerialization.jsonObject(with: try await server.post("/v1/embeddings", json: "{\"input\": \"concurrency\"}").body) as? [String: Any]
        let expected = try #require((reference?["data"] as? [[String: Any]])?.first?["embedding"] as? [Double])
        let results = try await withThrowingTaskGroup(of: [Double]?.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    let response = try await server.post("/v1/embeddings", json: "{\"input\": \"concurrency\"}")
                    guard response.status == 200, let object = try JSONSerialization.jsonObject(with: response.body) as? [String: Any] else { return nil }
                    return (object["data"] as? [[String: Any]])?.first?["embedding"] as? [Double]
                }
            }
            var all: [[Double]?] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results.count == 64)
        #expect(results.allSatisfy { $0 == expected })

        // SIGTERM while requests are in flight: they finish, and the process exits 0. Each request
        // is a batch heavy enough to be still running when the signal arrives; the signal is sent
        // once the server reports work queued (bgem3_queue_depth).
        let heavy = "{\"input\": [" + Array(repeating: "\"" + String(repeating: "word ", count: 400) + "\"", count: 64).joined(separator: ",") + "]}"
        let inFlight = Task {
            await withTaskGroup(of: Int?.self) { group in
                for _ in 0..<8 { group.addTask { try? await server.post("/v1/embeddings", json: heavy).status } }
                var statuses: [Int?] = []
                for await status in group { statuses.append(status) }
                return statuses
            }
        }
        for _ in 0..<400 {
            let metrics = String(decoding: (try? await server.request("/metrics").body) ?? Data(), as: UTF8.self)
            if metrics.split(separator: "\n").contains(where: { $0.hasPrefix("bgem3_queue_depth") && !$0.hasSuffix(" 0") && !$0.hasSuffix(" 0.0") }) { break }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        kill(server.process.processIdentifier, SIGTERM)
        let statuses = await inFlight.value
        #expect(server.stop() == 0)
        let answered = statuses.compactMap { $0 }
        #expect(answered.contains(200), "requests accepted before SIGTERM complete: \(statuses)")
        #expect(answered.allSatisfy { $0 == 200 }, "no accepted request fails: \(statuses)")
    }
}

/// `/v1/score` and `/v1/rerank` against FlagEmbedding's `compute_score` goldens.
@Suite(.serialized) struct ScoringServerTests {
    struct Scores: Decodable {
        let pairs: [[String]]
        let dense: [Float]
        let sparse: [Float]
        let colbert: [Float]
        let all: [Float]
        enum CodingKeys: String, CodingKey { case pairs, dense, sparse, colbert, all = "colbert+sparse+dense" }
    }

    @Test func scoresAndRerankingMatchTheReference() async throws {
        struct Document: Decodable { let scores: Scores }
        let data = try Data(contentsOf: RepositoryFixtures.golden("tiny-model-public.json"))
        let golden = try JSONDecoder().decode(Document.self, from: data).scores
        let server = try await ServerProcess()
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        // Pairs sharing the first query, scored in one request. The reference encodes passages at
        // max_passage_length 128; these passages are shorter, so one max_length serves both.
        let indices = golden.pairs.indices.filter { golden.pairs[$0][0] == golden.pairs[0][0] }
        let documents = indices.map { golden.pairs[$0][1] }
        let body = try JSONSerialization.data(withJSONObject: ["query": golden.pairs[0][0], "documents": documents, "max_length": 128])
        let response = try await server.request("/v1/score", method: "POST", body: body)
        #expect(response.status == 200)
        let items = try #require((try JSONSerialization.jsonObject(with: response.body) as? [String: Any])?["data"] as? [[String: Any]])
        #expect(items.count == indices.count)
        for (item, index) in zip(items, indices) {
            #expect(abs(Float(item["dense"] as? Double ?? .nan) - golden.dense[index]) <= 1e-4)
            #expect(abs(Float(item["sparse"] as? Double ?? .nan) - golden.sparse[index]) <= 1e-4 * max(1, golden.sparse[index]))
            #expect(abs(Float(item["colbert"] as? Double ?? .nan) - golden.colbert[index]) <= 1e-4)
            #expect(abs(Float(item["score"] as? Double ?? .nan) - golden.all[index]) <= 1e-4 * max(1, golden.all[index]))
        }
        let rerankBody = try JSONSerialization.data(withJSONObject: ["query": golden.pairs[0][0], "documents": documents, "top_n": 2, "return_documents": true])
        let rerank = try await server.request("/v1/rerank", method: "POST", body: rerankBody)
        let results = try #require((try JSONSerialization.jsonObject(with: rerank.body) as? [String: Any])?["results"] as? [[String: Any]])
        #expect(results.count == 2)
        let best = indices.max { golden.all[$0] < golden.all[$1] }!
        #expect(results.first?["index"] as? Int == indices.firstIndex(of: best))
        #expect((results.first?["document"] as? [String: Any])?["text"] as? String == golden.pairs[best][1])
        #expect((results[0]["relevance_score"] as? Double ?? 0) >= (results[1]["relevance_score"] as? Double ?? 1))
    }
}

/// `--model OWNER/NAME` served from a Hugging Face cache, without network.
@Suite struct HubCacheServerTests {
    @Test func aHubIdInTheCacheIsServed() async throws {
        let scratch = try ScratchDirectory("cache")
        defer { scratch.remove() }
        let cache = scratch.url
        let commit = "fedcba9876543210fedcba9876543210fedcba98"
        let repository = cache.appendingPathComponent("models--BAAI--bge-m3")
        let snapshot = repository.appendingPathComponent("snapshots/\(commit)")
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repository.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try commit.write(to: repository.appendingPathComponent("refs/main"), atomically: true, encoding: .utf8)
        let fixture = RepositoryFixtures.tinyModel.path
        for name in try FileManager.default.contentsOfDirectory(atPath: fixture) {
            try FileManager.default.createSymbolicLink(atPath: snapshot.appendingPathComponent(name).path, withDestinationPath: fixture + "/" + name)
        }
        let server = try await ServerProcess(arguments: ["--model", "BAAI/bge-m3"], replacingModel: true, environment: ["HF_HUB_CACHE": cache.path])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let response = try await server.post("/v1/embeddings", json: "{\"input\": \"hello\"}")
        #expect(response.status == 200)
        let object = try #require(try JSONSerialization.jsonObject(with: response.body) as? [String: Any])
        #expect(object["model"] as? String == "BAAI/bge-m3")

        // Not in the cache and offline: a clear error naming --model.
        let offline = try await BGEM3Process.run(["serve", "--model", "BAAI/not-there", "--bind", "127.0.0.1:0"],
                                                 environment: ["HF_HUB_CACHE": cache.path, "HF_HUB_OFFLINE": "1"])
        #expect(offline.status != 0 && !offline.terminatedBySignal)
        #expect(offline.standardError.contains("neither a directory nor a model in the Hugging Face cache"))
        #expect(offline.standardError.contains("--model DIR"))
        // Not in the cache and the hub unreachable: the download fails with the same advice.
        let unreachable = try await BGEM3Process.run(["serve", "--model", "BAAI/not-there", "--bind", "127.0.0.1:0"],
                                                     environment: ["HF_HUB_CACHE": cache.path, "HF_ENDPOINT": "http://127.0.0.1:9"])
        #expect(unreachable.status != 0 && !unreachable.terminatedBySignal)
        #expect(unreachable.standardError.contains("could not be downloaded"))
        #expect(unreachable.standardError.contains("--model DIR"))
    }
}
