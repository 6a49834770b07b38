import Foundation
import Testing
import TestSupport

/// `bgem3 embed`, `bgem3 synth` and the model workloads of `bgem3 bench`, end to end.
@Suite struct EngineCommandTests {
    let tiny = RepositoryFixtures.tinyModel.path

    struct Output: Decodable {
        let index: Int
        let tokens: Int
        let truncated: Bool
        let dense: [Float]?
        let sparse: Sparse?
        let colbert: [[Float]]?
        let id: Int?
        struct Sparse: Decodable { let indices: [Int]; let values: [Float] }
    }

    struct Golden: Decodable {
        struct Case: Decodable { let text: String; let max_length: Int; let dense: [Float]; let sparse: [String: Float]; let colbert: [[Float]] }
        let cases: [Case]
    }

    @Test func embedMatchesTheReferenceAndKeepsOrder() async throws {
        let data = try Data(contentsOf: RepositoryFixtures.golden("tiny-model-public.json"))
        let golden = try JSONDecoder().decode(Golden.self, from: data)
        let cases = golden.cases.filter { $0.max_length == 64 }.prefix(6)
        let input = cases.enumerated().map { index, c in
            String(decoding: try! JSONSerialization.data(withJSONObject: ["text": c.text, "id": index * 10]), as: UTF8.self)
        }.joined(separator: "\n") + "\n"
        let result = try await BGEM3Process.run(["embed", "--model", tiny, "--dense", "--sparse", "--colbert", "--max-length", "64", "--precision", "fp32"],
                                                input: Data(input.utf8))
        #expect(result.status == 0, "\(result.standardError)")
        let lines = try result.standardOutput.split(separator: "\n").map { try JSONDecoder().decode(Output.self, from: Data($0.utf8)) }
        #expect(lines.count == cases.count)
        for (index, (line, reference)) in zip(lines, cases).enumerated() {
            #expect(line.index == index)
            #expect(line.id == index * 10, "carried-through field")
            let dense = try #require(line.dense)
            #expect(zip(dense, reference.dense).allSatisfy { abs($0 - $1) <= 1e-4 })
            let colbert = try #require(line.colbert)
            #expect(colbert.count == reference.colbert.count)
            #expect(zip(colbert.flatMap { $0 }, reference.colbert.flatMap { $0 }).allSatisfy { abs($0 - $1) <= 1e-4 })
            let sparse = try #require(line.sparse)
            #expect(sparse.indices == sparse.indices.sorted())
            for (id, weight) in zip(sparse.indices, sparse.values) {
                #expect(abs((reference.sparse[String(id)] ?? 0) - weight) <= 1e-4)
            }
        }
    }

    /// Under a small memory limit the input is embedded in several windows through the server's
    /// scheduler (one written while the next is computed): the output is the same, line for line,
    /// as with room for everything at once, in order, with the carried fields.
    @Test func embedInWindowsUnderASmallMemoryLimitKeepsOrderAndValues() async throws {
        let words = ["memory", "aware", "batches", "of", "unpadded", "texts", "in", "order"]
        let input = (0..<1500).map { index in
            let text = (0...(index % 23)).map { words[($0 * 5 + index) % words.count] }.joined(separator: " ")
            return "{\"text\": \"\(text)\", \"n\": \(index)}"
        }.joined(separator: "\n") + "\n"
        let arguments = ["embed", "--model", tiny, "--sparse", "--colbert", "--precision", "fp32"]
        let roomy = try await BGEM3Process.run(arguments, input: Data(input.utf8))
        let tight = try await BGEM3Process.run(arguments + ["--memory-limit", "60MiB"], input: Data(input.utf8))
        #expect(roomy.status == 0 && tight.status == 0, "\(tight.standardError)")
        let roomyLines = roomy.standardOutput.split(separator: "\n")
        let tightLines = tight.standardOutput.split(separator: "\n")
        #expect(tightLines.count == 1500)
        #expect(tightLines == roomyLines)
        #expect(tightLines.enumerated().allSatisfy { $0.element.hasPrefix("{\"index\":\($0.offset),") && $0.element.hasSuffix("\"n\":\($0.offset)}") })
    }

    @Test func embedGivesOnlyWhatIsAskedAndDenseByDefault() async throws {
        let result = try await BGEM3Process.run(["embed", "--model", tiny], input: Data("{\"text\": \"hello\"}\n".utf8))
        #expect(result.status == 0, "\(result.standardError)")
        let line = try JSONDecoder().decode(Output.self, from: Data(result.standardOutput.utf8))
        #expect(line.dense?.count == 64 && line.sparse == nil && line.colbert == nil)
        #expect(line.tokens == 6 && !line.truncated) // [0, 4, 266, 25, 55, 2], as `bgem3 tokenize` gives
    }

