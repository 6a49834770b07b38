import Foundation
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// Decodes request bodies as JSON with the limits and errors of SPEC §3: 413 over the context's
/// ``ServerRequestContext/maxUploadSize``, 415 when not JSON, 400 for malformed JSON or wrong types
/// (naming the field). Routes call `request.decode(as:context:)`.
public struct APIRequestDecoder: RequestDecoder {
    public func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws -> T {
        if let contentType = request.headers[.contentType], !contentType.lowercased().contains("json") {
            throw APIError(status: .unsupportedMediaType, message: "the body must be JSON (Content-Type: application/json), not \(contentType)",
                           type: "invalid_request_error", code: "unsupported_media_type")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: context.maxUploadSize)
        } catch is NIOTooManyBytesError {
            throw APIError.bodyTooLarge(limit: context.maxUploadSize)
        }
        do {
            // Decodes from the buffer's own bytes, without a copy.
            let decoded = try JSONDecoder().decode(T.self, from: buffer)
            // The decoder's peak is over: the request keeps its decoded body and token ids.
            if let context = context as? ServerRequestContext {
                context.admission?.shrinkBody(to: RequestFootprint.decodedBody(bytes: buffer.readableBytes, maxTokens: context.maxRequestTokens))
            }
            return decoded
        } catch {
            // Foundation's decoder refuses these deep inside a field and then names the wrong
            // problem (a wrong type), so say what it is.
            if let escape = buffer.withUnsafeReadableBytes({ JSONText.loneSurrogateEscape(in: $0) }) {
                throw APIError.invalidRequest("the body has the escape \(escape), half of a UTF-16 surrogate pair: JSON strings must be Unicode text "
                                              + "(write a character beyond U+FFFF as a pair such as \\ud83d\\ude00, or as UTF-8)", code: "invalid_unicode")
            }
            switch error {
            case DecodingError.keyNotFound(let key, _):
                throw APIError.invalidRequest("missing field \(key.stringValue)", param: key.stringValue, code: "missing_field")
            case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
                let field = context.codingPath.map(\.stringValue).joined(separator: ".")
                throw APIError.invalidRequest("field \(field.isEmpty ? "body" : field) has the wrong type: \(context.debugDescription)",
                                              param: field.isEmpty ? nil : field, code: "invalid_type")
            case DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty:
                let field = context.codingPath.map(\.stringValue).joined(separator: ".")
                throw APIError.invalidRequest("field \(field) is invalid: \(context.debugDescription)", param: field, code: "invalid_value")
            default:
                throw APIError.invalidRequest("the body is not valid JSON", code: "invalid_json")
            }
        }
    }
}

/// Scans of raw JSON text.
enum JSONText {
    /// The first `\uD800`…`\uDFFF` escape in `bytes` that is not half of a high-low pair, as
    /// written (e.g. `\ud800`), or nil. Escaped backslashes are skipped, so `\\ud800` (text) is not one.
    static func loneSurrogateEscape(in bytes: UnsafeRawBufferPointer) -> String? {
        func hexValue(at index: Int) -> Int? {
            guard index + 4 <= bytes.endIndex else { return nil }
            var value = 0
            for byte in bytes[index..<index + 4] {
                guard let digit = Int(String(UnicodeScalar(byte)), radix: 16) else { return nil }
                value = value * 16 + digit
            }
            return value
        }
        let backslash = UInt8(ascii: "\\"), u = UInt8(ascii: "u")
        var index = bytes.startIndex
        var pendingHigh: Int?  // index of a high surrogate escape waiting for its low half
        while index < bytes.endIndex {
            guard bytes[index] == backslash, index + 1 < bytes.endIndex else {
                if let high = pendingHigh { return String(decoding: bytes[high..<high + 6], as: UTF8.self) }
                index += 1
                continue
            }
            if bytes[index + 1] == u, let value = hexValue(at: index + 2) {
                switch value {
                case 0xD800...0xDBFF:
                    if let high = pendingHigh { return String(decoding: bytes[high..<high + 6], as: UTF8.self) }
                    pendingHigh = index
                case 0xDC00...0xDFFF:
                    if pendingHigh == nil { return String(decoding: bytes[index..<index + 6], as: UTF8.self) }
                    pendingHigh = nil
                default:
                    if let high = pendingHigh { return String(decoding: bytes[high..<high + 6], as: UTF8.self) }
                }
                index += 6
            } else {
                if let high = pendingHigh { return String(decoding: bytes[high..<high + 6], as: UTF8.self) }
                index += 2  // an escape such as \\ or \n: its second character is not a backslash to look at
            }
        }
        return pendingHigh.map { String(decoding: bytes[$0..<$0 + 6], as: UTF8.self) }
    }
}
