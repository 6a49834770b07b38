import Hummingbird

/// Turns whatever a route or an inner middleware threw into the response the client gets, in
/// OpenAI's error shape (``APIError``), so the middleware around it see every answer as a response.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return APIError(error, method: request.method, path: request.uri.path).response()
        }
    }
}
