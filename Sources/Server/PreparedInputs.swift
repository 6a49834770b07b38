import Engine
import Foundation
import Tokenizer

/// A request's inputs, validated against the limits and tokenised once: token ids only (the
/// tokeniser's offsets and token texts are dropped as each text is done, so they are not held).
struct PreparedInputs: Sendable {
    var sequences: [[Int32]]
    var truncated: [Bool]

    var tokenCount: Int { sequences.reduce(0) { $0 + $1.count } }

    /// - Parameters:
    ///   - maxLength: tokens per text, special tokens included.
    ///   - truncate: false makes a too-long input a 400 naming it.
    ///   - truncation: which end of a too-long text is cut (`<s>` and `</s>` stay either way).
    static func prepare(_ input: EmbeddingInput, tokenizer: UnigramTokenizer, limits: ServerLimits, maxLength: Int,
                        truncate: Bool = true, truncation: TruncationDirection = .right) throws -> PreparedInputs {
        guard input.count > 0 else { throw APIError.invalidRequest("input must not be empty", param: "input", code: "empty_input") }
        guard input.count <= limits.maxBatch else {
            throw APIError.invalidRequest("input has \(input.count) items; the limit is \(limits.maxBatch) per request", param: "input", code: "too_many_inputs")
        }
        switch input {
        case .texts(let texts):
            var prepared = PreparedInputs(sequences: [], truncated: [])
            for (index, text) in texts.enumerated() {
                let characters = text.unicodeScalars.count
                guard characters <= limits.maxTextCharacters else {
                    throw APIError.invalidRequest("input[\(index)] has \(characters) characters; the limit is \(limits.maxTextCharacters)",
                                                  param: "input[\(index)]", code: "text_too_long")
                }
                if truncation == .left {
                    var ids = tokenizer.encode(text, options: EncodeOptions()).ids
                    let cut = ids.count > maxLength
                    if cut && !truncate {
                        throw APIError.invalidRequest("input[\(index)] has \(ids.count) tokens; the limit is \(maxLength) and truncate is false",
                                                      param: "input[\(index)]", code: "input_too_long")
                    }
                    // The last tokens, between <s> and </s>.
                    if cut { ids = [ids[0]] + ids[(ids.count - maxLength + 1)..<(ids.count - 1)] + [ids[ids.count - 1]] }
                    prepared.sequences.append(ids)
                    prepared.truncated.append(cut)
                    continue
                }
                let encoding = tokenizer.encode(text, options: EncodeOptions(maxLength: maxLength))
                if encoding.isTruncated && !truncate {
                    throw APIError.invalidRequest("input[\(index)] has \(encoding.untruncatedCount) tokens; the limit is \(maxLength) and truncate is false",
                                                  param: "input[\(index)]", code: "input_too_long")
                }
                prepared.sequences.append(encoding.ids)
                prepared.truncated.append(encoding.isTruncated)
            }
            return prepared
        case .tokens(let lists):
            guard limits.acceptsTokenIDs else { throw APIError.tokenIDsNotAccepted }
            // Token ids are taken as the text's pieces; <s> and </s> are added unless present.
            let vocabulary = tokenizer.vocabularySize
            var prepared = PreparedInputs(sequences: [], truncated: [])
            for (index, ids) in lists.enumerated() {
                guard !ids.isEmpty else { throw APIError.invalidRequest("input[\(index)] has no token ids", param: "input[\(index)]", code: "empty_input") }
                if let bad = ids.first(where: { $0 < 0 || Int($0) >= vocabulary }) {
                    throw APIError.invalidRequest("input[\(index)] has token id \(bad), outside the vocabulary of \(vocabulary)", param: "input[\(index)]", code: "invalid_token")
                }
                var sequence = ids
                if sequence.first != 0 { sequence.insert(0, at: 0) }
                if sequence.last != 2 { sequence.append(2) }
                var wasTruncated = false
                if sequence.count > maxLength {
                    guard truncate else {
                        throw APIError.invalidRequest("input[\(index)] has \(sequence.count) tokens; the limit is \(maxLength) and truncate is false",
                                                      param: "input[\(index)]", code: "input_too_long")
                    }
                    sequence = truncation == .left
                        ? [0] + Array(sequence[(sequence.count - maxLength + 1)..<(sequence.count - 1)]) + [2]
                        : Array(sequence.prefix(maxLength - 1)) + [2]
                    wasTruncated = true
                }
                prepared.sequences.append(sequence)
                prepared.truncated.append(wasTruncated)
            }
            return prepared
        }
    }
}
