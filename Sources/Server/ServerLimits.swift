/// The limits and identity every route applies, from the command line and `BGE_M3_*` variables.
public struct ServerLimits: Sendable {
    /// Texts per request (`BGE_M3_MAX_BATCH`, SPEC default 256).
    public var maxBatch = 256
    /// Tokens per text, `<s>` and `</s>` included (`BGE_M3_MAX_SEQ_LENGTH`, 1…8192).
    public var maxSequenceLength = 8192
    /// Characters (Unicode scalars) per text, checked before tokenising (`BGE_M3_MAX_TEXT_CHARS`).
    public var maxTextCharacters = 200_000
    /// Bytes per request body (`BGE_M3_MAX_BODY_BYTES`).
    public var maxBodyBytes = 16 << 20
    /// Requests admitted at once (waiting or working) before new ones get 429 (`BGE_M3_QUEUE_CAPACITY`).
    public var queueCapacity = 256
    /// Tokens of admitted requests not yet answered before new ones get 429 (`BGE_M3_QUEUE_TOKENS`):
    /// by default one full request (256 texts of 8192 tokens).
    public var queueTokens = 256 * 8192
    /// Seconds a request may take before it gets 504 (`BGE_M3_REQUEST_TIMEOUT_SECS`).
    public var requestTimeoutSeconds = 60.0
    /// A bearer token every request must carry, or nil (`BGE_M3_API_KEY`).
    public var apiKey: String?
    /// The most tokens one request can carry: texts per request × tokens per text.
    var maxRequestTokens: Int { maxBatch * maxSequenceLength }
    /// Whether inputs may be token ids (`BGE_M3_TOKEN_IDS=accept`) or only texts (`reject`, the
    /// default). Ids are taken as XLM-R's; LangChain's `OpenAIEmbeddings` sends tiktoken's ids by
    /// default, which fall inside XLM-R's vocabulary and would embed a different text with a 200.
    public var acceptsTokenIDs = false
    /// The model name reported in responses.
    public var modelName = "BAAI/bge-m3"

    public init() {}
}
