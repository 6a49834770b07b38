import Engine
import Foundation
import Logging
import Metrics

/// The memory-aware scheduler of SPEC §5: one queue across requests, batches packed within the
/// memory budget, run one at a time on a dedicated thread.
///
/// - Lanes: a request of at most ``SchedulerSettings/interactiveTokens`` tokens is interactive.
///   Interactive batches run before bulk ones and also inside a running bulk batch, at its next
///   safe point (every few milliseconds), in a workspace of their own; the budget reserves room for
///   them. Bulk requests take turns: each bulk batch is built around the next input of the request
///   served the fewest tokens so far, then filled by ``BatchPacker`` from all waiting inputs.
/// - Memory: every batch's predicted workspace fits its lane's share of the budget; an input that
///   alone exceeds the bulk share runs alone (without interactive work inside it) if it fits the
///   whole budget, and fails with ``SchedulingError/inputTooLarge(index:tokens:bytes:budgetBytes:)``
///   otherwise. An allocation failure splits the batch in halves and retries.
/// - Requests: bounded admission (``SchedulingError/queueFull(capacity:)``), a deadline
///   (``SchedulingError/deadlineExceeded``), and inputs of a request whose client went away are
///   dropped before they run. Results return in input order.
/// - Start-up: closed until ``open(_:)``; requests submitted earlier wait (within their deadline)
///   and nothing runs meanwhile, so a probe can measure undisturbed.
public final class BatchScheduler: @unchecked Sendable {
    private let encoder: any BatchEncoder
    private let settings: SchedulerSettings
    private let gauge: (any MemoryGauge)?
    private let logger: Logger
    private let bulkWorkspace = EncoderWorkspace()
    private let interactiveWorkspace = EncoderWorkspace()

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var budget: SchedulerBudget?
    private var interactiveQueue: [Item] = []
    private var bulkQueue: [Item] = []
    private var admitted = 0
    private var nextJobID = 0
    private var stopping = false
    private var lastActivity = ContinuousClock.now
    private var oomSplits = 0

