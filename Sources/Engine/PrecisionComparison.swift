/// How far one precision's outputs are from fp32's on the same texts (`bgem3 eval`).
///
/// Scores are FlagEmbedding's (``M3Score``): lexical = Σ over shared ids of the product of weights,
/// ColBERT = mean over query vectors of the best dot product. Relative errors are taken on each
/// query's relevant query–passage pairs (the pairs whose scores matter for retrieval), skipping
/// pairs whose fp32 score is 0 (a relative error there means nothing).
public struct PrecisionComparison: Sendable, Equatable {
    public var denseCosineMin: Float
    public var denseCosineMean: Float
    public var lexicalRelativeErrorMax: Float
    public var lexicalRelativeErrorMean: Float
    public var colbertRelativeErrorMax: Float
    public var colbertRelativeErrorMean: Float
    /// Mean over queries of |top-10 by dense score with fp32 ∩ with the other precision| / 10.
    public var top10Overlap: Float
    public var texts: Int
    public var pairs: Int

    /// The gates of the precision issue: int8 dense cosine mean ≥ 0.995 and min ≥ 0.99; bf16 min ≥ 0.999.
    public func passesGates(for precision: Precision) -> Bool {
        switch precision {
        case .fp32: return denseCosineMin >= 0.999_999
        case .bf16: return denseCosineMin >= 0.999
        case .int8: return denseCosineMean >= 0.995 && denseCosineMin >= 0.99
        }
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
        denseCosineMean = cosines.isEmpty ? .nan : cosines.reduce(0, +) / Float(cosines.count)

        var lexicalErrors: [Float] = []
        var colbertErrors: [Float] = []
        for query in 0..<queries {
            for passage in relevant[query] {
                let p = queries + passage
                if let q0 = reference[query].sparse, let p0 = reference[p].sparse, let q1 = candidate[query].sparse, let p1 = candidate[p].sparse {
                    let exact = M3Score.lexical(q0, p0)
                    if exact != 0 { lexicalErrors.append(abs(M3Score.lexical(q1, p1) - exact) / abs(exact)) }
                }
                if let q0 = reference[query].colbert, let p0 = reference[p].colbert, let q1 = candidate[query].colbert, let p1 = candidate[p].colbert {
                    let exact = M3Score.colbert(q0, p0)
                    if exact != 0 { colbertErrors.append(abs(M3Score.colbert(q1, p1) - exact) / abs(exact)) }
                }
            }
        }
        lexicalRelativeErrorMax = lexicalErrors.max() ?? .nan
        lexicalRelativeErrorMean = lexicalErrors.isEmpty ? .nan : lexicalErrors.reduce(0, +) / Float(lexicalErrors.count)
        colbertRelativeErrorMax = colbertErrors.max() ?? .nan
        colbertRelativeErrorMean = colbertErrors.isEmpty ? .nan : colbertErrors.reduce(0, +) / Float(colbertErrors.count)

        var overlaps: [Float] = []
        let passages = reference.count - queries
        for query in 0..<queries {
            func top10(_ outputs: [SequenceEmbedding]) -> Set<Int> {
                guard let q = outputs[query].dense else { return [] }
                let scored = (0..<passages).compactMap { p in outputs[queries + p].dense.map { (p, M3Score.dense(q, $0)) } }
                return Set(scored.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(10).map(\.0))
            }
            let exact = top10(reference)
            guard !exact.isEmpty else { continue }
            overlaps.append(Float(exact.intersection(top10(candidate)).count) / Float(exact.count))
        }
        top10Overlap = overlaps.isEmpty ? .nan : overlaps.reduce(0, +) / Float(overlaps.count)
        texts = reference.count
        pairs = max(lexicalErrors.count, colbertErrors.count)
    }
}
