import Engine
import Foundation
import Hummingbird
import Scheduling

/// Runs encoder work for HTTP requests: the seam between the HTTP layer and scheduling.
public protocol InferenceBackend: Sendable {
    /// Encodes one request's sequences, in order. Throws ``APIError`` for a full queue (429), a
    /// passed deadline (504), a model still loading past the deadline (503), an input too large for
    /// the memory budget (413), or a client that went away.
    func encode(_ sequences: [[Int32]], outputs: EmbeddingOutputs, deadline: ContinuousClock.Instant,
                isAbandoned: @escaping @Sendable () -> Bool) async throws -> InferenceResult
}

/// Embeddings of one request and where its time went.
public struct InferenceResult: Sendable {
    public var embeddings: [SequenceEmbedding]
    /// Waiting for the engine (and for the model to load).
    public var queueSeconds: Double
    /// Computing.
    public var inferenceSeconds: Double

    public init(embeddings: [SequenceEmbedding], queueSeconds: Double, inferenceSeconds: Double) {
        self.embeddings = embeddings
        self.queueSeconds = queueSeconds
        self.inferenceSeconds = inferenceSeconds
    }
}

/// The memory-aware ``BatchScheduler`` behind the HTTP routes, with its errors in OpenAI's shape.
public struct ScheduledBackend: InferenceBackend {
    let state: ModelState

    public init(state: ModelState) {
        self.state = state
    }

    public func encode(_ sequences: [[Int32]], outputs: EmbeddingOutputs, deadline: ContinuousClock.Instant,
                       isAbandoned: @escaping @Sendable () -> Bool) async throws -> InferenceResult {
        let arrived = ContinuousClock.now
        let scheduler = try await state.scheduler(before: deadline)
        let waitedForModel = (ContinuousClock.now - arrived).milliseconds / 1000
        do {
            let result = try await scheduler.submit(sequences, outputs: outputs, deadline: deadline, isAbandoned: isAbandoned)
            return InferenceResult(embeddings: result.embeddings, queueSeconds: waitedForModel + result.queueSeconds,
                                   inferenceSeconds: result.inferenceSeconds)
        } catch let error as SchedulingError {
            throw APIError(error)
        }
    }
}
