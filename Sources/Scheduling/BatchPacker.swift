/// What one batch may hold.
public struct BatchLimits: Sendable, Equatable {
    /// Predicted workspace bytes (by the cost model) a batch may need.
    public var budgetBytes: Int
    /// Tokens per batch: bounds how long one batch runs, so results flow and safe points come often.
    public var maxTokens: Int
    /// Sequences per batch.
    public var maxSequences: Int

    public init(budgetBytes: Int, maxTokens: Int = 16_384, maxSequences: Int = 256) {
        self.budgetBytes = budgetBytes
        self.maxTokens = maxTokens
        self.maxSequences = maxSequences
    }
}

/// Packs sequences into batches whose predicted workspace fits the budget.
///
/// Algorithm: first-fit decreasing. Sequences are taken longest first (cost grows with length,
/// so that is also costliest first) and each goes into the first open batch where it fits all
/// three limits, else it opens a new batch. Because batches are unpadded, a batch's cost is the sum
/// of its sequences' costs, so this is bin packing, and first-fit decreasing uses at most
/// 11/9·OPT + 6/9 batches. Sorting by length also groups similar lengths, which keeps the
/// attention threads evenly loaded. A sequence that alone exceeds a limit gets a batch of its own
/// (the caller decides whether that batch may run).
public enum BatchPacker {
    /// - Returns: batches of indices into `lengths`, each index exactly once; batches in the order
    ///   they were opened (the one holding the longest sequence first), indices longest first.
    public static func pack(lengths: [Int], cost: CostModel, limits: BatchLimits) -> [[Int]] {
        let order = lengths.indices.sorted { lengths[$0] > lengths[$1] || (lengths[$0] == lengths[$1] && $0 < $1) }
        var batches: [[Int]] = []
        var bytes: [Double] = []
        var tokens: [Int] = []
        let budget = Double(limits.budgetBytes)
        for index in order {
            let itemBytes = cost.bytes(length: lengths[index])
            let itemTokens = lengths[index]
            if let open = batches.indices.first(where: { b in
                bytes[b] + itemBytes <= budget && tokens[b] + itemTokens <= limits.maxTokens && batches[b].count < limits.maxSequences
            }) {
                batches[open].append(index)
                bytes[open] += itemBytes
                tokens[open] += itemTokens
            } else {
                batches.append([index])
                bytes.append(itemBytes)
                tokens.append(itemTokens)
            }
        }
        return batches
    }
}
