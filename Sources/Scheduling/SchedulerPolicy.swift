/// What the batch scheduler does next (SPEC §5), as a value with no thread and no clock of its own.
///
/// Each of the scheduler's worker threads asks ``next(now:weightsLoaded:batchesRunning:insideBulkBatch:isGone:)`` for a
/// ``Decision`` and performs it: run a batch, answer failed requests, wait, unload idle weights, or
/// stop; it reports back with ``completed(_:now:)`` or ``failed(_:)``. Keeping the policy apart from
/// the thread that performs it (as Hummingbird keeps its HTTP/2 connection state machine apart from
/// the channel handler) lets tests drive it with explicit times, without sleeping or polling.
///
/// - Lanes: a request of at most ``SchedulerSettings/interactiveTokens`` tokens is interactive.
///   Interactive batches come before bulk ones and may also run inside a running bulk batch, at its
///   next safe point, in a workspace of their own; the budget reserves room for them. Clients that
///   send short queries one after another come back together when their batch ends, so the next
///   interactive batch waits up to ``SchedulerSettings/interactiveRejoinWindow`` for as many inputs
///   as the ended batch held and the queue then held, and they share one batch again. Bulk
///   requests take turns: each bulk batch is built around the next input of the request served the
///   fewest tokens so far, then filled by ``BatchPacker`` from all waiting inputs.
/// - Memory: every batch's predicted workspace fits its lane's share of the budget; an input that
///   alone exceeds the bulk share runs alone (without interactive work inside it) if it fits the
///   whole budget, and fails with ``SchedulingError/inputTooLarge(index:tokens:bytes:budgetBytes:)``
///   otherwise.
/// - Requests: inputs of a request past its deadline, or whose client went away, leave the queue
///   before they run.
/// - Start-up: closed until ``open(_:)``; nothing runs before, so a probe can measure undisturbed.
public struct SchedulerPolicy: Sendable {
    /// One request, as the policy knows it.
    public struct JobID: Hashable, Comparable, Sendable, CustomStringConvertible {
        public let rawValue: Int
        public init(_ rawValue: Int) { self.rawValue = rawValue }
        public static func < (lhs: JobID, rhs: JobID) -> Bool { lhs.rawValue < rhs.rawValue }
        public var description: String { "job \(rawValue)" }
    }

    /// One input of one request.
    public struct Item: Sendable, Equatable {
        public let job: JobID
        /// The input's position in its request.
        public let index: Int
        /// Tokens, special tokens included.
        public let length: Int
    }

    public enum Lane: Sendable, Equatable {
        /// Short requests; may run inside a bulk batch, in the interactive workspace.
        case interactive
        /// Everything else, packed within the bulk share of the budget.
        case bulk
        /// One input over the bulk share: runs with the whole budget and nothing inside it.
        case alone
    }

    public struct Batch: Sendable, Equatable {
        public var items: [Item]
        public var lane: Lane
        /// Workspace the cost model predicts for this batch.
        public var predictedBytes: Int
        public init(items: [Item], lane: Lane, predictedBytes: Int) {
            self.items = items
            self.lane = lane
            self.predictedBytes = predictedBytes
        }
    }

    /// A request the policy has given up on, and why.
    public struct Failure: Sendable, Equatable {
        public let job: JobID
        public let error: SchedulingError
        public init(job: JobID, error: SchedulingError) {
            self.job = job
            self.error = error
        }
    }

    public enum Decision: Sendable, Equatable {
        /// Encode this batch now; its inputs have left the queue.
        case run(Batch)
        /// Answer these requests with their errors; they have left the queue.
        case fail([Failure])
        /// Nothing to do before `until`; nil: until something changes (a submission, a
        /// cancellation, ``open(_:)``, ``stop()``).
        case wait(until: ContinuousClock.Instant?)
        /// The weights have been idle for ``SchedulerSettings/idleTimeout``: free them.
        case unloadWeights
        /// Stopped: the worker ends.
        case stop
    }

