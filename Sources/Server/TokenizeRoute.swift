import Engine
import Hummingbird
import Tokenizer

/// `POST /tokenize`: `[[{id, text, start, stop, special}]]` (TEI's shape), offsets in Unicode
/// scalars; the texts in `input` or, as TEI's clients send them, `inputs`.
///
/// A 16 MB body of short words is ~8 million tokens, ~0.5 GB of JSON: the texts are tokenised one
/// at a time on the tokenising threads and each one's tokens are written out before the next is
/// tokenised, so the request holds one text's encoding and a piece of the response at a time,
/// which admission reserves.
struct TokenizeRoute: Sendable {
    let services: ServerServices

    func register(on router: RouterGroup<ServerRequestContext>) {
        router.post("/tokenize") { request, context in
            let body = try await request.decode(as: TokenizeRequest.self, context: context)
            guard case .texts(let texts) = body.texts else {
                throw APIError.invalidRequest("input must be a string or an array of strings", param: "input", code: "invalid_type")
            }
            guard !texts.isEmpty else { throw APIError.invalidRequest("input must not be empty", param: "input", code: "empty_input") }
            let limits = services.limits
            guard texts.count <= limits.maxBatch else {
                throw APIError.invalidRequest("input has \(texts.count) items; the limit is \(limits.maxBatch)", param: "input", code: "too_many_inputs")
            }
            var longest = 0
            for (index, text) in texts.enumerated() {
                let characters = text.unicodeScalars.count
                guard characters <= limits.maxTextCharacters else {
                    throw APIError.invalidRequest("input[\(index)] has \(characters) characters; the limit is \(limits.maxTextCharacters)",
                                                  param: "input[\(index)]", code: "text_too_long")
                }
                longest = max(longest, characters)
            }
            let tokenizer = try await services.model(before: context.deadline).requireTokenizer()
            try await context.admission?.reserve(bytes: RequestFootprint.tokenize(longestText: longest), tokens: 0, deadline: context.deadline)
            let options = EncodeOptions(addSpecialTokens: body.add_special_tokens ?? true, includeTokenTexts: true)
            let workers = services.tokenizing
            return services.stream(run: nil, context: context) { out in
                try await out.write("[")
                for (index, text) in texts.enumerated() {
                    let encoding = try await workers.run { tokenizer.encode(text, options: options) }
                    out.append(index == 0 ? "[" : ",[")
                    // Written field by field into the buffer: ~8 million tokens make string
                    // interpolation per token the bulk of this route's time.
                    for i in encoding.ids.indices {
                        out.append(i == 0 ? "{\"id\":" : ",{\"id\":")
                        out.append(Int(encoding.ids[i]))
                        out.append(",\"text\":")
                        out.appendQuoted(encoding.tokens[i])
                        out.append(",\"start\":")
                        out.append(Int(encoding.offsets[i].start))
                        out.append(",\"stop\":")
                        out.append(Int(encoding.offsets[i].end))
                        out.append(encoding.specialTokensMask[i] ? ",\"special\":true}" : ",\"special\":false}")
                        if i % 256 == 255 { try await out.flushIfFull() }
                    }
                    try await out.write("]")
                }
                try await out.write("]")
            }
        }
    }
}
