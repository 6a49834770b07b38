import Foundation

/// Where a forward pass spends its time, by kind of work: what `bgem3 bench` reports per workload.
public struct PassProfile: Sendable, Equatable {
    public enum Stage: String, CaseIterable, Sendable {
        /// Embedding rows read and summed, and their LayerNorm.
        case embeddings
        /// Inputs of the matrix products made ready: quantised to u8 (int8) or converted to bf16.
        case productInputs = "product_inputs"
        /// The matrix products themselves (oneDNN), layers and ColBERT head.
        case products
        /// What follows a product outside oneDNN: int8's scales, zero points, bias and outlier columns.
        case productOutputs = "product_outputs"
        /// The feed-forward GELU (a oneDNN eltwise pass where the product cannot fuse it).
        case gelu
        case attention
        /// Residual additions and LayerNorms after attention and feed-forward.
        case layerNorms = "layer_norms"
        /// The dense, sparse and ColBERT outputs from the last hidden states (ColBERT's product excluded).
        case heads
    }

    public private(set) var seconds: [Stage: Double] = [:]

    public init() {}

    public subscript(stage: Stage) -> Double {
        get { seconds[stage] ?? 0 }
        set { seconds[stage] = newValue }
    }

    public var total: Double { seconds.values.reduce(0, +) }

    public static func + (a: PassProfile, b: PassProfile) -> PassProfile {
        var sum = a
        for (stage, value) in b.seconds { sum[stage] += value }
        return sum
    }
}

/// Nanoseconds per stage since the last ``take()``; a pass adds to it from the thread that runs it.
final class StageClock: @unchecked Sendable {
    private let lock = NSLock()
    private var totals = [UInt64](repeating: 0, count: PassProfile.Stage.allCases.count)
    private static let index = Dictionary(uniqueKeysWithValues: PassProfile.Stage.allCases.enumerated().map { ($1, $0) })

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Adds the time since `start` to `stage` and returns the current time (the next stage's start).
    @discardableResult
    func lap(_ stage: PassProfile.Stage, since start: UInt64) -> UInt64 {
        let end = Self.now()
        let slot = Self.index[stage]!
        lock.withLock { totals[slot] &+= end &- start }
        return end
    }

    func take() -> PassProfile {
        var profile = PassProfile()
        lock.withLock {
            for (slot, stage) in PassProfile.Stage.allCases.enumerated() where totals[slot] > 0 {
                profile[stage] = Double(totals[slot]) / 1e9
                totals[slot] = 0
            }
        }
        return profile
    }
}
