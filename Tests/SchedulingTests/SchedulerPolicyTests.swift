import Engine
import Scheduling
import Testing

/// The batch policy driven with explicit times: no thread, no sleeping, no polling.
@Suite struct SchedulerPolicyTests {
    let t0 = ContinuousClock.now
    func at(_ milliseconds: Int) -> ContinuousClock.Instant { t0 + .milliseconds(milliseconds) }
    var far: ContinuousClock.Instant { at(3_600_000) }

    func policy(budget: Int = 1 << 30, cost: CostModel = CostModel(a: 1000, b: 0), configure: (inout SchedulerSettings) -> Void = { _ in })
        -> SchedulerPolicy {
        var settings = SchedulerSettings()
        configure(&settings)
        var policy = SchedulerPolicy(settings: settings, now: t0)
        policy.open(SchedulerBudget(cost: cost, bytes: budget))
        return policy
    }

    func id(_ n: Int) -> SchedulerPolicy.JobID { SchedulerPolicy.JobID(n) }

    /// The batch that `next` decides, or a recorded issue.
    func batch(_ decision: SchedulerPolicy.Decision, sourceLocation: SourceLocation = #_sourceLocation) -> SchedulerPolicy.Batch? {
        guard case .run(let batch) = decision else {
            Issue.record("expected a batch, got \(decision)", sourceLocation: sourceLocation)
            return nil
        }
        return batch
    }

    @Test func nothingRunsBeforeOpen() {
        var policy = SchedulerPolicy(settings: SchedulerSettings(), now: t0)
        policy.submit(id(1), lengths: [10], deadline: far, now: t0)
        #expect(policy.next(now: at(100), weightsLoaded: true) == .wait(until: nil))
        policy.open(SchedulerBudget(cost: CostModel(a: 1000, b: 0), bytes: 1 << 30))
        #expect(batch(policy.next(now: at(101), weightsLoaded: true))?.items.map(\.job) == [id(1)])
    }

    @Test func theFirstBulkRequestOfABurstWaitsForTheWindow() {
        var policy = policy { $0.batchWindow = .milliseconds(2) }
        policy.submit(id(1), lengths: [3000], deadline: far, now: t0)
        #expect(policy.next(now: at(1), weightsLoaded: true) == .wait(until: at(2)))
        policy.submit(id(2), lengths: [2500], deadline: far, now: at(1))
        let run = batch(policy.next(now: at(2), weightsLoaded: true))
        #expect(run?.lane == .bulk)
        #expect(Set(run?.items.map(\.job) ?? []) == [id(1), id(2)], "both joined the batch")
        #expect(run?.predictedBytes == 5_500_000)
    }

    @Test func interactiveRequestsComeFirstAndMayRunInsideABulkBatch() {
        var policy = policy()
        policy.submit(id(1), lengths: [4000, 4000], deadline: far, now: t0)
        policy.submit(id(2), lengths: [12], deadline: far, now: at(1))
        let first = batch(policy.next(now: at(10), weightsLoaded: true))
        #expect(first?.lane == .interactive && first?.items.map(\.job) == [id(2)])
        let bulk = batch(policy.next(now: at(10), weightsLoaded: true))
        #expect(bulk?.lane == .bulk)
        // At a safe point of the bulk batch: a new interactive request runs, bulk work does not.
        policy.submit(id(3), lengths: [20], deadline: far, now: at(11))
        policy.submit(id(4), lengths: [3000], deadline: far, now: at(11))
        #expect(batch(policy.next(now: at(12), weightsLoaded: true, insideBulkBatch: true))?.items.map(\.job) == [id(3)])
        #expect(policy.next(now: at(13), weightsLoaded: true, insideBulkBatch: true) == .wait(until: nil))
    }