    public init(encoder: any BatchEncoder, settings: SchedulerSettings, gauge: (any MemoryGauge)?, logger: Logger = Logger(label: "bgem3.scheduler")) {
        self.encoder = encoder
        self.settings = settings
        self.gauge = gauge
        self.logger = logger
        let niceness = settings.computeNiceness
        let thread = Thread { [self] in
            // Compute yields to the threads that read and answer requests: with as many compute
            // threads as cores, a short request would otherwise wait for a time slice at every
            // step of its way through the server. The engine's threads (its OpenMP team, started
            // from this thread) inherit the lower priority; with nothing else to run they still
            // get every core.
            ThreadPriority.lowerCurrent(by: niceness)
            // The name `ps -L` and `top -H` show; the OpenMP team's threads inherit it.
            Thread.current.name = "bgem3-compute"
            workerLoop()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Runs a real encode through each of the scheduler's workspaces (the readiness check of
    /// SPEC §5). Call before ``open(_:)``, while nothing else runs.
    public func warmUp() throws(EngineError) {
        for workspace in [bulkWorkspace, interactiveWorkspace] {
            _ = try encoder.encode([[0, 5, 6, 2]], outputs: .all, workspace: workspace, checkpoint: nil)
        }
    }

    /// Starts running batches within `budget` (or changes the budget).
    public func open(_ budget: SchedulerBudget) {
        condition.withLock {
            self.budget = budget
            condition.broadcast()
        }
        Gauge(label: "bgem3_memory_budget_bytes").record(budget.bytes)
    }

    /// Whether batches run (after ``open(_:)``).
    public var isOpen: Bool { condition.withLock { budget != nil } }

    /// Requests admitted and not yet answered.
    public var queueDepth: Int { condition.withLock { admitted } }

    /// Batches split after an allocation failure, since start.
    public var oomSplitCount: Int { condition.withLock { oomSplits } }

    /// The workspace bytes the scheduler's two workspaces hold now.
    public var retainedWorkspaceBytes: Int { bulkWorkspace.retainedBytes + interactiveWorkspace.retainedBytes }

    /// Stops after the batch in progress; waiting requests fail with ``SchedulingError/cancelled``.
    public func stop() {
        let waiting: [Job] = condition.withLock {
            stopping = true
            var seen = Set<ObjectIdentifier>()
            let jobs = (interactiveQueue + bulkQueue).map(\.job).filter { seen.insert(ObjectIdentifier($0)).inserted }
            interactiveQueue.removeAll()
            bulkQueue.removeAll()
            condition.broadcast()
            return jobs
        }
        for job in waiting { finish(job, .failure(SchedulingError.cancelled)) }
    }

    /// Encodes one request's sequences and returns their embeddings in order.
    ///
    /// - Parameters:
    ///   - deadline: when the request gives up (``SchedulingError/deadlineExceeded``).
    ///   - isAbandoned: polled before each batch; true drops the request's remaining inputs.
    public func submit(_ sequences: [[Int32]], outputs: EmbeddingOutputs, deadline: ContinuousClock.Instant,
                       isAbandoned: @escaping @Sendable () -> Bool = { false }) async throws -> ScheduledResult {
        guard !sequences.isEmpty else { return ScheduledResult(embeddings: [], queueSeconds: 0, inferenceSeconds: 0) }
        let tokens = sequences.reduce(0) { $0 + $1.count }
        let job = Job(sequences: sequences, outputs: outputs, deadline: deadline, interactive: tokens <= settings.interactiveTokens,
                      isAbandoned: isAbandoned)
        let timer = Task { [weak self, job] in
            try await Task.sleep(until: deadline, clock: .continuous)
            self?.expire(job)
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let refusal: SchedulingError? = condition.withLock {
                    // The deadline or a cancellation may already have finished the job.
                    if job.finished { return ContinuousClock.now >= deadline ? .deadlineExceeded : .cancelled }
                    if stopping { return .cancelled }
                    guard admitted < settings.queueCapacity else { return .queueFull(capacity: settings.queueCapacity) }
                    admitted += 1
                    nextJobID += 1
                    job.id = nextJobID
                    job.continuation = continuation
                    let items = sequences.indices.map { Item(job: job, index: $0) }
                    if job.interactive { interactiveQueue.append(contentsOf: items) } else { bulkQueue.append(contentsOf: items) }
                    lastActivity = .now
                    condition.broadcast()
                    return nil
                }
                Gauge(label: "bgem3_queue_depth").record(queueDepth)
                if let refusal { continuation.resume(throwing: refusal) }
            }
        } onCancel: { [weak self] in
            self?.drop(job, .cancelled)
        }
    }

    // MARK: - Jobs

    private func expire(_ job: Job) {
        drop(job, .deadlineExceeded)
    }

    /// Removes a job's waiting inputs and fails it (if it has not finished).
    private func drop(_ job: Job, _ error: SchedulingError) {
        condition.withLock {
            interactiveQueue.removeAll { $0.job === job }
            bulkQueue.removeAll { $0.job === job }
        }
        finish(job, .failure(error))
    }

    /// Answers a job once; later calls do nothing.
    private func finish(_ job: Job, _ outcome: Result<ScheduledResult, any Error>) {
        let continuation: CheckedContinuation<ScheduledResult, any Error>? = condition.withLock {
            guard !job.finished else { return nil }
            job.finished = true
            if job.continuation != nil { admitted -= 1 }
            defer { job.continuation = nil }
            return job.continuation
        }
        Gauge(label: "bgem3_queue_depth").record(queueDepth)
        continuation?.resume(with: outcome)
    }

    // MARK: - The worker

    private enum Lane { case interactive, bulk, alone }

    private struct Batch {
        var items: [Item]
        var lane: Lane
        var predictedBytes: Int
    }

    private func workerLoop() {
        while let batch = nextBatch() {
            run(batch)
        }
    }

    /// Waits for the next batch; nil when stopping.
    private func nextBatch() -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if stopping { return nil }
            var wakeAt: ContinuousClock.Instant?
            if let budget {
                let (batch, failed, wait) = formBatch(budget: budget, allowBulk: true)
                if !failed.isEmpty {
                    condition.unlock()
                    for (job, error) in failed { finish(job, .failure(error)) }
                    condition.lock()
                    continue
                }
                if let batch { return batch }
                wakeAt = wait
                if wakeAt == nil, interactiveQueue.isEmpty, bulkQueue.isEmpty, let idle = settings.idleTimeout, encoder.isLoaded {
                    let due = lastActivity + idle
                    if ContinuousClock.now >= due {
                        unloadIdle()
                        continue
                    }
                    wakeAt = due
                }
            }
            if let wakeAt {
                let seconds = max(0, (wakeAt - .now).seconds)
                _ = condition.wait(until: Date(timeIntervalSinceNow: seconds))
            } else {
                condition.wait()
            }
        }
    }

    private func unloadIdle() {
        encoder.unloadWeights()
        bulkWorkspace.release()
        interactiveWorkspace.release()
        gauge?.trim()
        logger.info("idle: weights unloaded; the next request loads them again",
                    metadata: ["idle_seconds": .stringConvertible(settings.idleTimeout.map { $0.seconds } ?? 0)])
    }

    /// Chooses the next batch (caller holds the lock). Returns jobs to fail, and when to look again
    /// if the batch window is still open.
    private func formBatch(budget: SchedulerBudget, allowBulk: Bool) -> (Batch?, [(Job, SchedulingError)], ContinuousClock.Instant?) {
        var failed: [(Job, SchedulingError)] = []
        purge(&interactiveQueue, failed: &failed)
        purge(&bulkQueue, failed: &failed)
        let shares = BudgetShares(budget: budget, interactiveTokens: settings.interactiveTokens)
        // An interactive input too large for the interactive share (a small budget) waits as bulk.
        let fitsShare = { (item: Item) in budget.cost.bytes(length: item.length) <= Double(shares.interactive) }
        if !interactiveQueue.allSatisfy(fitsShare) {
            bulkQueue.append(contentsOf: interactiveQueue.filter { !fitsShare($0) })
            interactiveQueue.removeAll { !fitsShare($0) }
        }
        if !interactiveQueue.isEmpty {
            let items = interactiveQueue
            let limits = BatchLimits(budgetBytes: shares.interactive, maxTokens: max(settings.interactiveTokens, 1), maxSequences: settings.maxBatchSequences)
            let chosen = choose(from: items, head: 0, cost: budget.cost, limits: limits)
            interactiveQueue = items.enumerated().filter { !chosen.contains($0.offset) }.map(\.element)
            let batch = chosen.sorted().map { items[$0] }
            return (Batch(items: batch, lane: .interactive, predictedBytes: budget.cost.bytes(lengths: batch.map(\.length))), failed, nil)
        }
        guard allowBulk, !bulkQueue.isEmpty else { return (nil, failed, nil) }
        let windowEnd = bulkQueue[0].job.arrived + settings.batchWindow
        if ContinuousClock.now < windowEnd { return (nil, failed, windowEnd) }
        // The head: the next input of the bulk request served the fewest tokens (oldest on ties).
        var headIndex = 0
        for (index, item) in bulkQueue.enumerated() {
            let head = bulkQueue[headIndex].job
            if item.job.served < head.served || (item.job.served == head.served && item.job.id < head.id) { headIndex = index }
        }
        let head = bulkQueue[headIndex]
        let alone = budget.cost.bytes(length: head.length)
        if alone > Double(shares.bulk) {
            bulkQueue.remove(at: headIndex)
            if alone > Double(budget.bytes) {
                bulkQueue.removeAll { $0.job === head.job }
                failed.append((head.job, .inputTooLarge(index: head.index, tokens: head.length, bytes: Int(alone), budgetBytes: budget.bytes)))
                return (nil, failed, nil)
            }
            return (Batch(items: [head], lane: .alone, predictedBytes: Int(alone)), failed, nil)
        }
        // Candidates: the head and the oldest waiting inputs (bounded, so packing stays cheap).
        var candidates = Array(bulkQueue.indices.prefix(4096))
        if !candidates.contains(headIndex) { candidates.append(headIndex) }
        let limits = BatchLimits(budgetBytes: shares.bulk, maxTokens: settings.maxBatchTokens, maxSequences: settings.maxBatchSequences)
        let chosenPositions = choose(from: candidates.map { bulkQueue[$0] }, head: candidates.firstIndex(of: headIndex)!, cost: budget.cost, limits: limits)
        let chosen = Set(chosenPositions.map { candidates[$0] })
        let batch = chosen.sorted().map { bulkQueue[$0] }
        bulkQueue = bulkQueue.enumerated().filter { !chosen.contains($0.offset) }.map(\.element)
        return (Batch(items: batch, lane: .bulk, predictedBytes: budget.cost.bytes(lengths: batch.map(\.length))), failed, nil)
    }

    /// The positions (in `items`) of the packed batch that holds `head`.
    private func choose(from items: [Item], head: Int, cost: CostModel, limits: BatchLimits) -> Set<Int> {
        let batches = BatchPacker.pack(lengths: items.map(\.length), cost: cost, limits: limits)
        return Set(batches.first { $0.contains(head) } ?? [head])
    }

    /// Drops inputs of finished or expired jobs and of jobs whose client went away. The deadline
    /// is checked here too: on a loaded machine the timer task can run late, and work past its
    /// deadline must not start.
    private func purge(_ queue: inout [Item], failed: inout [(Job, SchedulingError)]) {
        var gone = Set<ObjectIdentifier>()
        var expired = Set<ObjectIdentifier>()
        let now = ContinuousClock.now
        queue.removeAll { item in
            if item.job.finished { return true }
            if gone.contains(ObjectIdentifier(item.job)) || expired.contains(ObjectIdentifier(item.job)) { return true }
            if item.job.deadline <= now {
                expired.insert(ObjectIdentifier(item.job))
                failed.append((item.job, .deadlineExceeded))
                return true
            }
            if item.job.isAbandoned() {
                gone.insert(ObjectIdentifier(item.job))
                failed.append((item.job, .cancelled))
                return true
            }
            return false
        }
        if !gone.isEmpty { Counter(label: "bgem3_abandoned_requests_total").increment(by: gone.count) }
    }

    /// Runs interactive batches at a safe point inside a bulk batch.
    private func runInteractiveWork() {
        for _ in 0..<8 {
            let (batch, failed): (Batch?, [(Job, SchedulingError)]) = condition.withLock {
                guard let budget, !stopping, !interactiveQueue.isEmpty else { return (nil, []) }
                let (batch, failed, _) = formBatch(budget: budget, allowBulk: false)
                return (batch, failed)
            }
            for (job, error) in failed { finish(job, .failure(error)) }
            guard let batch else { return }
            run(batch)
        }
    }

    private func run(_ batch: Batch) {
        let sequences = batch.items.map { $0.job.sequences[$0.index] }
        let outputs = batch.items.reduce(into: EmbeddingOutputs()) { $0.formUnion($1.job.outputs) }
        let workspace = batch.lane == .interactive ? interactiveWorkspace : bulkWorkspace
        if batch.lane == .alone { interactiveWorkspace.release() }
        let started = ContinuousClock.now
        condition.withLock {
            for item in batch.items where item.job.firstStart == nil { item.job.firstStart = started }
        }
        let baseline = gauge.flatMap { gauge -> Int? in
            guard let rss = gauge.residentBytes, gauge.resetPeak() else { return nil }
            return rss - workspace.retainedBytes
        }
        let checkpoint: (() -> Void)? = batch.lane == .bulk ? { [self] in runInteractiveWork() } : nil
        let results: [SequenceEmbedding]
        do {
            results = try encoder.encode(sequences, outputs: outputs, workspace: workspace, checkpoint: checkpoint)
        } catch .outOfMemory(let bytes) where batch.items.count > 1 {
            let half = batch.items.count / 2
            condition.withLock { oomSplits += 1 }
            Counter(label: "bgem3_oom_splits_total").increment()
            logger.warning("allocation failed; splitting the batch", metadata: [
                "sequences": .stringConvertible(batch.items.count), "bytes": .stringConvertible(bytes)])
            workspace.release()
            gauge?.trim()
            for part in [Array(batch.items[..<half]), Array(batch.items[half...])] {
                run(Batch(items: part, lane: batch.lane, predictedBytes: 0))
            }
            return
        } catch {
            workspace.release()
            let jobs = Dictionary(batch.items.map { (ObjectIdentifier($0.job), $0.job) }, uniquingKeysWith: { first, _ in first })
            logger.error("batch failed", metadata: ["error": .string(error.description), "sequences": .stringConvertible(batch.items.count)])
            for job in jobs.values { finish(job, .failure(SchedulingError.engine(error))) }
            return
        }
        let ended = ContinuousClock.now
        if let baseline, let peak = gauge?.peakResidentBytes {
            Gauge(label: "bgem3_workspace_measured_bytes").record(peak - baseline)
        }
        if batch.predictedBytes > 0 { Gauge(label: "bgem3_workspace_predicted_bytes").record(batch.predictedBytes) }
        Recorder(label: "bgem3_batch_size").record(batch.items.count)
        Recorder(label: "bgem3_batch_tokens").record(sequences.reduce(0) { $0 + $1.count })
        // Sequences run unpadded, so no computed token is padding.
        Recorder(label: "bgem3_padding_ratio").record(0.0)
        Metrics.Timer(label: "bgem3_batch_duration_seconds").recordNanoseconds(Int64((ended - started).seconds * 1e9))
        deliver(batch.items, results, ended: ended)
    }

    /// Hands each result to its request; answers requests that are complete.
    private func deliver(_ items: [Item], _ results: [SequenceEmbedding], ended: ContinuousClock.Instant) {
        let complete: [(Job, ScheduledResult)] = condition.withLock {
            lastActivity = .now
            var complete: [(Job, ScheduledResult)] = []
            for (item, result) in zip(items, results) where !item.job.finished {
                let job = item.job
                job.results[item.index] = result.keeping(job.outputs)
                job.remaining -= 1
                job.served += item.length
                if job.remaining == 0 {
                    let first = job.firstStart ?? ended
                    complete.append((job, ScheduledResult(embeddings: job.results.map { $0! }, queueSeconds: (first - job.arrived).seconds,
                                                          inferenceSeconds: (ended - first).seconds)))
                }
            }
            return complete
        }
        for (job, result) in complete { finish(job, .success(result)) }
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

/// One request as the scheduler tracks it; mutable state is guarded by the scheduler's lock.
final class Job: @unchecked Sendable {
    var id = 0
    let sequences: [[Int32]]
    let outputs: EmbeddingOutputs
    let deadline: ContinuousClock.Instant
    let arrived = ContinuousClock.now
    let interactive: Bool
    let isAbandoned: @Sendable () -> Bool
    var results: [SequenceEmbedding?]
    var remaining: Int
    var served = 0
    var firstStart: ContinuousClock.Instant?
    var continuation: CheckedContinuation<ScheduledResult, any Error>?
    var finished = false

    init(sequences: [[Int32]], outputs: EmbeddingOutputs, deadline: ContinuousClock.Instant, interactive: Bool,
         isAbandoned: @escaping @Sendable () -> Bool) {
        self.sequences = sequences
        self.outputs = outputs
        self.deadline = deadline
        self.interactive = interactive
        self.isAbandoned = isAbandoned
        results = Array(repeating: nil, count: sequences.count)
        remaining = sequences.count
    }
}

/// One input of one request.
struct Item {
    let job: Job
    let index: Int
    var length: Int { job.sequences[index].count }
}

extension SequenceEmbedding {
    /// Only the outputs asked for (a batch computes what any of its requests asked for).
    func keeping(_ outputs: EmbeddingOutputs) -> SequenceEmbedding {
        SequenceEmbedding(dense: outputs.contains(.dense) ? dense : nil, sparse: outputs.contains(.sparse) ? sparse : nil,
                          colbert: outputs.contains(.colbert) ? colbert : nil)
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
