/// How far one precision's outputs are from fp32's on the same texts (`bgem3 eval`, and the check
/// behind `--precision auto`), measured as a user sees it: the vectors, the scores, and above all
/// which passages come first.
///
/// Scores are FlagEmbedding's (``M3Score``): dense dot, lexical = Σ over shared ids of the product
/// of weights, ColBERT = mean over query vectors of the best dot product, hybrid = the weighted
/// `[0.4, 0.2, 0.4]` of the three. Cosine alone is not enough: on a model with the outlier
/// dimensions of trained ones, int8 without their handling keeps the dense cosine at 0.996 while
/// the top-10 overlap falls to 0.83 (and with 3-bit activations the tiny model keeps a cosine mean
/// of 0.995 with an overlap of 0.38), so the gates are on the rankings too.
public struct PrecisionComparison: Sendable, Equatable {
    public var denseCosineMin: Float
    public var denseCosineMean: Float
    /// Relative error of the lexical score on the pairs whose fp32 score is not near zero (at least
    /// a tenth of the query's best): ``lexicalPairs`` of them.
    public var lexicalRelativeErrorMax: Float
    public var lexicalRelativeErrorMean: Float
    public var lexicalPairs: Int
    /// Relative error of the ColBERT score on each query's relevant pairs.
    public var colbertRelativeErrorMax: Float
    public var colbertRelativeErrorMean: Float
    /// Mean over queries of |top 10 with fp32 ∩ top 10 with the other precision| / 10, passages
    /// ranked by each score.
    public var top10Overlap: Ranking
    public var texts: Int
    /// Relevant query–passage pairs (the ColBERT errors').
    public var pairs: Int

    /// One figure per way of ranking.
    public struct Ranking: Sendable, Equatable {
        public var dense: Float
        public var lexical: Float
        public var colbert: Float
        public var hybrid: Float

        /// The lowest of the four.
        public var worst: Float { min(dense, lexical, colbert, hybrid) }
    }

    /// The accuracy a precision must keep (``passesGates(for:)``).
    public struct Gates: Sendable, Equatable {
        public var denseCosineMin: Float
        public var denseCosineMean: Float
        /// Every ranking's top-10 overlap.
        public var top10Overlap: Float
    }

    /// The gates of each precision, set from `bgem3 eval` on every model and code path measured
    /// (docs/precisions.md). int8: dense cosine mean ≥ 0.995 and min ≥ 0.99, and every ranking's
    /// top-10 overlap ≥ 0.85. With outlier columns handled, int8 measured 0.85-0.965 at worst
    /// (the lowest: the full-size outlier model on the AVX2 path); without the handling, that
    /// model measures 0.825-0.84 and fails, with a dense cosine (0.996) that passes. bf16: cosine
    /// ≥ 0.999 and overlaps ≥ 0.9 (measured 0.955-0.99).
    public static func gates(for precision: Precision) -> Gates {
        switch precision {
        case .fp32: return Gates(denseCosineMin: 0.999_999, denseCosineMean: 0.999_999, top10Overlap: 1)
        case .bf16: return Gates(denseCosineMin: 0.999, denseCosineMean: 0.999, top10Overlap: 0.9)
        case .int8: return Gates(denseCosineMin: 0.99, denseCosineMean: 0.995, top10Overlap: 0.85)
        }
    }

    /// Whether every gate holds; a figure with nothing to measure (NaN) fails.
    public func passesGates(for precision: Precision) -> Bool {
        failure(for: precision) == nil
    }

    /// Why the gates fail, in words, or nil when they pass.
    public func failure(for precision: Precision) -> String? {
        let gates = Self.gates(for: precision)
        var reasons: [String] = []
        if denseCosineMin < gates.denseCosineMin { reasons.append("dense cosine min \(denseCosineMin) < \(gates.denseCosineMin)") }
        if denseCosineMean < gates.denseCosineMean { reasons.append("dense cosine mean \(denseCosineMean) < \(gates.denseCosineMean)") }
        for (name, value) in [("dense", top10Overlap.dense), ("lexical", top10Overlap.lexical), ("ColBERT", top10Overlap.colbert),
                              ("hybrid", top10Overlap.hybrid)] where !(value >= gates.top10Overlap) {
            reasons.append("top-10 overlap by \(name) \(value) < \(gates.top10Overlap)")
        }
        return reasons.isEmpty ? nil : reasons.joined(separator: "; ")
    }

    /// - Parameters:
    ///   - reference: fp32 outputs (all three) of the queries followed by the passages.
    ///   - candidate: the same texts at the precision under test.
    ///   - queries: how many of the texts are queries.
    ///   - relevant: for each query, the indices (among the passages) of its relevant passages.
    public init(reference: [SequenceEmbedding], candidate: [SequenceEmbedding], queries: Int, relevant: [[Int]]) {
        precondition(reference.count == candidate.count && queries <= reference.count && relevant.count == queries)
        var cosines: [Float] = []
        for (a, b) in zip(reference, candidate) {
            guard let x = a.dense, let y = b.dense else { continue }
            cosines.append(M3Score.dense(x, y))
        }
        denseCosineMin = cosines.min() ?? .nan
        denseCosineMean = Self.mean(cosines)

        let passages = reference.count - queries
        let exact = Self.scores(reference, queries: queries)
        let measured = Self.scores(candidate, queries: queries)

        var lexicalErrors: [Float] = []
        var colbertErrors: [Float] = []
        for query in 0..<queries {
            let best = (0..<passages).map { exact[query][$0].sparse }.max() ?? 0
            for passage in 0..<passages where best > 0 && exact[query][passage].sparse >= best / 10 {
                lexicalErrors.append(abs(measured[query][passage].sparse - exact[query][passage].sparse) / exact[query][passage].sparse)
            }
            for passage in relevant[query] where exact[query][passage].colbert != 0 {
                colbertErrors.append(abs(measured[query][passage].colbert - exact[query][passage].colbert) / abs(exact[query][passage].colbert))
            }
        }
        lexicalRelativeErrorMax = lexicalErrors.max() ?? .nan
        lexicalRelativeErrorMean = Self.mean(lexicalErrors)
        lexicalPairs = lexicalErrors.count
        colbertRelativeErrorMax = colbertErrors.max() ?? .nan
        colbertRelativeErrorMean = Self.mean(colbertErrors)

        // Counted over all queries and divided once, so that 17 of 20 is exactly the float 0.85.
        func overlap(_ score: (M3Score.Scores) -> Float) -> Float {
            var shared = 0, counted = 0
            for query in 0..<queries {
                let a = Self.top10(exact[query].map(score)), b = Self.top10(measured[query].map(score))
                shared += a.intersection(b).count
                counted += a.count
            }
            return counted == 0 ? .nan : Float(shared) / Float(counted)
        }
        top10Overlap = Ranking(dense: overlap(\.dense), lexical: overlap(\.sparse), colbert: overlap(\.colbert), hybrid: overlap(\.all))
        texts = reference.count
        pairs = colbertErrors.count
    }

    /// Every query's scores against every passage.
    private static func scores(_ outputs: [SequenceEmbedding], queries: Int) -> [[M3Score.Scores]] {
        (0..<queries).map { query in
            (queries..<outputs.count).map { M3Score.scores(query: outputs[query], passage: outputs[$0]) }
        }
    }

    /// The positions of the 10 highest scores (ties by position).
    private static func top10(_ scores: [Float]) -> Set<Int> {
        Set(scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }.prefix(10))
    }

    private static func mean(_ values: [Float]) -> Float {
        values.isEmpty ? .nan : values.reduce(0, +) / Float(values.count)
    }
}
