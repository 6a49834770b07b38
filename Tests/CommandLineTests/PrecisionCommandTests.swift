import Foundation
import Testing
import TestSupport

/// `bgem3 eval`, `--precision` at start-up, and both int8 code paths through the real binary.
/// `DNNL_MAX_CPU_ISA=AVX2` makes oneDNN (and so the engine) take the path of a CPU without
/// AVX-512, VNNI and BF16 (Zen 3): its kernels, its 7-bit int8 levels and its refusals.
@Suite struct PrecisionCommandTests {
    let tiny = RepositoryFixtures.tinyModel.path
    static let withoutAVX512 = ["DNNL_MAX_CPU_ISA": "AVX2"]

    struct Report: Decodable {
        let precision: String
        let dense_cosine_min: Float
        let dense_cosine_mean: Float
        let lexical_rel_error_max: Float
        let colbert_rel_error_max: Float
        let top10_overlap: Float
        let passes_gates: Bool
        let isa: String
        let int8_levels: String?
        let texts: Int
        let pairs: Int
    }

    func eval(_ arguments: [String], environment: [String: String] = [:]) async throws -> (BGEM3Process.Output, Report?) {
        let output = try await BGEM3Process.run(["eval", "--threads", "2", "--json"] + arguments, environment: environment)
        let report = try? JSONDecoder().decode(Report.self, from: Data(output.standardOutput.utf8))
        return (output, report)
    }

    @Test(arguments: [[String: String](), withoutAVX512])
    func int8EvalPassesTheGatesOnTheTinyModel(_ environment: [String: String]) async throws {
        let (output, report) = try await eval(["--model", tiny, "--precision", "int8"], environment: environment)
        #expect(output.status == 0, "\(output.standardError)")
        let result = try #require(report, "not the eval JSON: \(output.standardOutput)")
        #expect(result.precision == "int8" && result.passes_gates)
        #expect(result.texts == 120 && result.pairs == 100)
        #expect(result.dense_cosine_min >= 0.99 && result.dense_cosine_mean >= 0.995)
        #expect(result.lexical_rel_error_max.isFinite && result.colbert_rel_error_max.isFinite && result.top10_overlap > 0.8)
        if environment.isEmpty == false {
            #expect(result.isa == "avx2")
            #expect(result.int8_levels == "u8 0...255 × s8 ±63", "7-bit weights where products are summed in int16")
        }
    }

    @Test(arguments: [[String: String](), withoutAVX512])
    func int8EvalPassesTheGatesOnRealMiniLMWeights(_ environment: [String: String]) async throws {
        let directory = try RepositoryFixtures.miniLM(requiring: "eval-ids.json").path
        let (output, report) = try await eval(["--model", directory, "--precision", "int8", "--token-ids", directory + "/eval-ids.json"],
                                              environment: environment)
        #expect(output.status == 0, "\(output.standardError)")
        let result = try #require(report, "not the eval JSON: \(output.standardOutput)")
        #expect(result.passes_gates, "dense cosine min \(result.dense_cosine_min) mean \(result.dense_cosine_mean) (isa \(result.isa))")
        #expect(result.top10_overlap >= 0.9)
    }