    private struct JobState {
        let arrived: ContinuousClock.Instant
        let deadline: ContinuousClock.Instant
        let interactive: Bool
        var remaining: Int
        /// Tokens of this request not computed yet.
        var remainingTokens: Int
        /// Tokens of this request computed so far: bulk requests take turns by it.
        var served = 0
    }

    public let settings: SchedulerSettings
    public private(set) var budget: SchedulerBudget?
    private var jobs: [JobID: JobState] = [:]
    private var interactiveQueue: [Item] = []
    private var bulkQueue: [Item] = []
    private var stopping = false
    private var lastActivity: ContinuousClock.Instant
    /// When the last interactive batch ended, and the inputs the next one waits for: the ended
    /// batch's and those queued then. Waiting only for as many as the ended batch held is a fixed
    /// point: 8 clients stayed split into batches of 5 and 3 with a 10 ms window.
    private var rejoin: (inputs: Int, ended: ContinuousClock.Instant)?

    public init(settings: SchedulerSettings, now: ContinuousClock.Instant) {
        self.settings = settings
        lastActivity = now
    }

    /// Requests submitted and not yet completed, failed or cancelled.
    public var jobCount: Int { jobs.count }

    /// Whether ``stop()`` was called.
    public var isStopped: Bool { stopping }

    /// Inputs waiting to run.
    public var queuedInputs: Int { interactiveQueue.count + bulkQueue.count }

    /// Starts running batches within `budget` (or changes the budget).
    public mutating func open(_ budget: SchedulerBudget) {
        self.budget = budget
    }

    /// Queues a request's inputs of these lengths (at least one). `id` must be new.
    public mutating func submit(_ id: JobID, lengths: [Int], deadline: ContinuousClock.Instant, now: ContinuousClock.Instant) {
        precondition(jobs[id] == nil && !lengths.isEmpty, "a new job with inputs")
        let interactive = lengths.reduce(0, +) <= settings.interactiveTokens
        jobs[id] = JobState(arrived: now, deadline: deadline, interactive: interactive, remaining: lengths.count,
                            remainingTokens: lengths.reduce(0, +))
        let items = lengths.enumerated().map { Item(job: id, index: $0.offset, length: $0.element) }
        if interactive { interactiveQueue.append(contentsOf: items) } else { bulkQueue.append(contentsOf: items) }
        lastActivity = now
    }

    /// Forgets a request (deadline, cancellation): its waiting inputs leave the queue, and results of
    /// a batch already running are ignored. Returns whether the request was still known.
    @discardableResult
    public mutating func cancel(_ id: JobID) -> Bool {
        guard jobs.removeValue(forKey: id) != nil else { return false }
        interactiveQueue.removeAll { $0.job == id }
        bulkQueue.removeAll { $0.job == id }
        return true
    }

    /// Stops: returns the requests still known, which the caller fails.
    public mutating func stop() -> [JobID] {
        stopping = true
        let known = jobs.keys.sorted()
        jobs.removeAll()
        interactiveQueue.removeAll()
        bulkQueue.removeAll()
        return known
    }

