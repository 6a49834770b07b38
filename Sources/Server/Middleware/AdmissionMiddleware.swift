import Hummingbird
import Scheduling

/// Admits a work request (embeddings, scores, tokenize) before its body is read: it counts against
/// the requests the server takes on at once (429 beyond), and waits, within its deadline, for room
/// for its body in the memory budget (``RequestAdmission``). The ticket and the deadline go into
/// the context; the route reserves the rest of the request's memory once it knows its tokens.
struct AdmissionMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext
    let admission: RequestAdmission
    let limits: ServerLimits

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.maxUploadSize = limits.maxBodyBytes
        context.deadline = .now + .seconds(limits.requestTimeoutSeconds)
        context.maxRequestTokens = limits.maxRequestTokens
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > limits.maxBodyBytes { throw APIError.bodyTooLarge(limit: limits.maxBodyBytes) }
        // A body sent in chunks, without its length, is admitted as if it had the largest size allowed.
        let bodyBytes = RequestFootprint.body(bytes: declared ?? limits.maxBodyBytes, maxTokens: limits.maxRequestTokens)
        context.admission = try await admission.enter(bodyBytes: bodyBytes, deadline: context.deadline)
        return try await next(request, context)
    }
}
