import Engine
import Foundation
import Hummingbird

/// `/v1/score` (dense, lexical, ColBERT and the weighted hybrid, as FlagEmbedding's
/// `compute_score`) and `/v1/rerank` (documents ordered by the hybrid score).
struct ScoringRoutes: Sendable {
    let services: ServerServices

    func register(on router: RouterGroup<ServerRequestContext>) {
        router.post("/v1/score") { request, context in
            let body = try await request.decode(as: ScoreRequest.self, context: context)
            let weights = body.weights ?? [0.4, 0.2, 0.4]
            guard weights.count == 3, weights.allSatisfy({ $0.isFinite && $0 >= 0 }), weights.reduce(0, +) > 0 else {
                throw APIError.invalidRequest("weights must be three numbers >= 0 (dense, sparse, colbert) with a positive sum", param: "weights", code: "invalid_value")
            }
            let (run, scores) = try await score(query: body.query, documents: body.documents, weights: weights, maxLength: body.max_length, context: context)
            let data = scores.enumerated().map { index, s in
                "{\"index\":\(index),\"dense\":\(JSONOutput.number(s.dense)),\"sparse\":\(JSONOutput.number(s.sparse)),"
                    + "\"colbert\":\(JSONOutput.number(s.colbert)),\"score\":\(JSONOutput.number(s.all))}"
            }
            return services.json("{\"object\":\"list\",\"model\":\(JSONOutput.string(services.limits.modelName)),\"data\":[\(data.joined(separator: ","))],\(run.usageJSON)}", run: run)
        }
        router.post("/v1/rerank") { request, context in
            let body = try await request.decode(as: RerankRequest.self, context: context)
            if let topN = body.top_n, topN < 1 { throw APIError.invalidRequest("top_n must be at least 1", param: "top_n", code: "invalid_value") }
            let (run, scores) = try await score(query: body.query, documents: body.documents, weights: [0.4, 0.2, 0.4], maxLength: nil, context: context)
            let ranked = scores.enumerated().sorted { $0.element.all > $1.element.all || ($0.element.all == $1.element.all && $0.offset < $1.offset) }
                .prefix(body.top_n ?? scores.count)
            let returnDocuments = body.return_documents ?? false
            let model = services.limits.modelName
            let usage = run.usageJSON
            let ticket = context.admission
            // Streamed: with `return_documents` the response echoes up to a whole body of text.
            return services.stream(run: run, context: context) { out in
                // The embeddings were freed with the handler: only the response is held from here.
                ticket?.shrinkResults(to: RequestFootprint.response)
                try await out.write("{\"object\":\"list\",\"model\":\(JSONOutput.string(model)),\"results\":[")
                for (position, (index, s)) in ranked.enumerated() {
                    var fields = "\"index\":\(index),\"relevance_score\":\(JSONOutput.number(s.all))"
                    if returnDocuments { fields += ",\"document\":{\"text\":\(JSONOutput.string(body.documents[index]))}" }
                    try await out.write((position == 0 ? "{" : ",{") + fields + "}")
                }
                try await out.write("],\(usage)}")
            }
        }
    }

    /// Encodes the query and the documents in one batch, then scores each pair.
    private func score(query: String, documents: [String], weights: [Float], maxLength: Int?, context: ServerRequestContext) async throws -> (InferenceRun, [M3Score.Scores]) {
        guard !documents.isEmpty else { throw APIError.invalidRequest("documents must not be empty", param: "documents", code: "empty_input") }
        guard documents.count < services.limits.maxBatch else {
            throw APIError.invalidRequest("documents has \(documents.count) items; the limit is \(services.limits.maxBatch - 1) per request", param: "documents", code: "too_many_inputs")
        }
        let run = try await services.run(.texts([query] + documents), outputs: .all, context: context, maxLength: maxLength)
        let scores = run.embeddings.dropFirst().map { M3Score.scores(query: run.embeddings[0], passage: $0, weights: weights) }
        return (run, scores)
    }

}
