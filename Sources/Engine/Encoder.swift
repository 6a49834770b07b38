/// Which of BGE-M3's three outputs to compute; all come from one forward pass, and only those
/// asked for are computed.
public struct EmbeddingOutputs: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// The `<s>` hidden state, L2-normalised.
    public static let dense = EmbeddingOutputs(rawValue: 1)
    /// Per token id, the largest `relu(sparse_linear(h))` over its occurrences.
    public static let sparse = EmbeddingOutputs(rawValue: 2)
    /// `colbert_linear(h)` for every token after `<s>`, each L2-normalised.
    public static let colbert = EmbeddingOutputs(rawValue: 4)
    public static let all: EmbeddingOutputs = [.dense, .sparse, .colbert]
}

/// Lexical weights of one text: token ids in ascending order and their weights (all > 0).
public struct SparseEmbedding: Sendable, Equatable {
    public var ids: [Int32]
    public var weights: [Float]

    public init(ids: [Int32], weights: [Float]) {
        self.ids = ids
        self.weights = weights
    }
}

/// Multi-vector (ColBERT) output of one text: `count` vectors of `dimension` floats, row after row.
public struct MultiVector: Sendable, Equatable {
    public var count: Int
    public var dimension: Int
    public var values: [Float]

    public init(count: Int, dimension: Int, values: [Float]) {
        self.count = count
        self.dimension = dimension
        self.values = values
    }

    public func vector(_ index: Int) -> ArraySlice<Float> {
        values[(index * dimension)..<((index + 1) * dimension)]
    }
}

/// The outputs for one sequence; those not asked for are nil.
public struct SequenceEmbedding: Sendable, Equatable {
    public var dense: [Float]?
    public var sparse: SparseEmbedding?
    public var colbert: MultiVector?

    public init(dense: [Float]? = nil, sparse: SparseEmbedding? = nil, colbert: MultiVector? = nil) {
        self.dense = dense
        self.sparse = sparse
        self.colbert = colbert
    }
}

/// Token ids in, embeddings out: the seam the command line and the server share.
public protocol Encoder: Sendable {
    /// Width of dense and ColBERT vectors.
    var dimension: Int { get }
    /// The longest sequence (special tokens included) the model accepts.
    var maximumSequenceLength: Int { get }
    /// Encodes a batch of token id sequences (each already wrapped in `<s> … </s>`); sequences of
    /// different lengths are computed without padding. Results are in input order.
    func encode(_ sequences: [[Int32]], outputs: EmbeddingOutputs) throws(EngineError) -> [SequenceEmbedding]
}
