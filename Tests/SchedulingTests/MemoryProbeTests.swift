import Foundation
import Scheduling
import Synchronization
import Testing

/// The start-up probe against a simulated engine whose memory follows a known a and b.
@Suite struct MemoryProbeTests {
    /// An engine whose run of (B, S) raises the simulated RSS by a·B·S + b·B·S² at its peak.
    final class SimulatedEngine: ProbeSubject, MemoryGauge, @unchecked Sendable {
        let truth: CostModel
        var resident: Int
        var peak: Int
        var shapes: [(Int, Int)] = []
        var failing: Set<Int> = []
        var hasRSS = true
        var canResetPeak = true

        init(truth: CostModel, resident: Int = 1 << 30) {
            self.truth = truth
            self.resident = resident
            self.peak = resident
        }

        struct Failure: Error {}

        func runShape(batch: Int, length: Int) throws -> Int {
            shapes.append((batch, length))
            if failing.contains(length) { throw Failure() }
            let bytes = truth.bytes(batch: batch, length: length)
            peak = max(peak, resident + bytes)
            // The engine's own accounting sees 90%: the allocator adds the rest.
            return bytes * 9 / 10
        }

        func releaseWorkspace() {}
        var residentBytes: Int? { hasRSS ? resident : nil }
        var peakResidentBytes: Int? { hasRSS ? peak : nil }
        func resetPeak() -> Bool {
            peak = resident
            return canResetPeak
        }
        func trim() {}
    }

    let conservative = CostModel(a: 200_000, b: 64)

    @Test func shapesFollowTheSpec() {
        #expect(MemoryProbe.shapes(maxSequenceLength: 8192).map { [$0.batch, $0.length] }
                == [[1, 64], [4, 64], [1, 256], [1, 1024], [1, 2048], [1, 4096], [1, 8192]])
        #expect(MemoryProbe.shapes(maxSequenceLength: 512).map { [$0.batch, $0.length] } == [[1, 64], [4, 64], [1, 256]])
        #expect(MemoryProbe.shapes(maxSequenceLength: 5000).last.map { [$0.batch, $0.length] } == [1, 5000])
    }

    @Test func probeRecoversTheEnginesCostAndExcludesTheWarmUp() throws {
        let engine = SimulatedEngine(truth: CostModel(a: 45_000, b: 2))
        let probe = MemoryProbe(conservative: conservative, budgetBytes: 8 << 30, limitBytes: 64 << 30, maxSequenceLength: 8192)
        let outcome = probe.run(engine, gauge: engine)
        #expect(outcome.status == .complete)
        #expect(outcome.fallback == nil)
        #expect(engine.shapes.first! == (1, 64))  // the warm-up
        #expect(engine.shapes.count == 8)
        #expect(outcome.samples.count == 7)
        #expect(abs(outcome.model.a - 45_000) < 45)
        #expect(abs(outcome.model.b - 2) < 0.01)
    }

    @Test func shapesOverTheBudgetOrNearTheLimitAreSkipped() {
        let engine = SimulatedEngine(truth: CostModel(a: 45_000, b: 2))
        // Conservative (1, 4096) = 819 MB + 1.07 GB: over a 1 GiB budget; (1, 2048) fits.
        let probe = MemoryProbe(conservative: conservative, budgetBytes: 1 << 30, limitBytes: 64 << 30, maxSequenceLength: 8192)
        let outcome = probe.run(engine, gauge: engine)
        #expect(outcome.status == .complete)
        #expect(outcome.skipped.map(\.length) == [4096, 8192])
        #expect(!engine.shapes.contains { $0.1 >= 4096 })
        // RSS guard: 1 GiB resident + 4 × estimate must stay under 87.5% of the limit.
        let tight = SimulatedEngine(truth: CostModel(a: 45_000, b: 2))
        let near = MemoryProbe(conservative: conservative, budgetBytes: 8 << 30, limitBytes: (1 << 30) + (1 << 30), maxSequenceLength: 8192)
        let guarded = near.run(tight, gauge: tight)
        let largest = guarded.samples.map(\.length).max() ?? 0
        #expect(largest < 2048)
        for sample in guarded.samples {
            #expect(Double(1 << 30) + 4 * Double(conservative.bytes(batch: sample.batch, length: sample.length)) <= 0.875 * Double(2 << 30))
        }
    }

    @Test func fallbacksNameWhatHappened() {
        let truth = CostModel(a: 45_000, b: 2)
        let none = MemoryProbe(conservative: conservative, budgetBytes: 1000, limitBytes: 64 << 30, maxSequenceLength: 8192)
        let skipped = none.run(SimulatedEngine(truth: truth), gauge: SimulatedEngine(truth: truth))
        #expect(skipped.status == .failed && skipped.fallback == .allSkipped && skipped.model == conservative)

        let probe = MemoryProbe(conservative: conservative, budgetBytes: 8 << 30, limitBytes: 64 << 30, maxSequenceLength: 8192)
        let broken = SimulatedEngine(truth: truth)
        broken.failing = [64, 256, 1024, 2048, 4096, 8192]
        let failed = probe.run(broken, gauge: broken)
        #expect(failed.fallback == .allFailed && failed.model == conservative)

        let blind = SimulatedEngine(truth: truth)
        blind.hasRSS = false
        #expect(probe.run(blind, gauge: blind).fallback == .noRSS)

        // Only (1, 64) and (4, 64) measured: one length cannot separate a from b.
        let short = MemoryProbe(conservative: conservative, budgetBytes: 8 << 30, limitBytes: 64 << 30, maxSequenceLength: 100)
        let single = SimulatedEngine(truth: truth)
        let invalid = short.run(single, gauge: single)
        #expect(invalid.fallback == .invalidFit && invalid.status == .failed && invalid.detail != nil)
    }

    @Test func withoutAPeakResetTheHeldWorkspaceIsMeasured() {
        let engine = SimulatedEngine(truth: CostModel(a: 45_000, b: 0))
        engine.canResetPeak = false
        let probe = MemoryProbe(conservative: conservative, budgetBytes: 8 << 30, limitBytes: 64 << 30, maxSequenceLength: 1024)
        let outcome = probe.run(engine, gauge: engine)
        // RSS readings stay at `resident` (nothing held), so the engine's 90% accounting is used.
        #expect(outcome.status == .complete)
        #expect(abs(outcome.model.a - 40_500) < 50)
    }
}
