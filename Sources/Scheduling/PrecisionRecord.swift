import Engine
import Foundation

/// One precision's measured accuracy against fp32 on a model, as cached and shown in `/info`.
public struct PrecisionFigures: Sendable, Equatable, Codable {
    public var precision: String
    public var passes: Bool
    public var denseCosineMin: Float
    public var denseCosineMean: Float
    public var top10OverlapDense: Float
    public var top10OverlapLexical: Float
    public var top10OverlapColbert: Float
    public var top10OverlapHybrid: Float
    /// The gates that failed, in words; nil when all pass.
    public var failure: String?
    /// Loading the model at this precision and encoding the texts.
    public var seconds: Double

    public init(precision: String, passes: Bool, denseCosineMin: Float, denseCosineMean: Float, top10OverlapDense: Float, top10OverlapLexical: Float,
                top10OverlapColbert: Float, top10OverlapHybrid: Float, failure: String?, seconds: Double) {
        self.precision = precision
        self.passes = passes
        self.denseCosineMin = denseCosineMin
        self.denseCosineMean = denseCosineMean
        self.top10OverlapDense = top10OverlapDense
        self.top10OverlapLexical = top10OverlapLexical
        self.top10OverlapColbert = top10OverlapColbert
        self.top10OverlapHybrid = top10OverlapHybrid
        self.failure = failure
        self.seconds = seconds
    }

    public init(_ measurement: PrecisionCheck.Measurement) {
        let comparison = measurement.comparison
        precision = measurement.precision.rawValue
        passes = measurement.passes
        denseCosineMin = comparison.denseCosineMin
        denseCosineMean = comparison.denseCosineMean
        top10OverlapDense = comparison.top10Overlap.dense
        top10OverlapLexical = comparison.top10Overlap.lexical
        top10OverlapColbert = comparison.top10Overlap.colbert
        top10OverlapHybrid = comparison.top10Overlap.hybrid
        failure = comparison.failure(for: measurement.precision)
        seconds = measurement.seconds
    }

    /// For logs: `int8 passes (cosine min 0.9991, top-10 overlap ≥ 0.905)`.
    public var summary: String {
        let worst = min(top10OverlapDense, top10OverlapLexical, top10OverlapColbert, top10OverlapHybrid)
        return String(format: "%@ %@ (dense cosine min %.5f, worst top-10 overlap %.3f)", precision, passes ? "passes" : "fails", denseCosineMin, worst)
            + (failure.map { ": \($0)" } ?? "")
    }
}

/// The precision check's results for one model on one CPU, cached beside the probe's fits so that
/// replicas sharing the cache measure once.
public struct PrecisionRecord: Sendable, Equatable, Codable {
    public static let currentFormat = 1
    public var format: Int
    /// The probe's fingerprint of the model files, engine version, threads and length, with
    /// precision `check`.
    public var fingerprint: ProbeFingerprint
    /// What the int8 and bf16 products compute with here: oneDNN's ISA and int8's levels (VNNI
    /// and AVX2 round differently), and whether outlier columns are handled.
    public var arithmetic: String
    /// Each precision measured so far.
    public var measurements: [PrecisionFigures]
    public var created: String

    public init(fingerprint: ProbeFingerprint, arithmetic: String, measurements: [PrecisionFigures], created: Date = Date()) {
        format = Self.currentFormat
        self.fingerprint = fingerprint
        self.arithmetic = arithmetic
        self.measurements = measurements
        self.created = ISO8601DateFormatter().string(from: created)
    }

    public func figures(for precision: Precision) -> PrecisionFigures? {
        measurements.first { $0.precision == precision.rawValue }
    }
}

extension ProbeCache {
    /// `precision-<16 hex digits>.json`, from the fingerprint and the arithmetic.
    func precisionFileName(fingerprint: ProbeFingerprint, arithmetic: String) -> String {
        var key = fingerprint
        key.precision = "check " + arithmetic
        return "precision-\(key.digest.prefix(16)).json"
    }

    /// The cached record for this model and CPU; nil when there is none or it cannot be trusted
    /// (then `reason` says why, for a warning). Never throws: a bad file costs a check, not start-up.
    public func loadPrecisionRecord(fingerprint: ProbeFingerprint, arithmetic: String) -> (record: PrecisionRecord?, reason: String?) {
        let path = directory.appendingPathComponent(precisionFileName(fingerprint: fingerprint, arithmetic: arithmetic)).path
        let data: Data
        switch Self.readSmallFile(path) {
        case .missing: return (nil, nil)
        case .failed(let reason): return (nil, "\(path): \(reason)")
        case .read(let bytes): data = bytes
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let record: PrecisionRecord
        do { record = try decoder.decode(PrecisionRecord.self, from: data) } catch {
            return (nil, "\(path) is \(Self.explain(error))")
        }
        guard record.format == PrecisionRecord.currentFormat, record.fingerprint == fingerprint, record.arithmetic == arithmetic else {
            return (nil, "\(path) was measured for another build, model or CPU")
        }
        return (record, nil)
    }

    /// Stores `record`, replacing the file whole (see ``store(_:)``).
    public func storePrecisionRecord(_ record: PrecisionRecord) throws(ProbeCacheError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        var data: Data
        do { data = try encoder.encode(record) } catch {
            throw .unwritable(path: directory.path, reason: "cannot encode the record: \(error)")
        }
        data.append(UInt8(ascii: "\n"))
        try write(data, named: precisionFileName(fingerprint: record.fingerprint, arithmetic: record.arithmetic))
    }
}
