/// Why a batch could not be encoded. Every case names the input and the limit.
public enum EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Input `index` is empty.
    case emptySequence(index: Int)
    /// Input `index` has `length` tokens; the model takes at most `limit`.
    case sequenceTooLong(index: Int, length: Int, limit: Int)
    /// Input `index` holds a token id outside the vocabulary.
    case tokenOutOfRange(index: Int, token: Int32, vocabularySize: Int)
    /// A buffer of `bytes` could not be allocated.
    case outOfMemory(bytes: Int)
    /// The matrix library failed.
    case kernel(String)
    /// The weights, unloaded while idle, could not be loaded again.
    case reloadFailed(String)

    public var description: String {
        switch self {
        case .emptySequence(let index): return "input \(index) has no tokens"
        case .sequenceTooLong(let index, let length, let limit): return "input \(index) has \(length) tokens; the model accepts at most \(limit)"
        case .tokenOutOfRange(let index, let token, let size): return "input \(index) has token id \(token), outside the vocabulary of \(size)"
        case .outOfMemory(let bytes): return "could not allocate \(bytes) bytes of workspace"
        case .kernel(let message): return "inference kernel failed: \(message)"
        case .reloadFailed(let message): return "the model could not be loaded again after an idle unload: \(message)"
        }
    }
}
