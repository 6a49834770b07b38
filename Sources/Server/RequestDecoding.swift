import Foundation
import Hummingbird
import NIOCore

extension Request {
    /// The body decoded as `T`, with the limits and errors of SPEC §3: 413 over the size limit,
    /// 415 when not JSON, 400 for malformed JSON or wrong types (naming the field).
    mutating func decodeJSON<T: Decodable>(_ type: T.Type, maxBytes: Int) async throws -> T {
        if let contentType = headers[.contentType], !contentType.lowercased().contains("json") {
            throw APIError(status: .unsupportedMediaType, message: "the body must be JSON (Content-Type: application/json), not \(contentType)",
                           type: "invalid_request_error", code: "unsupported_media_type")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: maxBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(status: .contentTooLarge, message: "the body is larger than \(maxBytes) bytes", type: "invalid_request_error", code: "body_too_large")
        }
        let data = Data(buffer.readableBytesView)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch DecodingError.keyNotFound(let key, _) {
            throw APIError.invalidRequest("missing field \(key.stringValue)", param: key.stringValue, code: "missing_field")
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw APIError.invalidRequest("field \(field.isEmpty ? "body" : field) has the wrong type: \(context.debugDescription)",
                                          param: field.isEmpty ? nil : field, code: "invalid_type")
        } catch DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw APIError.invalidRequest("field \(field) is invalid: \(context.debugDescription)", param: field, code: "invalid_value")
        } catch {
            throw APIError.invalidRequest("the body is not valid JSON", code: "invalid_json")
        }
    }
}