    /// Clients of short queries come back together when their batch ends: the first to return
    /// waits (up to the rejoin window) for the ended batch's inputs and those that queued while it
    /// ran, so they share a batch again instead of staying split into two.
    @Test func clientsOfTheLastInteractiveBatchRejoinTheNext() {
        var policy = policy { $0.interactiveRejoinWindow = .milliseconds(3) }
        for n in 1...2 { policy.submit(id(n), lengths: [16], deadline: far, now: t0) }
        guard let first = batch(policy.next(now: at(0), weightsLoaded: true)) else { return }
        #expect(first.items.count == 2, "nothing to rejoin yet: the first batch runs at once")
        policy.submit(id(3), lengths: [16], deadline: far, now: at(50))
        #expect(policy.completed(first, now: at(100)).count == 2)

        // Waits for three: the two of the ended batch, and the one that queued while it ran.
        policy.submit(id(4), lengths: [16], deadline: far, now: at(101))
        #expect(policy.next(now: at(101), weightsLoaded: true) == .wait(until: at(103)))
        policy.submit(id(5), lengths: [16], deadline: far, now: at(102))
        let second = batch(policy.next(now: at(102), weightsLoaded: true))
        #expect(second?.items.map(\.job) == [id(3), id(4), id(5)], "all came back: it runs before the window ends")
        _ = second.map { policy.completed($0, now: at(200)) }

        // Inside a bulk batch interactive work runs at once: the bulk batch is what it waits on.
        policy.submit(id(7), lengths: [16], deadline: far, now: at(201))
        #expect(batch(policy.next(now: at(201), weightsLoaded: true, insideBulkBatch: true))?.items.map(\.job) == [id(7)])

        // Only one comes back: it runs alone when the window ends, not later.
        policy.submit(id(8), lengths: [16], deadline: far, now: at(201))
        #expect(policy.next(now: at(202), weightsLoaded: true) == .wait(until: at(203)))
        #expect(batch(policy.next(now: at(203), weightsLoaded: true))?.items.map(\.job) == [id(8)])

        // Nor does a batch that is full: waiting would not make it larger.
        var full = self.policy { $0.interactiveRejoinWindow = .milliseconds(3); $0.maxBatchSequences = 2 }
        for n in 1...2 { full.submit(id(n), lengths: [16], deadline: far, now: t0) }
        guard let two = batch(full.next(now: at(0), weightsLoaded: true)) else { return }
        for n in 3...5 { full.submit(id(n), lengths: [16], deadline: far, now: at(1)) }
        _ = full.completed(two, now: at(30))
        #expect(batch(full.next(now: at(30), weightsLoaded: true))?.items.count == 2, "full: runs at once")
        #expect(full.next(now: at(30), weightsLoaded: true) == .wait(until: at(33)), "one left of the five: it waits")

        // One client sending one query at a time never waits.
        var single = self.policy { $0.interactiveRejoinWindow = .milliseconds(3) }
        single.submit(id(1), lengths: [16], deadline: far, now: t0)
        guard let alone = batch(single.next(now: at(0), weightsLoaded: true)) else { return }
        _ = single.completed(alone, now: at(30))
        single.submit(id(2), lengths: [16], deadline: far, now: at(31))
        #expect(batch(single.next(now: at(31), weightsLoaded: true))?.items.map(\.job) == [id(2)])
    }

    /// Bulk requests take turns: a later, smaller bulk request is not held until an earlier, larger
    /// one is done. Each batch holds one 3000-token text (`maxBatchTokens`).
    @Test func bulkRequestsTakeTurns() {
        var policy = policy(budget: 10_000_000) { $0.maxBatchTokens = 3000 }
        policy.submit(id(1), lengths: Array(repeating: 3000, count: 20), deadline: far, now: t0)
        var order: [SchedulerPolicy.JobID] = []
        var now = 10
        func step() {
            guard let run = batch(policy.next(now: at(now), weightsLoaded: true)) else { return }
            order.append(contentsOf: run.items.map(\.job))
            _ = policy.completed(run, now: at(now + 5))
            now += 10
        }
        for _ in 0..<3 { step() }
        policy.submit(id(2), lengths: [2500, 2500], deadline: far, now: at(now))
        now += 5
        while policy.queuedInputs > 0 { step() }
        #expect(order.count == 22)
        let small = order.indices.filter { order[$0] == id(2) }
        // It has been served fewer tokens than the big one, so it runs next, not after all 20.
        #expect(small == [3, 4], "\(order)")
    }

    @Test func anInputOverTheBulkShareRunsAloneAndOneOverTheBudgetFails() {
        // Budget 4 MB: the interactive share takes 1 MB, the bulk share 3 MB.
        var policy = policy(budget: 4_000_000)
        policy.submit(id(1), lengths: [3500, 3000], deadline: far, now: t0)
        let alone = batch(policy.next(now: at(10), weightsLoaded: true))
        #expect(alone?.lane == .alone && alone?.items.map(\.length) == [3500])
        _ = policy.completed(alone!, now: at(11))
        #expect(batch(policy.next(now: at(12), weightsLoaded: true))?.items.map(\.length) == [3000])

        policy.submit(id(2), lengths: [5000, 10], deadline: far, now: at(20))
        let decision = policy.next(now: at(30), weightsLoaded: true)
        #expect(decision == .fail([.init(job: id(2), error: .inputTooLarge(index: 0, tokens: 5000, bytes: 5_000_000, budgetBytes: 4_000_000))]))
        #expect(policy.queuedInputs == 0, "the request's other input left with it")
    }

    @Test func requestsPastTheirDeadlineOrWhoseClientWentAwayLeaveTheQueue() {
        var policy = policy()
        policy.submit(id(1), lengths: [3000], deadline: at(50), now: t0)
        policy.submit(id(2), lengths: [3000], deadline: far, now: t0)
        policy.submit(id(3), lengths: [3000], deadline: far, now: t0)
        let decision = policy.next(now: at(60), weightsLoaded: true, isGone: { $0 == id(3) })
        #expect(decision == .fail([.init(job: id(1), error: .deadlineExceeded), .init(job: id(3), error: .cancelled)]))
        #expect(batch(policy.next(now: at(61), weightsLoaded: true))?.items.map(\.job) == [id(2)])
        #expect(policy.jobCount == 1)
    }