    @Test func embedTruncatesAndReportsIt() async throws {
        let text = String(repeating: "word ", count: 200)
        let result = try await BGEM3Process.run(["embed", "--model", tiny, "--max-length", "16"], input: Data("{\"text\": \"\(text)\"}\n".utf8))
        #expect(result.status == 0, "\(result.standardError)")
        let line = try JSONDecoder().decode(Output.self, from: Data(result.standardOutput.utf8))
        #expect(line.tokens == 16 && line.truncated)
    }

    @Test func embedRejectsBadInputClearly() async throws {
        let bad = try await BGEM3Process.run(["embed", "--model", tiny], input: Data("{\"text\": \"ok\"}\n[1, 2]\n".utf8))
        #expect(bad.status == 1 && !bad.terminatedBySignal)
        #expect(bad.standardError.contains("line 2"))
        let length = try await BGEM3Process.run(["embed", "--model", tiny, "--max-length", "5000"], input: Data())
        #expect(length.status == 1)
        #expect(length.standardError.contains("--max-length 5000 is outside 2...1024"))
        let missing = try await BGEM3Process.run(["embed", "--model", "/nonexistent"], input: Data())
        #expect(missing.status == 1)
        #expect(missing.standardError.contains("config.json"))
    }

    @Test func synthWritesALoadableModel() async throws {
        let scratch = try ScratchDirectory("synth")
        defer { scratch.remove() }
        let directory = scratch.url("model")
        let made = try await BGEM3Process.run(["synth", "--preset", "tiny", "--out", directory.path,
                                         "--tokenizer", RepositoryFixtures.url("tiny-bge-m3/tokenizer.json").path])
        #expect(made.status == 0, "\(made.standardError)")
        for file in ["config.json", "model.safetensors", "sparse_linear.pt", "colbert_linear.pt", "tokenizer.json", "special_tokens_map.json"] {
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(file).path), "\(file)")
        }
        let embedded = try await BGEM3Process.run(["embed", "--model", directory.path, "--sparse", "--colbert", "--precision", "fp32"], input: Data("{\"text\": \"hello world\"}\n".utf8))
        #expect(embedded.status == 0, "\(embedded.standardError)")
        let line = try JSONDecoder().decode(Output.self, from: Data(embedded.standardOutput.utf8))
        #expect(line.colbert?.count == line.tokens - 1)
        let wrongVocabulary = try await BGEM3Process.run(["synth", "--preset", "tiny", "--out", scratch.url("wrong").path,
                                                    "--tokenizer", try RepositoryFixtures.xlmrTokenizer().path])
        #expect(wrongVocabulary.status == 1)
        #expect(wrongVocabulary.standardError.contains("250002"), "\(wrongVocabulary.standardError)")
    }

    @Test func benchReportsModelWorkloads() async throws {
        let result = try await BGEM3Process.run(["bench", "--model", tiny, "--workloads", "1x16,1x128,8x16,64xmixed", "--runs", "1", "--threads", "1", "--json"])
        #expect(result.status == 0, "\(result.standardError)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        #expect(object["precision"] as? String == "fp32")
        #expect(object["threads"] as? Int == 1)
        #expect((object["matmul_gflops"] as? Double ?? 0) > 0)
        let workloads = try #require(object["workloads"] as? [[String: Any]])
        #expect(workloads.map { $0["name"] as? String } == ["1x16", "1x128", "8x16", "64xmixed"])
        for workload in workloads {
            for key in ["sequences", "tokens", "seconds_median", "seconds_min", "tokens_per_s", "peak_rss_bytes", "rss_before_bytes", "matmul_seconds"] {
                #expect(workload[key] != nil, "missing \(key)")
            }
            // The parts are of the median run: each timed, and together no more than the run.
            let parts = try #require(workload["parts_seconds"] as? [String: Double])
            #expect(Set(parts.keys) == ["embeddings", "product_inputs", "products", "product_outputs", "gelu", "attention", "layer_norms", "heads"])
            for stage in ["embeddings", "products", "attention", "layer_norms", "heads"] {
                #expect(parts[stage] ?? 0 > 0, "\(stage) was not timed")
            }
            let median = try #require(workload["seconds_median"] as? Double)
            #expect(parts.values.reduce(0, +) <= median * 1.02, "parts \(parts) exceed the run's \(median) s")
        }
        #expect(workloads[0]["tokens"] as? Int == 16)
        #expect(workloads[2]["sequences"] as? Int == 8 && workloads[2]["tokens"] as? Int == 128)
        #expect(workloads[3]["sequences"] as? Int == 64)
    }
}
