import Engine
import Foundation
import Hummingbird
import Tokenizer

/// The embedding routes: OpenAI's `/v1/embeddings`, `/v1/m3/embeddings` (all outputs),
/// `/v1/sparse-embeddings`, and the seed server's `/v1/embeddings:both`. Responses are streamed
/// item by item (``JSONBodyStream``).
struct EmbeddingRoutes: Sendable {
    let services: ServerServices

    func register(on router: RouterGroup<ServerRequestContext>) {
        router.post("/v1/embeddings") { request, context in try await openAI(request, context) }
        // Infinity's clients (and others) call OpenAI's route without the version.
        router.post("/embeddings") { request, context in try await openAI(request, context) }
        router.post("/v1/m3/embeddings") { request, context in try await m3(request, context) }
        router.post("/v1/sparse-embeddings") { request, context in try await sparse(request, context) }
        router.post("/v1/embeddings:both") { request, context in try await both(request, context) }
        router.post("/v1/embeddings%3Aboth") { request, context in try await both(request, context) }
    }

    private func openAI(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await request.decode(as: OpenAIEmbeddingRequest.self, context: context)
        let format = body.encoding_format ?? "float"
        guard format == "float" || format == "base64" else {
            throw APIError.invalidRequest("encoding_format must be \"float\" or \"base64\"", param: "encoding_format", code: "invalid_value")
        }
        // Checked before the inference runs: a bad value must not cost a forward pass.
        let width = try Self.width(body.dimensions, available: try await services.model(before: context.deadline).dimension)
        let run = try await services.run(body.input, outputs: .dense, context: context)
        let (results, usage, model) = (run.results(context), run.usageJSON, services.limits.modelName)
        return services.stream(run: run, context: context) { out in
            try await out.write("{\"object\":\"list\",\"data\":[")
            try await results.writeEach { index, embedding in
                let vector = Self.shortened(embedding.dense ?? [], to: width)
                try await out.write("\(index == 0 ? "" : ","){\"object\":\"embedding\",\"index\":\(index),\"embedding\":")
                if format == "base64" { try await out.writeBase64(vector, half: false) } else { try await out.writeFloats(vector) }
                try await out.write("}")
            }
            try await out.write("],\"model\":\(JSONOutput.string(model)),\(usage)}")
        }
    }

    private func m3(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await request.decode(as: M3EmbeddingRequest.self, context: context)
        var outputs: EmbeddingOutputs = []
        if body.dense ?? true { outputs.insert(.dense) }
        if body.sparse ?? false { outputs.insert(.sparse) }
        if body.colbert ?? false { outputs.insert(.colbert) }
        guard !outputs.isEmpty else { throw APIError.invalidRequest("ask for at least one of dense, sparse, colbert", code: "no_outputs") }
        let colbertFormat = body.colbert_format ?? "float"
        guard ["float", "base64_f32", "base64_f16"].contains(colbertFormat) else {
            throw APIError.invalidRequest("colbert_format must be \"float\", \"base64_f32\" or \"base64_f16\"", param: "colbert_format", code: "invalid_value")
        }
        let options = SparseFilter(topK: body.sparse_options?.top_k, minWeight: body.sparse_options?.min_weight,
                                   withTokens: body.sparse_options?.return_tokens ?? false)
        try options.validate(prefix: "sparse_options.")
        let run = try await services.run(body.input, outputs: outputs, context: context, maxLength: body.max_length, truncate: body.truncate ?? true)
        let (results, usage, model, tokenizer) = (run.results(context), run.usageJSON, services.limits.modelName, run.model.tokenizer)
        let (tokens, truncated) = (run.inputs.sequences.map(\.count), run.inputs.truncated)
        return services.stream(run: run, context: context) { out in
            try await out.write("{\"object\":\"list\",\"model\":\(JSONOutput.string(model)),\"data\":[")
            try await results.writeEach { index, embedding in
                try await out.write("\(index == 0 ? "" : ","){\"index\":\(index),\"tokens\":\(tokens[index]),\"truncated\":\(truncated[index])")
                if let dense = embedding.dense {
                    try await out.write(",\"dense\":")
                    try await out.writeFloats(dense)
                }
                if let sparse = embedding.sparse {
                    try await out.write(",\"sparse\":" + options.json(sparse, tokenizer: tokenizer))
                }
                if let colbert = embedding.colbert {
                    try await out.write(",\"colbert\":{\"shape\":[\(colbert.count),\(colbert.dimension)],\"data\":")
                    switch colbertFormat {
                    case "base64_f32": try await out.writeBase64(colbert.values, half: false)
                    case "base64_f16": try await out.writeBase64(colbert.values, half: true)
                    default:
                        try await out.write("[")
                        for row in 0..<colbert.count {
                            if row > 0 { try await out.write(",") }
                            try await out.writeFloats(colbert.vector(row))
                        }
                        try await out.write("]")
                    }
                    try await out.write("}")
                }
                try await out.write("}")
            }
            try await out.write("],\(usage)}")
        }
    }

