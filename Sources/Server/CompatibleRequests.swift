import Foundation

/// The request bodies of other servers' APIs that bgem3 also answers: Hugging Face Text
/// Embeddings Inference (TEI 1.x, `router/src/http/types.rs`), Ollama (`/api/embed`,
/// `/api/embeddings`) and Cohere's v2 rerank. Fields BGE-M3 has no use for are accepted and
/// ignored (each is named in docs/server.md), so that clients which always send them work.

/// Which end of a too-long text TEI's `truncation_direction` cuts (`"Right"` or `"Left"`, any case).
enum TruncationDirection: Sendable, Equatable {
    case right
    case left

    init(_ name: String?) throws {
        switch name?.lowercased() {
        case nil, "right": self = .right
        case "left": self = .left
        default:
            throw APIError.invalidRequest("truncation_direction must be \"Right\" or \"Left\"", param: "truncation_direction", code: "invalid_value")
        }
    }
}

/// TEI's `POST /embed`, `/embed_sparse`, `/embed_all` and `POST /`.
struct TEIEmbedRequest: Decodable {
    let inputs: EmbeddingInput
    /// TEI's default is false: a text over the limit is an error, not cut.
    let truncate: Bool?
    /// BGE-M3's dense vector is always normalised (as FlagEmbedding returns it); accepted and
    /// ignored, since clients such as Haystack's send `normalize: false` by default.
    let normalize: Bool?
    let truncation_direction: String?
    /// For instruction-tuned models; BGE-M3 takes none. Accepted and ignored.
    let prompt_name: String?
    let dimensions: Int?
}

/// A document to rerank: a string, or `{"text": …}` as Cohere's v1 and Infinity's clients send it.
struct RerankDocument: Decodable {
    let text: String

    private enum Keys: String, CodingKey { case text }

    init(from decoder: any Decoder) throws {
        if let text = try? decoder.singleValueContainer().decode(String.self) {
            self.text = text
        } else {
            self.text = try decoder.container(keyedBy: Keys.self).decode(String.self, forKey: .text)
        }
    }
}

/// `POST /rerank`: TEI's shape (`texts`) or Cohere's and Infinity's (`documents`).
struct CompatibleRerankRequest: Decodable {
    let query: String
    /// TEI.
    let texts: [String]?
    /// Cohere, Infinity.
    let documents: [RerankDocument]?
    let truncate: Bool?
    /// TEI: the scores as the model gives them. BGE-M3's hybrid score is already its score (no
    /// sigmoid is applied either way); accepted.
    let raw_scores: Bool?
    let return_text: Bool?
    let truncation_direction: String?
    let top_n: Int?
    let return_documents: Bool?
    /// Cohere: tokens per document; a longer one is cut.
    let max_tokens_per_doc: Int?
    let model: String?
}

/// TEI's `POST /decode`.
struct TEIDecodeRequest: Decodable {
    let ids: TokenIDLists
    let skip_special_tokens: Bool?

    /// `[int]` or `[[int]]`, kept apart: TEI answers a string for the one and a list for the other.
    enum TokenIDLists: Decodable {
        case one([Int32])
        case many([[Int32]])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let ids = try? container.decode([Int32].self) { self = .one(ids); return }
            self = .many(try container.decode([[Int32]].self))
        }
    }
}

/// Ollama's `POST /api/embed`.
struct OllamaEmbedRequest: Decodable {
    let model: String?
    let input: EmbeddingInput
    /// Ollama's default is true.
    let truncate: Bool?
    let dimensions: Int?
    /// How long Ollama keeps a model loaded; bgem3 serves one model, always loaded. Accepted and ignored.
    let keep_alive: JSONIgnored?
    /// Ollama's model options (`num_ctx`, …). Accepted and ignored.
    let options: JSONIgnored?
}

/// Ollama's legacy `POST /api/embeddings`.
struct OllamaLegacyEmbeddingRequest: Decodable {
    let model: String?
    let prompt: String
    let keep_alive: JSONIgnored?
    let options: JSONIgnored?
}

/// Any JSON value, skipped.
struct JSONIgnored: Decodable {
    init(from decoder: any Decoder) throws {}
}
