import Hummingbird
import Scheduling

/// An error that renders itself in OpenAI's shape: `{"error": {"message", "type", "code", "param"?}}`,
/// with its status and any headers it needs (`Retry-After` on 429).
public struct APIError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let message: String
    public let type: String
    public let code: String
    public let param: String?
    public var headers: HTTPFields

    public init(status: HTTPResponse.Status, message: String, type: String, code: String, param: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers
    }

    /// 400: the request is malformed or breaks a limit.
    public static func invalidRequest(_ message: String, param: String? = nil, code: String = "invalid_request") -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", code: code, param: param)
    }

    /// 400: token ids where the server takes only texts (`BGE_M3_TOKEN_IDS=reject`).
    static let tokenIDsNotAccepted = invalidRequest(
        "input is token ids, and this server takes texts (BGE_M3_TOKEN_IDS=reject): ids made by another tokenizer would embed a different text. "
            + "LangChain's OpenAIEmbeddings sends tiktoken's ids unless it is given check_embedding_ctx_length=False; set that, or send the texts. "
            + "To send XLM-R ids (what /tokenize returns), start the server with BGE_M3_TOKEN_IDS=accept",
        param: "input", code: "token_ids_not_accepted")

    /// 413: the body is over `BGE_M3_MAX_BODY_BYTES`.
    static func bodyTooLarge(limit: Int) -> APIError {
        APIError(status: .contentTooLarge, message: "the body is larger than \(limit) bytes (BGE_M3_MAX_BODY_BYTES)", type: "invalid_request_error",
                 code: "body_too_large")
    }

    /// Any error a route or middleware threw, as the client should see it: an ``APIError`` as it
    /// is, Hummingbird's own errors (404 for an unknown route, 405) with their status, anything
    /// else a 500 naming it.
    init(_ error: any Error, method: HTTPRequest.Method, path: String) {
        switch error {
        case let error as APIError:
            self = error
        case let error as SchedulingError:
            self.init(error)
        case let error as HTTPError where error.status == .notFound:
            self.init(status: .notFound, message: "no route \(method) \(path)", type: "invalid_request_error", code: "not_found")
        case let error as any HTTPResponseError:
            self.init(status: error.status, message: (error as? HTTPError)?.body ?? "\(error.status)", type: "invalid_request_error", code: "http_error")
        default:
            self.init(status: .internalServerError, message: "internal error: \(error)", type: "server_error", code: "internal_error")
        }
    }

    var json: String {
        var fields = "\"message\":\(JSONOutput.string(message)),\"type\":\(JSONOutput.string(type)),\"code\":\(JSONOutput.string(code))"
        if let param { fields += ",\"param\":\(JSONOutput.string(param))" }
        return "{\"error\":{\(fields)}}"
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        response()
    }

    func response() -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}

extension APIError {
    /// How long a client refused for a full queue should wait before trying again, in seconds:
    /// about the time the engine takes for a few requests. A hint, not a promise.
    static let retryAfterSeconds = 1

    /// The scheduler's and admission's errors with their statuses: 429 (busy, with `Retry-After`),
    /// 413 (more than the server can ever hold), 504 (deadline), 503 (cancelled, out of memory),
    /// 400 (an input the engine refuses), 500 (a kernel failure).
    init(_ error: SchedulingError) {
        switch error {
        case .queueFull, .tokenQueueFull:
            self.init(status: .tooManyRequests, message: error.description, type: "rate_limit_error", code: "queue_full",
                      headers: [.retryAfter: String(Self.retryAfterSeconds)])
        case .tooManyTokens:
            self.init(status: .contentTooLarge, message: error.description, type: "invalid_request_error", code: "too_many_tokens")
        case .requestTooLarge:
            self.init(status: .contentTooLarge, message: error.description, type: "invalid_request_error", code: "request_exceeds_memory_budget")
        case .deadlineExceeded:
            self.init(status: .gatewayTimeout, message: error.description, type: "timeout_error", code: "deadline_exceeded")
        case .wouldMissDeadline(let seconds, let remaining, let alone):
            if alone {
                self.init(status: .contentTooLarge, message: error.description, type: "invalid_request_error", code: "request_exceeds_deadline")
            } else {
                let wait = Int(min(3600, max(1, (seconds - remaining).rounded(.up))))
                self.init(status: .serviceUnavailable, message: error.description, type: "server_error", code: "busy",
                          headers: [.retryAfter: String(wait)])
            }
        case .cancelled:
            self.init(status: .serviceUnavailable, message: error.description, type: "server_error", code: "cancelled")
        case .modelUnavailable:
            self.init(status: .serviceUnavailable, message: error.description, type: "server_error", code: "model_load_failed")
        case .inputTooLarge:
            self.init(status: .contentTooLarge, message: error.description, type: "invalid_request_error", code: "input_exceeds_memory_budget")
        case .engine(let engineError):
            switch engineError {
            case .outOfMemory:
                self.init(status: .serviceUnavailable, message: engineError.description, type: "server_error", code: "out_of_memory")
            case .kernel, .reloadFailed:
                self.init(status: .internalServerError, message: engineError.description, type: "server_error", code: "inference_failed")
            default:
                self.init(status: .badRequest, message: engineError.description, type: "invalid_request_error", code: "invalid_input")
            }
        }
    }

    /// The same error with more said at the end of its message (e.g. what would fit).
    func adding(_ advice: String) -> APIError {
        APIError(status: status, message: message + "; " + advice, type: type, code: code, param: param, headers: headers)
    }
}
