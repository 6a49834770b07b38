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
        // Live while the process can serve: a model that failed to load (damaged files, a memory
        // limit that leaves no room) makes it 503, so the orchestrator restarts the pod and shows
        // the failure, instead of a pod that runs and never becomes ready.
        router.get("/live") { _, _ in
            if case .failed(let message) = await services.state.phase {
                return services.json("{\"status\":\"fail\",\"error\":\(JSONOutput.string(message))}", status: .serviceUnavailable)
            }
            return services.json("{\"status\":\"ok\"}")
        }
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
            let live = phase == .ready || phase == .draining ? 1 : 0
            let admission = services.admission.status
            var fields = ["\"status\":\(JSONOutput.string(phase == .ready ? "ok" : Self.name(phase)))",
                          "\"stage\":\(JSONOutput.string(Self.stage(phase)))",
                          "\"workers\":{\"live\":\(live),\"total\":1}"]
            if let plan {
                fields.append("\"probe\":{\"status\":\(JSONOutput.string(plan.status.rawValue)),\"a\":\(plan.cost.a),\"b\":\(plan.cost.b)"
                              + (plan.fallback.map { ",\"fallback\":\(JSONOutput.string($0.rawValue))" } ?? "") + "}")
                fields.append("\"memory\":{\"limit_bytes\":\(plan.limit.bytes),\"limit_source\":\(JSONOutput.string(plan.limit.source.rawValue)),"
                              + "\"resident_at_start_bytes\":\(plan.residentBytes),\"budget_bytes\":\(plan.budgetBytes),\"request_bytes\":\(plan.requestBytes),"
                              + "\"rss_bytes\":\(ProcessMemory.residentBytes ?? 0),\"workspace_bytes\":\(scheduler?.retainedWorkspaceBytes ?? 0)}")
            } else {
                fields.append("\"probe\":{\"status\":\(JSONOutput.string(phase == .probing ? "running" : "pending"))}")
            }
            fields.append("\"admission\":{\"requests\":\(admission.requests),\"tokens\":\(admission.tokens),\"waiting\":\(admission.waiting),"
                          + "\"body_bytes\":\(admission.bodyBytes),\"body_capacity_bytes\":\(admission.bodyCapacity ?? 0),"
                          + "\"result_bytes\":\(admission.resultBytes),\"result_capacity_bytes\":\(admission.resultCapacity ?? 0)}")
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
            let decision = await services.state.precisionDecision
            var fields = [
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
                // Text Embeddings Inference's keys, which its integrations read (Dify, RAGFlow, Milvus).
                "\"model_id\":\(JSONOutput.string(services.limits.modelName))",
                "\"model_sha\":null",
                "\"model_dtype\":\(JSONOutput.string(Self.teiDataType(model.precision)))",
                "\"model_type\":{\"embedding\":{\"pooling\":\"cls\"}}",
                "\"max_input_length\":\(min(services.limits.maxSequenceLength, model.maximumSequenceLength))",
                "\"max_client_batch_size\":\(services.limits.maxBatch)",
                "\"max_batch_tokens\":\(services.limits.queueTokens)",
                "\"max_concurrent_requests\":\(services.limits.queueCapacity)",
                "\"tokenization_workers\":\(services.tokenizing.threads)",
            ]
            if let decision { fields.append("\"precision_check\":\(Self.json(decision))") }
            return services.json("{" + fields.joined(separator: ",") + "}")
        }
    }

    /// TEI's `model_dtype` names.
    static func teiDataType(_ precision: Precision) -> String {
        switch precision {
        case .fp32: return "float32"
        case .bf16: return "bfloat16"
        case .int8: return "int8"
        }
    }

    /// How the precision was chosen: what was asked, what runs, whether it was measured now, read
    /// from the cache, not needed (fp32) or skipped, and the figures against fp32.
    static func json(_ decision: PrecisionDecision) -> String {
        func number(_ value: Float) -> String { value.isFinite ? "\(value)" : "null" }
        let measurements = decision.measurements.map { figures in
            "{\"precision\":\(JSONOutput.string(figures.precision)),\"passes_gates\":\(figures.passes),"
                + "\"dense_cosine_min\":\(number(figures.denseCosineMin)),\"dense_cosine_mean\":\(number(figures.denseCosineMean)),"
                + "\"top10_overlap\":\(number(figures.top10OverlapDense)),\"top10_overlap_lexical\":\(number(figures.top10OverlapLexical)),"
                + "\"top10_overlap_colbert\":\(number(figures.top10OverlapColbert)),\"top10_overlap_hybrid\":\(number(figures.top10OverlapHybrid)),"
                + "\"gate_failures\":\(figures.failure.map(JSONOutput.string) ?? "null"),\"seconds\":\(figures.seconds)}"
        }
        return "{\"requested\":\(JSONOutput.string(decision.requested.description)),\"running\":\(JSONOutput.string(decision.running.rawValue)),"
            + "\"decided\":\(JSONOutput.string(decision.source.rawValue)),\"measurements\":[\(measurements.joined(separator: ","))],"
            + "\"note\":\(decision.note.map(JSONOutput.string) ?? "null")}"
    }

    /// `/ready`'s and `/health`'s status: loading until the model, the memory model and the
    /// warm-up are done.
    private static func name(_ phase: ModelState.Phase) -> String {
        switch phase {
        case .loading, .checkingPrecision, .probing: return "loading"
        case .ready: return "ok"
        case .draining: return "draining"
        case .failed: return "fail"
        }
    }

    private static func stage(_ phase: ModelState.Phase) -> String {
        switch phase {
        case .loading: return "loading model"
        case .checkingPrecision: return "checking precision: measuring faster precisions against fp32 on this model's weights"
        case .probing: return "measuring memory and warming up"
        case .ready: return "serving"
        case .draining: return "shutting down: finishing requests while load balancers stop sending more"
        case .failed(let message): return message
        }
    }
}
