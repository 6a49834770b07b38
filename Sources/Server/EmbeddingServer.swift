import Engine
import Foundation
import Hummingbird
import Logging
import Scheduling

/// The HTTP server of SPEC §3 on Hummingbird: starts listening at once, loads the model, measures
/// its memory cost and warms up in the background (requests wait within their deadline), then
/// serves through the memory-aware scheduler; shuts down gracefully on SIGTERM or SIGINT.
public struct EmbeddingServer: Sendable {
    public let host: String
    public let port: Int
    public let modelDirectory: URL
    public let threads: Int?
    public let precision: Precision
    public let limits: ServerLimits
    public let memory: MemorySettings
    public let scheduling: SchedulerSettings
    public let version: String
    public let logger: Logger

    public init(host: String, port: Int, modelDirectory: URL, threads: Int?, precision: Precision = .fp32, limits: ServerLimits,
                memory: MemorySettings, scheduling: SchedulerSettings, version: String, logger: Logger) {
        self.precision = precision
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
        let services = ServerServices(limits: limits, state: state, backend: ScheduledBackend(state: state))
        let router = Router(context: ServerRequestContext.self)
        router.add(middleware: RequestMiddleware(apiKey: limits.apiKey, logger: logger))
        EmbeddingRoutes(services: services).register(on: router)
        TokenizeRoute(services: services).register(on: router)
        ScoringRoutes(services: services).register(on: router)
        OperationRoutes(services: services, version: version).register(on: router)

        let start = self
        let loader = Thread { start.startEngine(state: state) }
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
        try await app.runService()
        await state.scheduler?.stop()
        logger.info("stopped")
    }

    /// Start-up on a thread of its own: load → memory limit → probe or cache → warm-up → open.
    /// Requests queue meanwhile; nothing runs in the engine but this, so the probe measures alone.
    private func startEngine(state: ModelState) {
        let started = Date()
        let model: BGEM3Model
        ProcessMemory.configureAllocator()
        do {
            model = try BGEM3Model(directory: modelDirectory, threads: threads, precision: precision)
            _ = try model.requireTokenizer()
        } catch {
            fail(state, "\(error)", stage: "model failed to load")
            return
        }
        logger.info("model loaded", metadata: ["path": .string(modelDirectory.path), "seconds": .string(String(format: "%.2f", Date().timeIntervalSince(started))),
                                               "threads": .stringConvertible(model.threads), "matmul": .string(model.matmulImplementation),
                                               "precision": .string(model.precision.rawValue), "attention": .string(model.attentionKernel)])
        let scheduler = BatchScheduler(encoder: model, settings: scheduling, gauge: ProcessMemoryGauge(), logger: logger)
        let ready = DispatchSemaphore(value: 0)
        Task {
            await state.finishLoading(model, scheduler: scheduler)
            ready.signal()
        }
        ready.wait()
        let limit: MemoryLimit
        do {
            limit = try MemoryLimit.detect()
        } catch {
            fail(state, error.description, stage: "memory limit")
            return
        }
        let plan = MemoryPlanner.plan(model: model, limit: limit, settings: memory, engineVersion: version, precision: model.precision.rawValue,
                                      maxSequenceLength: min(limits.maxSequenceLength, model.maximumSequenceLength),
                                      gauge: ProcessMemoryGauge(), logger: logger)
        do {
            try scheduler.warmUp()
        } catch {
            fail(state, error.description, stage: "warm-up")
            return
        }
        ServerMetrics.memoryPlan(plan)
        scheduler.open(SchedulerBudget(cost: plan.cost, bytes: plan.budgetBytes))
        Task { await state.finishStarting(plan) }
        logger.info("ready", metadata: ["seconds": .string(String(format: "%.2f", Date().timeIntervalSince(started)))])
    }

    private func fail(_ state: ModelState, _ message: String, stage: String) {
        Task { await state.failLoading(message) }
        logger.error("\(stage)", metadata: ["path": .string(modelDirectory.path), "error": .string(message)])
    }
}
