import Foundation

/// BGE-M3's sparse and ColBERT heads, as FlagEmbedding computes them.
struct M3Heads: @unchecked Sendable {
    /// `sparse_linear`: hidden → 1.
    let sparseWeight: FloatBuffer
    let sparseBias: Float
    /// `colbert_linear`: hidden → dimension.
    let colbert: PackedMatmul
    /// `<s>`, `</s>`, `<pad>` and `<unk>`: never given a lexical weight.
    let excludedSparseIDs: Set<Int32>

    var colbertDimension: Int { colbert.outputSize }

    init(sparse: any WeightFile, colbert colbertFile: any WeightFile, hiddenSize: Int, excludedSparseIDs: Set<Int32>,
         runtime: OneDNNRuntime) throws(WeightLoadError) {
        func load(_ file: any WeightFile, _ name: String, _ check: ([Int]) -> Bool, _ expected: [Int]) throws(WeightLoadError) -> FloatBuffer {
            let tensor = try file.tensor(name)
            guard check(tensor.shape) else { throw .wrongShape(tensor: "\(file.path): \(name)", expected: expected, found: tensor.shape) }
            return try FloatBuffer(copying: tensor)
        }
        sparseWeight = try load(sparse, "weight", { $0 == [1, hiddenSize] }, [1, hiddenSize])
        sparseBias = try load(sparse, "bias", { $0 == [1] }, [1]).array[0]
        let colbertWeight = try colbertFile.tensor("weight")
        guard colbertWeight.shape.count == 2, colbertWeight.shape[1] == hiddenSize, colbertWeight.shape[0] > 0 else {
            throw .wrongShape(tensor: "\(colbertFile.path): weight", expected: [hiddenSize, hiddenSize], found: colbertWeight.shape)
        }
        let dimension = colbertWeight.shape[0]
        let weight = try FloatBuffer(copying: colbertWeight)
        let bias = try load(colbertFile, "bias", { $0 == [dimension] }, [dimension])
        do {
            colbert = try PackedMatmul(weight: weight.pointer, bias: bias.pointer, outputSize: dimension, inputSize: hiddenSize,
                                       gelu: false, precision: .fp32, runtime: runtime)
        } catch {
            throw .malformed(file: colbertFile.path, reason: "the matrix library refused the ColBERT layer: \(error)")
        }
        self.excludedSparseIDs = excludedSparseIDs
    }

    /// Per token id, the largest positive `relu(w·h + b)` over its occurrences (special ids skipped).
    func sparse(hidden: UnsafePointer<Float>, tokens: [Int32], hiddenSize: Int) -> SparseEmbedding {
        var best: [Int32: Float] = [:]
        for (row, id) in tokens.enumerated() where !excludedSparseIDs.contains(id) {
            let weight = max(0, VectorMath.dot(hidden + row * hiddenSize, sparseWeight.pointer, count: hiddenSize) + sparseBias)
            if weight > 0, weight > best[id] ?? 0 { best[id] = weight }
        }
        let ids = best.keys.sorted()
        return SparseEmbedding(ids: ids, weights: ids.map { best[$0]! })
    }
}
