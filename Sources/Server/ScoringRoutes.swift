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
            return try await rankedDocuments(query: body.query, documents: body.documents, topN: body.top_n,
                                             returnDocuments: body.return_documents ?? false, maxLength: nil, context: context)
        }
        // Cohere's v2 rerank, as vLLM serves it; `/rerank` takes TEI's shape or this one.
        router.post("/v2/rerank") { request, context in try await compatibleRerank(request, context) }
        router.post("/rerank") { request, context in try await compatibleRerank(request, context) }
    }

    /// `/rerank` and `/v2/rerank`: with `texts`, TEI's request and its answer `[{index, score, text?}]`;
    /// with `documents`, Cohere's and Infinity's request and the answer of `/v1/rerank`.
    private func compatibleRerank(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await request.decode(as: CompatibleRerankRequest.self, context: context)
        let direction = try TruncationDirection(body.truncation_direction)
        if let texts = body.texts {
            if let topN = body.top_n, topN < 1 { throw APIError.invalidRequest("top_n must be at least 1", param: "top_n", code: "invalid_value") }
            let (run, scores) = try await score(query: body.query, documents: texts, weights: [0.4, 0.2, 0.4], maxLength: nil, context: context,
                                                truncate: body.truncate ?? false, truncation: direction, param: "texts")
            let ranked = Self.ranked(scores, topN: body.top_n)
            let returnText = body.return_text ?? false
            let items = ranked.map { index, s in
                "{\"index\":\(index),\"score\":\(JSONOutput.number(s.all))" + (returnText ? ",\"text\":\(JSONOutput.string(texts[index]))" : "") + "}"
            }
            return services.json("[" + items.joined(separator: ",") + "]", run: run)
        }
        guard let documents = body.documents else {
            throw APIError.invalidRequest("give the passages to rank as texts (TEI) or documents (Cohere)", param: "documents", code: "missing_field")
        }
        let limit = services.limits.maxSequenceLength
        let maxLength = try body.max_tokens_per_doc.map { tokens -> Int in
            guard tokens >= 1 else { throw APIError.invalidRequest("max_tokens_per_doc must be at least 1", param: "max_tokens_per_doc", code: "invalid_value") }
            return min(limit, tokens + 2)
        }
        return try await rankedDocuments(query: body.query, documents: documents.map(\.text), topN: body.top_n,
                                         returnDocuments: body.return_documents ?? false, maxLength: maxLength, context: context)
    }

    /// Cohere's answer: `{"id", "results": [{"index", "relevance_score", "document"?}], "meta", …}`,
    /// documents ordered by the hybrid score, streamed (with `return_documents` it echoes up to a
    /// whole body of text).
    private func rankedDocuments(query: String, documents: [String], topN: Int?, returnDocuments: Bool, maxLength: Int?,
                                 context: ServerRequestContext) async throws -> Response {
        if let topN, topN < 1 { throw APIError.invalidRequest("top_n must be at least 1", param: "top_n", code: "invalid_value") }
        let (run, scores) = try await score(query: query, documents: documents, weights: [0.4, 0.2, 0.4], maxLength: maxLength, context: context)
        let ranked = Self.ranked(scores, topN: topN)
        let model = services.limits.modelName
        let usage = run.usageJSON
        let ticket = context.admission
        let id = context.requestID
        return services.stream(run: run, context: context) { out in
            // The embeddings were freed with the handler: only the response is held from here.
            ticket?.shrinkResults(to: RequestFootprint.response)
            try await out.write("{\"id\":\(JSONOutput.string(id)),\"object\":\"list\",\"model\":\(JSONOutput.string(model)),\"results\":[")
            for (position, (index, s)) in ranked.enumerated() {
                var fields = "\"index\":\(index),\"relevance_score\":\(JSONOutput.number(s.all))"
                if returnDocuments { fields += ",\"document\":{\"text\":\(JSONOutput.string(documents[index]))}" }
                try await out.write((position == 0 ? "{" : ",{") + fields + "}")
            }
            try await out.write("],\"meta\":{\"api_version\":{\"version\":\"2\"},\"billed_units\":{\"search_units\":1}},\(usage)}")
        }
    }

    /// Positions and scores, highest hybrid score first (ties by position), the first `topN`.
    private static func ranked(_ scores: [M3Score.Scores], topN: Int?) -> [(offset: Int, element: M3Score.Scores)] {
        Array(scores.enumerated().sorted { $0.element.all > $1.element.all || ($0.element.all == $1.element.all && $0.offset < $1.offset) }
            .prefix(topN ?? scores.count))
    }

    /// Encodes the query and the documents in one batch, then scores each pair.
    private func score(query: String, documents: [String], weights: [Float], maxLength: Int?, context: ServerRequestContext,
                       truncate: Bool = true, truncation: TruncationDirection = .right, param: String = "documents") async throws -> (InferenceRun, [M3Score.Scores]) {
        guard !documents.isEmpty else { throw APIError.invalidRequest("\(param) must not be empty", param: param, code: "empty_input") }
        guard documents.count < services.limits.maxBatch else {
            throw APIError.invalidRequest("\(param) has \(documents.count) items; the limit is \(services.limits.maxBatch - 1) per request", param: param, code: "too_many_inputs")
        }
        let run = try await services.run(.texts([query] + documents), outputs: .all, context: context, maxLength: maxLength,
                                         truncate: truncate, truncation: truncation)
        let scores = run.embeddings.dropFirst().map { M3Score.scores(query: run.embeddings[0], passage: $0, weights: weights) }
        return (run, scores)
    }

}
