import Engine
import Foundation
import Scheduling
import Synchronization
import TestSupport
import Testing

/// A stand-in engine: each sequence's "dense" output is [length, first token, second token], so
/// results can be checked against inputs; it records every batch and can be slowed down, fail
/// allocations above a size, and call the scheduler's checkpoint while it "computes".
final class RecordingEncoder: BatchEncoder, @unchecked Sendable {
    struct Record { var lengths: [Int]; var nested: Bool }
    private let lock = NSLock()
    private var records: [Record] = []
    /// Calls in progress per lane (nil: the model's own): a second one on a lane is nested.
    private var depths: [ObjectIdentifier?: Int] = [:]
    private var lanesAtOnce = 0
    /// The most lanes that were computing at the same time.
    var peakLanesAtOnce: Int { lock.withLock { lanesAtOnce } }
    private var loaded = true
    private(set) var unloads = 0
    /// Batches that found the weights unloaded (and so loaded them again).
    private(set) var reloads = 0
    var secondsPerToken = 0.0
    /// Batches with more sequences than this fail with outOfMemory.
    var maxSequencesBeforeOOM = Int.max
    /// How often a batch calls its checkpoint while computing.
    var checkpoints = 0
    /// A top-level batch keeps calling its checkpoint (for up to 10 s) until a batch has run inside it.
    var holdUntilNested = false
    /// Every batch waits (for up to 10 s) until this says so: a test's gate instead of a duration
    /// that a loaded machine can outrun.
    var holdUntil: (@Sendable () -> Bool)?

    var batches: [Record] { lock.withLock { records } }
    var isLoaded: Bool { lock.withLock { loaded } }
    func unloadWeights() { lock.withLock { loaded = false; unloads += 1 } }

    func encode(_ sequences: [[Int32]], outputs: EmbeddingOutputs, workspace: EncoderWorkspace,
                checkpoint: (() -> Void)?) throws(EngineError) -> [SequenceEmbedding] {
        let lane = workspace.lane.map(ObjectIdentifier.init)
        let nested = lock.withLock { () -> Bool in
            if !loaded { reloads += 1 }
            loaded = true
            depths[lane, default: 0] += 1
            lanesAtOnce = max(lanesAtOnce, depths.count)
            return depths[lane]! > 1
        }
        defer {
            lock.withLock {
                depths[lane]! -= 1
                if depths[lane] == 0 { depths[lane] = nil }
            }
        }
        if sequences.count > maxSequencesBeforeOOM { throw .outOfMemory(bytes: sequences.count) }
        lock.withLock { records.append(Record(lengths: sequences.map(\.count), nested: nested)) }
        if holdUntilNested && !nested {
            let started = Date()
            while !lock.withLock({ records.contains { $0.nested } }) && Date().timeIntervalSince(started) < 10 {
                checkpoint?()
                Thread.sleep(forTimeInterval: 0.005)
            }
        }
        if let holdUntil {
            let started = Date()
            while !holdUntil() && Date().timeIntervalSince(started) < 10 { Thread.sleep(forTimeInterval: 0.005) }
        }
        let seconds = secondsPerToken * Double(sequences.reduce(0) { $0 + $1.count })
        let steps = max(1, checkpoints)
        for _ in 0..<steps {
            if seconds > 0 { Thread.sleep(forTimeInterval: seconds / Double(steps)) }
            if checkpoints > 0 { checkpoint?() }
        }
        return sequences.map { sequence in
            SequenceEmbedding(dense: [Float(sequence.count), Float(sequence[0]), Float(sequence.count > 1 ? sequence[1] : -1)],
                              sparse: SparseEmbedding(ids: [sequence[0]], weights: [1]))
        }
    }
}

@Suite struct BatchSchedulerTests {
    func sequence(_ length: Int, tag: Int32) -> [Int32] {
        [tag] + Array(repeating: Int32(7), count: max(0, length - 1))
    }

    var farDeadline: ContinuousClock.Instant { .now + .seconds(60) }

