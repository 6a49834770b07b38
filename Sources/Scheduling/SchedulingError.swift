import Engine

/// Why the server did not compute a request. Each case says what to do about it.
public enum SchedulingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `capacity` requests are already inside the server.
    case queueFull(capacity: Int)
    /// The request's `tokens` would take the tokens admitted past `limit` (`queuedTokens` are).
    case tokenQueueFull(tokens: Int, queuedTokens: Int, limit: Int)
    /// The request alone has more tokens than the server admits at once.
    case tooManyTokens(tokens: Int, limit: Int)
    /// The request's memory at `stage` alone is more than the server keeps for all requests' at
    /// that stage.
    case requestTooLarge(bytes: Int, limitBytes: Int, stage: AdmissionPolicy.Stage)
    /// The request's deadline passed before it was answered.
    case deadlineExceeded
    /// At the engine's measured speed the request would be done in about `seconds` (with the work
    /// before it; `alone`: even without), more than the `remainingSeconds` its deadline leaves.
    case wouldMissDeadline(seconds: Double, remainingSeconds: Double, alone: Bool)
    /// The client went away, or the server is stopping.
    case cancelled
    /// Input `index` alone needs more workspace than the whole memory budget allows.
    case inputTooLarge(index: Int, tokens: Int, bytes: Int, budgetBytes: Int)
    /// The server cannot compute anything: its model failed to load (the reason says why).
    case modelUnavailable(String)
    /// The engine failed on a batch holding this request's input (after splitting, for memory).
    case engine(EngineError)

    public var description: String {
        switch self {
        case .queueFull(let capacity):
            return "the server is busy: \(capacity) requests are already queued or running (BGE_M3_QUEUE_CAPACITY); retry shortly"
        case .tokenQueueFull(let tokens, let queued, let limit):
            return "the server is busy: \(queued) tokens are queued or running and this request's \(tokens) would pass the limit of \(limit) "
                + "(BGE_M3_QUEUE_TOKENS); retry shortly, or send smaller requests"
        case .tooManyTokens(let tokens, let limit):
            return "the request has \(tokens) tokens, more than the \(limit) the server admits at once (BGE_M3_QUEUE_TOKENS); "
                + "split it into smaller requests"
        case .requestTooLarge(let bytes, let limit, let stage):
            let what = stage == .body ? "its body (read, decoded and tokenised)" : "its results and the response being written"
            return "the request needs about \(mebibytes(bytes)) for \(what), more than the \(mebibytes(limit)) the server keeps for all requests' "
                + (stage == .body ? "bodies" : "results") + " within its memory limit"
                + (stage == .body ? "; send a smaller body, or give the server more memory (its limit, or BGE_M3_REQUEST_MEMORY_SHARE)" : "")
        case .deadlineExceeded: return "the request's deadline passed before it was answered"
        case .wouldMissDeadline(let seconds, let remaining, let alone):
            let estimate = "at the engine's measured speed it needs about \(Int(seconds.rounded(.up))) s"
                + (alone ? "" : " with the work already queued") + ", and its deadline leaves \(Int(remaining)) s"
            return alone
                ? "the request is too large to compute before its deadline: \(estimate); split it into smaller requests, or raise BGE_M3_REQUEST_TIMEOUT_SECS"
                : "the server is busy: \(estimate); retry later (Retry-After), or send smaller requests"
        case .cancelled: return "the request was cancelled"
        case .inputTooLarge(let index, let tokens, let bytes, let budget):
            return "input \(index) (\(tokens) tokens) needs about \(mebibytes(bytes)) of workspace, more than the memory budget of \(mebibytes(budget)); "
                + "send a shorter input (max_length) or give the server more memory (BGE_M3_MEMORY_LIMIT, the container's limit)"
        case .modelUnavailable(let reason): return "the model failed to load: \(reason)"
        case .engine(let error): return error.description
        }
    }
}
