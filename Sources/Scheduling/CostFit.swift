/// A measured workspace: `bytes` for a batch of `batch` sequences of `length` tokens.
public struct WorkspaceMeasurement: Sendable, Equatable {
    public var batch: Int
    public var length: Int
    public var bytes: Int

    public init(batch: Int, length: Int, bytes: Int) {
        self.batch = batch
        self.length = length
        self.bytes = bytes
    }
}

/// Why measurements do not give a usable cost model.
public enum CostFitError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `a` and `b` cannot be told apart: fewer than two distinct sequence lengths were measured.
    case tooFewLengths(Int)
    /// A measurement that cannot be a workspace (zero or negative bytes, or an empty shape).
    case invalidMeasurement(WorkspaceMeasurement)
    /// The fit came out non-finite or zero.
    case degenerate(String)

    public var description: String {
        switch self {
        case .tooFewLengths(let count): return "\(count) distinct sequence length(s) measured; the fit needs at least 2"
        case .invalidMeasurement(let m): return "measurement of \(m.bytes) bytes for (\(m.batch), \(m.length)) is not a workspace"
        case .degenerate(let reason): return "the fit is unusable: \(reason)"
        }
    }
}

/// Fits ``CostModel`` to measurements: non-negative least squares on relative error, then scaled up
/// so that the model covers every measurement.
///
/// Relative error, because measurements span three orders of magnitude and the small shapes
/// matter as much as the large ones. With two unknowns, non-negative least squares is exact and
/// small: solve the unconstrained problem; if a coefficient comes out negative, the optimum lies
/// on a boundary (a = 0 or b = 0), each a one-variable fit, and the better of the two is taken.
/// The final scaling (never below 1) makes the model an upper bound of what was seen (within
/// ``noiseBytes``), since under-predicting a workspace is what runs a container out of memory.
public enum CostFit {
    /// What a measurement may exceed the fit by: a single run's fixed costs (a new matrix-product
    /// kernel is compiled for each new row count, output arrays) that do not grow with the shape,
    /// and which the budget's safety margin absorbs. Covering them exactly would inflate every
    /// prediction for large shapes by the small shapes' noise.
    public static let noiseBytes = 1 << 20

    public static func fit(_ measurements: [WorkspaceMeasurement]) throws(CostFitError) -> CostModel {
        for m in measurements where m.bytes <= 0 || m.batch <= 0 || m.length <= 0 { throw .invalidMeasurement(m) }
        let lengths = Set(measurements.map(\.length))
        guard lengths.count >= 2 else { throw .tooFewLengths(lengths.count) }
        // Rows (x1, x2) = (B·S, B·S²) / y, target 1.
        let rows = measurements.map { m -> (Double, Double) in
            let y = Double(m.bytes), b = Double(m.batch), s = Double(m.length)
            return (b * s / y, b * s * s / y)
        }
        var s11 = 0.0, s12 = 0.0, s22 = 0.0, t1 = 0.0, t2 = 0.0
        for (x1, x2) in rows {
            s11 += x1 * x1; s12 += x1 * x2; s22 += x2 * x2; t1 += x1; t2 += x2
        }
        func residual(_ a: Double, _ b: Double) -> Double {
            rows.reduce(0) { $0 + (a * $1.0 + b * $1.1 - 1) * (a * $1.0 + b * $1.1 - 1) }
        }
        // Every sequence holds per-token buffers, so a fit without a per-token term (a = 0) is not
        // a candidate: it would predict almost nothing for short inputs, and the probe cache refuses it.
        var candidates: [(Double, Double)] = [(t1 / s11, 0)]
        let determinant = s11 * s22 - s12 * s12
        if determinant > 1e-12 * s11 * s22 {
            let a = (t1 * s22 - t2 * s12) / determinant
            let b = (t2 * s11 - t1 * s12) / determinant
            if a > 0 && b >= 0 { candidates.append((a, b)) }
        }
        guard var (a, b) = candidates.filter({ $0.0.isFinite && $0.1.isFinite }).min(by: { residual($0.0, $0.1) < residual($1.0, $1.1) }) else {
            throw .degenerate("no finite solution")
        }
        let model = CostModel(a: a, b: b)
        let cover = measurements.reduce(1.0) {
            max($0, (Double($1.bytes) - Double(Self.noiseBytes)) / (Double($1.batch) * model.bytes(length: $1.length)))
        }
        guard cover.isFinite, a > 0 else { throw .degenerate("a=\(a), b=\(b)") }
        a *= cover
        b *= cover
        return CostModel(a: a, b: b)
    }
}
