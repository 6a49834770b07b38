import Engine
import Foundation
import Logging

/// What `BGE_M3_PROBE` asks for.
public enum ProbeMode: String, Sendable, CaseIterable {
    /// Use a cached fit for this fingerprint, else probe and cache the fit.
    case auto
    /// Do not probe: the conservative defaults.
    case off
    /// Probe even if a cached fit exists, and replace it.
    case force
}

/// The memory settings of SPEC §5, validated by the command line.
public struct MemorySettings: Sendable {
    /// A limit given outright (`--memory-limit`, `BGE_M3_MEMORY_LIMIT`); nil: detected.
    public var limitBytes: Int?
    /// Fraction of the limit the server plans to use (`BGE_M3_MEMORY_SAFETY`).
    public var safety = 0.9
    /// Execution slots the workspace budget is divided between (`BGE_M3_WORKERS`).
    public var workers = 1
    /// What each worker beyond the first holds outside its workspace: its thread team's primitives,
    /// input conversion buffer and scratchpads, which the probe (run on one team) does not see.
    public static let extraWorkerBytes = 32 << 20
    /// Fraction of the memory left after the model that requests may hold outside the forward
    /// pass: bodies, token ids, results and responses being written (`BGE_M3_REQUEST_MEMORY_SHARE`).
    public var requestShare = 0.25
    public var probe = ProbeMode.auto
    /// Where fits are cached (`BGE_M3_PROBE_CACHE_DIR`); nil: no cache.
    public var cacheDirectory: URL?
    /// `BGE_M3_COST_A` and `BGE_M3_COST_B`: a cost model given outright (no probe).
    public var costOverride: CostModel?

    public init() {}

    /// The given limit, else the cgroup's, else the machine's.
    public func limit() throws(MemoryLimit.DetectionError) -> MemoryLimit {
        if let limitBytes { return MemoryLimit(bytes: limitBytes, source: .override) }
        return try MemoryLimit.detect()
    }
}

/// The memory model the server runs with, and how it was obtained (for logs and `/health`).
public struct MemoryPlan: Sendable {
    public var limit: MemoryLimit
    /// Resident set after loading the model: weights plus the runtime's baseline.
    public var residentBytes: Int
    /// Workspace bytes per worker.
    public var budgetBytes: Int
    /// Bytes requests may hold outside the forward pass, all workers together (see ``RequestAdmission``).
    public var requestBytes: Int
    public var cost: CostModel
    public var status: ProbeStatus
    public var fallback: ProbeFallback?
    public var detail: String?
    public var samples: [ProbeSample]

    /// The engine's exact bytes beside the model's prediction, per measured shape.
    public var predictions: [(batch: Int, length: Int, predicted: Int, measured: Int)] {
        samples.map { ($0.batch, $0.length, cost.bytes(batch: $0.batch, length: $0.length), MemoryProbe.measurement($0).bytes) }
    }
}

