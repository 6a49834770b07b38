import Engine
import Foundation
import Logging
import Metrics

/// The memory-aware scheduler of SPEC §5: one queue across requests, batches packed within the
/// memory budget and run by ``SchedulerSettings/workers`` workers, each a dedicated thread with a
/// thread team and a workspace budget of its own, all sharing the model's weights.
///
/// What runs when is decided by ``SchedulerPolicy``; this class performs its decisions: it owns the
/// workers (their threads, lanes and two workspaces each, bulk and interactive), the requests'
/// continuations and results, and the metrics. An allocation failure splits the batch in halves
/// and retries.
public final class BatchScheduler: @unchecked Sendable {
    private let encoder: any BatchEncoder
    private let settings: SchedulerSettings
    private let gauge: (any MemoryGauge)?
    private let logger: Logger
    private let workers: [Worker]

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var policy: SchedulerPolicy
    private var jobs: [SchedulerPolicy.JobID: Job] = [:]
    private var nextJobID = 0
    private var oomSplits = 0
    /// The engine's speed in tokens per second, from recent batches (see ``measureSpeed(tokens:seconds:)``).
    private var tokensPerSecond: Double?
    /// Top-level batches running now (idle unload waits for none).
    private var running = 0
    /// Worker threads in their loop.
    private var liveWorkers = 0

    /// Batches of at least this many tokens measure the engine's speed: shorter ones are dominated
    /// by fixed costs and would make it look slower than it is for the bulk requests it is used for.
    static let speedSampleTokens = 256