    private func sparse(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await request.decode(as: SparseEmbeddingRequest.self, context: context)
        let options = SparseFilter(topK: body.top_k, minWeight: body.min_weight, withTokens: body.return_tokens ?? false)
        try options.validate(prefix: "")
        let run = try await services.run(body.input, outputs: .sparse, context: context)
        let (results, usage, model, tokenizer) = (run.results(context), run.usageJSON, services.limits.modelName, run.model.tokenizer)
        return services.stream(run: run, context: context) { out in
            try await out.write("{\"object\":\"list\",\"model\":\(JSONOutput.string(model)),\"data\":[")
            try await results.writeEach { index, embedding in
                let sparse = options.json(embedding.sparse ?? SparseEmbedding(ids: [], weights: []), tokenizer: tokenizer)
                try await out.write("\(index == 0 ? "" : ","){\"index\":\(index),\"sparse_values\":\(sparse)}")
            }
            try await out.write("],\(usage)}")
        }
    }

    private func both(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await request.decode(as: BothEmbeddingRequest.self, context: context)
        let run = try await services.run(body.input, outputs: [.dense, .sparse], context: context)
        let (results, usage, model) = (run.results(context), run.usageJSON, services.limits.modelName)
        let options = SparseFilter(topK: nil, minWeight: nil, withTokens: false)
        return services.stream(run: run, context: context) { out in
            try await out.write("{\"object\":\"list\",\"model\":\(JSONOutput.string(model)),\"data\":[")
            try await results.writeEach { index, embedding in
                try await out.write("\(index == 0 ? "" : ","){\"index\":\(index),\"embedding\":")
                try await out.writeFloats(embedding.dense ?? [])
                try await out.write(",\"sparse_values\":" + options.json(embedding.sparse ?? SparseEmbedding(ids: [], weights: []), tokenizer: nil) + "}")
            }
            try await out.write("],\(usage)}")
        }
    }

    /// The first `width` values, re-normalised, as OpenAI's `dimensions` returns unit vectors.
    static func shortened(_ vector: [Float], to width: Int) -> [Float] {
        guard width < vector.count else { return vector }
        let kept = Array(vector.prefix(width))
        let norm = kept.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? kept.map { $0 / norm } : kept
    }

    /// `dimensions` checked against the model's width (before any inference runs).
    static func width(_ requested: Int?, available: Int) throws -> Int {
        guard let requested else { return available }
        guard (1...available).contains(requested) else {
            throw APIError.invalidRequest("dimensions must be between 1 and \(available)", param: "dimensions", code: "invalid_value")
        }
        return requested
    }
}

/// `top_k`, `min_weight` and `return_tokens` of the lexical output.
struct SparseFilter: Sendable {
    var topK: Int?
    var minWeight: Float?
    var withTokens: Bool

    func validate(prefix: String) throws {
        if let topK, topK < 1 { throw APIError.invalidRequest("\(prefix)top_k must be at least 1", param: prefix + "top_k", code: "invalid_value") }
        if let minWeight, !minWeight.isFinite || minWeight < 0 {
            throw APIError.invalidRequest("\(prefix)min_weight must be a finite number >= 0", param: prefix + "min_weight", code: "invalid_value")
        }
    }

    /// `{"indices": [ascending], "values": [...], "tokens"?: [...]}`, after `min_weight` and
    /// `top_k` (the heaviest k, still listed by ascending id).
    func json(_ sparse: SparseEmbedding, tokenizer: UnigramTokenizer?) -> String {
        var pairs = zip(sparse.ids, sparse.weights).filter { $0.1 >= (minWeight ?? 0) }
        if let topK, pairs.count > topK {
            pairs = Array(pairs.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(topK)).sorted { $0.0 < $1.0 }
        }
        var json = "{\"indices\":\(JSONOutput.integers(pairs.map(\.0))),\"values\":\(JSONOutput.floats(pairs.map(\.1)))"
        if withTokens, let tokenizer {
            json += ",\"tokens\":[" + pairs.map { JSONOutput.string(tokenizer.token(forID: $0.0) ?? "") }.joined(separator: ",") + "]"
        }
        return json + "}"
    }
}
