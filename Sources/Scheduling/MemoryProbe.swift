import Foundation

/// The engine as the probe sees it: something that runs a batch of a given shape.
public protocol ProbeSubject: AnyObject {
    /// Runs one batch of `batch` sequences of `length` tokens and returns the workspace bytes the
    /// engine allocated for it by its own exact accounting.
    func runShape(batch: Int, length: Int) throws -> Int
    /// Frees the workspace, so the next shape starts from nothing.
    func releaseWorkspace()
}

/// The process's memory as the kernel counts it.
public protocol MemoryGauge: Sendable {
    var residentBytes: Int? { get }
    /// Starts a new high-water mark; false when the system does not allow it.
    func resetPeak() -> Bool
    var peakResidentBytes: Int? { get }
    /// Hands freed memory back to the system, so the next reading starts low.
    func trim()
}

/// How the cost model in use was obtained (SPEC §5), as `/health` and the metrics report it.
public enum ProbeStatus: String, Sendable, Equatable, Codable {
    /// The probe is measuring now.
    case running
    /// Measured at this start.
    case complete
    /// Read from the probe cache.
    case cached
    /// Set by `BGE_M3_COST_A` and `BGE_M3_COST_B`.
    case overridden
    /// Not measured (`BGE_M3_PROBE=off`): the conservative defaults.
    case off
    /// The probe ran but gave no usable fit: the conservative defaults.
    case failed
}

/// Why the probe fell back to the conservative model.
public enum ProbeFallback: String, Sendable, Equatable {
    case allSkipped = "all shapes skipped (budget too small)"
    case allFailed = "all shapes failed"
    case noRSS = "no RSS readings"
    case invalidFit = "invalid fit"
}

/// One shape the probe did not measure, and why.
public struct SkippedShape: Sendable, Equatable {
    public var batch: Int
    public var length: Int
    public var reason: String
}

/// What a probe run found.
public struct ProbeOutcome: Sendable {
    public var status: ProbeStatus
    public var model: CostModel
    public var samples: [ProbeSample]
    public var skipped: [SkippedShape]
    /// Set when the conservative model is used because the probe gave nothing better.
    public var fallback: ProbeFallback?
    /// The reason behind the fallback (e.g. the fit error or the last shape's error).
    public var detail: String?
}

/// The startup probe of SPEC §5: runs batches of growing shapes, measures the workspace of each,
/// and fits ``CostModel`` to the measurements.
///
/// Shapes: one warm-up at (1, 64), excluded from the fit because allocator and one-time set-up
/// costs are not per-call workspace; then (1, 64), (4, 64), (1, 256), (1, 1024), (1, 2048),
/// (1, 4096) and (1, max_seq) when larger, dropping those longer than max_seq, in ascending B·S.
/// Before each shape two guards run: the conservative model must say it fits the budget, and
/// current RSS plus four times its conservative estimate must stay under 87.5% of the limit
/// (allocators keep freed pages, so a shape can cost more than once). Each shape's workspace is the
/// larger of the resident-set growth at its peak and the engine's exact accounting.
public struct MemoryProbe: Sendable {
    public var conservative: CostModel
    public var budgetBytes: Int
    public var limitBytes: Int
    public var maxSequenceLength: Int

    public init(conservative: CostModel, budgetBytes: Int, limitBytes: Int, maxSequenceLength: Int) {
        self.conservative = conservative
        self.budgetBytes = budgetBytes
        self.limitBytes = limitBytes
        self.maxSequenceLength = maxSequenceLength
    }

    /// A test hook, `BGE_M3_TEST_PROBE_PAUSE_MS`: a pause before each measured shape, so that
    /// fault tests can kill the process in the middle of a probe (the tiny test model's probe
    /// takes about 10 ms, too short to aim at). Not a setting: nothing else reads it.
    static let testPauseSeconds: Double? = ProcessInfo.processInfo.environment["BGE_M3_TEST_PROBE_PAUSE_MS"]
        .flatMap(Double.init).map { $0 / 1000 }

    /// The measured shapes for this max_seq, in order.
    public static func shapes(maxSequenceLength: Int) -> [(batch: Int, length: Int)] {
        var shapes = [(1, 64), (4, 64), (1, 256), (1, 1024), (1, 2048), (1, 4096)]
        if maxSequenceLength > 4096 { shapes.append((1, maxSequenceLength)) }
        return shapes.filter { $0.1 <= maxSequenceLength }.sorted { $0.0 * $0.1 < $1.0 * $1.1 }.map { (batch: $0.0, length: $0.1) }
    }

