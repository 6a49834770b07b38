import Engine
import Foundation
import Hummingbird
import Logging
import Scheduling
import ServiceLifecycle
import UnixSignals

/// The HTTP server of SPEC §3 on Hummingbird: starts listening at once, loads the model, measures
/// its memory cost and warms up in the background (requests wait within their deadline), then
/// serves through admission and the memory-aware scheduler.
///
/// Shutdown: on SIGTERM `/ready` fails at once and requests are still served for
/// ``drainDelay`` (load balancers keep routing to a terminating pod until they see the endpoint
/// gone), then the server stops accepting, finishes what is in flight and returns. SIGINT (an
/// interactive stop) skips the drain; a second SIGTERM ends it early.
public struct EmbeddingServer: Sendable {
    public let host: String
    public let port: Int
    public let modelDirectory: URL
    public let threads: Int?
    public let precision: PrecisionRequest
    /// The attention kernel at the reduced precisions (`BGE_M3_ATTENTION`); nil for this CPU's choice.
    public let attention: AttentionKernel?
    public let limits: ServerLimits
    public let memory: MemorySettings
    public let scheduling: SchedulerSettings
    public let version: String
    public let logger: Logger
    /// How long `/ready` fails before the server stops accepting (`BGE_M3_DRAIN_SECS`).
    public let drainDelay: Duration

    public init(host: String, port: Int, modelDirectory: URL, threads: Int?, precision: PrecisionRequest = .fixed(.fp32),
                attention: AttentionKernel? = nil, limits: ServerLimits, memory: MemorySettings, scheduling: SchedulerSettings,
                drainDelay: Duration = .seconds(5), version: String, logger: Logger) {
        self.drainDelay = drainDelay
        self.precision = precision
        self.attention = attention
        self.host = host
        self.port = port
        self.modelDirectory = modelDirectory
        self.threads = threads
        self.limits = limits
        self.memory = memory
        self.scheduling = scheduling
        self.version = version
        self.logger = logger
    }

