import Engine
import Scheduling
import Testing

/// The fit of workspace = a·B·S + b·B·S² and the first-fit-decreasing packer.
@Suite struct CostModelTests {
    let shapes = [(1, 64), (4, 64), (1, 256), (1, 1024), (1, 2048), (1, 4096), (1, 8192)]

    @Test(arguments: [(45_000.0, 0.0), (30_000.0, 64.0), (200.0, 12.0), (5_000.0, 0.5)])
    func fitRecoversKnownCoefficients(a: Double, b: Double) throws {
        let measurements = shapes.map { WorkspaceMeasurement(batch: $0.0, length: $0.1, bytes: CostModel(a: a, b: b).bytes(batch: $0.0, length: $0.1)) }
        let fit = try CostFit.fit(measurements)
        #expect(abs(fit.a - a) <= max(1, a * 1e-4))
        #expect(abs(fit.b - b) <= max(1e-3, b * 1e-4))
    }

    /// A fit without a per-token term would predict almost nothing for short inputs (and the probe
    /// cache refuses it): for measurements that only grow with the square of the length, the fit
    /// keeps a per-token term or refuses (the probe then falls back to the conservative model).
    @Test func aFitNeverLeavesOutThePerTokenTerm() {
        let measurements = shapes.map { WorkspaceMeasurement(batch: $0.0, length: $0.1, bytes: $0.0 * 12 * $0.1 * $0.1) }
        if let fit = try? CostFit.fit(measurements) { #expect(fit.a > 0, "\(fit)") }
    }

    @Test func noisyFitCoversEveryMeasurement() throws {
        var generator = Generator(seed: 7)
        let truth = CostModel(a: 40_000, b: 3)
        let measurements = shapes.map { shape in
            WorkspaceMeasurement(batch: shape.0, length: shape.1,
                                 bytes: Int(Double(truth.bytes(batch: shape.0, length: shape.1)) * (0.9 + 0.2 * generator.unit())) + (1 << 19))
        }
        let fit = try CostFit.fit(measurements)
        #expect(fit.a >= 0 && fit.b >= 0)
        for m in measurements { #expect(fit.bytes(batch: m.batch, length: m.length) >= m.bytes - CostFit.noiseBytes) }
        // Not wildly conservative either: within 30% of the truth at the largest shape.
        #expect(Double(fit.bytes(batch: 1, length: 8192)) <= 1.3 * Double(truth.bytes(batch: 1, length: 8192)))
    }

    @Test func fitRejectsDegenerateData() {
        #expect(throws: CostFitError.tooFewLengths(1)) {
            try CostFit.fit([WorkspaceMeasurement(batch: 1, length: 64, bytes: 1000), WorkspaceMeasurement(batch: 4, length: 64, bytes: 4000)])
        }
        #expect(throws: CostFitError.tooFewLengths(0)) { try CostFit.fit([]) }
        let zero = WorkspaceMeasurement(batch: 1, length: 256, bytes: 0)
        #expect(throws: CostFitError.invalidMeasurement(zero)) {
            try CostFit.fit([WorkspaceMeasurement(batch: 1, length: 64, bytes: 1000), zero])
        }
        let negative = WorkspaceMeasurement(batch: 1, length: 256, bytes: -5)
        #expect(throws: CostFitError.invalidMeasurement(negative)) {
            try CostFit.fit([WorkspaceMeasurement(batch: 1, length: 64, bytes: 1000), negative])
        }
    }

    @Test func unpaddedBatchCostsTheSumOfItsSequences() {
        let model = CostModel(a: 100, b: 2)
        #expect(model.bytes(lengths: [10, 20]) == 100 * 30 + 2 * (100 + 400))
        #expect(model.bytes(batch: 3, length: 10) == model.bytes(lengths: [10, 10, 10]))
    }

    /// Property test over random workloads: every text exactly once, every batch within every limit
    /// unless it holds one text alone, and each batch's texts longest first.
    @Test func packerProperties() {
        var generator = Generator(seed: 42)
        for round in 0..<300 {
            let count = Int(generator.next() % 200)
            let lengths = (0..<count).map { _ in 1 + Int(generator.next() % (round % 3 == 0 ? 8192 : 600)) }
            let cost = CostModel(a: Double(1 + generator.next() % 50_000), b: Double(generator.next() % 64))
            let limits = BatchLimits(budgetBytes: Int(generator.next() % 400_000_000), maxTokens: 1 + Int(generator.next() % 20_000),
                                     maxSequences: 1 + Int(generator.next() % 64))
            let batches = BatchPacker.pack(lengths: lengths, cost: cost, limits: limits)
            #expect(batches.flatMap { $0 }.sorted() == Array(lengths.indices), "round \(round): every text exactly once")
            for batch in batches {
                #expect(!batch.isEmpty)
                let batchLengths = batch.map { lengths[$0] }
                #expect(batchLengths == batchLengths.sorted(by: >))
                if batch.count > 1 {
                    #expect(cost.bytes(lengths: batchLengths) <= limits.budgetBytes, "round \(round): batch over budget")
                    #expect(batchLengths.reduce(0, +) <= limits.maxTokens)
                    #expect(batch.count <= limits.maxSequences)
                }
            }
        }
    }

    @Test func aTextLargerThanTheBudgetGetsABatchOfItsOwn() {
        let cost = CostModel(a: 1000, b: 0)
        let batches = BatchPacker.pack(lengths: [10, 5000, 20, 30], cost: cost, limits: BatchLimits(budgetBytes: 100_000))
        #expect(batches.first == [1])
        #expect(batches.dropFirst().flatMap { $0 }.sorted() == [0, 2, 3])
    }

    @Test func firstFitDecreasingFillsEarlierBatches() {
        // Budget of 10 units: 6+4, 5+5, 3 → three batches, the first-fit-decreasing optimum here.
        let cost = CostModel(a: 1, b: 0)
        let batches = BatchPacker.pack(lengths: [5, 3, 6, 4, 5], cost: cost, limits: BatchLimits(budgetBytes: 10))
        #expect(batches.map { $0.map { [5, 3, 6, 4, 5][$0] } } == [[6, 4], [5, 5], [3]])
    }
}

/// Failures reproduce: the engine's seeded generator.
typealias Generator = SeededGenerator

extension SeededGenerator {
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
