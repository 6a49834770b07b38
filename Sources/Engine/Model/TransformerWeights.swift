import Foundation

/// One encoder layer, ready to run: fused Q/K/V projection, attention output, feed-forward.
struct EncoderLayer: @unchecked Sendable {
    let queryKeyValue: PackedMatmul
    let attentionOutput: PackedMatmul
    let attentionNorm: (gamma: FloatBuffer, beta: FloatBuffer)
    let intermediate: PackedMatmul
    let output: PackedMatmul
    let outputNorm: (gamma: FloatBuffer, beta: FloatBuffer)
}

/// The encoder's weights, checked against `config.json` and laid out for the kernels.
struct TransformerWeights: @unchecked Sendable {
    let wordEmbeddings: EmbeddingRows
    let positionEmbeddings: EmbeddingRows
    let tokenTypeEmbeddings: FloatBuffer
    let embeddingNorm: (gamma: FloatBuffer, beta: FloatBuffer)
    let layers: [EncoderLayer]

    /// Bytes held in memory for the layers (packed matrices); embedding rows are read from the file.
    var packedBytes: Int {
        layers.reduce(0) { $0 + $1.queryKeyValue.residentBytes + $1.attentionOutput.residentBytes + $1.intermediate.residentBytes + $1.output.residentBytes }
    }

    init(file: any WeightFile, config: ModelConfig, precision: Precision, runtime: OneDNNRuntime) throws(WeightLoadError) {
        let names = Set(file.tensorNames)
        let prefix = ["", "roberta.", "bert.", "model."].first { names.contains($0 + "embeddings.word_embeddings.weight") } ?? ""
        let h = config.hiddenSize
        func load(_ name: String, _ shape: [Int]) throws(WeightLoadError) -> FloatBuffer {
            let tensor = try file.tensor(prefix + name)
            guard tensor.shape == shape else { throw .wrongShape(tensor: prefix + name, expected: shape, found: tensor.shape) }
            return try FloatBuffer(copying: tensor)
        }
        func table(_ name: String, _ shape: [Int]) throws(WeightLoadError) -> EmbeddingRows {
            let tensor = try file.tensor(prefix + name)
            guard tensor.shape == shape else { throw .wrongShape(tensor: prefix + name, expected: shape, found: tensor.shape) }
            return try EmbeddingRows(tensor)
        }
        func norm(_ name: String) throws(WeightLoadError) -> (gamma: FloatBuffer, beta: FloatBuffer) {
            (try load(name + ".weight", [h]), try load(name + ".bias", [h]))
        }
        // int8: the input columns a LayerNorm makes stand out are computed apart, in fp32.
        let handleOutliers = precision == .int8 && OutlierColumns.areHandled
        func outliers(_ norm: (gamma: FloatBuffer, beta: FloatBuffer)) -> [Int] {
            handleOutliers ? OutlierColumns.detect(gamma: norm.gamma.pointer, beta: norm.beta.pointer, count: h) : []
        }
        func matmul(_ weight: FloatBuffer, _ bias: FloatBuffer, outputs: Int, inputs: Int, gelu: Bool = false,
                    fedBy norm: (gamma: FloatBuffer, beta: FloatBuffer)? = nil) throws(WeightLoadError) -> PackedMatmul {
            do {
                return try PackedMatmul(weight: weight.pointer, bias: bias.pointer, outputSize: outputs, inputSize: inputs, gelu: gelu, precision: precision,
                                        outlierColumns: norm.map(outliers) ?? [], runtime: runtime)
            } catch {
                throw .malformed(file: file.path, reason: "the matrix library refused a \(outputs)×\(inputs) layer: \(error)")
            }
        }
        wordEmbeddings = try table("embeddings.word_embeddings.weight", [config.vocabularySize, h])
        positionEmbeddings = try table("embeddings.position_embeddings.weight", [config.maxPositions, h])
        tokenTypeEmbeddings = try load("embeddings.token_type_embeddings.weight", [config.typeVocabularySize, h])
        embeddingNorm = try norm("embeddings.LayerNorm")
        var layers: [EncoderLayer] = []
        for index in 0..<config.layers {
            let base = "encoder.layer.\(index)."
            var fusedWeight: [Float] = []
            var fusedBias: [Float] = []
            fusedWeight.reserveCapacity(3 * h * h)
            for part in ["query", "key", "value"] {
                let weight = try load(base + "attention.self.\(part).weight", [h, h])
                let bias = try load(base + "attention.self.\(part).bias", [h])
                fusedWeight.append(contentsOf: weight.array)
                fusedBias.append(contentsOf: bias.array)
            }
            let i = config.intermediateSize
            // The Q/K/V projection reads the previous layer's output (or the embeddings), normalised;
            // the feed-forward block reads the attention block's output, normalised.
            let inputNorm = layers.last?.outputNorm ?? embeddingNorm
            let attentionNorm = try norm(base + "attention.output.LayerNorm")
            layers.append(EncoderLayer(
                queryKeyValue: try matmul(FloatBuffer(fusedWeight), FloatBuffer(fusedBias), outputs: 3 * h, inputs: h, fedBy: inputNorm),
                attentionOutput: try matmul(try load(base + "attention.output.dense.weight", [h, h]),
                                            try load(base + "attention.output.dense.bias", [h]), outputs: h, inputs: h),
                attentionNorm: attentionNorm,
                intermediate: try matmul(try load(base + "intermediate.dense.weight", [i, h]),
                                         try load(base + "intermediate.dense.bias", [i]), outputs: i, inputs: h, gelu: true, fedBy: attentionNorm),
                output: try matmul(try load(base + "output.dense.weight", [h, i]), try load(base + "output.dense.bias", [h]), outputs: h, inputs: i),
                outputNorm: try norm(base + "output.LayerNorm")))
        }
        self.layers = layers
    }
}