/// Start-up (SPEC §5): memory limit → budget → cached fit, probe, or override → cost model.
public enum MemoryPlanner {
    /// - Parameters:
    ///   - maxSequenceLength: the longest sequence the server accepts (the probe's largest shape).
    public static func plan(model: BGEM3Model, limit: MemoryLimit, settings: MemorySettings, engineVersion: String,
                            maxSequenceLength: Int, gauge: some MemoryGauge, logger: Logger) -> MemoryPlan {
        gauge.trim()
        let resident = gauge.residentBytes ?? model.packedWeightBytes
        // What the model leaves of the planned memory is split between what requests hold outside
        // the forward pass (admission) and the workspace (the batch scheduler).
        let teams = (max(1, settings.workers) - 1) * MemorySettings.extraWorkerBytes
        let available = max(0, Int(Double(limit.bytes) * settings.safety) - resident - teams)
        let requestBytes = Int(Double(available) * settings.requestShare)
        let budget = (available - requestBytes) / max(1, settings.workers)
        let config = model.config
        let conservative = CostModel.conservative(hiddenSize: config.hiddenSize, intermediateSize: config.intermediateSize, heads: config.heads)
        var plan = MemoryPlan(limit: limit, residentBytes: resident, budgetBytes: budget, requestBytes: requestBytes, cost: conservative, status: .off,
                              fallback: nil, detail: nil, samples: [])
        defer {
            logger.info("memory plan", metadata: [
                "limit_mib": .stringConvertible(limit.bytes >> 20), "limit_source": .string(limit.source.rawValue),
                "resident_mib": .stringConvertible(resident >> 20), "budget_mib": .stringConvertible(budget >> 20), "request_mib": .stringConvertible(requestBytes >> 20),
                "workers": .stringConvertible(settings.workers), "cost": .string(plan.cost.description), "probe": .string(plan.status.rawValue)])
        }
        if let override = settings.costOverride {
            plan.cost = override
            plan.status = .overridden
            return plan
        }
        if settings.probe == .off {
            logger.warning("probe off (BGE_M3_PROBE=off): using the conservative cost model", metadata: ["cost": .string(conservative.description)])
            return plan
        }
        var cache: (ProbeCache, ProbeFingerprint)?
        if let directory = settings.cacheDirectory {
            do {
                // The attention kernel sizes part of the workspace, and differs between CPUs sharing a cache.
                let fingerprint = try ProbeFingerprint.of(modelDirectory: model.directory, engineVersion: engineVersion,
                                                          precision: "\(model.precision.rawValue); attention \(model.attentionKernel.name)",
                                                          threads: model.threads, maxSequenceLength: maxSequenceLength)
                cache = (ProbeCache(directory: directory), fingerprint)
            } catch {
                logger.warning("probe cache not used: \(error.description)")
            }
        }
        if settings.probe == .auto, let (store, fingerprint) = cache {
            switch store.load(for: fingerprint) {
            case .hit(let record):
                plan.cost = CostModel(a: record.a, b: record.b)
                plan.status = .cached
                plan.samples = record.samples
                logger.info("probe: cached fit used", metadata: ["file": .string(store.fileURL(for: fingerprint).path)])
                return plan
            case .ignored(let reason):
                logger.warning("probe cache ignored; probing again", metadata: ["file": .string(store.fileURL(for: fingerprint).path), "reason": .string(reason)])
            case .miss:
                break
            }
        }
        let probe = MemoryProbe(conservative: conservative, budgetBytes: budget, limitBytes: limit.bytes, maxSequenceLength: maxSequenceLength)
        let started = ContinuousClock.now
        // Said before it starts: on the full-size model the probe takes tens of seconds.
        logger.info("probe starting: measuring the workspace of a few batch shapes", metadata: [
            "budget_mib": .stringConvertible(budget >> 20), "max_seq": .stringConvertible(maxSequenceLength)])
        let outcome = probe.run(EngineProbeSubject(model: model), gauge: gauge) { logger.info("\($0)") }
        plan.cost = outcome.model
        plan.status = outcome.status
        plan.samples = outcome.samples
        plan.fallback = outcome.fallback
        plan.detail = outcome.detail
        if let fallback = outcome.fallback {
            logger.warning("probe fell back to the conservative cost model: \(fallback.rawValue)", metadata: [
                "detail": .string(outcome.detail ?? ""), "cost": .string(conservative.description)])
            return plan
        }
        logger.info("probe complete", metadata: ["seconds": .string(String(format: "%.1f", (ContinuousClock.now - started).seconds)),
                                                 "shapes": .stringConvertible(outcome.samples.count), "skipped": .stringConvertible(outcome.skipped.count)])
        if let (store, fingerprint) = cache {
            do {
                try store.store(ProbeRecord(fingerprint: fingerprint, a: outcome.model.a, b: outcome.model.b, samples: outcome.samples))
            } catch {
                logger.warning("probe fit not cached: \(error.description)")
            }
        }
        return plan
    }
}
