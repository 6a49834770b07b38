import Engine
import Foundation
import HTTPTypes
import Hummingbird
import Scheduling
import Tokenizer

/// The result of running one request's inputs through the engine.
struct InferenceRun: Sendable {
    let model: BGEM3Model
    let inputs: PreparedInputs
    let embeddings: [SequenceEmbedding]
    let queueMilliseconds: Double
    let inferenceMilliseconds: Double
    /// What admission reserved for the request's results, in all and per input.
    let reservedBytes: Int
    let itemBytes: [Int]

    /// `"usage": {...}`: the real tokens, special tokens included.
    var usageJSON: String {
        "\"usage\":{\"prompt_tokens\":\(inputs.tokenCount),\"total_tokens\":\(inputs.tokenCount)}"
    }

    /// The embeddings, handed to a streamed response that frees each one once it is written.
    func results(_ context: ServerRequestContext) -> ResultsBeingWritten {
        ResultsBeingWritten(embeddings, itemBytes: itemBytes, reservedBytes: reservedBytes, ticket: context.admission)
    }
}

/// What the routes share: limits, the model state, admission, the tokenising threads and the
/// inference backend.
public struct ServerServices: Sendable {
    public let limits: ServerLimits
    public let state: ModelState
    public let backend: any InferenceBackend
    public let admission: RequestAdmission
    let tokenizing: TokenizationWorkers
    public let startedAt = Date()

    public init(limits: ServerLimits, state: ModelState, backend: any InferenceBackend, admission: RequestAdmission) {
        self.limits = limits
        self.state = state
        self.backend = backend
        self.admission = admission
        tokenizing = TokenizationWorkers(threads: CPUQuota.available())
    }

    /// The model, waiting for it (within the request's deadline) if it is still loading.
    func model(before deadline: ContinuousClock.Instant) async throws -> BGEM3Model {
        try await state.model(before: deadline)
    }

    /// Tokenises (on the tokenising threads), reserves the request's results in the memory budget,
    /// encodes and times one request.
    /// - Parameter truncate: false makes a too-long input a 400 naming it.
    /// - Parameter truncation: which end of a too-long text is cut.
    func run(_ input: EmbeddingInput, outputs: EmbeddingOutputs, context: ServerRequestContext, maxLength: Int? = nil,
             truncate: Bool = true, truncation: TruncationDirection = .right) async throws -> InferenceRun {
        let model = try await self.model(before: context.deadline)
        let limit = min(limits.maxSequenceLength, model.maximumSequenceLength)
        if let maxLength, !(2...limit).contains(maxLength) {
            throw APIError.invalidRequest("max_length must be between 2 and \(limit)", param: "max_length", code: "invalid_value")
        }
        let tokenizer = try model.requireTokenizer()
        let limits = self.limits
        let inputs = try await tokenizing.run {
            try PreparedInputs.prepare(input, tokenizer: tokenizer, limits: limits, maxLength: maxLength ?? limit, truncate: truncate, truncation: truncation)
        }
        let itemBytes = inputs.sequences.map { RequestFootprint.item(tokens: $0.count, outputs: outputs, dimension: model.dimension) }
        let reservedBytes = RequestFootprint.results(items: itemBytes)
        try await reserve(reservedBytes, inputs: inputs, outputs: outputs, dimension: model.dimension, context: context)
        let result = try await backend.encode(inputs.sequences, outputs: outputs, deadline: context.deadline,
                                              isAbandoned: { [connection = context.connection] in connection.isGone })
        context.admission?.computed()
        ServerMetrics.inference(sequences: inputs.sequences.count, tokens: inputs.tokenCount,
                                truncated: inputs.truncated.filter { $0 }.count, seconds: result.inferenceSeconds, queueSeconds: result.queueSeconds)
        return InferenceRun(model: model, inputs: inputs, embeddings: result.embeddings, queueMilliseconds: result.queueSeconds * 1000,
                            inferenceMilliseconds: result.inferenceSeconds * 1000, reservedBytes: reservedBytes, itemBytes: itemBytes)
    }

    /// Waits for room for what the request will hold until it is answered; a request that could
    /// never fit gets 413 saying how many of its texts would.
    private func reserve(_ bytes: Int, inputs: PreparedInputs, outputs: EmbeddingOutputs, dimension: Int, context: ServerRequestContext) async throws {
        guard let ticket = context.admission else { return }
        do {
            try await ticket.reserve(bytes: bytes, tokens: inputs.tokenCount, deadline: context.deadline)
        } catch SchedulingError.requestTooLarge(let bytes, let limit, .results) {
            let perText = max(1, (bytes - RequestFootprint.response) / inputs.sequences.count)
            let fitting = max(0, limit - RequestFootprint.response) / perText
            var advice = fitting >= 1
                ? "about \(fitting) of these \(inputs.sequences.count) texts would fit in one request: send fewer per request"
                : "even one of these texts is too large: send shorter texts (max_length)"
            if outputs.contains(.colbert) {
                advice += "; ColBERT vectors are the bulk (\(4 * dimension) bytes per token): ask for them only where needed"
            }
            throw APIError(SchedulingError.requestTooLarge(bytes: bytes, limitBytes: limit, stage: .results)).adding(advice)
        }
    }

    /// A JSON response with the inference headers of SPEC §3, its body written by `write` as it is
    /// produced (``JSONBodyStream``). The request's admission is held until the last byte is written.
    /// `write` must not capture the ``InferenceRun`` (its embeddings would stay in memory until the
    /// end): it takes them from ``InferenceRun/results(_:)``.
    func stream(run: InferenceRun?, context: ServerRequestContext, status: HTTPResponse.Status = .ok,
                _ write: @escaping @Sendable (inout JSONBodyStream) async throws -> Void) -> Response {
        let ticket = context.admission
        return Response(status: status, headers: headers(run: run), body: ResponseBody { writer in
            var stream = JSONBodyStream(writer)
            try await write(&stream)
            try await stream.finish()
            withExtendedLifetime(ticket) {}
        })
    }

    /// A small response, encoded whole by `JSONEncoder`.
    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONEncoder().encode(value)
        return Response(status: status, headers: headers(run: nil), body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A small JSON response, whole.
    func json(_ body: String, run: InferenceRun? = nil, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: headers(run: run), body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    private func headers(run: InferenceRun?) -> HTTPFields {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let run {
            headers[HTTPField.Name("x-compute-tokens")!] = String(run.inputs.tokenCount)
            headers[HTTPField.Name("x-queue-time-ms")!] = String(format: "%.1f", run.queueMilliseconds)
            headers[HTTPField.Name("x-inference-time-ms")!] = String(format: "%.1f", run.inferenceMilliseconds)
        }
        return headers
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
