import Engine
import Foundation
import Hummingbird

/// Ollama's embedding routes, for the many BGE-M3 users on Ollama's client and its integrations:
/// `POST /api/embed` (`{model, input}` → `{model, embeddings, …}`) and the legacy
/// `POST /api/embeddings` (`{model, prompt}` → `{embedding}`). The vectors are the dense ones of
/// `/v1/embeddings` (unit length, as Ollama's are). `model` is accepted whatever it names: this
/// server has one model.
struct OllamaRoutes: Sendable {
    let services: ServerServices

    func register(on router: RouterGroup<ServerRequestContext>) {
        router.post("/api/embed") { request, context in
            let started = ContinuousClock.now
            let body = try await request.decode(as: OllamaEmbedRequest.self, context: context)
            let width = try EmbeddingRoutes.width(body.dimensions, available: try await services.model(before: context.deadline).dimension)
            // Ollama cuts a too-long input unless told not to.
            let run = try await services.run(body.input, outputs: .dense, context: context, truncate: body.truncate ?? true)
            let (results, model, tokens) = (run.results(context), body.model ?? services.limits.modelName, run.inputs.tokenCount)
            return services.stream(run: run, context: context) { out in
                try await out.write("{\"model\":\(JSONOutput.string(model)),\"embeddings\":[")
                try await results.writeEach { index, embedding in
                    if index > 0 { try await out.write(",") }
                    try await out.writeFloats(EmbeddingRoutes.shortened(embedding.dense ?? [], to: width))
                }
                let nanoseconds = Int((ContinuousClock.now - started).milliseconds * 1_000_000)
                try await out.write("],\"total_duration\":\(nanoseconds),\"load_duration\":0,\"prompt_eval_count\":\(tokens)}")
            }
        }
        router.post("/api/embeddings") { request, context in
            let body = try await request.decode(as: OllamaLegacyEmbeddingRequest.self, context: context)
            let run = try await services.run(.texts([body.prompt]), outputs: .dense, context: context)
            let results = run.results(context)
            return services.stream(run: run, context: context) { out in
                try await out.write("{\"embedding\":")
                try await results.writeEach { _, embedding in try await out.writeFloats(embedding.dense ?? []) }
                try await out.write("}")
            }
        }
    }
}