    func scheduler(_ encoder: RecordingEncoder, budget: Int = 1 << 30, cost: CostModel = CostModel(a: 1000, b: 0),
                   configure: (inout SchedulerSettings) -> Void = { _ in }) -> BatchScheduler {
        var settings = SchedulerSettings()
        configure(&settings)
        let scheduler = BatchScheduler(encoder: encoder, settings: settings, gauge: nil)
        scheduler.open(SchedulerBudget(cost: cost, bytes: budget))
        return scheduler
    }

    @Test func resultsComeBackInOrderAndOnlyWhatWasAskedFor() async throws {
        let encoder = RecordingEncoder()
        let scheduler = scheduler(encoder)
        defer { scheduler.stop() }
        let lengths = [5, 300, 17, 3000, 2, 64]
        let sequences = lengths.enumerated().map { sequence($0.element, tag: Int32($0.offset)) }
        let result = try await scheduler.submit(sequences, outputs: .dense, deadline: farDeadline)
        #expect(result.embeddings.map { $0.dense![0] } == lengths.map(Float.init))
        #expect(result.embeddings.map { $0.dense![1] } == lengths.indices.map(Float.init))
        #expect(result.embeddings.allSatisfy { $0.sparse == nil })
    }

    /// Many concurrent requests of random sizes under a small budget: every request gets exactly its
    /// own results in order, and every batch that ran fits its lane's share of the budget.
    @Test func concurrentRequestsArePackedWithinTheBudget() async throws {
        let encoder = RecordingEncoder()
        let cost = CostModel(a: 1000, b: 1)
        let budget = 24_000_000
        let scheduler = scheduler(encoder, budget: budget, cost: cost)
        defer { scheduler.stop() }
        var generator = Generator(seed: 3)
        var requests: [[[Int32]]] = []
        for request in 0..<60 {
            let count = 1 + Int(generator.next() % 12)
            let longest: UInt64 = request % 4 == 0 ? 4000 : 200
            var sequences: [[Int32]] = []
            for index in 0..<count {
                sequences.append(sequence(2 + Int(generator.next() % longest), tag: Int32(request * 100 + index)))
            }
            requests.append(sequences)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sequences in requests {
                group.addTask {
                    let result = try await scheduler.submit(sequences, outputs: .dense, deadline: .now + .seconds(60))
                    #expect(result.embeddings.map { $0.dense![1] } == sequences.map { Float($0[0]) })
                    #expect(result.embeddings.map { Int($0.dense![0]) } == sequences.map(\.count))
                }
            }
            try await group.waitForAll()
        }
        let total = requests.reduce(0) { $0 + $1.count }
        #expect(encoder.batches.reduce(0) { $0 + $1.lengths.count } == total, "every text encoded exactly once")
        for batch in encoder.batches where batch.lengths.count > 1 {
            #expect(cost.bytes(lengths: batch.lengths) <= budget)
        }
        #expect(encoder.batches.contains { $0.lengths.count > 1 }, "requests were batched together")
    }

    @Test func anAllocationFailureSplitsTheBatchAndRetries() async throws {
        let encoder = RecordingEncoder()
        encoder.maxSequencesBeforeOOM = 3
        let scheduler = scheduler(encoder)
        defer { scheduler.stop() }
        let sequences = (0..<10).map { sequence(3000 + $0, tag: Int32($0)) }
        let result = try await scheduler.submit(sequences, outputs: .dense, deadline: farDeadline)
        #expect(result.embeddings.map { $0.dense![1] } == (0..<10).map(Float.init))
        #expect(scheduler.oomSplitCount >= 2)
        #expect(encoder.batches.allSatisfy { $0.lengths.count <= 3 })
    }

