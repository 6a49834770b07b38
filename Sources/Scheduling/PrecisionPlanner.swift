import Engine
import Foundation
import Logging

/// Which precision the server runs and why (`/info`, the start-up log).
public struct PrecisionDecision: Sendable {
    public enum Source: String, Sendable {
        /// Measured at this start.
        case measured
        /// Measured by an earlier start with the same fingerprint (or another replica).
        case cached
        /// fp32 asked for: nothing to check.
        case notNeeded = "not needed"
        /// The check could not run (``PrecisionDecision/note`` says why); the precision runs unchecked.
        case skipped
    }

    public var requested: PrecisionRequest
    public var running: Precision
    public var source: Source
    /// What was measured, fastest first.
    public var measurements: [PrecisionFigures]
    /// A warning: the check was skipped, or the precision asked for fails the gates here.
    public var note: String?

    public init(requested: PrecisionRequest, running: Precision, source: Source, measurements: [PrecisionFigures], note: String?) {
        self.requested = requested
        self.running = running
        self.source = source
        self.measurements = measurements
        self.note = note
    }
}

/// Resolves `--precision` on the weights actually loaded (issue: accuracy by default).
///
/// `auto` measures int8 against fp32 on the check texts (``checkPassageTokens``), then bf16 where
/// the CPU has it if int8 fails, and runs the first that passes the gates, else fp32. An explicit
/// int8 or bf16 is measured too and runs whatever the result, with a warning when it fails. The
/// figures are cached beside the probe's fits under the same fingerprint and this CPU's
/// arithmetic, so a restart or a replica reads them instead of measuring.
public struct PrecisionPlanner: Sendable {
    public var directory: URL
    public var threads: Int?
    public var limit: MemoryLimit
    public var settings: MemorySettings
    public var engineVersion: String
    public var logger: Logger
    /// The attention kernel at the reduced precisions (`--attention`), measured by the check with
    /// them; nil for this CPU's choice. fp32 keeps its own kernel, whose results are fp32 either way.
    public var attention: AttentionKernel?

    public init(directory: URL, threads: Int?, limit: MemoryLimit, settings: MemorySettings, engineVersion: String, logger: Logger) {
        self.directory = directory
        self.threads = threads
        self.limit = limit
        self.settings = settings
        self.engineVersion = engineVersion
        self.logger = logger
    }

    /// The start-up check runs the built-in eval texts with passages cut to their first 64 tokens:
    /// all 20 queries and 100 passages, 5,948 tokens instead of 11,105. Keeping every topic and
    /// passage keeps the top-10 overlaps' resolution (20 queries × top 10 of 100 passages); cutting
    /// the passages halves the time. Against the whole set it gave the same pass or fail in 23 of 24
    /// model, precision and path combinations (docs/precisions.md); keeping half the topics
    /// instead passed the outlier model without its handling, which the whole set fails.
    public static let checkPassageTokens = 64

