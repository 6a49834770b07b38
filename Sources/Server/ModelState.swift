import Engine
import Foundation
import Scheduling

/// The model and its scheduler once loaded, and how far start-up has come. Requests that arrive
/// earlier wait within their deadline: for the model (to tokenise), then in the scheduler's queue
/// until the memory probe and warm-up are done.
public actor ModelState {
    public enum Phase: Sendable, Equatable {
        /// Loading the weights.
        case loading
        /// Measuring faster precisions against fp32 on the loaded weights (`--precision auto`).
        case checkingPrecision
        /// Loaded; measuring memory (probe) and warming up. Requests queue.
        case probing
        case ready
        /// Shutting down (SIGTERM): still serving, but `/ready` answers 503 so that load balancers
        /// stop sending requests before the server stops accepting them.
        case draining
        case failed(String)
    }

    public private(set) var phase: Phase = .loading
    public private(set) var memoryPlan: MemoryPlan?
    public private(set) var precisionDecision: PrecisionDecision?
    private var loaded: (model: BGEM3Model, scheduler: BatchScheduler)?
    private var waiters: [UUID: CheckedContinuation<(model: BGEM3Model, scheduler: BatchScheduler), any Error>] = [:]

    public init() {}

    /// The precision check is running (`/health` says so).
    public func startCheckingPrecision() {
        if phase == .loading { phase = .checkingPrecision }
    }

    /// The model is loaded: requests may tokenise and queue; the scheduler is still closed.
    public func finishLoading(_ model: BGEM3Model, scheduler: BatchScheduler, precision: PrecisionDecision) {
        loaded = (model, scheduler)
        precisionDecision = precision
        phase = .probing
        for waiter in waiters.values { waiter.resume(returning: (model, scheduler)) }
        waiters.removeAll()
    }

    /// Memory model and warm-up done: `/ready` answers 200.
    public func finishStarting(_ plan: MemoryPlan) {
        memoryPlan = plan
        phase = .ready
    }

    /// SIGTERM: `/ready` fails from now on; requests are still served.
    public func startDraining() {
        if phase == .ready { phase = .draining }
    }

    public func failLoading(_ message: String) {
        phase = .failed(message)
        let error = APIError(status: .serviceUnavailable, message: "the model failed to load: \(message)", type: "server_error", code: "model_load_failed")
        for waiter in waiters.values { waiter.resume(throwing: error) }
        waiters.removeAll()
    }

    public var model: BGEM3Model? { loaded?.model }
    public var scheduler: BatchScheduler? { loaded?.scheduler }

    /// The model, waiting for it to load until `deadline`.
    func model(before deadline: ContinuousClock.Instant) async throws -> BGEM3Model {
        try await components(before: deadline).model
    }

    func scheduler(before deadline: ContinuousClock.Instant) async throws -> BatchScheduler {
        try await components(before: deadline).scheduler
    }

    private func components(before deadline: ContinuousClock.Instant) async throws -> (model: BGEM3Model, scheduler: BatchScheduler) {
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