    @Test func aSingleTextThatCannotFitFailsClearly() async {
        let encoder = RecordingEncoder()
        let scheduler = scheduler(encoder, budget: 1_000_000, cost: CostModel(a: 1000, b: 0))
        defer { scheduler.stop() }
        await #expect(throws: SchedulingError.inputTooLarge(index: 1, tokens: 5000, bytes: 5_000_000, budgetBytes: 1_000_000)) {
            _ = try await scheduler.submit([sequence(10, tag: 0), sequence(5000, tag: 1)], outputs: .dense, deadline: farDeadline)
        }
        #expect(encoder.batches.allSatisfy { !$0.lengths.contains(5000) })
    }

    @Test func aTextOverTheBulkShareRunsAlone() async throws {
        let encoder = RecordingEncoder()
        // Budget 4 MB; the interactive share takes 1 MB; a 3500-token text (3.5 MB) runs alone.
        let scheduler = scheduler(encoder, budget: 4_000_000, cost: CostModel(a: 1000, b: 0))
        defer { scheduler.stop() }
        let result = try await scheduler.submit([sequence(3500, tag: 0), sequence(3000, tag: 1)], outputs: .dense, deadline: farDeadline)
        #expect(result.embeddings.count == 2)
        #expect(encoder.batches.map(\.lengths).contains([3500]))
    }

    /// The thread's side of a deadline (the policy's is in SchedulerPolicyTests): the request is
    /// answered when its deadline passes, even while nothing runs.
    @Test func aPassedDeadlineAnswersTheRequest() async throws {
        let encoder = RecordingEncoder()
        let scheduler = BatchScheduler(encoder: encoder, settings: SchedulerSettings(), gauge: nil)
        defer { scheduler.stop() }
        await #expect(throws: SchedulingError.deadlineExceeded) {
            _ = try await scheduler.submit([sequence(25, tag: 9)], outputs: .dense, deadline: .now + .milliseconds(50))
        }
        #expect(encoder.batches.isEmpty)
        #expect(scheduler.queueDepth == 0)
    }

    @Test func workOfAGoneClientIsDropped() async throws {
        let encoder = RecordingEncoder()
        let gone = Atomic<Bool>(false)
        // The first batch runs until the second client is gone: with a fixed 0.2 s it sometimes
        // ended, under the whole suite on two cores, before the second request was queued.
        encoder.holdUntil = { gone.load(ordering: .relaxed) }
        let scheduler = scheduler(encoder)
        defer { scheduler.stop() }
        let blocker = Task { try await scheduler.submit([sequence(3000, tag: 0)], outputs: .dense, deadline: farDeadline) }
        try await waitUntil("the first batch to start") { !encoder.batches.isEmpty }
        let abandoned = Task {
            try await scheduler.submit((0..<5).map { sequence(2600, tag: Int32($0)) }, outputs: .dense, deadline: farDeadline,
                                       isAbandoned: { gone.load(ordering: .relaxed) })
        }
        try await waitUntil("two requests queued") { scheduler.queueDepth >= 2 }
        gone.store(true, ordering: .relaxed)
        await #expect(throws: SchedulingError.cancelled) { _ = try await abandoned.value }
        _ = try await blocker.value
        #expect(!encoder.batches.contains { $0.lengths.contains(2600) })
    }

    /// Readiness: requests sent while the scheduler is closed (the probe holds every slot) wait,
    /// nothing runs until it opens, and then they all succeed.
    @Test func requestsDuringASlowProbeWaitAndThenSucceed() async throws {
        let encoder = RecordingEncoder()
        let scheduler = BatchScheduler(encoder: encoder, settings: SchedulerSettings(), gauge: nil)
        defer { scheduler.stop() }
        let requests = (0..<20).map { index in
            Task { try await scheduler.submit([sequence(10 + index, tag: Int32(index))], outputs: .dense, deadline: .now + .seconds(30)) }
        }
        // The "probe": while the scheduler is closed, nothing reaches the engine.
        try await waitUntil("twenty requests queued", interval: .milliseconds(5)) { scheduler.queueDepth >= 20 }
        #expect(encoder.batches.isEmpty)
        scheduler.open(SchedulerBudget(cost: CostModel(a: 1000, b: 0), bytes: 1 << 30))
        for (index, request) in requests.enumerated() {
            let result = try await request.value
            #expect(result.embeddings[0].dense![1] == Float(index))
        }
    }

    /// An interactive request sent during a long bulk batch runs at the bulk batch's next safe
    /// point, in its own workspace, and is answered before the bulk batch ends. (The stand-in
    /// engine holds its bulk batch at safe points until something has run inside it, so the test
    /// does not depend on timing.)
    @Test func interactiveWorkRunsInsideALongBulkBatch() async throws {
        let encoder = RecordingEncoder()
        encoder.holdUntilNested = true
        let scheduler = scheduler(encoder)
        defer { scheduler.stop() }
        let finished = Mutex<[String]>([])
        let bulk = Task {
            let result = try await scheduler.submit((0..<4).map { sequence(4000, tag: Int32($0)) }, outputs: .dense, deadline: farDeadline)
            finished.withLock { $0.append("bulk") }
            return result
        }
        try await waitUntil("the first batch to start") { !encoder.batches.isEmpty }
        let interactive = try await scheduler.submit([sequence(12, tag: 99)], outputs: .dense, deadline: farDeadline)
        finished.withLock { $0.append("interactive") }
        _ = try await bulk.value
        #expect(interactive.embeddings[0].dense![1] == 99)
        #expect(finished.withLock { $0 } == ["interactive", "bulk"])
        #expect(encoder.batches.map(\.nested) == [false, true])
        #expect(encoder.batches.last?.lengths == [12])
    }

    @Test func idleWeightsAreUnloadedAndReloadedOnDemand() async throws {
        let encoder = RecordingEncoder()
        let scheduler = scheduler(encoder) { $0.idleTimeout = .milliseconds(100) }
        defer { scheduler.stop() }
        _ = try await scheduler.submit([sequence(5, tag: 1)], outputs: .dense, deadline: farDeadline)
        try await Task.sleep(for: .milliseconds(400))
        #expect(encoder.unloads >= 1)
        #expect(!encoder.isLoaded)
        let result = try await scheduler.submit([sequence(6, tag: 2)], outputs: .dense, deadline: farDeadline)
        #expect(result.embeddings[0].dense![0] == 6)
        // Loaded again by that batch (it may be unloaded again by now, on a slow machine: 100 ms idle).
        #expect(encoder.reloads == 1)
    }

    /// Two workers compute two batches at once, each on its own lane, and every result still
    /// reaches its request in order.
    @Test func workersRunBatchesAtOnceOnLanesOfTheirOwn() async throws {
        let encoder = RecordingEncoder()
        encoder.secondsPerToken = 0.002
        encoder.checkpoints = 4
        let scheduler = scheduler(encoder) {
            $0.workers = 2
            $0.threadsPerWorker = 1
            $0.maxBatchSequences = 1
            $0.interactiveTokens = 10
        }
        defer { scheduler.stop() }
        #expect(scheduler.workerCount == 2)
        #expect(scheduler.threadsPerWorker == 1)
        try await Task.sleep(for: .milliseconds(50))
        #expect(scheduler.liveWorkerCount == 2)
        let lengths = [100, 90, 80, 70]
        let sequences = lengths.enumerated().map { sequence($0.element, tag: Int32($0.offset)) }
        let result = try await scheduler.submit(sequences, outputs: .dense, deadline: farDeadline)
        #expect(result.embeddings.map { $0.dense![0] } == lengths.map(Float.init))
        #expect(result.embeddings.map { $0.dense![1] } == lengths.indices.map(Float.init))
        #expect(encoder.peakLanesAtOnce == 2, "each batch takes 140-200 ms: the second worker starts the next meanwhile")
        #expect(encoder.batches.allSatisfy { !$0.nested }, "batches of two workers are side by side, not nested")
        scheduler.stop()
        try await Task.sleep(for: .milliseconds(50))
        #expect(scheduler.liveWorkerCount == 0)
    }

    @Test func oneWorkerRunsOnTheModelsOwnLane() async throws {
        let encoder = RecordingEncoder()
        let scheduler = scheduler(encoder) { $0.maxBatchSequences = 1 }
        defer { scheduler.stop() }
        #expect(scheduler.workerCount == 1)
        #expect(scheduler.threadsPerWorker == nil)
        _ = try await scheduler.submit([sequence(30, tag: 1), sequence(20, tag: 2)], outputs: .dense, deadline: farDeadline)
        #expect(encoder.peakLanesAtOnce == 1)
    }
}
