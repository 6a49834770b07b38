import Hummingbird
import Logging

/// Records every answered request: one log line (id, method, path, status, milliseconds) and the
/// request metrics, labelled by the route that matched (`context.endpointPath`), so unknown paths
/// cannot grow the series.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let response = try await next(request, context)
        let milliseconds = (ContinuousClock.now - started).milliseconds
        ServerMetrics.request(route: context.endpointPath ?? "other", status: Int(response.status.code), seconds: milliseconds / 1000)
        var logger = self.logger
        logger[metadataKey: "id"] = context.logger[metadataKey: "id"]
        logger.info("request", metadata: [
            "method": .string(request.method.rawValue), "path": .string(request.uri.path),
            "status": .stringConvertible(response.status.code), "ms": .string(String(format: "%.1f", milliseconds)),
        ])
        return response
    }
}