    @Test func aModelWithoutAUsableTokenizerAsksForTokenIDs() async throws {
        let output = try await BGEM3Process.run(["eval", "--model", try RepositoryFixtures.miniLM(requiring: "eval-ids.json").path, "--precision", "int8"])
        #expect(output.status != 0)
        #expect(output.standardError.contains("--token-ids"), "\(output.standardError)")
        // The server stays up and reports the failed load (as for any model that does not load).
        let server = try await ServerProcess(arguments: ["--model", try RepositoryFixtures.miniLM(requiring: "eval-ids.json").path, "--precision", "fp32"], replacingModel: true)
        defer { _ = server.stop() }
        var status = ""
        for _ in 0..<200 where status != "fail" {
            status = (try? JSONSerialization.jsonObject(with: try await server.request("/health").body) as? [String: Any])??["status"] as? String ?? ""
            if status != "fail" { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        #expect(status == "fail")
        #expect(server.output.contains("Unigram"), "the log names the problem: \(server.output)")
    }

    @Test func bf16IsRefusedAtStartWhereTheCPULacksItNamingTheFeature() async throws {
        for command in [["eval", "--model", tiny], ["serve", "--model", tiny, "--bind", "127.0.0.1:0"], ["bench", "--model", tiny, "--workloads", "1x128"]] {
            let output = try await BGEM3Process.run(command + ["--precision", "bf16"], environment: Self.withoutAVX512)
            #expect(output.status != 0 && !output.terminatedBySignal, "\(command[0]): \(output.standardError)")
            #expect(output.standardError.contains("AVX512-BF16"), "\(command[0]): \(output.standardError)")
        }
    }

    @Test func unknownPrecisionsAreRefusedListingTheChoices() async throws {
        let serve = try await BGEM3Process.run(["serve", "--model", tiny, "--precision", "fp16"])
        #expect(serve.status != 0 && serve.standardError.contains("auto"), "\(serve.standardError)")
        let eval = try await BGEM3Process.run(["eval", "--model", tiny, "--precision", "int4"])
        #expect(eval.status != 0 && eval.standardError.contains("int8"), "\(eval.standardError)")
    }

    /// `--attention f32` keeps int8's products and runs attention in fp32: the check measures int8
    /// with that kernel (its cache key names it), and `/info` shows the kernel running.
    @Test func attentionSettingChoosesTheKernelAtInt8AndUnsupportedOnesAreRefused() async throws {
        let server = try await ServerProcess(arguments: ["--precision", "int8", "--attention", "f32"])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let info = try #require(try JSONSerialization.jsonObject(with: try await server.request("/info").body) as? [String: Any])
        #expect(info["precision"] as? String == "int8")
        let engine = try #require(info["engine"] as? String)
        #expect(engine.contains("attention: oneDNN f32 products"), "\(engine)")
        #expect(server.output.contains("attention=f32") && server.output.contains("precision check: int8"), "\(server.output.suffix(1500))")
        let embedded = try await server.post("/v1/embeddings", json: "{\"input\": [\"What is BGE M3?\"]}")
        #expect(embedded.status == 200)

        let refused = try await BGEM3Process.run(["serve", "--model", tiny, "--attention", "int8"], environment: Self.withoutAVX512)
        #expect(refused.status != 0 && !refused.terminatedBySignal)
        #expect(refused.standardError.contains("--attention int8") && refused.standardError.contains("VNNI"), "\(refused.standardError)")
        let unknown = try await BGEM3Process.run(["serve", "--model", tiny], environment: ["BGE_M3_ATTENTION": "fp16"])
        #expect(unknown.status != 0 && unknown.standardError.contains("BGE_M3_ATTENTION") && unknown.standardError.contains("blocked"),
                "\(unknown.standardError)")
    }

    /// At fp32 the setting is set aside (fp32 keeps its own kernel), and the log says so.
    @Test func attentionSettingAtFp32IsReportedAsWithoutEffect() async throws {
        let server = try await ServerProcess(arguments: ["--precision", "fp32", "--attention", "blocked"])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        #expect(server.output.contains("the attention setting has no effect at fp32"), "\(server.output.suffix(1500))")
        let info = try #require(try JSONSerialization.jsonObject(with: try await server.request("/info").body) as? [String: Any])
        #expect(info["precision"] as? String == "fp32")
    }

    @Test func autoMeasuresInt8OnTheLoadedWeightsRunsItAndInfoShowsTheCPU() async throws {
        let server = try await ServerProcess(arguments: ["--precision", "auto"])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let response = try await server.request("/info")
        #expect(response.status == 200)
        let info = try #require(try JSONSerialization.jsonObject(with: response.body) as? [String: Any])
        #expect(info["precision"] as? String == "int8")
        let check = try #require(info["precision_check"] as? [String: Any], "\(info)")
        #expect(check["requested"] as? String == "auto" && check["running"] as? String == "int8" && check["decided"] as? String == "measured")
        #expect(server.output.contains("precision check: int8 passes"), "\(server.output.suffix(1200))")
        let cpu = try #require(info["cpu"] as? [String: Any])
        #expect((cpu["precisions"] as? [String])?.contains("int8") == true)
        #expect(cpu["isa"] as? String != nil && cpu["int8_levels"] as? String != nil)
        // int8 embeddings stay within the gate of fp32's (the golden vectors are fp32 FlagEmbedding's).
        let embedded = try await server.post("/v1/embeddings", json: "{\"input\": [\"What is BGE M3?\", \"Defination of BM25\"]}")
        #expect(embedded.status == 200)
        let reference = try await BGEM3Process.run(["embed", "--model", tiny, "--dense", "--precision", "fp32"], input: Data("{\"text\": \"What is BGE M3?\"}\n{\"text\": \"Defination of BM25\"}\n".utf8))
        let expected = reference.standardOutput.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["dense"] as? [Double]
        }
        let data = try #require((try JSONSerialization.jsonObject(with: embedded.body) as? [String: Any])?["data"] as? [[String: Any]])
        #expect(data.count == 2 && expected.count == 2)
        for (item, vector) in zip(data, expected) {
            let got = try #require(item["embedding"] as? [Double])
            let cosine = zip(got, vector).reduce(0) { $0 + $1.0 * $1.1 }
            #expect(cosine >= 0.99, "int8 against fp32 cosine \(cosine)")
        }
    }
}
