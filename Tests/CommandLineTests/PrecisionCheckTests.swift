import Foundation
import Testing
import TestSupport

/// `--precision auto` decides on the weights actually loaded: the real server measures int8
/// against fp32 at start, falls back when int8 fails the gates, and caches the figures.
///
/// int8 is made to fail with the test hook `BGE_M3_TEST_INT8_ACTIVATION_MAXIMUM=7` (3-bit
/// activations: dense cosine min 0.953 and top-10 overlap by dense score 0.10 on the tiny model).
/// The outlier models of `bgem3 synth --outliers` do not serve here: at the tiny size their
/// dense vectors nearly coincide, so even bf16 reorders the near-ties (docs/precisions.md); the
/// full-size one is measured in docs/precisions.md instead.
@Suite(.serialized) struct PrecisionCheckTests {
    func scratch(_ name: String) -> URL { ScratchDirectory.unusedPath("precision-\(name)") }

    /// `/info`'s `precision_check` once the server is ready.
    func check(_ server: ServerProcess) async throws -> (running: String, decided: String, measurements: [[String: Any]], note: String?) {
        try await server.waitUntilReady()
        let info = try #require(try JSONSerialization.jsonObject(with: try await server.request("/info").body) as? [String: Any])
        let check = try #require(info["precision_check"] as? [String: Any], "\(info)")
        #expect(info["precision"] as? String == check["running"] as? String)
        return (check["running"] as? String ?? "", check["decided"] as? String ?? "", check["measurements"] as? [[String: Any]] ?? [],
                check["note"] as? String)
    }

    @Test func autoFallsBackWhenInt8FailsOnTheLoadedWeightsAndTheDecisionIsCached() async throws {
        let cache = scratch("cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let unhandled = ["BGE_M3_PROBE_CACHE_DIR": cache.path, "BGE_M3_TEST_INT8_ACTIVATION_MAXIMUM": "7"]

        let first = try await ServerProcess(arguments: ["--precision", "auto"], environment: unhandled)
        let measured = try await check(first)
        #expect(first.stop() == 0)
        #expect(measured.decided == "measured")
        #expect(measured.measurements.first?["precision"] as? String == "int8")
        #expect(measured.measurements.first?["passes_gates"] as? Bool == false, "\(measured.measurements)")
        // The next faster precision that passes (bf16, on CPUs that have it), else fp32.
        let bf16Passes = measured.measurements.contains { $0["precision"] as? String == "bf16" && $0["passes_gates"] as? Bool == true }
        #expect(measured.running == (bf16Passes ? "bf16" : "fp32"), "\(measured)")
        #expect(first.output.contains("precision check: int8 fails"), "the log says why: \(first.output.suffix(1500))")

        // A second start with the same cache reads the figures instead of measuring.
        let second = try await ServerProcess(arguments: ["--precision", "auto"], environment: unhandled)
        let cached = try await check(second)
        #expect(second.stop() == 0)
        #expect(cached.decided == "cached" && cached.running == measured.running, "\(cached)")
        #expect(!second.output.contains("measuring fp32"), "nothing measured again: \(second.output.suffix(1500))")

        // An explicit int8 runs int8 and warns.
        let explicit = try await ServerProcess(arguments: ["--precision", "int8"], environment: unhandled)
        let forced = try await check(explicit)
        #expect(explicit.stop() == 0)
        #expect(forced.running == "int8" && forced.decided == "cached" && (forced.note ?? "").contains("fails the accuracy gates"), "\(forced)")
        #expect(explicit.output.contains("warning") && explicit.output.contains("fails the accuracy gates"))
    }

    @Test func autoRunsInt8WhereItPassesAndServesIt() async throws {
        let cache = scratch("cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let server = try await ServerProcess(arguments: ["--precision", "auto"], environment: ["BGE_M3_PROBE_CACHE_DIR": cache.path])
        defer { _ = server.stop() }
        let decision = try await check(server)
        #expect(decision.running == "int8" && decision.decided == "measured", "\(decision)")
        #expect(decision.measurements.count == 1 && decision.measurements[0]["passes_gates"] as? Bool == true, "\(decision.measurements)")
        #expect(try await server.post("/v1/embeddings", json: "{\"input\": \"checked\"}").status == 200)
        let files = try FileManager.default.contentsOfDirectory(atPath: cache.path)
        #expect(files.contains { $0.hasPrefix("precision-") && $0.hasSuffix(".json") }, "\(files)")
    }

    @Test func fp32NeedsNoCheck() async throws {
        let server = try await ServerProcess(arguments: ["--precision", "fp32"])
        defer { _ = server.stop() }
        let decision = try await check(server)
        #expect(decision.running == "fp32" && decision.decided == "not needed" && decision.measurements.isEmpty)
    }
}
