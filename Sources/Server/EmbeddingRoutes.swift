import Engine
import Foundation
import Hummingbird
import Tokenizer

/// The embedding routes: OpenAI's `/v1/embeddings`, `/v1/m3/embeddings` (all outputs),
/// `/v1/sparse-embeddings`, and the seed server's `/v1/embeddings:both`.
struct EmbeddingRoutes: Sendable {
    let services: ServerServices

    func register(on router: Router<ServerRequestContext>) {
        router.post("/v1/embeddings") { request, context in try await openAI(request, context) }
        router.post("/v1/m3/embeddings") { request, context in try await m3(request, context) }
        router.post("/v1/sparse-embeddings") { request, context in try await sparse(request, context) }
        router.post("/v1/embeddings:both") { request, context in try await both(request, context) }
        router.post("/v1/embeddings%3Aboth") { request, context in try await both(request, context) }
    }

    private func openAI(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(OpenAIEmbeddingRequest.self, maxBytes: services.limits.maxBodyBytes)
        let format = body.encoding_format ?? "float"
        guard format == "float" || format == "base64" else {
            throw APIError.invalidRequest("encoding_format must be \"float\" or \"base64\"", param: "encoding_format", code: "invalid_value")
        }
        let run = try await services.run(body.input, outputs: .dense, connection: context.connection)
        let width = try dimensions(body.dimensions, available: run.model.dimension)
        var data: [String] = []
        for (index, embedding) in run.embeddings.enumerated() {
            var vector = embedding.dense ?? []
            if width < vector.count {
                // Shortened vectors are re-normalised, as OpenAI's `dimensions` returns unit vectors.
                vector = Array(vector.prefix(width))
                let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > 0 { vector = vector.map { $0 / norm } }
            }
            let encoded = format == "base64" ? JSONOutput.base64Float32(vector) : JSONOutput.floats(vector)
            data.append("{\"object\":\"embedding\",\"index\":\(index),\"embedding\":\(encoded)}")
        }
        return services.json("{\"object\":\"list\",\"data\":[\(data.joined(separator: ","))],\"model\":\(JSONOutput.string(services.limits.modelName)),\(run.usageJSON)}", run: run)
    }

    private func m3(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(M3EmbeddingRequest.self, maxBytes: services.limits.maxBodyBytes)
        var outputs: EmbeddingOutputs = []
        if body.dense ?? true { outputs.insert(.dense) }
        if body.sparse ?? false { outputs.insert(.sparse) }
        if body.colbert ?? false { outputs.insert(.colbert) }
        guard !outputs.isEmpty else { throw APIError.invalidRequest("ask for at least one of dense, sparse, colbert", code: "no_outputs") }
        let colbertFormat = body.colbert_format ?? "float"
        guard ["float", "base64_f32", "base64_f16"].contains(colbertFormat) else {
            throw APIError.invalidRequest("colbert_format must be \"float\", \"base64_f32\" or \"base64_f16\"", param: "colbert_format", code: "invalid_value")
        }
        let options = body.sparse_options
        try validate(options?.top_k, options?.min_weight, prefix: "sparse_options.")
        let run = try await services.run(body.input, outputs: outputs, connection: context.connection, maxLength: body.max_length, truncate: body.truncate ?? true,
                                         withTexts: options?.return_tokens ?? false)
        var data: [String] = []
        for (index, embedding) in run.embeddings.enumerated() {
            var fields = "\"index\":\(index),\"tokens\":\(run.inputs.sequences[index].count),\"truncated\":\(run.inputs.truncated[index])"
            if let dense = embedding.dense { fields += ",\"dense\":\(JSONOutput.floats(dense))" }
            if let sparse = embedding.sparse {
                fields += ",\"sparse\":" + sparseJSON(sparse, topK: options?.top_k, minWeight: options?.min_weight,
                                                      tokens: (options?.return_tokens ?? false) ? run.model.tokenizer : nil)
            }
            if let colbert = embedding.colbert {
                let values: String
                switch colbertFormat {
                case "base64_f32": values = JSONOutput.base64Float32(colbert.values)
                case "base64_f16": values = JSONOutput.base64Float16(colbert.values)
                default: values = "[" + (0..<colbert.count).map { JSONOutput.floats(colbert.vector($0)) }.joined(separator: ",") + "]"
                }
                fields += ",\"colbert\":{\"shape\":[\(colbert.count),\(colbert.dimension)],\"data\":\(values)}"
            }
            data.append("{\(fields)}")
        }
        return services.json("{\"object\":\"list\",\"model\":\(JSONOutput.string(services.limits.modelName)),\"data\":[\(data.joined(separator: ","))],\(run.usageJSON)}", run: run)
    }

