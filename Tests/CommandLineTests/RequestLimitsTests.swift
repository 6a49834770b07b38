import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport

/// Every limit holding on every route (issue 15), end to end: the whole request inside the memory
/// budget, admission before the body is read, `/tokenize` admitted like inference, and the small
/// findings (Retry-After, score weights, `dimensions`, API key, memory limit 0, SIGTERM drain).
@Suite(.serialized) struct RequestLimitsTests {
    func json(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func error(_ data: Data) throws -> [String: Any] {
        try #require(try json(data)["error"] as? [String: Any])
    }

    /// Token ids as JSON: `count` texts of `length` ids each (the server adds `<s>` and `</s>`).
    func ids(texts count: Int, length: Int) -> String {
        "[" + (0..<count).map { text in "[" + (0..<length).map { String(5 + ($0 * 7 + text) % 4000) }.joined(separator: ",") + "]" }.joined(separator: ",") + "]"
    }

    /// A server whose requests may hold ~12 MB: a quarter of what a 100 MiB limit leaves after the
    /// tiny model, of which ~1 MB for the tokenising threads (texts of at most 10,000 characters),
    /// ~3.8 MB for bodies and ~7.5 MB for results (the workspace cost is given, so no probe).
    func smallServer(_ extra: [String] = []) async throws -> ServerProcess {
        try await ServerProcess(arguments: ["--memory-limit", "100MiB", "--max-text-chars", "10000", "--cost-a", "2000", "--cost-b", "0", "--token-ids", "accept"] + extra)
    }

    /// Results are budgeted before the inference runs: ColBERT vectors of 64 texts of 600 tokens
    /// (~10 MB) cannot be held, and the 413 says how much they need and how many texts would fit;
    /// the same texts for dense vectors only are served. (Before, both were computed, and the
    /// ColBERT response built whole in several copies.)
    @Test func outputsThatCannotFitTheBudgetGet413SayingWhatWouldFit() async throws {
        let server = try await smallServer()
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let health = try json(try await server.request("/health").body)
        let admission = try #require(health["admission"] as? [String: Any])
        let resultCapacity = try #require(admission["result_capacity_bytes"] as? Int)
        #expect(resultCapacity > 4 << 20 && resultCapacity < 9 << 20, "\(admission)")

        let tokensBefore = try await metric(server, "bgem3_tokens_total")
        let colbert = try await server.post("/v1/m3/embeddings", json: "{\"input\": \(ids(texts: 64, length: 598)), \"colbert\": true}")
        #expect(colbert.status == 413)
        let refusal = try error(colbert.body)
        #expect(refusal["code"] as? String == "request_exceeds_memory_budget")
        let message = try #require(refusal["message"] as? String)
        #expect(message.contains("MiB") && message.contains("of these 64 texts would fit"), "\(message)")
        #expect(try await metric(server, "bgem3_tokens_total") == tokensBefore, "nothing was computed")

        let dense = try await server.post("/v1/m3/embeddings", json: "{\"input\": \(ids(texts: 64, length: 598))}")
        #expect(dense.status == 200, "\(String(decoding: dense.body, as: UTF8.self))")
        #expect((try json(dense.body)["data"] as? [[String: Any]])?.count == 64)
    }

    /// Requests whose results fit one at a time but not together are both served: the second
    /// waits for the first to be written (and freed) instead of either failing.
    @Test func requestsWhoseResultsFitOneAtATimeAreServedInTurn() async throws {
        let server = try await smallServer()
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        // 16 texts of 1000 tokens with ColBERT: ~4.3 MB each, of ~7.5 MB.
        let body = "{\"input\": \(ids(texts: 16, length: 998)), \"colbert\": true}"
        async let first = server.post("/v1/m3/embeddings", json: body)
        async let second = server.post("/v1/m3/embeddings", json: body)
        let answers = try await [first, second]
        for answer in answers {
            #expect(answer.status == 200)
            let data = try #require(try json(answer.body)["data"] as? [[String: Any]])
            #expect(data.map { ($0["colbert"] as? [String: Any])?["shape"] as? [Int] } == Array(repeating: [999, 64], count: 16))
        }
        let health = try json(try await server.request("/health").body)
        let admission = try #require(health["admission"] as? [String: Any])
        #expect(admission["requests"] as? Int == 0 && admission["result_bytes"] as? Int == 0, "everything was given back: \(admission)")
        #expect(try await metric(server, "bgem3_admission_waits_total") >= 1, "the second one waited for room")
    }

    /// `/tokenize` goes through admission: a body too large for what bodies may hold is refused
    /// before it is read (it used to be tokenised whole, with no bound, on the cooperative pool),
    /// and large outputs are streamed whole and right.
    @Test func tokenizeIsAdmittedLikeInferenceAndStreamsLargeOutputs() async throws {
        let small = try await smallServer()
        let large = String(repeating: "a ", count: 100_000)
        let refused = try await small.post("/tokenize", json: "{\"input\": [\"\(large)\", \"\(large)\", \"\(large)\"]}")
        #expect(refused.status == 413)
        #expect(try error(refused.body)["code"] as? String == "request_exceeds_memory_budget")
        #expect(small.stop() == 0)

        let server = try await ServerProcess()
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let answer = try await server.post("/tokenize", json: "{\"input\": [\"\(large)\", \"b\"]}")
        #expect(answer.status == 200)
        let lists = try #require(try JSONSerialization.jsonObject(with: answer.body) as? [[[String: Any]]])
        #expect(lists.map(\.count) == [100_002, 3])
        #expect(lists[0][100_000]["start"] as? Int == 199_997)
        #expect(answer.headers["transfer-encoding"] == "chunked", "streamed, not built whole")
    }

    /// Admission counts a request from its arrival, before its body is read: with room for one
    /// request, a second one is refused with 429 and Retry-After while the first is still uploading
    /// (before, the body was read and tokenised before the queue was even looked at).
    @Test func aFullQueueIsRefusedBeforeTheBodyIsReadWithRetryAfter() async throws {
        let server = try await ServerProcess(arguments: ["--queue-capacity", "1"])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let upload = try SlowUpload(port: server.port, path: "/v1/embeddings", body: "{\"input\": \"a text that arrives slowly\"}")
        try upload.sendHalf()
        // Until the server has taken the first request in (/health counts it). Probing with
        // requests instead raced under load: a probe admitted first got the slot, and the slow
        // request was the one refused.
        var admitted = 0
        for _ in 0..<500 where admitted != 1 {
            let health = try JSONSerialization.jsonObject(with: try await server.request("/health").body) as? [String: Any]
            admitted = (health?["admission"] as? [String: Any])?["requests"] as? Int ?? 0
            if admitted != 1 { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(admitted == 1, "the half-sent request is admitted")
        let refusal = try await server.post("/v1/embeddings", json: "{\"input\": \"x\"}")
        #expect(refusal.status == 429)
        #expect(refusal.headers["retry-after"] == "1")
        #expect(try error(refusal.body)["code"] as? String == "queue_full")
        #expect(try await server.post("/tokenize", json: "{\"input\": \"x\"}").status == 429, "/tokenize counts too")
        let answer = try upload.finish()
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(200))")
        #expect(try await server.post("/v1/embeddings", json: "{\"input\": \"x\"}").status == 200)
    }

    /// Tokens are bounded as well as requests: a request with more tokens than the server admits
    /// at once gets 413 naming the limit.
    @Test func aRequestOverTheTokenLimitIsRefused() async throws {
        let server = try await ServerProcess(arguments: ["--queue-tokens", "1000", "--token-ids", "accept"])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let answer = try await server.post("/v1/embeddings", json: "{\"input\": \(ids(texts: 3, length: 400))}")
        #expect(answer.status == 413)
        let refusal = try error(answer.body)
        #expect(refusal["code"] as? String == "too_many_tokens")
        #expect((refusal["message"] as? String ?? "").contains("BGE_M3_QUEUE_TOKENS"))
        #expect(try await server.post("/v1/embeddings", json: "{\"input\": \(ids(texts: 2, length: 400))}").status == 200)
    }

    /// Weights near the largest float used to overflow the weighted sum to NaN, written as `nan`
    /// (not JSON); `dimensions` out of range is refused before the inference runs.
    @Test func scoresStayFiniteAndBadDimensionsCostNoInference() async throws {
        let server = try await ServerProcess()
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        let score = try await server.post("/v1/score", json: "{\"query\": \"a\", \"documents\": [\"a b\", \"c\"], \"weights\": [3.4e38, 3.4e38, 3.4e38]}")
        #expect(score.status == 200)
        let data = try #require(try json(score.body)["data"] as? [[String: Any]], "\(String(decoding: score.body, as: UTF8.self))")
        for item in data {
            let value = try #require(item["score"] as? Double)
            #expect(value.isFinite && abs(value) < 10)
        }
        let tokensBefore = try await metric(server, "bgem3_tokens_total")
        let bad = try await server.post("/v1/embeddings", json: "{\"input\": \"a\", \"dimensions\": 100000}")
        #expect(bad.status == 400)
        #expect(try error(bad.body)["param"] as? String == "dimensions")
        #expect(try await metric(server, "bgem3_tokens_total") == tokensBefore, "refused before the inference")
    }

    /// An empty API key is refused at start (it used to turn authentication off silently); with a
    /// key, the probes and `/metrics` stay open for the orchestrator and Prometheus.
    @Test func anEmptyAPIKeyIsRefusedAndMetricsNeedNoKey() async throws {
        let model = ["serve", "--model", RepositoryFixtures.tinyModel.path, "--bind", "127.0.0.1:0"]
        let flag = try await BGEM3Process.run(model + ["--api-key", ""], timeout: 20)
        #expect(flag.status != 0 && flag.standardError.contains("--api-key must not be empty"), "\(flag.standardError)")
        let variable = try await BGEM3Process.run(model, environment: ["BGE_M3_API_KEY": ""], timeout: 20)
        #expect(variable.status != 0 && variable.standardError.contains("BGE_M3_API_KEY is set but empty"), "\(variable.standardError)")

        let server = try await ServerProcess(environment: ["BGE_M3_API_KEY": "s3cret"])
        defer { #expect(server.stop() == 0) }
        try await server.waitUntilReady()
        for path in ["/metrics", "/health", "/ready", "/live"] {
            #expect(try await server.request(path).status == 200, "\(path)")
        }
        #expect(try await server.request("/info").status == 401)
    }

    /// A memory limit of 0 is refused at start; one smaller than the model fails start-up with a
    /// message naming the limit, and `/live` fails so the orchestrator restarts and shows it
    /// (before, the model loaded and every request timed out).
    @Test func aMemoryLimitWithNoRoomFailsClearly() async throws {
        let model = ["serve", "--model", RepositoryFixtures.tinyModel.path, "--bind", "127.0.0.1:0"]
        let zero = try await BGEM3Process.run(model, environment: ["BGE_M3_MEMORY_LIMIT": "0"], timeout: 20)
        #expect(zero.status != 0 && zero.standardError.contains("BGE_M3_MEMORY_LIMIT must be a size above 0"), "\(zero.standardError)")

        let server = try await ServerProcess(arguments: ["--memory-limit", "1MiB"])
        defer { #expect(server.stop() == 0) }
        var live = 200
        for _ in 0..<300 where live == 200 {
            live = try await server.request("/live").status
            if live == 200 { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(live == 503)
        let health = try json(try await server.request("/health").body)
        #expect(health["status"] as? String == "fail")
        #expect((health["stage"] as? String ?? "").contains("memory limit of 1 MiB"), "\(health)")
        #expect(try await server.post("/v1/embeddings", json: "{\"input\": \"a\"}").status == 503)
    }

    /// SIGTERM: `/ready` fails at once while requests are still served for the drain delay (load
    /// balancers keep routing during endpoint propagation), then the server stops and exits 0.
    @Test func sigtermDrainsBeforeItStopsAccepting() async throws {
        let server = try await ServerProcess(environment: ["BGE_M3_DRAIN_SECS": "2"])
        try await server.waitUntilReady()
        let signalled = Date()
        kill(server.process.processIdentifier, SIGTERM)
        var ready = 200
        while ready == 200 && Date().timeIntervalSince(signalled) < 1 { ready = try await server.request("/ready").status }
        #expect(ready == 503)
        #expect(try json(try await server.request("/ready").body)["status"] as? String == "draining")
        #expect(try await server.post("/v1/embeddings", json: "{\"input\": \"during the drain\"}").status == 200)
        #expect(Date().timeIntervalSince(signalled) < 1.8, "the checks ran inside the drain")
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0)
        #expect(Date().timeIntervalSince(signalled) >= 2)
        #expect(server.output.contains("draining"))
    }

    func metric(_ server: ServerProcess, _ name: String) async throws -> Double {
        let text = String(decoding: try await server.request("/metrics").body, as: UTF8.self)
        return text.split(separator: "\n").filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }
}

/// An HTTP/1.1 request whose body is sent in two halves, so the server holds it half-read.
final class SlowUpload {
    private let socket: Int32
    private let head: Data
    private let body: Data

    init(port: Int, path: String, body text: String) throws {
        body = Data(text.utf8)
        head = Data("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        // A server that closes the connection must fail the test, not kill the test process.
        signal(SIGPIPE, SIG_IGN)
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CancellationError() }
    }

    /// The head and the first half of the body.
    func sendHalf() throws {
        try send(head + body.prefix(body.count / 2))
    }

    /// The rest of the body; returns the whole answer.
    func finish() throws -> String {
        try send(body.suffix(from: body.count / 2))
        var answer = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(socket, &buffer, buffer.count)
            if count <= 0 { break }
            answer.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: answer, as: UTF8.self)
    }

    private func send(_ data: Data) throws {
        let sent = data.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == data.count else { throw CancellationError() }
    }

    deinit { close(socket) }
}
