import Hummingbird

/// With `BGE_M3_API_KEY` set, every request must carry `Authorization: Bearer KEY` (compared in
/// constant time), except the probes and metrics an orchestrator reads without credentials:
/// `/live`, `/ready`, `/health` and `/metrics` (Prometheus scrapes by pod annotation).
struct APIKeyMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext
    let apiKey: String

    static let open: Set<String> = ["/live", "/ready", "/health", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if !Self.open.contains(request.uri.path) {
            let given = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
            guard Self.constantTimeEqual(Array(given.utf8), Array(apiKey.utf8)) else {
                throw APIError(status: .unauthorized, message: "missing or wrong API key (Authorization: Bearer …)", type: "invalid_request_error",
                               code: "invalid_api_key")
            }
        }
        return try await next(request, context)
    }

    /// Compares without an early exit, so the time taken does not reveal how much matched.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
