/// What a batch costs in workspace memory: `workspace(B, S) = a·B·S + b·B·S²` bytes (SPEC §5).
///
/// `a` covers everything that grows with tokens (hidden states, projections, outputs); `b`
/// covers whatever grows with the square of a sequence's length (attention scores in an engine
/// that materialises them; about zero in ours, whose attention works in blocks). Sequences of a
/// batch are not padded, so a batch costs the sum of its sequences' costs.
public struct CostModel: Sendable, Equatable, CustomStringConvertible {
    /// Bytes per token.
    public var a: Double
    /// Bytes per token², per sequence.
    public var b: Double

    public init(a: Double, b: Double) {
        self.a = a
        self.b = b
    }

    /// Bytes one sequence of `length` tokens adds to a batch.
    public func bytes(length: Int) -> Double {
        let s = Double(length)
        return a * s + b * s * s
    }

    /// Bytes of a padded-shape batch: `B` sequences of `S` tokens.
    public func bytes(batch: Int, length: Int) -> Int {
        Self.clamp(Double(batch) * bytes(length: length))
    }

    /// Bytes of an unpadded batch of these lengths.
    public func bytes(lengths: some Sequence<Int>) -> Int {
        Self.clamp(lengths.reduce(0.0) { $0 + bytes(length: $1) })
    }

    /// Conservative defaults, used until a probe has measured the engine: four times the bytes per
    /// token our encoder allocates (hidden states, fused projections, context, feed-forward rows and
    /// ColBERT vectors, `28·hidden + 4·intermediate`), and one fp32 score matrix per head as `b`
    /// (what an engine that materialises attention holds for a layer).
    public static func conservative(hiddenSize: Int, intermediateSize: Int, heads: Int) -> CostModel {
        CostModel(a: 4 * Double(28 * hiddenSize + 4 * intermediateSize), b: 4 * Double(heads))
    }

    public var description: String { "a=\(Int(a.rounded())) B/token, b=\(String(format: "%.2f", b)) B/token²" }

    private static func clamp(_ value: Double) -> Int {
        value >= Double(Int.max) ? Int.max : Int(value.rounded(.up))
    }
}
