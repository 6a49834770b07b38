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
            let admission = services.admission.status
            let probe = plan.map { HealthResponse.Probe(status: $0.status.rawValue, a: $0.cost.a, b: $0.cost.b, fallback: $0.fallback?.rawValue) }
                ?? HealthResponse.Probe(status: phase == .probing ? "running" : "pending")
            let memory = plan.map {
                HealthResponse.Memory(limit_bytes: $0.limit.bytes, limit_source: $0.limit.source.rawValue, resident_at_start_bytes: $0.residentBytes,
                                      budget_bytes: $0.budgetBytes, request_bytes: $0.requestBytes, rss_bytes: ProcessMemory.residentBytes ?? 0,
                                      workspace_bytes: scheduler?.retainedWorkspaceBytes ?? 0)
            }
            // Workers exist once the model is loaded; one whose thread stopped turns ok into warn.
            let serving = phase == .ready || phase == .draining
            let workers = HealthResponse.Workers(live: serving ? scheduler?.liveWorkerCount ?? 0 : 0, total: scheduler?.workerCount ?? 0)
            let health = HealthResponse(
                status: phase == .ready ? (workers.live < workers.total ? "warn" : "ok") : Self.name(phase), stage: Self.stage(phase),
                workers: workers, probe: probe, memory: memory,
                admission: .init(requests: admission.requests, tokens: admission.tokens, waiting: admission.waiting, body_bytes: admission.bodyBytes,
                                 body_capacity_bytes: admission.bodyCapacity ?? 0, result_bytes: admission.resultBytes,
                                 result_capacity_bytes: admission.resultCapacity ?? 0),
                queue_depth: scheduler?.queueDepth, oom_splits: scheduler?.oomSplitCount)
            return try services.json(health, status: phase == .ready ? .ok : .serviceUnavailable)
        }
        router.get("/v1/models") { _, _ in
            try services.json(ModelList(data: [.init(id: services.limits.modelName, created: Int(services.startedAt.timeIntervalSince1970))]))
        }
        router.get("/info") { _, _ in
            guard let model = await services.state.model else {
                return services.json("{\"status\":\"loading\",\"model\":\(JSONOutput.string(services.limits.modelName)),\"version\":\(JSONOutput.string(version))}",
                                     status: .serviceUnavailable)
            }
            let limits = services.limits
            let scheduler = await services.state.scheduler
            let maxLength = min(limits.maxSequenceLength, model.maximumSequenceLength)
            let info = InfoResponse(
                model: limits.modelName, model_path: model.directory.path, dimensions: model.dimension, max_length: maxLength,
                engine: "bgem3 native (oneDNN \(OneDNNRuntime.effectiveISA), \(model.matmulImplementation); attention: \(model.attentionKernel.description))",
                precision: model.precision.rawValue, cpu: .current, threads: model.threads,
                workers: scheduler?.workerCount ?? 1, threads_per_worker: scheduler?.threadsPerWorker ?? model.threads, version: version, build: ExecutableBuild.identity, max_batch: limits.maxBatch,
                model_id: limits.modelName, model_sha: nil, model_dtype: InfoResponse.dataType(model.precision), max_input_length: maxLength,
                max_client_batch_size: limits.maxBatch, max_batch_tokens: limits.queueTokens, max_concurrent_requests: limits.queueCapacity,
                tokenization_workers: services.tokenizing.threads, precision_check: await services.state.precisionDecision.map(PrecisionCheckInfo.init))
            return try services.json(info)
        }
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