    public init(encoder: any BatchEncoder, settings: SchedulerSettings, gauge: (any MemoryGauge)?, logger: Logger = Logger(label: "bgem3.scheduler")) {
        self.encoder = encoder
        self.settings = settings
        self.gauge = gauge
        self.logger = logger
        policy = SchedulerPolicy(settings: settings, now: .now)
        // One worker runs on the model's own lane (all its threads), as the probe measured it.
        let count = max(1, settings.workers)
        workers = (0..<count).map { Worker(index: $0, lane: count == 1 ? nil : ComputeLane(threads: settings.threadsPerWorker)) }
        let niceness = settings.computeNiceness
        for worker in workers {
            let thread = Thread { [self] in
                // Compute yields to the threads that read and answer requests: with as many compute
                // threads as cores, a short request would otherwise wait for a time slice at every
                // step of its way through the server. The engine's threads (its OpenMP team, started
                // from this thread) inherit the lower priority; with nothing else to run they still
                // get every core.
                ThreadPriority.lowerCurrent(by: niceness)
                // The name `ps -L` and `top -H` show; the OpenMP team's threads inherit it.
                Thread.current.name = count == 1 ? "bgem3-compute" : "bgem3-compute-\(worker.index)"
                workerLoop(worker)
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Runs a real encode through each workspace of each worker (the readiness check of SPEC §5).
    /// Call before ``open(_:)``, while nothing else runs.
    public func warmUp() throws(EngineError) {
        for worker in workers {
            for workspace in [worker.bulkWorkspace, worker.interactiveWorkspace] {
                _ = try encoder.encode([[0, 5, 6, 2]], outputs: .all, workspace: workspace, checkpoint: nil)
            }
        }
    }

    /// Workers: batches that may run at once.
    public var workerCount: Int { workers.count }

    /// Threads each worker's team has; nil for a single worker, which runs on all the model's.
    public var threadsPerWorker: Int? { workers.count == 1 ? nil : settings.threadsPerWorker }

    /// Workers whose thread is taking work (all of them from start until ``stop()``).
    public var liveWorkerCount: Int { condition.withLock { liveWorkers } }

    /// The engine's measured speed, tokens per second (nil before the first batch of
    /// ``speedSampleTokens`` tokens).
    public var speed: Double? { condition.withLock { tokensPerSecond } }

    /// Starts running batches within `budget` (or changes the budget).
    public func open(_ budget: SchedulerBudget) {
        condition.withLock {
            policy.open(budget)
            condition.broadcast()
        }
        Gauge(label: "bgem3_memory_budget_bytes").record(budget.bytes)
    }

    /// Whether batches run (after ``open(_:)``).
    public var isOpen: Bool { condition.withLock { policy.budget != nil } }

    /// Requests submitted and not yet answered.
    public var queueDepth: Int { condition.withLock { policy.jobCount } }

    /// Batches split after an allocation failure, since start.
    public var oomSplitCount: Int { condition.withLock { oomSplits } }

    /// The workspace bytes every worker's two workspaces hold now.
    public var retainedWorkspaceBytes: Int { workers.reduce(0) { $0 + $1.retainedBytes } }

    /// Stops after the batch in progress; waiting requests fail with ``SchedulingError/cancelled``.
    public func stop() {
        let waiting: [Job] = condition.withLock {
            let ids = policy.stop()
            condition.broadcast()
            return ids.compactMap { jobs[$0] }
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
        let job = condition.withLock {
            nextJobID += 1
            return Job(id: SchedulerPolicy.JobID(nextJobID), sequences: sequences, outputs: outputs, deadline: deadline, isAbandoned: isAbandoned)
        }
        let timer = Task { [weak self, job] in
            try await Task.sleep(until: deadline, clock: .continuous)
            self?.cancel(job, .deadlineExceeded)
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let refusal: SchedulingError? = condition.withLock {
                    // The deadline or a cancellation may already have finished the job.
                    if job.finished { return ContinuousClock.now >= deadline ? .deadlineExceeded : .cancelled }
                    if policy.isStopped { return .cancelled }
                    if let late = lateness(sequences.map(\.count), deadline: deadline) {
                        job.finished = true
                        return late
                    }
                    job.continuation = continuation
                    jobs[job.id] = job
                    policy.submit(job.id, lengths: sequences.map(\.count), deadline: deadline, now: job.arrived)
                    condition.broadcast()
                    return nil
                }
                Gauge(label: "bgem3_queue_depth").record(queueDepth)
                if let refusal { continuation.resume(throwing: refusal) }
            }
        } onCancel: { [weak self] in
            self?.cancel(job, .cancelled)
        }
    }

    // MARK: - Requests

    /// Why a bulk request would be answered after its deadline, at the measured speed (of one
    /// worker, times the workers: a request's batches spread over them), or nil
    /// (caller holds the lock). Refusing it now, with a `Retry-After`, beats computing for a minute
    /// an answer nobody will read. Interactive requests are not judged: they go first and are short.
    ///
    /// The speed is measured on real batches only: a measurement at start-up, when other processes
    /// start too, came out ten times too slow in CI and refused requests that finished in a second.
    /// A request is refused as busy (503) when the estimate passes four fifths of the time its
    /// deadline leaves: the rest is for the speed to vary under load and for the response to be
    /// written. (On the full-size model, 2 vCPUs, the second of two 32×1024-token ColBERT requests
    /// estimated at 26-28 s with 31 s left was admitted and missed its deadline in one run of
    /// three.) It is refused as too large (413) only when its own work alone would take twice the
    /// whole timeout.
    private func lateness(_ lengths: [Int], deadline: ContinuousClock.Instant) -> SchedulingError? {
        guard let rate = tokensPerSecond, rate > 0, !policy.isInteractive(lengths) else { return nil }
        let now = ContinuousClock.now
        let remaining = (deadline - now).seconds
        let seconds = Double(policy.tokensUntilDone(lengths)) / (rate * Double(workers.count))
        guard seconds > 0.8 * remaining else { return nil }
        let alone = Double(lengths.reduce(0, +)) / rate
        return .wouldMissDeadline(seconds: seconds, remainingSeconds: remaining, alone: alone > 2 * settings.requestTimeout.seconds)
    }

    /// Folds one batch's speed into the estimate (an exponential average, weight 0.3 for the new one).
    private func measureSpeed(tokens: Int, seconds: Double) {
        guard tokens >= Self.speedSampleTokens, seconds > 0 else { return }
        let rate = Double(tokens) / seconds
        condition.withLock { tokensPerSecond = tokensPerSecond.map { 0.7 * $0 + 0.3 * rate } ?? rate }
    }

    /// Fails a request that is still waiting or running (its results, if a batch is running, are dropped).
    private func cancel(_ job: Job, _ error: SchedulingError) {
        _ = condition.withLock { policy.cancel(job.id) }
        finish(job, .failure(error))
    }

    /// Answers a request once; later calls do nothing.
    private func finish(_ job: Job, _ outcome: Result<ScheduledResult, any Error>) {
        let continuation: CheckedContinuation<ScheduledResult, any Error>? = condition.withLock {
            guard !job.finished else { return nil }
            job.finished = true
            jobs[job.id] = nil
            defer { job.continuation = nil }
            return job.continuation
        }
        Gauge(label: "bgem3_queue_depth").record(queueDepth)
        continuation?.resume(with: outcome)
    }

    // MARK: - The worker

    private func workerLoop(_ worker: Worker) {
        condition.lock()
        liveWorkers += 1
        defer {
            liveWorkers -= 1
            condition.unlock()
        }
        while true {
            if worker.releaseWorkspaces {
                // Another worker unloaded the weights while this one was idle.
                worker.releaseWorkspaces = false
                condition.unlock()
                worker.release()
                condition.lock()
                continue
            }
            switch decide(insideBulkBatch: false) {
            case .stop:
                return
            case .run(let batch):
                running += 1
                condition.unlock()
                run(batch, on: worker)
                condition.lock()
                running -= 1
            case .fail(let failures):
                condition.unlock()
                fail(failures)
                condition.lock()
            case .unloadWeights:
                for other in workers where other !== worker { other.releaseWorkspaces = true }
                condition.unlock()
                unloadIdle(worker)
                condition.lock()
                condition.broadcast()
            case .wait(let until):
                if let until {
                    _ = condition.wait(until: Date(timeIntervalSinceNow: max(0, (until - .now).seconds)))
                } else {
                    condition.wait()
                }
            }
        }
    }

    /// The policy's next decision (caller holds the lock).
    private func decide(insideBulkBatch: Bool) -> SchedulerPolicy.Decision {
        policy.next(now: .now, weightsLoaded: encoder.isLoaded, batchesRunning: running, insideBulkBatch: insideBulkBatch,
                    isGone: { jobs[$0]?.isAbandoned() ?? false })
    }

    private func fail(_ failures: [SchedulerPolicy.Failure]) {
        let gone = failures.filter { $0.error == .cancelled }.count
        if gone > 0 { Counter(label: "bgem3_abandoned_requests_total").increment(by: gone) }
        let failed = condition.withLock { failures.compactMap { failure in jobs[failure.job].map { ($0, failure.error) } } }
        for (job, error) in failed { finish(job, .failure(error)) }
    }

    private func unloadIdle(_ worker: Worker) {
        encoder.unloadWeights()
        worker.release()
        gauge?.trim()
        logger.info("idle: weights unloaded; the next request loads them again",
                    metadata: ["idle_seconds": .stringConvertible(settings.idleTimeout.map { $0.seconds } ?? 0)])
    }

    /// Runs interactive batches at a safe point inside a bulk batch.
    private func runInteractiveWork(on worker: Worker) {
        for _ in 0..<8 {
            condition.lock()
            let decision = decide(insideBulkBatch: true)
            condition.unlock()
            switch decision {
            case .run(let batch): run(batch, on: worker)
            case .fail(let failures): fail(failures)
            case .wait, .unloadWeights, .stop: return
            }
        }
    }

    private func run(_ batch: SchedulerPolicy.Batch, on worker: Worker) {
        let (sequences, outputs): ([[Int32]], EmbeddingOutputs) = condition.withLock {
            let started = ContinuousClock.now
            var outputs = EmbeddingOutputs()
            let sequences = batch.items.map { item -> [Int32] in
                guard let job = jobs[item.job] else { return [0, 2] }  // cancelled since: computed, then ignored
                if job.firstStart == nil { job.firstStart = started }
                outputs.formUnion(job.outputs)
                return job.sequences[item.index]
            }
            return (sequences, outputs.isEmpty ? .dense : outputs)
        }
        let workspace = batch.lane == .interactive ? worker.interactiveWorkspace : worker.bulkWorkspace
        if batch.lane == .alone { worker.interactiveWorkspace.release() }
        let started = ContinuousClock.now
        // The process's peak is this batch's only while no other worker runs one.
        let baseline = workers.count > 1 ? nil : gauge.flatMap { gauge -> Int? in
            guard let rss = gauge.residentBytes, gauge.resetPeak() else { return nil }
            return rss - workspace.retainedBytes
        }
        let checkpoint: (() -> Void)? = batch.lane == .bulk ? { [self] in
            let started = ContinuousClock.now
            runInteractiveWork(on: worker)
            worker.nestedSeconds += (ContinuousClock.now - started).seconds
        } : nil
        if batch.lane != .interactive { worker.nestedSeconds = 0 }
        let results: [SequenceEmbedding]
        do {
            results = try encoder.encode(sequences, outputs: outputs, workspace: workspace, checkpoint: checkpoint)
        } catch .outOfMemory(let bytes) where batch.items.count > 1 {
            condition.withLock { oomSplits += 1 }
            Counter(label: "bgem3_oom_splits_total").increment()
            logger.warning("allocation failed; splitting the batch", metadata: [
                "sequences": .stringConvertible(batch.items.count), "bytes": .stringConvertible(bytes)])
            workspace.release()
            gauge?.trim()
            for part in SchedulerPolicy.halves(of: batch) { run(part, on: worker) }
            return
        } catch {
            workspace.release()
            logger.error("batch failed", metadata: ["error": .string(error.description), "sequences": .stringConvertible(batch.items.count)])
            let failed = condition.withLock { policy.failed(batch).compactMap { jobs[$0] } }
            for job in failed { finish(job, .failure(SchedulingError.engine(error))) }
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
        if batch.lane != .interactive {
            measureSpeed(tokens: sequences.reduce(0) { $0 + $1.count }, seconds: (ended - started).seconds - worker.nestedSeconds)
        }
        deliver(batch, results, ended: ended)
    }

    /// Hands each result to its request; answers requests that are complete.
    private func deliver(_ batch: SchedulerPolicy.Batch, _ results: [SequenceEmbedding], ended: ContinuousClock.Instant) {
        let complete: [(Job, ScheduledResult)] = condition.withLock {
            for (item, result) in zip(batch.items, results) {
                guard let job = jobs[item.job] else { continue }  // cancelled while the batch ran
                job.results[item.index] = result.keeping(job.outputs)
            }
            return policy.completed(batch, now: ended).compactMap { id in
                guard let job = jobs[id] else { return nil }
                let first = job.firstStart ?? ended
                return (job, ScheduledResult(embeddings: job.results.map { $0! }, queueSeconds: (first - job.arrived).seconds,
                                             inferenceSeconds: (ended - first).seconds))
            }
        }
        for (job, result) in complete { finish(job, .success(result)) }
    }
}

/// One of the scheduler's workers: its lane (nil: the model's own) and its two workspaces, which
/// only its thread uses. `releaseWorkspaces` is guarded by the scheduler's lock.
final class Worker: @unchecked Sendable {
    let index: Int
    let bulkWorkspace: EncoderWorkspace
    let interactiveWorkspace: EncoderWorkspace
    /// Time the running bulk batch spent on interactive work at its safe points.
    var nestedSeconds = 0.0
    /// Set when another worker unloaded the weights: this one frees its workspaces when it wakes.
    var releaseWorkspaces = false

    init(index: Int, lane: ComputeLane?) {
        self.index = index
        bulkWorkspace = EncoderWorkspace(lane: lane)
        interactiveWorkspace = EncoderWorkspace(lane: lane)
    }

    var retainedBytes: Int { bulkWorkspace.retainedBytes + interactiveWorkspace.retainedBytes }

    func release() {
        bulkWorkspace.release()
        interactiveWorkspace.release()
    }
}

/// One request as the scheduler's thread tracks it: its inputs, where its results go, and how to
/// answer it. Mutable state is guarded by the scheduler's lock.
final class Job: @unchecked Sendable {
    let id: SchedulerPolicy.JobID
    let sequences: [[Int32]]
    let outputs: EmbeddingOutputs
    let deadline: ContinuousClock.Instant
    let arrived = ContinuousClock.now
    let isAbandoned: @Sendable () -> Bool
    var results: [SequenceEmbedding?]
    var firstStart: ContinuousClock.Instant?
    var continuation: CheckedContinuation<ScheduledResult, any Error>?
    var finished = false

    init(id: SchedulerPolicy.JobID, sequences: [[Int32]], outputs: EmbeddingOutputs, deadline: ContinuousClock.Instant,
         isAbandoned: @escaping @Sendable () -> Bool) {
        self.id = id
        self.sequences = sequences
        self.outputs = outputs
        self.deadline = deadline
        self.isAbandoned = isAbandoned
        results = Array(repeating: nil, count: sequences.count)
    }
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