    /// Runs the probe. `log` receives one line per shape.
    public func run(_ subject: some ProbeSubject, gauge: some MemoryGauge, log: (String) -> Void = { _ in }) -> ProbeOutcome {
        var samples: [ProbeSample] = []
        var skipped: [SkippedShape] = []
        var lastError: String?
        var failures = 0
        var sawRSS = false
        let warmUpLength = min(64, maxSequenceLength)
        do {
            _ = try subject.runShape(batch: 1, length: warmUpLength)
        } catch {
            log("probe warm-up (1, \(warmUpLength)) failed: \(error)")
        }
        for shape in Self.shapes(maxSequenceLength: maxSequenceLength) {
            let estimate = conservative.bytes(batch: shape.batch, length: shape.length)
            if estimate > budgetBytes {
                skipped.append(SkippedShape(batch: shape.batch, length: shape.length,
                                            reason: "conservative estimate \(mebibytes(estimate)) exceeds the budget of \(mebibytes(budgetBytes))"))
                log("probe (\(shape.batch), \(shape.length)): skipped, conservative estimate \(mebibytes(estimate)) > budget \(mebibytes(budgetBytes))")
                continue
            }
            subject.releaseWorkspace()
            gauge.trim()
            let before = gauge.residentBytes
            if let before {
                let ceiling = Double(limitBytes) * 0.875
                if Double(before) + 4 * Double(estimate) > ceiling {
                    skipped.append(SkippedShape(batch: shape.batch, length: shape.length,
                                                reason: "RSS \(mebibytes(before)) + 4 × \(mebibytes(estimate)) would pass 87.5% of the limit"))
                    log("probe (\(shape.batch), \(shape.length)): skipped, RSS \(mebibytes(before)) + 4 × \(mebibytes(estimate)) > 87.5% of \(mebibytes(limitBytes))")
                    continue
                }
            }
            if let pause = Self.testPauseSeconds { Thread.sleep(forTimeInterval: pause) }
            let peakReset = gauge.resetPeak()
            let engineBytes: Int
            do {
                engineBytes = try subject.runShape(batch: shape.batch, length: shape.length)
            } catch {
                failures += 1
                lastError = "\(error)"
                log("probe (\(shape.batch), \(shape.length)): failed: \(error)")
                continue
            }
            // The peak catches transient buffers; without it, the workspace is still held after the run.
            let after = peakReset ? gauge.peakResidentBytes : gauge.residentBytes
            guard let before, let after else {
                log("probe (\(shape.batch), \(shape.length)): no RSS reading")
                continue
            }
            sawRSS = true
            let sample = ProbeSample(batch: shape.batch, length: shape.length, measuredBytes: after - before, engineBytes: engineBytes)
            samples.append(sample)
            log("probe (\(shape.batch), \(shape.length)): RSS +\(mebibytes(after - before)), engine \(mebibytes(engineBytes))")
        }
        subject.releaseWorkspace()
        gauge.trim()

        func fallback(_ reason: ProbeFallback, _ detail: String?) -> ProbeOutcome {
            ProbeOutcome(status: .failed, model: conservative, samples: samples, skipped: skipped, fallback: reason, detail: detail)
        }
        let attempted = Self.shapes(maxSequenceLength: maxSequenceLength).count - skipped.count
        if attempted == 0 { return fallback(.allSkipped, "budget \(mebibytes(budgetBytes))") }
        if failures == attempted { return fallback(.allFailed, lastError) }
        if !sawRSS { return fallback(.noRSS, nil) }
        do {
            let model = try CostFit.fit(samples.map(Self.measurement))
            return ProbeOutcome(status: .complete, model: model, samples: samples, skipped: skipped, fallback: nil, detail: nil)
        } catch {
            return fallback(.invalidFit, error.description)
        }
    }

    /// The workspace a sample stands for: the larger of what the process grew by and what the
    /// engine says it allocated (the first misses nothing the allocator adds, the second nothing
    /// that reused pages hid).
    public static func measurement(_ sample: ProbeSample) -> WorkspaceMeasurement {
        WorkspaceMeasurement(batch: sample.batch, length: sample.length, bytes: max(sample.measuredBytes, sample.engineBytes))
    }
}

func mebibytes(_ bytes: Int) -> String {
    String(format: "%.1f MiB", Double(bytes) / 1_048_576)
}
