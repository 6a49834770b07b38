/// Relevance scores between a query's and a passage's embeddings, as FlagEmbedding's
/// `compute_score` computes them.
public enum M3Score {
    /// Dot product of the two (normalised) dense vectors.
    public static func dense(_ query: [Float], _ passage: [Float]) -> Float {
        precondition(query.count == passage.count, "dense vectors of different widths")
        return query.withUnsafeBufferPointer { q in
            passage.withUnsafeBufferPointer { p in VectorMath.dot(q.baseAddress!, p.baseAddress!, count: q.count) }
        }
    }

    /// Sum over the token ids both texts have of the product of their weights.
    public static func lexical(_ query: SparseEmbedding, _ passage: SparseEmbedding) -> Float {
        var score: Float = 0
        var i = 0, j = 0
        while i < query.ids.count && j < passage.ids.count {
            if query.ids[i] == passage.ids[j] {
                score += query.weights[i] * passage.weights[j]
                i += 1
                j += 1
            } else if query.ids[i] < passage.ids[j] {
                i += 1
            } else {
                j += 1
            }
        }
        return score
    }

    /// Mean over the query's vectors of the best dot product with any passage vector.
    public static func colbert(_ query: MultiVector, _ passage: MultiVector) -> Float {
        precondition(query.dimension == passage.dimension, "ColBERT vectors of different widths")
        guard query.count > 0 else { return 0 }
        var total: Float = 0
        query.values.withUnsafeBufferPointer { q in
            passage.values.withUnsafeBufferPointer { p in
                for i in 0..<query.count {
                    var best = -Float.infinity
                    for j in 0..<passage.count {
                        best = max(best, VectorMath.dot(q.baseAddress! + i * query.dimension, p.baseAddress! + j * passage.dimension,
                                                        count: query.dimension))
                    }
                    total += best
                }
            }
        }
        return total / Float(query.count)
    }

    /// The three scores and their weighted combinations.
    public struct Scores: Sendable, Equatable {
        public var dense: Float
        public var sparse: Float
        public var colbert: Float
        /// `(w_dense·dense + w_sparse·sparse) / (w_dense + w_sparse)`.
        public var sparseDense: Float
        /// `(w_dense·dense + w_sparse·sparse + w_colbert·colbert) / (sum of weights)`.
        public var all: Float
    }

    /// All scores of a pair; `weights` are `[dense, sparse, colbert]` (FlagEmbedding's default is
    /// `[0.4, 0.2, 0.4]`).
    public static func scores(query: SequenceEmbedding, passage: SequenceEmbedding, weights: [Float] = [0.4, 0.2, 0.4]) -> Scores {
        let d = dense(query.dense ?? [], passage.dense ?? [])
        let s = lexical(query.sparse ?? SparseEmbedding(ids: [], weights: []), passage.sparse ?? SparseEmbedding(ids: [], weights: []))
        let c = (query.colbert.flatMap { q in passage.colbert.map { colbert(q, $0) } }) ?? 0
        return Scores(dense: d, sparse: s, colbert: c, sparseDense: weighted([d, s], by: weights.prefix(2)), all: weighted([d, s, c], by: weights))
    }

    /// `Σ wᵢ·xᵢ / Σ wᵢ`, summed in double precision: weights near `Float.greatestFiniteMagnitude`
    /// overflow a float sum to infinity and the quotient to NaN. 0 when the weights sum to 0.
    private static func weighted(_ scores: [Float], by weights: some Collection<Float>) -> Float {
        let total = weights.reduce(0.0) { $0 + Double($1) }
        guard total > 0, total.isFinite else { return 0 }
        return Float(zip(scores, weights).reduce(0.0) { $0 + Double($1.1) / total * Double($1.0) })
    }
}