    /// The next thing to do.
    ///
    /// - Parameters:
    ///   - weightsLoaded: whether the engine holds its weights (idle unload applies only then).
    ///   - batchesRunning: batches other workers are running (idle unload waits for none: a batch
    ///     longer than the idle timeout would otherwise see the weights freed and loaded again
    ///     beside its own copy).
    ///   - insideBulkBatch: asked at a safe point of a running bulk batch: only interactive work may run.
    ///   - isGone: whether a request's client went away (its inputs are dropped).
    public mutating func next(now: ContinuousClock.Instant, weightsLoaded: Bool, batchesRunning: Int = 0, insideBulkBatch: Bool = false,
                              isGone: (JobID) -> Bool = { _ in false }) -> Decision {
        if stopping { return .stop }
        let failures = purge(now: now, isGone: isGone)
        if !failures.isEmpty { return .fail(failures) }
        guard let budget else { return .wait(until: nil) }
        let shares = BudgetShares(budget: budget, interactiveTokens: settings.interactiveTokens)

        // An interactive input too large for the interactive share (a small budget) waits as bulk.
        let tooLargeForShare = { (item: Item) in budget.cost.bytes(length: item.length) > Double(shares.interactive) }
        if interactiveQueue.contains(where: tooLargeForShare) {
            bulkQueue.append(contentsOf: interactiveQueue.filter(tooLargeForShare))
            interactiveQueue.removeAll(where: tooLargeForShare)
        }
        if !interactiveQueue.isEmpty {
            let limits = BatchLimits(budgetBytes: shares.interactive, maxTokens: max(settings.interactiveTokens, 1),
                                     maxSequences: settings.maxBatchSequences)
            var queue = interactiveQueue
            let batch = take(from: &queue, around: 0, lane: .interactive, cost: budget.cost, limits: limits)
            // A batch that leaves inputs behind is full: waiting would not make it larger.
            if !insideBulkBatch, queue.isEmpty, let rejoinEnd = rejoinWindowEnd(now: now) { return .wait(until: rejoinEnd) }
            interactiveQueue = queue
            return .run(batch)
        }
        if insideBulkBatch { return .wait(until: nil) }
        guard !bulkQueue.isEmpty else { return idle(now: now, weightsLoaded: weightsLoaded && batchesRunning == 0) }

        // The batch window: the first bulk request of a burst waits a moment for others to join it.
        let windowEnd = bulkQueue.map { jobs[$0.job]!.arrived }.min()! + settings.batchWindow
        if now < windowEnd { return .wait(until: windowEnd) }

        // The head: the next input of the bulk request served the fewest tokens (oldest on ties).
        let headIndex = bulkQueue.indices.min { a, b in
            let (first, second) = (bulkQueue[a], bulkQueue[b])
            let (x, y) = (jobs[first.job]!.served, jobs[second.job]!.served)
            return x < y || (x == y && (first.job < second.job || (first.job == second.job && a < b)))
        }!
        let head = bulkQueue[headIndex]
        let alone = budget.cost.bytes(length: head.length)
        if alone > Double(shares.bulk) {
            if alone > Double(budget.bytes) {
                cancel(head.job)
                return .fail([Failure(job: head.job, error: .inputTooLarge(index: head.index, tokens: head.length, bytes: Int(alone),
                                                                           budgetBytes: budget.bytes))])
            }
            bulkQueue.remove(at: headIndex)
            return .run(Batch(items: [head], lane: .alone, predictedBytes: Int(alone)))
        }
        let limits = BatchLimits(budgetBytes: shares.bulk, maxTokens: settings.maxBatchTokens, maxSequences: settings.maxBatchSequences)
        return .run(take(from: &bulkQueue, around: headIndex, lane: .bulk, cost: budget.cost, limits: limits))
    }

    /// Whether a request of these lengths would be interactive.
    public func isInteractive(_ lengths: [Int]) -> Bool {
        lengths.reduce(0, +) <= settings.interactiveTokens
    }

    /// The tokens the engine would compute, were a request of these lengths submitted now, before
    /// its last input is done: its own, every interactive request's (they go first), and, for a
    /// bulk request, of each other bulk request at most as many as its own (bulk requests take
    /// turns by tokens served, so a request does not wait for all the bulk work before it).
    public func tokensUntilDone(_ lengths: [Int]) -> Int {
        let own = lengths.reduce(0, +)
        var total = own
        for job in jobs.values {
            if job.interactive { total += job.remainingTokens } else if !isInteractive(lengths) { total += min(job.remainingTokens, own) }
        }
        return total
    }

