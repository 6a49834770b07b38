import Engine
import Tokenizer
import Foundation
import Hummingbird
import Scheduling

/// Health, readiness, liveness, models and info.
struct OperationRoutes: Sendable {
    let services: ServerServices
    let version: String

    func register(on router: Router<ServerRequestContext>) {
        router.get("/live") { _, _ in services.json("{\"status\":\"ok\"}") }
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.openapi_json)))
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: ServerMetrics.exposition())))
        }
        router.get("/ready") { _, _ in
            let phase = await services.state.phase
            return phase == .ready
                ? services.json("{\"status\":\"ready\"}")
                : services.json("{\"status\":\(JSONOutput.string(Self.name(phase)))}", status: .serviceUnavailable)
        }
        router.get("/health") { _, _ in
            let phase = await services.state.phase
            let plan = await services.state.memoryPlan
            let scheduler = await services.state.scheduler
            let live = phase == .ready ? 1 : 0
            var fields = ["\"status\":\(JSONOutput.string(phase == .ready ? "ok" : Self.name(phase)))",
                          "\"stage\":\(JSONOutput.string(Self.stage(phase)))",
                          "\"workers\":{\"live\":\(live),\"total\":1}"]
            if let plan {
                fields.append("\"probe\":{\"status\":\(JSONOutput.string(plan.status.rawValue)),\"a\":\(plan.cost.a),\"b\":\(plan.cost.b)"
                              + (plan.fallback.map { ",\"fallback\":\(JSONOutput.string($0.rawValue))" } ?? "") + "}")
                fields.append("\"memory\":{\"limit_bytes\":\(plan.limit.bytes),\"limit_source\":\(JSONOutput.string(plan.limit.source.rawValue)),"
                              + "\"resident_at_start_bytes\":\(plan.residentBytes),\"budget_bytes\":\(plan.budgetBytes),"
                              + "\"rss_bytes\":\(ProcessMemory.residentBytes ?? 0),\"workspace_bytes\":\(scheduler?.retainedWorkspaceBytes ?? 0)}")
            } else {
                fields.append("\"probe\":{\"status\":\(JSONOutput.string(phase == .probing ? "running" : "pending"))}")
            }
            if let scheduler {
                fields.append("\"queue_depth\":\(scheduler.queueDepth),\"oom_splits\":\(scheduler.oomSplitCount)")
            }
            return services.json("{" + fields.joined(separator: ",") + "}", status: phase == .ready ? .ok : .serviceUnavailable)
        }
        router.get("/v1/models") { _, _ in
            let created = Int(services.startedAt.timeIntervalSince1970)
            return services.json("{\"object\":\"list\",\"data\":[{\"id\":\(JSONOutput.string(services.limits.modelName)),\"object\":\"model\",\"created\":\(created),\"owned_by\":\"bgem3\"}]}")
        }
        router.get("/info") { _, _ in
            guard let model = await services.state.model else {
                return services.json("{\"status\":\"loading\",\"model\":\(JSONOutput.string(services.limits.modelName)),\"version\":\(JSONOutput.string(version))}",
                                     status: .serviceUnavailable)
            }
            let fields = [
                "\"model\":\(JSONOutput.string(services.limits.modelName))",
                "\"model_path\":\(JSONOutput.string(model.directory.path))",
                "\"dimensions\":\(model.dimension)",
                "\"max_length\":\(min(services.limits.maxSequenceLength, model.maximumSequenceLength))",
                "\"engine\":\"bgem3 native (oneDNN \(OneDNNRuntime.effectiveISA), \(model.matmulImplementation); attention: \(model.attentionKernel))\"",
                "\"precision\":\"\(model.precision.rawValue)\"",
                "\"cpu\":\(CPUCapabilities.json)",
                "\"threads\":\(model.threads)",
                "\"version\":\(JSONOutput.string(version))",
                "\"max_batch\":\(services.limits.maxBatch)",
            ]
            return services.json("{" + fields.joined(separator: ",") + "}")
        }
    }

    /// `/ready`'s and `/health`'s status: loading until the model, the memory model and the
    /// warm-up are done.
    private static func name(_ phase: ModelState.Phase) -> String {
        switch phase {
        case .loading, .probing: return "loading"
        case .ready: return "ok"
        case .failed: return "fail"
        }
    }

    private static func stage(_ phase: ModelState.Phase) -> String {
        switch phase {
        case .loading: return "loading model"
        case .probing: return "measuring memory and warming up"
        case .ready: return "serving"
        case .failed(let message): return message
        }
    }
}

/// `POST /tokenize`: `[[{id, text, start, stop, special}]]`, offsets in Unicode scalars.
struct TokenizeRoute: Sendable {
    let services: ServerServices

    func register(on router: Router<ServerRequestContext>) {
        router.post("/tokenize") { request, _ in
            var request = request
            let body = try await request.decodeJSON(TokenizeRequest.self, maxBytes: services.limits.maxBodyBytes)
            let model = try await services.model(before: services.deadline)
            guard case .texts(let texts) = body.input else {
                throw APIError.invalidRequest("input must be a string or an array of strings", param: "input", code: "invalid_type")
            }
            guard !texts.isEmpty else { throw APIError.invalidRequest("input must not be empty", param: "input", code: "empty_input") }
            guard texts.count <= services.limits.maxBatch else {
                throw APIError.invalidRequest("input has \(texts.count) items; the limit is \(services.limits.maxBatch)", param: "input", code: "too_many_inputs")
            }
            var lists: [String] = []
            for (index, text) in texts.enumerated() {
                guard text.unicodeScalars.count <= services.limits.maxTextCharacters else {
                    throw APIError.invalidRequest("input[\(index)] has more than \(services.limits.maxTextCharacters) characters", param: "input[\(index)]", code: "text_too_long")
                }
                let encoding = try model.requireTokenizer().encode(text, options: EncodeOptions(addSpecialTokens: body.add_special_tokens ?? true, includeTokenTexts: true))
                let tokens = encoding.ids.indices.map { i in
                    "{\"id\":\(encoding.ids[i]),\"text\":\(JSONOutput.string(encoding.tokens[i])),\"start\":\(encoding.offsets[i].start),\"stop\":\(encoding.offsets[i].end),\"special\":\(encoding.specialTokensMask[i])}"
                }
                lists.append("[" + tokens.joined(separator: ",") + "]")
            }
            return services.json("[" + lists.joined(separator: ",") + "]")
        }
    }
}
