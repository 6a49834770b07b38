/// Admission (SPEC §5): how many requests, tokens and bytes the server takes on at once, as a value
/// with no lock and no clock (``RequestAdmission`` performs its decisions).
///
/// The memory budget covers the whole request, not only the forward pass. Besides the workspace,
/// which the batch scheduler packs, a request holds memory in two stages, each with a pool of its own:
/// 1. **Body**: from its arrival, its body and what decoding and tokenising it needs
///    (``enter(_:bodyBytes:)``, before the body is read).
/// 2. **Results**: once tokenised, its token ids, the results held until it completes and the
///    part of its response being written (``reserve(_:bytes:tokens:)``, before it is queued for the
///    engine). Responses are streamed in small pieces, so the encoded response is not held whole.
///
/// Two pools and not one, because a request waiting for its results room already holds its body:
/// in one shared pool, requests holding bodies could fill it while each waits for results room
/// only the others could free. With two, a results waiter waits only for requests that hold
/// results, and those finish without asking for more. A request leaves both pools at once, when
/// its response has been written (``leave(_:)``).
///
/// Besides bytes, admission bounds the requests inside the server (``Limits/maxRequests``,
/// 429 beyond) and the tokens admitted and not yet answered (``Limits/maxTokens``: 429 when
/// others hold them, 413 for a request that alone has more).
public struct AdmissionPolicy: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Requests admitted at once, waiting or working (`BGE_M3_QUEUE_CAPACITY`).
        public var maxRequests: Int
        /// Tokens of requests admitted and not yet answered (`BGE_M3_QUEUE_TOKENS`).
        public var maxTokens: Int

        public init(maxRequests: Int, maxTokens: Int) {
            self.maxRequests = maxRequests
            self.maxTokens = maxTokens
        }
    }

    public enum Decision: Sendable, Equatable {
        case granted
        /// Waits for room; ``leave(_:)`` or ``open(bodyBytes:resultBytes:)`` grants it later.
        case queued
        /// Never (or not now, for a full queue): the request leaves with this error.
        case refused(SchedulingError)
    }

    /// What a request holds memory for.
    public enum Stage: String, Sendable, Equatable {
        case body
        case results
    }

    public let limits: Limits
    public private(set) var bodies: MemoryPool
    public private(set) var results: MemoryPool
    private var entered = Set<AdmissionID>()
    private var tokens: [AdmissionID: Int] = [:]
    /// Tokens of requests admitted and not yet answered.
    public private(set) var tokenCount = 0

    /// Closed: requests may enter (up to ``Limits/maxRequests``) but wait for room until
    /// ``open(bodyBytes:resultBytes:)`` gives the pools their sizes.
    public init(limits: Limits, smallBytes: Int) {
        self.limits = limits
        bodies = MemoryPool(capacity: nil, smallBytes: smallBytes)
        results = MemoryPool(capacity: nil, smallBytes: smallBytes)
    }

    /// Requests admitted (waiting or holding).
    public var requestCount: Int { entered.count }

    /// A request arrives with a body of `bodyBytes` (the memory decoding and tokenising it needs).
    public mutating func enter(_ id: AdmissionID, bodyBytes: Int) -> Decision {
        guard entered.count < limits.maxRequests else { return .refused(.queueFull(capacity: limits.maxRequests)) }
        switch bodies.acquire(id, bytes: bodyBytes) {
        case .granted:
            entered.insert(id)
            return .granted
        case .queued:
            entered.insert(id)
            return .queued
        case .tooLarge:
            return .refused(.requestTooLarge(bytes: bodyBytes, limitBytes: bodies.capacity ?? 0, stage: .body))
        }
    }

    /// A request that has entered, now tokenised, asks for what it will hold until it is answered.
    public mutating func reserve(_ id: AdmissionID, bytes: Int, tokens count: Int) -> Decision {
        precondition(entered.contains(id) && tokens[id] == nil, "reserve once, after enter")
        if count > limits.maxTokens { return .refused(.tooManyTokens(tokens: count, limit: limits.maxTokens)) }
        if tokenCount + count > limits.maxTokens {
            return .refused(.tokenQueueFull(tokens: count, queuedTokens: tokenCount, limit: limits.maxTokens))
        }
        let grant = results.acquire(id, bytes: bytes)
        if grant == .tooLarge { return .refused(.requestTooLarge(bytes: bytes, limitBytes: results.capacity ?? 0, stage: .results)) }
        tokens[id] = count
        tokenCount += count
        return grant == .granted ? .granted : .queued
    }

    /// A request's work is computed: its tokens no longer count against ``Limits/maxTokens`` (they
    /// bound the work waiting for the engine, not responses being written).
    public mutating func computed(_ id: AdmissionID) {
        tokenCount -= tokens[id] ?? 0
        tokens[id] = 0
    }

    /// A request holds less of its body room now (its body is decoded). Returns the waiting
    /// requests granted as a result.
    public mutating func shrinkBody(_ id: AdmissionID, to bytes: Int) -> [AdmissionID] {
        bodies.shrink(id, to: bytes)
    }

    /// A request holds less of its results room now (the part of its response already written).
    /// Returns the waiting requests granted as a result.
    public mutating func shrinkResults(_ id: AdmissionID, to bytes: Int) -> [AdmissionID] {
        results.shrink(id, to: bytes)
    }

    /// A request leaves (answered, refused, expired or gone): everything it held or waited for is
    /// freed. Returns the waiting requests granted as a result. Leaving twice does nothing.
    public mutating func leave(_ id: AdmissionID) -> [AdmissionID] {
        guard entered.remove(id) != nil else { return [] }
        tokenCount -= tokens.removeValue(forKey: id) ?? 0
        return bodies.release(id) + results.release(id)
    }

    /// Sizes the pools (at start, once the memory plan is known). Returns the waiting requests
    /// now granted, and those refused because they can never fit (they have left).
    public mutating func open(bodyBytes: Int, resultBytes: Int) -> (granted: [AdmissionID], refused: [(AdmissionID, SchedulingError)]) {
        let (bodiesGranted, bodiesTooLarge) = bodies.setCapacity(bodyBytes)
        let (resultsGranted, resultsTooLarge) = results.setCapacity(resultBytes)
        var refused: [(AdmissionID, SchedulingError)] = []
        for (id, bytes) in bodiesTooLarge { refused.append((id, .requestTooLarge(bytes: bytes, limitBytes: bodyBytes, stage: .body))) }
        for (id, bytes) in resultsTooLarge { refused.append((id, .requestTooLarge(bytes: bytes, limitBytes: resultBytes, stage: .results))) }
        var granted = bodiesGranted + resultsGranted
        for (id, _) in refused { granted += leave(id) }
        return (granted.filter { id in !refused.contains { $0.0 == id } }, refused)
    }
}
