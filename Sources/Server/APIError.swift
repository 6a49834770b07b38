import Hummingbird

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "code", "param"?}}`.
public struct APIError: Error, Sendable {
    public let status: HTTPResponse.Status
    public let message: String
    public let type: String
    public let code: String
    public let param: String?

    public init(status: HTTPResponse.Status, message: String, type: String, code: String, param: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
    }

    /// 400: the request is malformed or breaks a limit.
    public static func invalidRequest(_ message: String, param: String? = nil, code: String = "invalid_request") -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", code: code, param: param)
    }

    var json: String {
        var fields = "\"message\":\(JSONOutput.string(message)),\"type\":\(JSONOutput.string(type)),\"code\":\(JSONOutput.string(code))"
        if let param { fields += ",\"param\":\(JSONOutput.string(param))" }
        return "{\"error\":{\(fields)}}"
    }

    func response(headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}
