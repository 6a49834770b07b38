import Foundation
import Metrics

/// Performs ``AdmissionPolicy``'s decisions for concurrent requests: a request that must wait for
/// room is suspended (within its deadline) and resumed when others leave.
///
/// Each admitted request holds an ``AdmissionTicket``; it leaves when the ticket is released, so a
/// response that is streamed keeps its room until its last byte is written, and a request that
/// fails anywhere frees its room without anyone having to remember to.
public final class RequestAdmission: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var policy: AdmissionPolicy
    private var waiters: [AdmissionID: CheckedContinuation<Void, any Error>] = [:]
    private var nextID = 0
    /// Set when nothing can be admitted any more (the model failed to load).
    private var refusal: SchedulingError?

    /// - Parameter smallBytes: requests holding at most this much pass larger ones waiting for room.
    public init(limits: AdmissionPolicy.Limits, smallBytes: Int = 1 << 20) {
        policy = AdmissionPolicy(limits: limits, smallBytes: smallBytes)
    }

    /// What admission holds now, for `/health` and `/metrics`.
    public struct Status: Sendable, Equatable {
        public var requests: Int
        public var tokens: Int
        public var bodyBytes: Int
        public var bodyCapacity: Int?
        public var resultBytes: Int
        public var resultCapacity: Int?
        /// Requests waiting for room (either stage).
        public var waiting: Int
    }

    public var status: Status {
        lock.withLock {
            Status(requests: policy.requestCount, tokens: policy.tokenCount, bodyBytes: policy.bodies.heldBytes,
                   bodyCapacity: policy.bodies.capacity, resultBytes: policy.results.heldBytes, resultCapacity: policy.results.capacity,
                   waiting: policy.bodies.waitingCount + policy.results.waitingCount)
        }
    }

    public var limits: AdmissionPolicy.Limits { lock.withLock { policy.limits } }

    /// Sizes the pools; requests that arrived earlier were waiting for this.
    public func open(bodyBytes: Int, resultBytes: Int) {
        let (granted, refused) = lock.withLock { policy.open(bodyBytes: bodyBytes, resultBytes: resultBytes) }
        resume(granted)
        for (id, error) in refused { takeWaiter(id)?.resume(throwing: error) }
        Gauge(label: "bgem3_admission_capacity_bytes", dimensions: [("stage", "body")]).record(bodyBytes)
        Gauge(label: "bgem3_admission_capacity_bytes", dimensions: [("stage", "results")]).record(resultBytes)
    }

    /// Refuses every waiting and future request with `error` (the model failed to load).
    public func refuseAll(_ error: SchedulingError) {
        let waiting: [CheckedContinuation<Void, any Error>] = lock.withLock {
            refusal = error
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        for waiter in waiting { waiter.resume(throwing: error) }
    }

    /// Admits a request whose body and its decoding need `bodyBytes`, waiting for room until
    /// `deadline`. Throws ``SchedulingError/queueFull(capacity:)``,
    /// ``SchedulingError/requestTooLarge(bytes:limitBytes:stage:)`` or
    /// ``SchedulingError/deadlineExceeded``.
    public func enter(bodyBytes: Int, deadline: ContinuousClock.Instant) async throws -> AdmissionTicket {
        let id = lock.withLock {
            nextID += 1
            return AdmissionID(nextID)
        }
        try await decide(id, deadline: deadline) { $0.enter(id, bodyBytes: bodyBytes) }
        record()
        return AdmissionTicket(id: id, admission: self)
    }

    func reserve(_ id: AdmissionID, bytes: Int, tokens: Int, deadline: ContinuousClock.Instant) async throws {
        try await decide(id, deadline: deadline) { $0.reserve(id, bytes: bytes, tokens: tokens) }
        record()
    }

    func computed(_ id: AdmissionID) {
        lock.withLock { policy.computed(id) }
        record()
    }

    func shrink(_ id: AdmissionID, _ stage: AdmissionPolicy.Stage, to bytes: Int) {
        let granted = lock.withLock { stage == .body ? policy.shrinkBody(id, to: bytes) : policy.shrinkResults(id, to: bytes) }
        resume(granted)
        record()
    }

    func leave(_ id: AdmissionID) {
        let granted = lock.withLock { policy.leave(id) }
        resume(granted)
        record()
    }

    // MARK: - Waiting

    /// Applies `decision`; when it queues, waits until granted, refused, the deadline or a cancellation.
    private func decide(_ id: AdmissionID, deadline: ContinuousClock.Instant,
                        _ decision: @escaping @Sendable (inout AdmissionPolicy) -> AdmissionPolicy.Decision) async throws {
        let timer = Task { [weak self] in
            try await Task.sleep(until: deadline, clock: .continuous)
            self?.giveUp(id, .deadlineExceeded)
        }
        defer { timer.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: AdmissionPolicy.Decision = lock.withLock {
                    if let refusal {
                        _ = policy.leave(id)
                        return .refused(refusal)
                    }
                    if ContinuousClock.now >= deadline || Task.isCancelled {
                        _ = policy.leave(id)
                        return .refused(Task.isCancelled ? .cancelled : .deadlineExceeded)
                    }
                    let outcome = decision(&policy)
                    if outcome == .queued { waiters[id] = continuation }
                    return outcome
                }
                switch outcome {
                case .granted: continuation.resume()
                case .queued: Counter(label: "bgem3_admission_waits_total").increment()
                case .refused(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: { [weak self] in
            self?.giveUp(id, .cancelled)
        }
    }

    /// A waiting request stops waiting: it leaves, which may let others in.
    private func giveUp(_ id: AdmissionID, _ error: SchedulingError) {
        let (waiter, granted): (CheckedContinuation<Void, any Error>?, [AdmissionID]) = lock.withLock {
            guard let waiter = waiters.removeValue(forKey: id) else { return (nil, []) }
            return (waiter, policy.leave(id))
        }
        waiter?.resume(throwing: error)
        resume(granted)
    }

    private func takeWaiter(_ id: AdmissionID) -> CheckedContinuation<Void, any Error>? {
        lock.withLock { waiters.removeValue(forKey: id) }
    }

    private func resume(_ granted: [AdmissionID]) {
        for id in granted { takeWaiter(id)?.resume() }
    }

    private func record() {
        let status = self.status
        Gauge(label: "bgem3_admitted_requests").record(status.requests)
        Gauge(label: "bgem3_admitted_tokens").record(status.tokens)
        Gauge(label: "bgem3_admission_held_bytes", dimensions: [("stage", "body")]).record(status.bodyBytes)
        Gauge(label: "bgem3_admission_held_bytes", dimensions: [("stage", "results")]).record(status.resultBytes)
    }
}

/// One admitted request's hold on the server's memory. The request leaves admission when the
/// ticket is released: keep it alive (e.g. captured by a streamed response body) for as long as
/// the request holds memory.
public final class AdmissionTicket: Sendable {
    let id: AdmissionID
    private let admission: RequestAdmission

    init(id: AdmissionID, admission: RequestAdmission) {
        self.id = id
        self.admission = admission
    }

    /// Asks for what the request will hold once tokenised (token ids, results, the response being
    /// written) and counts its `tokens`, waiting for room until `deadline`. Call at most once.
    public func reserve(bytes: Int, tokens: Int, deadline: ContinuousClock.Instant) async throws {
        try await admission.reserve(id, bytes: bytes, tokens: tokens, deadline: deadline)
    }

    /// The request's inputs have been computed: its tokens stop counting against the token limit.
    public func computed() {
        admission.computed(id)
    }

    /// The request now holds only `bytes` of what ``reserve(bytes:tokens:deadline:)`` asked for:
    /// call as a streamed response frees the results it has written, so waiting requests get in
    /// sooner.
    public func shrinkResults(to bytes: Int) {
        admission.shrink(id, .results, to: bytes)
    }

    /// The request now holds only `bytes` of what it entered with: call once its body is decoded
    /// (the decoder's peak is over).
    public func shrinkBody(to bytes: Int) {
        admission.shrink(id, .body, to: bytes)
    }

    deinit {
        admission.leave(id)
    }
}