    @Test func resultsOfACancelledRequestAreIgnoredAndCompletionIsPerRequest() {
        var policy = policy()
        policy.submit(id(1), lengths: [3000, 3000], deadline: far, now: t0)
        policy.submit(id(2), lengths: [3000], deadline: far, now: t0)
        let run = batch(policy.next(now: at(10), weightsLoaded: true))!
        #expect(run.items.count == 3)
        let known = policy.cancel(id(2))
        #expect(known)
        let done = policy.completed(run, now: at(20))
        #expect(done == [id(1)])
        #expect(policy.jobCount == 0)
    }

    @Test func anEngineFailureFailsEveryRequestInTheBatchWithItsOtherInputs() {
        var policy = policy() { $0.maxBatchTokens = 3000 }
        policy.submit(id(1), lengths: [3000, 3000], deadline: far, now: t0)
        let run = batch(policy.next(now: at(10), weightsLoaded: true))!
        let failed = policy.failed(run)
        #expect(failed == [id(1)])
        #expect(policy.queuedInputs == 0)
        #expect(SchedulerPolicy.halves(of: SchedulerPolicy.Batch(items: run.items + run.items, lane: .bulk, predictedBytes: 1)).map(\.items.count) == [1, 1])
    }

    @Test func idleWeightsAreUnloadedAfterTheTimeout() {
        var policy = policy { $0.idleTimeout = .milliseconds(100) }
        policy.submit(id(1), lengths: [5], deadline: far, now: t0)
        let run = batch(policy.next(now: at(1), weightsLoaded: true))!
        _ = policy.completed(run, now: at(10))
        #expect(policy.next(now: at(50), weightsLoaded: true) == .wait(until: at(110)))
        #expect(policy.next(now: at(110), weightsLoaded: true) == .unloadWeights)
        #expect(policy.next(now: at(111), weightsLoaded: false) == .wait(until: nil), "unloaded: nothing more to do")
    }

    @Test func idleUnloadWaitsWhileAnotherWorkerRunsABatch() {
        var policy = policy { $0.idleTimeout = .milliseconds(100) }
        policy.submit(id(1), lengths: [5], deadline: far, now: t0)
        policy.submit(id(2), lengths: [6], deadline: far, now: t0)
        _ = batch(policy.next(now: at(1), weightsLoaded: true))
        // One worker took the batch and runs it past the timeout; the idle one must not free the
        // weights under it (the next batch would load a second copy beside the first).
        #expect(policy.next(now: at(500), weightsLoaded: true, batchesRunning: 1) == .wait(until: nil))
        #expect(policy.next(now: at(501), weightsLoaded: true, batchesRunning: 0) == .unloadWeights)
    }

    @Test func stopFailsWhatIsKnownAndEndsTheWorker() {
        var policy = policy()
        policy.submit(id(1), lengths: [5], deadline: far, now: t0)
        policy.submit(id(2), lengths: [3000], deadline: far, now: t0)
        let known = policy.stop()
        #expect(known == [id(1), id(2)])
        #expect(policy.next(now: at(1), weightsLoaded: true) == .stop)
        #expect(policy.isStopped)
    }

    /// Many requests of random sizes under a small budget: every input runs exactly once, and every
    /// batch fits its lane's share.
    @Test func everyBatchFitsItsShareAndEveryInputRunsOnce() {
        let cost = CostModel(a: 1000, b: 1)
        let budget = 24_000_000
        var policy = policy(budget: budget, cost: cost)
        var generator = Generator(seed: 3)
        var expected = 0
        for request in 0..<60 {
            let longest: UInt64 = request % 4 == 0 ? 4000 : 200
            let lengths = (0..<(1 + Int(generator.next() % 12))).map { _ in 2 + Int(generator.next() % longest) }
            policy.submit(id(request), lengths: lengths, deadline: far, now: at(request))
            expected += lengths.count
        }
        var ran = 0
        var completed = Set<SchedulerPolicy.JobID>()
        var now = at(100)
        while policy.jobCount > 0 {
            let decision = policy.next(now: now, weightsLoaded: true)
            if case .wait(let until?) = decision, until > now {  // a window: nobody else comes
                now = until
                continue
            }
            guard let run = batch(decision) else { return }
            if run.items.count > 1 { #expect(cost.bytes(lengths: run.items.map(\.length)) <= budget) }
            ran += run.items.count
            completed.formUnion(policy.completed(run, now: now + .milliseconds(1)))
            now += .milliseconds(2)
        }
        #expect(ran == expected)
        #expect(completed.count == 60)
    }
}
