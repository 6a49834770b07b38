import Engine

/// Why the scheduler did not return a request's embeddings. Each case says what to do about it.
public enum SchedulingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `capacity` requests are already waiting.
    case queueFull(capacity: Int)
    /// The request's deadline passed before its last batch ran.
    case deadlineExceeded
    /// The client went away, or the server is stopping.
    case cancelled
    /// Input `index` alone needs more workspace than the whole memory budget allows.
    case inputTooLarge(index: Int, tokens: Int, bytes: Int, budgetBytes: Int)
    /// The engine failed on a batch holding this request's input (after splitting, for memory).
    case engine(EngineError)

    public var description: String {
        switch self {
        case .queueFull(let capacity): return "the queue is full (\(capacity) requests); retry shortly"
        case .deadlineExceeded: return "the request's deadline passed before it was computed"
        case .cancelled: return "the request was cancelled"
        case .inputTooLarge(let index, let tokens, let bytes, let budget):
            return "input \(index) (\(tokens) tokens) needs about \(mebibytes(bytes)) of workspace, more than the memory budget of \(mebibytes(budget)); "
                + "send a shorter input (max_length) or give the server more memory (BGE_M3_MEMORY_LIMIT, the container's limit)"
        case .engine(let error): return error.description
        }
    }
}