    public func run() async throws {
        let state = ModelState()
        let admission = RequestAdmission(limits: .init(maxRequests: limits.queueCapacity, maxTokens: limits.queueTokens))
        let services = ServerServices(limits: limits, state: state, backend: ScheduledBackend(state: state), admission: admission)
        let router = Self.router(services: services, version: version, logger: logger)

        let start = self
        let loader = Thread { start.startEngine(state: state, admission: admission, tokenizerThreads: services.tokenizing.threads) }
        loader.stackSize = 8 << 20
        loader.start()

        let app = Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionWatch()])),
            configuration: .init(address: .hostname(host, port: port), serverName: "bgem3/\(version)"),
            onServerRunning: { channel in
                logger.info("listening", metadata: ["address": .string("\(channel.localAddress.map { "\($0)" } ?? "\(host):\(port)")")])
            },
            logger: logger)
        // The group takes no signals itself: SIGTERM first drains (drainOnSignal), then shuts it down.
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let signals = Task { await drainOnSignal(state: state, group: group) }
        defer { signals.cancel() }
        try await group.run()
        await state.scheduler?.stop()
        logger.info("stopped")
    }

    /// Every route and middleware, over `services`: what the server runs, and what the route
    /// tests run in-process (Hummingbird's `.router` testing) with a fake ``InferenceBackend``.
    public static func router(services: ServerServices, version: String, logger: Logger) -> Router<ServerRequestContext> {
        let limits = services.limits
        let router = Router(context: ServerRequestContext.self)
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: RequestLogMiddleware(logger: logger))
        router.add(middleware: ErrorMiddleware())
        if let apiKey = limits.apiKey { router.add(middleware: APIKeyMiddleware(apiKey: apiKey)) }
        OperationRoutes(services: services, version: version).register(on: router)
        // The routes that do work go through admission.
        let work = router.group().add(middleware: AdmissionMiddleware(admission: services.admission, limits: limits))
        EmbeddingRoutes(services: services).register(on: work)
        TokenizeRoute(services: services).register(on: work)
        ScoringRoutes(services: services).register(on: work)
        TEIRoutes(services: services).register(on: work)
        OllamaRoutes(services: services).register(on: work)
        return router
    }

    private enum ShutdownEvent: Sendable {
        case signal(UnixSignal)
        case drainOver
    }

    /// Waits for SIGTERM or SIGINT, drains after SIGTERM, then shuts the server down gracefully
    /// (stop accepting, finish requests in flight). Runs until cancelled, so that the signals
    /// stay trapped (a later SIGTERM must not kill the process while it finishes its requests).
    private func drainOnSignal(state: ModelState, group: ServiceGroup) async {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let (events, sink) = AsyncStream<ShutdownEvent>.makeStream()
        let forward = Task {
            for await signal in signals { sink.yield(.signal(signal)) }
            sink.finish()
        }
        defer { forward.cancel() }
        var iterator = events.makeAsyncIterator()
        guard case .signal(let first)? = await iterator.next() else { return }
        if first == .sigterm && drainDelay > .zero {
            await state.startDraining()
            logger.info("draining: /ready fails; still serving until load balancers have stopped sending",
                        metadata: ["seconds": .stringConvertible(drainDelay.components.seconds)])
            // Over when the delay has passed, or earlier at a second signal.
            let timer = Task {
                try? await Task.sleep(for: drainDelay)
                sink.yield(.drainOver)
            }
            _ = await iterator.next()
            timer.cancel()
        }
        logger.info("stopping: no new connections; finishing requests in flight")
        await group.triggerGracefulShutdown()
        while await iterator.next() != nil {}
    }

    /// Start-up on a thread of its own: memory limit → precision (checked on the weights, or
    /// cached) and load → probe or cache → warm-up → open. Requests queue meanwhile; nothing runs
    /// in the engine but this, so the check and the probe measure alone.
    private func startEngine(state: ModelState, admission: RequestAdmission, tokenizerThreads: Int) {
        let started = Date()
        ProcessMemory.configureAllocator()
        let limit: MemoryLimit
        do {
            limit = try memory.limit()
        } catch {
            fail(state, error.description, stage: "memory limit", admission: admission)
            return
        }
        let model: BGEM3Model
        let decision: PrecisionDecision
        do {
            var planner = PrecisionPlanner(directory: modelDirectory, threads: threads, limit: limit, settings: memory, engineVersion: version,
                                           logger: logger)
            planner.attention = attention
            (decision, model) = try planner.decide(precision) {
                let marked = DispatchSemaphore(value: 0)
                Task {
                    await state.startCheckingPrecision()
                    marked.signal()
                }
                marked.wait()
            }
            _ = try model.requireTokenizer()
        } catch {
            fail(state, "\(error)", stage: "model failed to load", admission: admission)
            return
        }
        logger.info("model loaded", metadata: ["path": .string(modelDirectory.path), "seconds": .string(String(format: "%.2f", Date().timeIntervalSince(started))),
                                               "threads": .stringConvertible(model.threads), "matmul": .string(model.matmulImplementation),
                                               "precision": .string(model.precision.rawValue), "requested": .string(decision.requested.description),
                                               "decided": .string(decision.source.rawValue),
                                               "measured": .string(decision.measurements.map(\.summary).joined(separator: "; ")),
                                               "attention": .string(model.attentionKernel.description)])
        // The workers the budget was divided between, and their share of the model's threads.
        var scheduling = scheduling
        scheduling.workers = memory.workers
        scheduling.threadsPerWorker = max(1, model.threads / max(1, scheduling.workers))
        if scheduling.workers > 1 {
            logger.info("workers", metadata: ["workers": .stringConvertible(scheduling.workers), "threads_each": .stringConvertible(scheduling.threadsPerWorker)])
            if scheduling.workers > model.threads {
                logger.warning("more workers than threads: each worker gets one thread and they share \(model.threads); set BGE_M3_WORKERS at most BGE_M3_THREADS")
            }
        }
        let scheduler = BatchScheduler(encoder: model, settings: scheduling, gauge: ProcessMemoryGauge(), logger: logger)
        let ready = DispatchSemaphore(value: 0)
        Task {
            await state.finishLoading(model, scheduler: scheduler, precision: decision)
            ready.signal()
        }
        ready.wait()
        let plan = MemoryPlanner.plan(model: model, limit: limit, settings: memory, engineVersion: version, maxSequenceLength: min(limits.maxSequenceLength, model.maximumSequenceLength),
                                      gauge: ProcessMemoryGauge(), logger: logger)
        ServerMetrics.memoryPlan(plan)
        let pools = Self.admissionPools(plan, limits: limits, tokenizerThreads: tokenizerThreads)
        if let problem = Self.roomProblem(plan, pools: pools) {
            fail(state, problem, stage: "memory limit", admission: admission)
            return
        }
        do {
            try scheduler.warmUp()
        } catch {
            fail(state, error.description, stage: "warm-up", admission: admission)
            return
        }
        scheduler.open(SchedulerBudget(cost: plan.cost, bytes: plan.budgetBytes))
        admission.open(bodyBytes: pools.bodies, resultBytes: pools.results)
        logger.info("admission", metadata: ["request_mib": .stringConvertible(plan.requestBytes >> 20),
                                            "tokenizer_mib": .stringConvertible(pools.tokenizer >> 20), "bodies_mib": .stringConvertible(pools.bodies >> 20),
                                            "results_mib": .stringConvertible(pools.results >> 20)])
        Task { await state.finishStarting(plan) }
        logger.info("ready", metadata: ["seconds": .string(String(format: "%.2f", Date().timeIntervalSince(started)))])
    }

    /// What requests may hold, split: the tokenising threads' working memory first (one text each),
    /// then a third of the rest for bodies being read and decoded and two thirds for what requests
    /// hold once tokenised (results, responses being written): see AdmissionPolicy.
    static func admissionPools(_ plan: MemoryPlan, limits: ServerLimits, tokenizerThreads: Int) -> (tokenizer: Int, bodies: Int, results: Int) {
        let tokenizer = RequestFootprint.tokenizerScratch(threads: tokenizerThreads, maxTextCharacters: limits.maxTextCharacters)
        let rest = max(0, plan.requestBytes - tokenizer)
        return (tokenizer, rest / 3, rest - rest / 3)
    }

    /// Why the memory left after the model cannot serve even a short request, or nil. Without this
    /// check a limit below the model's size would load the model and then time every request out.
    static func roomProblem(_ plan: MemoryPlan, pools: (tokenizer: Int, bodies: Int, results: Int)) -> String? {
        let shortest = plan.cost.bytes(batch: 1, length: 16)
        let small = RequestFootprint.body(bytes: 4096, maxTokens: 4096)
        guard plan.budgetBytes < shortest || pools.bodies < small || pools.results < small else { return nil }
        return "the memory limit of \(plan.limit.bytes >> 20) MiB (\(plan.limit.source.rawValue)) leaves \(plan.budgetBytes >> 20) MiB of workspace "
            + "and \(plan.requestBytes >> 20) MiB for requests once the model holds \(plan.residentBytes >> 20) MiB: not enough for one short text; "
            + "raise the limit (BGE_M3_MEMORY_LIMIT or the container's), use a smaller precision (BGE_M3_PRECISION=int8), "
            + "or lower BGE_M3_MAX_TEXT_CHARS (the tokeniser's working memory grows with it)"
    }

    private func fail(_ state: ModelState, _ message: String, stage: String, admission: RequestAdmission) {
        admission.refuseAll(.modelUnavailable(message))
        Task { await state.failLoading(message) }
        logger.error("\(stage)", metadata: ["path": .string(modelDirectory.path), "error": .string(message)])
    }
}
