import Foundation
import Testing
import TestSupport

/// The server's memory model end to end: the start-up probe, its cache, the settings that replace
/// or disable it, what `/health` and `/metrics` report, and inputs too large for the budget.
@Suite(.serialized) struct MemoryServerTests {
    func json(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func probe(_ server: ServerProcess) async throws -> [String: Any] {
        try await server.waitUntilReady()
        return try #require(try json(try await server.request("/health").body)["probe"] as? [String: Any])
    }

    func scratchDirectory() -> URL { ScratchDirectory.unusedPath("probe-cache") }

    /// First start probes and caches; the second reads the cache; a corrupt cache file is ignored
    /// with a warning and replaced by a new probe.
    @Test func theProbeRunsOnceAndACorruptCacheIsNotTrusted() async throws {
        let cache = scratchDirectory()
        defer { try? FileManager.default.removeItem(at: cache) }
        let environment = ["BGE_M3_PROBE_CACHE_DIR": cache.path]

        let first = try await ServerProcess(environment: environment)
        let measured = try await probe(first)
        #expect(measured["status"] as? String == "complete")
        #expect((measured["a"] as? Double ?? 0) > 0)
        let health = try json(try await first.request("/health").body)
        let memory = try #require(health["memory"] as? [String: Any])
        for field in ["limit_bytes", "budget_bytes", "resident_at_start_bytes", "rss_bytes"] {
            #expect((memory[field] as? Int ?? 0) > 0, "memory.\(field)")
        }
        let metrics = String(decoding: try await first.request("/metrics").body, as: UTF8.self)
        for name in ["bgem3_probe_status{status=\"complete\"} 1", "bgem3_memory_limit_bytes", "bgem3_memory_budget_bytes",
                     "bgem3_probe_predicted_bytes{", "bgem3_probe_measured_bytes{", "bgem3_cost_a_bytes"] {
            #expect(metrics.contains(name), "\(name) in /metrics")
        }
        #expect(first.stop() == 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: cache.path).filter { $0.hasSuffix(".json") }
        #expect(files.count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path).allSatisfy { !$0.hasSuffix(".tmp") })

        let second = try await ServerProcess(environment: environment)
        let cached = try await probe(second)
        #expect(cached["status"] as? String == "cached")
        #expect(cached["a"] as? Double == measured["a"] as? Double)
        #expect(second.stop() == 0)

        let file = cache.appendingPathComponent(try #require(files.first))
        try Data("{\"format\": 1, \"a\": ".utf8).write(to: file)  // as a process killed mid-write without the atomic rename would leave it
        let third = try await ServerProcess(environment: environment)
        #expect(try await probe(third)["status"] as? String == "complete")
        #expect(third.stop() == 0)
        #expect(third.output.contains("probe cache ignored"))
        let rewritten = try json(try Data(contentsOf: file))
        #expect((rewritten["a"] as? Double ?? 0) > 0)
    }

    @Test func theProbeCanBeTurnedOffOrReplaced() async throws {
        let off = try await ServerProcess(environment: ["BGE_M3_PROBE": "off"])
        #expect(try await probe(off)["status"] as? String == "off")
        #expect(off.stop() == 0)
        #expect(off.output.contains("conservative cost model"))

        let given = try await ServerProcess(arguments: ["--cost-a", "12345", "--cost-b", "6"])
        let overridden = try await probe(given)
        #expect(overridden["status"] as? String == "overridden")
        #expect(overridden["a"] as? Double == 12345)
        #expect(overridden["b"] as? Double == 6)
        #expect(given.stop() == 0)
    }

    @Test func badMemorySettingsAreRefusedAtStart() async throws {
        let model = ["serve", "--model", RepositoryFixtures.tinyModel.path, "--bind", "127.0.0.1:0"]
        let cases: [([String], [String: String], String)] = [
            ([], ["BGE_M3_MEMORY_SAFETY": "2"], "BGE_M3_MEMORY_SAFETY=2 must be a number in 0.1...1.0"),
            ([], ["BGE_M3_COST_A": "1000"], "set both BGE_M3_COST_A and BGE_M3_COST_B"),
            ([], ["BGE_M3_PROBE": "sometimes"], "BGE_M3_PROBE must be one of auto, off, force"),
            (["--memory-limit", "12XB"], [:], "--memory-limit must be a size"),
            ([], ["BGE_M3_MEMORY_LIMIT": "lots"], "BGE_M3_MEMORY_LIMIT must be a size"),
            ([], ["BGE_M3_IDLE_TIMEOUT_SECS": "-1"], "BGE_M3_IDLE_TIMEOUT_SECS=-1 must be a number"),
        ]
        for (arguments, environment, message) in cases {
            let result = try await BGEM3Process.run(model + arguments, environment: environment)
            #expect(result.status != 0, "\(arguments) \(environment)")
            #expect(result.standardError.contains(message), "\(result.standardError)")
        }
    }

    /// With a cost model that makes 500 tokens cost more than the whole budget, such an input is
    /// refused with 413 and a message naming it, while short inputs are served.
    @Test func anInputLargerThanTheMemoryBudgetIsRefusedClearly() async throws {
        let server = try await ServerProcess(arguments: ["--memory-limit", "300MiB", "--cost-a", "1000000", "--cost-b", "0"])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let short = try await server.post("/v1/embeddings", json: "{\"input\": \"a short sentence\"}")
        #expect(short.status == 200)
        let long = try await server.post("/v1/embeddings", json: "{\"input\": [\"hi\", \(String(repeating: "word ", count: 600).debugDescription)]}")
        #expect(long.status == 413)
        let error = try #require(try json(long.body)["error"] as? [String: Any])
        #expect(error["code"] as? String == "input_exceeds_memory_budget")
        #expect((error["message"] as? String ?? "").contains("input 1"))
    }
}
