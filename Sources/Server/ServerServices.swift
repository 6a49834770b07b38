import Engine
import Foundation
import HTTPTypes
import Hummingbird
import Tokenizer

/// The result of running one request's inputs through the engine.
struct InferenceRun {
    let model: BGEM3Model
    let inputs: PreparedInputs
    let embeddings: [SequenceEmbedding]
    let queueMilliseconds: Double
    let inferenceMilliseconds: Double

    /// `"usage": {...}`: the real tokens, special tokens included.
    var usageJSON: String {
        "\"usage\":{\"prompt_tokens\":\(inputs.tokenCount),\"total_tokens\":\(inputs.tokenCount)}"
    }
}

/// What the routes share: limits, the model state and the inference backend.
public struct ServerServices: Sendable {
    public let limits: ServerLimits
    public let state: ModelState
    public let backend: any InferenceBackend
    public let startedAt = Date()

    public init(limits: ServerLimits, state: ModelState, backend: any InferenceBackend) {
        self.limits = limits
        self.state = state
        self.backend = backend
    }

    var deadline: ContinuousClock.Instant { .now + .milliseconds(Int64(limits.requestTimeoutSeconds * 1000)) }

    /// The model, waiting for it (within the request's deadline) if it is still loading.
    func model(before deadline: ContinuousClock.Instant) async throws -> BGEM3Model {
        try await state.model(before: deadline)
    }

    /// Tokenises, encodes and times one request.
    /// - Parameter connection: the client's connection; its inputs are dropped if it goes away.
    func run(_ input: EmbeddingInput, outputs: EmbeddingOutputs, connection: ConnectionStatus, maxLength: Int? = nil, truncate: Bool = true,
             withTexts: Bool = false) async throws -> InferenceRun {
        let deadline = self.deadline
        let model = try await self.model(before: deadline)
        let limit = min(limits.maxSequenceLength, model.maximumSequenceLength)
        if let maxLength, !(2...limit).contains(maxLength) {
            throw APIError.invalidRequest("max_length must be between 2 and \(limit)", param: "max_length", code: "invalid_value")
        }
        let inputs = try PreparedInputs.prepare(input, tokenizer: try model.requireTokenizer(), limits: limits, maxLength: maxLength ?? limit,
                                                truncate: truncate, withTexts: withTexts)
        let result = try await backend.encode(inputs.sequences, outputs: outputs, deadline: deadline, isAbandoned: { connection.isGone })
        ServerMetrics.inference(sequences: inputs.sequences.count, tokens: inputs.tokenCount,
                                truncated: inputs.truncated.filter { $0 }.count, seconds: result.inferenceSeconds, queueSeconds: result.queueSeconds)
        return InferenceRun(model: model, inputs: inputs, embeddings: result.embeddings, queueMilliseconds: result.queueSeconds * 1000,
                            inferenceMilliseconds: result.inferenceSeconds * 1000)
    }

    /// A JSON response with the inference headers of SPEC §3.
    func json(_ body: String, run: InferenceRun? = nil, status: HTTPResponse.Status = .ok) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let run {
            headers[HTTPField.Name("x-compute-tokens")!] = String(run.inputs.tokenCount)
            headers[HTTPField.Name("x-queue-time-ms")!] = String(format: "%.1f", run.queueMilliseconds)
            headers[HTTPField.Name("x-inference-time-ms")!] = String(format: "%.1f", run.inferenceMilliseconds)
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
