import Dispatch
import Engine
import Foundation
import Hummingbird

/// Runs encoder work for HTTP requests: the seam between the HTTP layer and scheduling.
///
/// The memory-aware scheduler (cross-request batching within a memory budget) will implement
/// this protocol; ``SerialInferenceQueue`` is the simple bounded queue behind it for now.
public protocol InferenceBackend: Sendable {
    /// Encodes one request's sequences, in order. Throws ``APIError`` for a full queue (429), a
    /// passed deadline (504) or a model still loading past the deadline (503).
    func encode(_ sequences: [[Int32]], outputs: EmbeddingOutputs, deadline: ContinuousClock.Instant) async throws -> InferenceResult
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

/// One request at a time, on a dedicated thread (never on Swift's cooperative pool), with a
/// bounded number of requests waiting.
public final class SerialInferenceQueue: InferenceBackend, @unchecked Sendable {
    private let state: ModelState
    private let capacity: Int
    private let queue = DispatchQueue(label: "bgem3.inference", qos: .userInitiated)
    private let lock = NSLock()
    private var waiting = 0

    public init(state: ModelState, capacity: Int) {
        self.state = state
        self.capacity = capacity
    }

    public func encode(_ sequences: [[Int32]], outputs: EmbeddingOutputs, deadline: ContinuousClock.Instant) async throws -> InferenceResult {
        let arrived = ContinuousClock.now
        let model = try await state.model(before: deadline)
        let admitted = lock.withLock { () -> Bool in
            guard waiting < capacity else { return false }
            waiting += 1
            ServerMetrics.queueDepth(waiting)
            return true
        }
        guard admitted else {
            throw APIError(status: .tooManyRequests, message: "the queue is full (\(capacity) requests); retry shortly",
                           type: "rate_limit_error", code: "queue_full")
        }
        defer {
            lock.withLock {
                waiting -= 1
                ServerMetrics.queueDepth(waiting)
            }
        }
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                let started = ContinuousClock.now
                guard started < deadline else {
                    continuation.resume(throwing: APIError(status: .gatewayTimeout, message: "the request's deadline passed while it waited",
                                                           type: "timeout_error", code: "deadline_exceeded"))
                    return
                }
                do {
                    let embeddings = try model.encode(sequences, outputs: outputs)
                    continuation.resume(returning: InferenceResult(
                        embeddings: embeddings, queueSeconds: (started - arrived).milliseconds / 1000,
                        inferenceSeconds: (ContinuousClock.now - started).milliseconds / 1000))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

/// The model once it is loaded; requests that arrive earlier wait for it within their deadline.
public actor ModelState {
    public enum Phase: Sendable, Equatable {
        case loading
        case ready
        case failed(String)
    }

    public private(set) var phase: Phase = .loading
    private var loaded: BGEM3Model?
    private var waiters: [UUID: CheckedContinuation<BGEM3Model, any Error>] = [:]

    public init() {}

    public func finishLoading(_ model: BGEM3Model) {
        loaded = model
        phase = .ready
        for waiter in waiters.values { waiter.resume(returning: model) }
        waiters.removeAll()
    }

    public func failLoading(_ message: String) {
        phase = .failed(message)
        let error = APIError(status: .serviceUnavailable, message: "the model failed to load: \(message)", type: "server_error", code: "model_load_failed")
        for waiter in waiters.values { waiter.resume(throwing: error) }
        waiters.removeAll()
    }

    public var model: BGEM3Model? { loaded }

    /// The model, waiting for it to load until `deadline`.
    func model(before deadline: ContinuousClock.Instant) async throws -> BGEM3Model {
        if let loaded { return loaded }
        if case .failed(let message) = phase {
            throw APIError(status: .serviceUnavailable, message: "the model failed to load: \(message)", type: "server_error", code: "model_load_failed")
        }
        let id = UUID()
        let timeout = Task {
            try await Task.sleep(until: deadline, clock: .continuous)
            self.expire(id)
        }
        defer { timeout.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            waiters[id] = continuation
        }
    }

    private func expire(_ id: UUID) {
        waiters.removeValue(forKey: id)?.resume(throwing: APIError(
            status: .serviceUnavailable, message: "the model is still loading; retry shortly", type: "server_error", code: "loading"))
    }
}