    /// Decides, measuring what the cache lacks, and returns the model loaded at the chosen
    /// precision. `checking` is called before a measurement starts (for `/health`).
    public func decide(_ request: PrecisionRequest, checking: () -> Void = {}) throws -> (decision: PrecisionDecision, model: BGEM3Model) {
        let candidates = request.candidates
        guard !candidates.isEmpty else {
            return (PrecisionDecision(requested: request, running: .fp32, source: .notNeeded, measurements: [], note: nil),
                    try load(.fp32))
        }
        var fallback = candidates[0]
        if case .fixed(let precision) = request { fallback = precision }
        let fingerprint: ProbeFingerprint
        do {
            // The longest sequence served does not change the check: 0 here, so every server setting shares one record.
            fingerprint = try ProbeFingerprint.of(modelDirectory: directory, engineVersion: engineVersion, precision: "check",
                                                  threads: threads ?? CPUQuota.available(), maxSequenceLength: 0)
        } catch {
            return try unchecked(request, running: fallback, because: "the model files cannot be fingerprinted: \(error)")
        }
        let arithmetic = PrecisionCheck.arithmetic(attention: attention)
        let cache = settings.cacheDirectory.map(ProbeCache.init(directory:))
        var known: [PrecisionFigures] = []
        if let cache, settings.probe != .force {
            let (record, reason) = cache.loadPrecisionRecord(fingerprint: fingerprint, arithmetic: arithmetic)
            if let reason { logger.warning("precision check cache ignored", metadata: ["reason": .string(reason)]) }
            known = record?.measurements ?? []
        }

        // Measure what is needed and not cached, lazily: fp32 first, once.
        var check: PrecisionCheck?
        var reference: PrecisionCheck.Reference?
        var lastModel: BGEM3Model?
        var measuredNow = false
        func figures(for precision: Precision) throws -> PrecisionFigures? {
            if let cached = known.first(where: { $0.precision == precision.rawValue }) { return cached }
            if check == nil {
                guard var made = try PrecisionCheck.onBuiltInTexts(directory: directory, threads: threads, passageTokens: Self.checkPassageTokens) else {
                    return nil
                }
                made.attention = attention
                if let shortfall = memoryShortfall(made) { throw Unchecked.memory(shortfall) }
                check = made
            }
            checking()
            if reference == nil {
                logger.info("precision check: measuring fp32 on this model's weights", metadata: ["tokens": .stringConvertible(check!.sequences.tokenCount)])
                reference = try check!.reference()
                logger.info("precision check: fp32 measured", metadata: ["seconds": .string(String(format: "%.1f", reference!.seconds))])
            }
            lastModel = nil
            let (measurement, model) = try check!.measure(precision, against: reference!)
            lastModel = model
            measuredNow = true
            let result = PrecisionFigures(measurement)
            known.append(result)
            logger.info("precision check: \(result.summary)", metadata: ["seconds": .string(String(format: "%.1f", measurement.seconds))])
            return result
        }

        var measured: [PrecisionFigures] = []
        var running = Precision.fp32
        do {
            for precision in candidates {
                guard let result = try figures(for: precision) else {
                    return try unchecked(request, running: fallback, because: "the model has no tokenizer this engine runs, so the eval texts cannot be encoded")
                }
                measured.append(result)
                if case .fixed = request { running = precision; break }
                if result.passes { running = precision; break }
            }
        } catch Unchecked.memory(let shortfall) {
            return try unchecked(request, running: fallback, because: shortfall)
        }
        if measuredNow, let cache {
            do {
                try cache.storePrecisionRecord(PrecisionRecord(fingerprint: fingerprint, arithmetic: arithmetic, measurements: known))
            } catch {
                logger.warning("precision check not cached", metadata: ["error": .string(error.description)])
            }
        }
        var note: String?
        if case .fixed(let precision) = request, let result = measured.first, !result.passes {
            note = "\(precision.rawValue) fails the accuracy gates on this model (\(result.failure ?? "")); it runs because it was asked for; --precision auto would choose a precision that passes"
            logger.warning("precision check: \(note!)")
        }
        let model = lastModel?.precision == running ? lastModel! : try load(running)
        return (PrecisionDecision(requested: request, running: running, source: measuredNow ? .measured : .cached, measurements: measured, note: note), model)
    }

    private enum Unchecked: Error {
        case memory(String)
    }

    private func unchecked(_ request: PrecisionRequest, running: Precision, because reason: String) throws -> (decision: PrecisionDecision, model: BGEM3Model) {
        let note = "precision check skipped: \(reason); running \(running.rawValue) unchecked"
        logger.warning("\(note)")
        return (PrecisionDecision(requested: request, running: running, source: .skipped, measurements: [], note: note),
                try load(running))
    }

    /// The model at `precision`, with ``attention`` at the reduced precisions; at fp32 a chosen
    /// kernel is set aside, and the log says so.
    private func load(_ precision: Precision) throws -> BGEM3Model {
        if precision == .fp32, let attention {
            logger.warning("the attention setting has no effect at fp32: fp32 keeps its own kernel", metadata: [
                "attention": .string(attention.name), "running": .string(AttentionKernel.forThisCPU(precision: .fp32).name),
            ])
        }
        return try BGEM3Model(directory: directory, threads: threads, precision: precision, attention: precision == .fp32 ? nil : attention)
    }

    /// Why the fp32 model and the check's workspace would not fit in the limit, or nil. The fp32
    /// layers are held while measuring (1.2 GB for BGE-M3; the embeddings are read from the file
    /// map); the workspace is the conservative cost of a check batch.
    func memoryShortfall(_ check: PrecisionCheck) -> String? {
        let (config, sequences) = (check.config, check.sequences)
        let h = config.hiddenSize, i = config.intermediateSize
        let layers = config.layers * (4 * h * h + 2 * h * i + 9 * h + i) * 4
        let longest = max(1, sequences.all.map(\.count).max() ?? 1)
        let cost = CostModel.conservative(hiddenSize: h, intermediateSize: i, heads: config.heads)
        let workspace = cost.bytes(batch: max(1, check.tokensPerBatch / longest), length: longest)
        let needed = (ProcessMemory.residentBytes ?? 0) + layers + workspace
        let available = Int(Double(limit.bytes) * settings.safety)
        guard needed > available else { return nil }
        return "it holds the fp32 model and its workspace (\(needed >> 20) MiB) and the memory limit allows \(available >> 20) MiB "
            + "(\(limit.source.rawValue)); raise the limit, or set --precision to run one without the check"
    }
}
