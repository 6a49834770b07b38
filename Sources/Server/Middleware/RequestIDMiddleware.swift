import Foundation
import HTTPTypes
import Hummingbird

/// Gives every request an id: the client's `X-Request-ID` when it sent a usable one, else a new
/// UUID. The id goes into the request's log metadata and back in the response's `X-Request-ID`.
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext

    static let header = HTTPField.Name("X-Request-ID")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let id = request.headers[Self.header].flatMap { $0.isEmpty || $0.count > 200 ? nil : $0 } ?? UUID().uuidString
        var context = context
        context.logger[metadataKey: "id"] = .string(id)
        context.requestID = id
        var response = try await next(request, context)
        response.headers[Self.header] = id
        return response
    }
}
