import Foundation

/// `input` of the embedding routes: a string, strings, token ids, or lists of token ids.
enum EmbeddingInput: Decodable, Sendable {
    case texts([String])
    case tokens([[Int32]])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) { self = .texts([text]); return }
        if let texts = try? container.decode([String].self) { self = .texts(texts); return }
        if let ids = try? container.decode([Int32].self) { self = .tokens([ids]); return }
        if let lists = try? container.decode([[Int32]].self) { self = .tokens(lists); return }
        throw DecodingError.typeMismatch(EmbeddingInput.self, .init(
            codingPath: decoder.codingPath, debugDescription: "input must be a string, an array of strings, an array of token ids, or an array of arrays of token ids"))
    }

    var count: Int {
        switch self {
        case .texts(let texts): return texts.count
        case .tokens(let lists): return lists.count
        }
    }
}

/// `POST /v1/embeddings` (OpenAI).
struct OpenAIEmbeddingRequest: Decodable {
    let input: EmbeddingInput
    let model: String?
    let encoding_format: String?
    let dimensions: Int?
    let user: String?
}

/// Options of the lexical output.
struct SparseOptions: Decodable {
    let return_tokens: Bool?
    let top_k: Int?
    let min_weight: Float?
}

/// `POST /v1/m3/embeddings`.
struct M3EmbeddingRequest: Decodable {
    let input: EmbeddingInput
    let dense: Bool?
    let sparse: Bool?
    let colbert: Bool?
    let max_length: Int?
    let truncate: Bool?
    let sparse_options: SparseOptions?
    let colbert_format: String?
}

/// `POST /v1/sparse-embeddings`.
struct SparseEmbeddingRequest: Decodable {
    let input: EmbeddingInput
    let return_tokens: Bool?
    let top_k: Int?
    let min_weight: Float?
}

/// `POST /v1/embeddings:both`.
struct BothEmbeddingRequest: Decodable {
    let input: EmbeddingInput
}

/// `POST /tokenize`: ours (`input`) or TEI's (`inputs`, `prompt_name` ignored).
struct TokenizeRequest: Decodable {
    let input: EmbeddingInput?
    let inputs: EmbeddingInput?
    let add_special_tokens: Bool?
    let prompt_name: String?

    var texts: EmbeddingInput? { input ?? inputs }
}

/// `POST /v1/score`.
struct ScoreRequest: Decodable {
    let query: String
    let documents: [String]
    let weights: [Float]?
    let max_length: Int?
}

/// `POST /v1/rerank`.
struct RerankRequest: Decodable {
    let query: String
    let documents: [String]
    let top_n: Int?
    let return_documents: Bool?
}
