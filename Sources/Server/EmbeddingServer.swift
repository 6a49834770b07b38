import Engine
import Foundation
import Hummingbird
import Logging

/// The HTTP server of SPEC §3 on Hummingbird: starts listening at once, loads the model in the
/// background (requests wait for it within their deadline), and shuts down gracefully on
/// SIGTERM or SIGINT (in-flight requests finish).
public struct EmbeddingServer: Sendable {
    public let host: String
    public let port: Int
    public let modelDirectory: URL
    public let threads: Int?
    public let limits: ServerLimits
    public let version: String
    public let logger: Logger

    public init(host: String, port: Int, modelDirectory: URL, threads: Int?, limits: ServerLimits, version: String, logger: Logger) {
        self.host = host
        self.port = port
        self.modelDirectory = modelDirectory
        self.threads = threads
        self.limits = limits
        self.version = version
        self.logger = logger
    }

    public func run() async throws {
        let state = ModelState()
        let services = ServerServices(limits: limits, state: state, backend: SerialInferenceQueue(state: state, capacity: limits.queueCapacity))
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestMiddleware(apiKey: limits.apiKey, logger: logger))
        EmbeddingRoutes(services: services).register(on: router)
        TokenizeRoute(services: services).register(on: router)
        ScoringRoutes(services: services).register(on: router)
        OperationRoutes(services: services, version: version).register(on: router)

        let directory = modelDirectory
        let threads = self.threads
        let logger = self.logger
        let loader = Thread {
            let started = Date()
            do {
                let model = try BGEM3Model(directory: directory, threads: threads)
                Task { await state.finishLoading(model) }
                logger.info("model loaded", metadata: ["path": .string(directory.path), "seconds": .string(String(format: "%.2f", Date().timeIntervalSince(started))),
                                                       "threads": .stringConvertible(model.threads), "matmul": .string(model.matmulImplementation)])
            } catch {
                let message = "\(error)"
                Task { await state.failLoading(message) }
                logger.error("model failed to load", metadata: ["path": .string(directory.path), "error": .string(message)])
            }
        }
        loader.start()

        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "bgem3/\(version)"),
            onServerRunning: { channel in
                logger.info("listening", metadata: ["address": .string("\(channel.localAddress.map { "\($0)" } ?? "\(host):\(port)")")])
            },
            logger: logger)
        try await app.runService()
        logger.info("stopped")
    }
}