    private func sparse(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(SparseEmbeddingRequest.self, maxBytes: services.limits.maxBodyBytes)
        try validate(body.top_k, body.min_weight, prefix: "")
        let run = try await services.run(body.input, outputs: .sparse, connection: context.connection)
        let data = run.embeddings.enumerated().map { index, embedding in
            "{\"index\":\(index),\"sparse_values\":" + sparseJSON(embedding.sparse ?? SparseEmbedding(ids: [], weights: []), topK: body.top_k,
                                                                  minWeight: body.min_weight, tokens: (body.return_tokens ?? false) ? run.model.tokenizer : nil) + "}"
        }
        return services.json("{\"object\":\"list\",\"model\":\(JSONOutput.string(services.limits.modelName)),\"data\":[\(data.joined(separator: ","))],\(run.usageJSON)}", run: run)
    }

    private func both(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(BothEmbeddingRequest.self, maxBytes: services.limits.maxBodyBytes)
        let run = try await services.run(body.input, outputs: [.dense, .sparse], connection: context.connection)
        let data = run.embeddings.enumerated().map { index, embedding in
            "{\"index\":\(index),\"embedding\":\(JSONOutput.floats(embedding.dense ?? [])),\"sparse_values\":"
                + sparseJSON(embedding.sparse ?? SparseEmbedding(ids: [], weights: []), topK: nil, minWeight: nil, tokens: nil) + "}"
        }
        return services.json("{\"object\":\"list\",\"model\":\(JSONOutput.string(services.limits.modelName)),\"data\":[\(data.joined(separator: ","))],\(run.usageJSON)}", run: run)
    }

    private func dimensions(_ requested: Int?, available: Int) throws -> Int {
        guard let requested else { return available }
        guard (1...available).contains(requested) else {
            throw APIError.invalidRequest("dimensions must be between 1 and \(available)", param: "dimensions", code: "invalid_value")
        }
        return requested
    }

    private func validate(_ topK: Int?, _ minWeight: Float?, prefix: String) throws {
        if let topK, topK < 1 { throw APIError.invalidRequest("\(prefix)top_k must be at least 1", param: prefix + "top_k", code: "invalid_value") }
        if let minWeight, !minWeight.isFinite || minWeight < 0 {
            throw APIError.invalidRequest("\(prefix)min_weight must be a finite number >= 0", param: prefix + "min_weight", code: "invalid_value")
        }
    }

    /// `{"indices": [ascending], "values": [...], "tokens"?: [...]}`, after `min_weight` and
    /// `top_k` (the heaviest k, still listed by ascending id).
    private func sparseJSON(_ sparse: SparseEmbedding, topK: Int?, minWeight: Float?, tokens: UnigramTokenizer?) -> String {
        var pairs = zip(sparse.ids, sparse.weights).filter { $0.1 >= (minWeight ?? 0) }
        if let topK, pairs.count > topK {
            pairs = Array(pairs.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(topK)).sorted { $0.0 < $1.0 }
        }
        var json = "{\"indices\":\(JSONOutput.integers(pairs.map(\.0))),\"values\":\(JSONOutput.floats(pairs.map(\.1)))"
        if let tokens {
            json += ",\"tokens\":[" + pairs.map { JSONOutput.string(tokens.token(forID: $0.0) ?? "") }.joined(separator: ",") + "]"
        }
        return json + "}"
    }

}
