import Engine
import Foundation
import Hummingbird

/// Hugging Face Text Embeddings Inference's routes, in its request and response shapes, for the
/// integrations that hard-code them (LlamaIndex, Haystack, `huggingface_hub`, Milvus, RAGFlow,
/// Dify, Weaviate): `POST /embed` (and `POST /`), `/embed_sparse` (BGE-M3's lexical weights, which
/// TEI itself gives only for SPLADE models), `/embed_all` (BGE-M3's ColBERT vectors) and `/decode`.
/// TEI's `/rerank` and `/tokenize` are in ``ScoringRoutes`` and ``TokenizeRoute``; its `/info`
/// keys in ``OperationRoutes``.
struct TEIRoutes: Sendable {
    let services: ServerServices

    func register(on router: RouterGroup<ServerRequestContext>) {
        router.post("/embed") { request, context in try await embed(request, context) }
        router.post("/") { request, context in try await embed(request, context) }
        router.post("/embed_sparse") { request, context in try await embedSparse(request, context) }
        router.post("/embed_all") { request, context in try await embedAll(request, context) }
        router.post("/decode") { request, context in try await decode(request, context) }
    }

    /// The request run through the engine with TEI's truncation: off unless asked for.
    private func run(_ body: TEIEmbedRequest, outputs: EmbeddingOutputs, context: ServerRequestContext) async throws -> InferenceRun {
        let direction = try TruncationDirection(body.truncation_direction)
        return try await services.run(body.inputs, outputs: outputs, context: context, truncate: body.truncate ?? false, truncation: direction)
    }

    /// `[[float]]`: one dense vector per input.
    private func embed(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await request.decode(as: TEIEmbedRequest.self, context: context)
        let width = try EmbeddingRoutes.width(body.dimensions, available: try await services.model(before: context.deadline).dimension)
        return streamArray(try await run(body, outputs: .dense, context: context), context: context) { out, embedding in
            try await out.writeFloats(EmbeddingRoutes.shortened(embedding.dense ?? [], to: width))
        }
    }

    /// `[[{"index": token id, "value": weight}]]`: BGE-M3's lexical weights per input, by ascending id.
    private func embedSparse(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await request.decode(as: TEIEmbedRequest.self, context: context)
        return streamArray(try await run(body, outputs: .sparse, context: context), context: context) { out, embedding in
            let sparse = embedding.sparse ?? SparseEmbedding(ids: [], weights: [])
            let pairs = zip(sparse.ids, sparse.weights).map { "{\"index\":\($0.0),\"value\":\(JSONOutput.number($0.1))}" }
            try await out.write("[" + pairs.joined(separator: ",") + "]")
        }
    }

    /// `[[[float]]]`: per input, one vector per token, BGE-M3's ColBERT vectors (every token after `<s>`).
    private func embedAll(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await request.decode(as: TEIEmbedRequest.self, context: context)
        return streamArray(try await run(body, outputs: .colbert, context: context), context: context) { out, embedding in
            try await out.write("[")
            if let colbert = embedding.colbert {
                for row in 0..<colbert.count {
                    if row > 0 { try await out.write(",") }
                    try await out.writeFloats(colbert.vector(row))
                }
            }
            try await out.write("]")
        }
    }

    /// `[element, …]`, one element per input, each written by `element` as its result is taken
    /// (and freed) from the run.
    private func streamArray(_ run: InferenceRun, context: ServerRequestContext,
                             element: @escaping @Sendable (inout JSONBodyStream, SequenceEmbedding) async throws -> Void) -> Response {
        let results = run.results(context)
        return services.stream(run: run, context: context) { out in
            try await out.write("[")
            try await results.writeEach { index, embedding in
                if index > 0 { try await out.write(",") }
                try await element(&out, embedding)
            }
            try await out.write("]")
        }
    }

    /// `"text"` for a list of ids, `["text", …]` for a list of lists.
    private func decode(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await request.decode(as: TEIDecodeRequest.self, context: context)
        let tokenizer = try await services.model(before: context.deadline).requireTokenizer()
        let skip = body.skip_special_tokens ?? true
        switch body.ids {
        case .one(let ids):
            return services.json(JSONOutput.string(tokenizer.decode(ids, skipSpecialTokens: skip)))
        case .many(let lists):
            return services.json("[" + lists.map { JSONOutput.string(tokenizer.decode($0, skipSpecialTokens: skip)) }.joined(separator: ",") + "]")
        }
    }
}
