import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Every request: an `X-Request-ID` (echoed or made), the optional bearer key (compared in
/// constant time), errors turned into OpenAI's shape, and one log line.
struct RequestMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext
    let apiKey: String?
    let logger: Logger

    private static let requestID = HTTPField.Name("X-Request-ID")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let id = request.headers[Self.requestID].flatMap { $0.isEmpty || $0.count > 200 ? nil : $0 } ?? UUID().uuidString
        var response: Response
        do {
            try authorize(request)
            response = try await next(request, context)
        } catch let error as APIError {
            response = error.response()
        } catch let error as HTTPError where error.status == .notFound {
            response = APIError(status: .notFound, message: "no route \(request.method) \(request.uri.path)", type: "invalid_request_error", code: "not_found").response()
        } catch let error as HTTPError {
            response = APIError(status: error.status, message: error.body ?? "\(error.status)", type: "invalid_request_error", code: "http_error").response()
        } catch {
            response = APIError(status: .internalServerError, message: "internal error: \(error)", type: "server_error", code: "internal_error").response()
        }
        response.headers[Self.requestID] = id
        let milliseconds = (ContinuousClock.now - started).milliseconds
        ServerMetrics.request(path: request.uri.path, status: Int(response.status.code), seconds: milliseconds / 1000)
        logger.info("request", metadata: [
            "id": .string(id), "method": .string(request.method.rawValue), "path": .string(request.uri.path),
            "status": .stringConvertible(response.status.code), "ms": .string(String(format: "%.1f", milliseconds)),
        ])
        return response
    }

    private func authorize(_ request: Request) throws {
        guard let apiKey, !["/live", "/ready", "/health"].contains(request.uri.path) else { return }
        let given = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
        guard Self.constantTimeEqual(Array(given.utf8), Array(apiKey.utf8)) else {
            throw APIError(status: .unauthorized, message: "missing or wrong API key (Authorization: Bearer …)", type: "invalid_request_error", code: "invalid_api_key")
        }
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
