import Engine
import Foundation
import Hummingbird

/// `/v1/score` (dense, lexical, ColBERT and the weighted hybrid, as FlagEmbedding's
/// `compute_score`) and `/v1/rerank` (documents ordered by the hybrid score).
struct ScoringRoutes: Sendable {
    let services: ServerServices

    func register(on router: Router<ServerRequestContext>) {
        router.post("/v1/score") { request, context in
            var request = request
            let body = try await request.decodeJSON(ScoreRequest.self, maxBytes: services.limits.maxBodyBytes)
            let weights = body.weights ?? [0.4, 0.2, 0.4]
            guard weights.count == 3, weights.allSatisfy({ $0.isFinite && $0 >= 0 }), weights.reduce(0, +) > 0 else {
                throw APIError.invalidRequest("weights must be three numbers >= 0 (dense, sparse, colbert) with a positive sum", param: "weights", code: "invalid_value")
            }
            let (run, scores) = try await score(query: body.query, documents: body.documents, weights: weights, maxLength: body.max_length, connection: context.connection)
            let data = scores.enumerated().map { index, s in
                "{\"index\":\(index),\"dense\":\(s.dense),\"sparse\":\(s.sparse),\"colbert\":\(s.colbert),\"score\":\(s.all)}"
            }
            return services.json("{\"object\":\"list\",\"model\":\(JSONOutput.string(services.limits.modelName)),\"data\":[\(data.joined(separator: ","))],\(run.usageJSON)}", run: run)
        }
        router.post("/v1/rerank") { request, context in
            var request = request
            let body = try await request.decodeJSON(RerankRequest.self, maxBytes: services.limits.maxBodyBytes)
            if let topN = body.top_n, topN < 1 { throw APIError.invalidRequest("top_n must be at least 1", param: "top_n", code: "invalid_value") }
            let (run, scores) = try await score(query: body.query, documents: body.documents, weights: [0.4, 0.2, 0.4], maxLength: nil, connection: context.connection)
            let ranked = scores.enumerated().sorted { $0.element.all > $1.element.all || ($0.element.all == $1.element.all && $0.offset < $1.offset) }
                .prefix(body.top_n ?? scores.count)
            let results = ranked.map { index, s in
                var fields = "\"index\":\(index),\"relevance_score\":\(s.all)"
                if body.return_documents ?? false { fields += ",\"document\":{\"text\":\(JSONOutput.string(body.documents[index]))}" }
                return "{\(fields)}"
            }
            return services.json("{\"object\":\"list\",\"model\":\(JSONOutput.string(services.limits.modelName)),\"results\":[\(results.joined(separator: ","))],\(run.usageJSON)}", run: run)
        }
    }

    /// Encodes the query and the documents in one batch, then scores each pair.
    private func score(query: String, documents: [String], weights: [Float], maxLength: Int?, connection: ConnectionStatus) async throws -> (InferenceRun, [M3Score.Scores]) {
        guard !documents.isEmpty else { throw APIError.invalidRequest("documents must not be empty", param: "documents", code: "empty_input") }
        guard documents.count < services.limits.maxBatch else {
            throw APIError.invalidRequest("documents has \(documents.count) items; the limit is \(services.limits.maxBatch - 1) per request", param: "documents", code: "too_many_inputs")
        }
        let run = try await services.run(.texts([query] + documents), outputs: .all, connection: connection, maxLength: maxLength)
        let scores = run.embeddings.dropFirst().map { M3Score.scores(query: run.embeddings[0], passage: $0, weights: weights) }
        return (run, scores)
    }

}
