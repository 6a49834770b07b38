import Engine

/// How the scheduler forms batches; the server fills it from `BGE_M3_*` settings.
public struct SchedulerSettings: Sendable {
    /// How long the first bulk request of a burst waits for others to join its batch.
    public var batchWindow: Duration = .milliseconds(2)
    /// How long, after an interactive batch ends, the next one waits for that batch's clients to
    /// send their next queries. Without it, the first to return ran with the few that had queued,
    /// and 8 clients of 16-token queries stayed split into batches of 4-6 (8×16 tokens run at the
    /// engine's 1×128 rate, 1×32 at 0.7 of it). All 8 were back 5.6-8.9 ms (p10-p90, at most
    /// 10.9 ms) after their batch ended: on the way back each request took about 0.9 ms of the
    /// server's CPU and 0.3 ms of the Python client's (`perf`, Intel, 2 vCPUs, int8).
    public var interactiveRejoinWindow: Duration = .milliseconds(10)
    /// A request with at most this many tokens in all is interactive: it goes in a lane of its own
    /// that runs first, even inside a running bulk batch (at its next safe point).
    public var interactiveTokens = 2048
    /// Tokens per batch (bounds how long one batch holds results back).
    public var maxBatchTokens = 16_384
    /// Sequences per batch.
    public var maxBatchSequences = 256
    /// How long a request may take (`BGE_M3_REQUEST_TIMEOUT_SECS`): a bulk request that could not
    /// finish within twice this even on an idle engine is refused as too large.
    public var requestTimeout: Duration = .seconds(60)
    /// Unload the weights after this long without work; nil keeps them.
    public var idleTimeout: Duration?
    /// Batches that run at once (`BGE_M3_WORKERS`), each on a thread team of its own within its
    /// own share of the workspace budget, all sharing the weights.
    public var workers = 1
    /// Threads of each worker's team when there are several (a single worker runs on all the
    /// model's threads).
    public var threadsPerWorker = 1
    /// How much lower the compute threads' priority is than the request threads' (a `nice`
    /// increment; 0 keeps them equal).
    public var computeNiceness: Int32 = 5

    public init() {}
}

/// The memory the scheduler packs batches into.
public struct SchedulerBudget: Sendable, Equatable {
    /// Predicts a batch's workspace.
    public var cost: CostModel
    /// Workspace bytes per worker (SPEC §5): (limit × safety − resident) / workers.
    public var bytes: Int

    public init(cost: CostModel, bytes: Int) {
        self.cost = cost
        self.bytes = bytes
    }
}

/// Embeddings of one request and where its time went.
public struct ScheduledResult: Sendable {
    public var embeddings: [SequenceEmbedding]
    /// From admission to the start of the first batch holding one of its inputs.
    public var queueSeconds: Double
    /// From then to the end of the last such batch.
    public var inferenceSeconds: Double
}