    /// A batch ran: returns the requests it completed (each leaves the policy).
    public mutating func completed(_ batch: Batch, now: ContinuousClock.Instant) -> [JobID] {
        lastActivity = now
        if batch.lane == .interactive { rejoin = (batch.items.count + interactiveQueue.count, now) }
        var done: [JobID] = []
        for item in batch.items {
            guard var job = jobs[item.job] else { continue }  // cancelled while it ran
            job.remaining -= 1
            job.remainingTokens -= item.length
            job.served += item.length
            if job.remaining == 0 {
                jobs[item.job] = nil
                done.append(item.job)
            } else {
                jobs[item.job] = job
            }
        }
        return done
    }

    /// A batch failed in the engine: returns the requests it held, which leave the policy (their
    /// other inputs too).
    public mutating func failed(_ batch: Batch) -> [JobID] {
        var seen = Set<JobID>()
        return batch.items.map(\.job).filter { seen.insert($0).inserted && cancel($0) }
    }

    /// A batch split in two, for a retry after an allocation failure.
    public static func halves(of batch: Batch) -> [Batch] {
        let half = batch.items.count / 2
        return [Batch(items: Array(batch.items[..<half]), lane: batch.lane, predictedBytes: 0),
                Batch(items: Array(batch.items[half...]), lane: batch.lane, predictedBytes: 0)]
    }

    // MARK: - Helpers

    /// When the interactive queue stops waiting for the last interactive batch's clients to come
    /// back; nil when it need not wait (they are back, or the window has passed).
    private func rejoinWindowEnd(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard let rejoin, interactiveQueue.count < rejoin.inputs else { return nil }
        let end = rejoin.ended + settings.interactiveRejoinWindow
        return now < end ? end : nil
    }

    private mutating func idle(now: ContinuousClock.Instant, weightsLoaded: Bool) -> Decision {
        guard weightsLoaded, let timeout = settings.idleTimeout else { return .wait(until: nil) }
        let due = lastActivity + timeout
        return now >= due ? .unloadWeights : .wait(until: due)
    }

    /// Removes the packed batch holding `queue[head]` from `queue`. The packer looks at the head and
    /// the oldest waiting inputs (at most 4,096, so that packing stays cheap).
    private func take(from queue: inout [Item], around head: Int, lane: Lane, cost: CostModel, limits: BatchLimits) -> Batch {
        var candidates = Array(queue.indices.prefix(4096))
        if !candidates.contains(head) { candidates.append(head) }
        let packed = BatchPacker.pack(lengths: candidates.map { queue[$0].length }, cost: cost, limits: limits)
        let headPosition = candidates.firstIndex(of: head)!
        let chosen = Set((packed.first { $0.contains(headPosition) } ?? [headPosition]).map { candidates[$0] })
        let items = chosen.sorted().map { queue[$0] }
        queue = queue.enumerated().filter { !chosen.contains($0.offset) }.map(\.element)
        return Batch(items: items, lane: lane, predictedBytes: cost.bytes(lengths: items.map(\.length)))
    }

    /// Removes requests past their deadline or whose client went away; returns them as failures.
    private mutating func purge(now: ContinuousClock.Instant, isGone: (JobID) -> Bool) -> [Failure] {
        var failures: [Failure] = []
        for id in jobs.keys.sorted() {
            if jobs[id]!.deadline <= now {
                failures.append(Failure(job: id, error: .deadlineExceeded))
            } else if isGone(id) {
                failures.append(Failure(job: id, error: .cancelled))
            }
        }
        for failure in failures { cancel(failure.job) }
        return failures
    }
}

/// The budget split between the lanes: interactive batches may run inside a bulk batch, so both
/// together must fit.
struct BudgetShares {
    let interactive: Int
    let bulk: Int

    init(budget: SchedulerBudget, interactiveTokens: Int) {
        // The interactive share: one full interactive batch, at most a quarter of the budget.
        let wanted = budget.cost.bytes(lengths: [interactiveTokens])
        interactive = min(wanted, budget.bytes / 4)
        bulk = max(0, budget.bytes - interactive)
    }
}
