import Foundation

/// Random-weight models in the exact BGE-M3 layout, for benchmarks: same files, names and shapes
/// as `BAAI/bge-m3` (or the tiny test model), weights drawn like Hugging Face initialises them
/// (normal with σ = 0.02, LayerNorm 1 and 0, biases 0), optionally with the outlier dimensions of
/// trained models (``Outliers``).
public enum SyntheticModel {
    /// A few hidden dimensions whose LayerNorm gains and biases are far larger than the rest, in
    /// every LayerNorm, as trained BERT and RoBERTa models have them, so that int8 can be tested
    /// where it is known to break (one scale per row spends its levels on these dimensions).
    ///
    /// The magnitudes follow what was measured on trained models: Kovaleva et al. 2021 ("BERT
    /// Busters: Outlier Dimensions that Disrupt Transformers", Findings of ACL) find 2 such
    /// dimensions in BERT-base and RoBERTa-base (308 and 381; 77 and 588), whose LayerNorm gains and
    /// biases stand far outside the others in every layer; Bondarenko et al. 2021 ("Understanding
    /// and Overcoming the Challenges of Efficient Transformer Quantization", EMNLP) measure those
    /// dimensions' activations at 10-100× the rest, in the same few dimensions across layers;
    /// Dettmers et al. 2022 (LLM.int8(), NeurIPS) count about 6 such feature dimensions per model,
    /// up to 20× larger; Xiao et al. 2023 (SmoothQuant, ICML) report channels ~100× the others.
    public struct Outliers: Sendable, Equatable {
        /// How many dimensions.
        public var count: Int
        /// Their LayerNorm gains, cycled over the dimensions (the others are 1).
        public var gains: [Float]
        /// Their LayerNorm biases, cycled (the others are 0).
        public var biases: [Float]

        /// 4 dimensions, gains 12-40 and biases ±2-5: inside the ranges above.
        public static let trained = Outliers(count: 4, gains: [40, 25, 18, 12], biases: [5, -4, 3, -2])

        public init(count: Int, gains: [Float], biases: [Float]) {
            self.count = count
            self.gains = gains
            self.biases = biases
        }

        /// Gains and biases multiplied by `factor`.
        public func scaled(by factor: Float) -> Outliers {
            Outliers(count: count, gains: gains.map { $0 * factor }, biases: biases.map { $0 * factor })
        }

        /// Which dimensions: spread over the width, the same for every LayerNorm.
        func dimensions(hiddenSize: Int) -> [Int] {
            (0..<count).map { (($0 * 2 + 1) * hiddenSize) / (2 * count) + 3 }
        }
    }

    public enum Preset: String, CaseIterable, Sendable {
        /// BGE-M3: 24 layers, hidden 1024, 16 heads, FFN 4096, 8194 positions, 250,002 pieces.
        case bgeM3 = "bge-m3"
        /// The test fixture's shape: 2 layers, hidden 64, 4 heads, FFN 128, 1026 positions, 6002 pieces.
        case tiny

        public var config: ModelConfig {
            switch self {
            case .bgeM3: return .bgeM3
            case .tiny:
                return ModelConfig(architecture: .xlmRoberta, hiddenSize: 64, layers: 2, heads: 4, intermediateSize: 128,
                                   maxPositions: 1026, vocabularySize: 6002, typeVocabularySize: 1, layerNormEpsilon: 1e-5, padTokenID: 1)
            }
        }
    }

    /// Writes the model directory: `config.json`, `model.safetensors`, `sparse_linear.pt`,
    /// `colbert_linear.pt`, the tokenizer files (copied from `tokenizer`), and the token maps.
    /// - Parameter progress: bytes of weights written so far and in all.
    public static func write(preset: Preset, to directory: URL, tokenizer: URL, seed: UInt64 = 42, outliers: Outliers? = nil,
                             progress: (Int, Int) -> Void = { _, _ in }) throws {
        let config = preset.config
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var random = NormalGenerator(seed: seed)
        let h = config.hiddenSize
        func normal(_ buffer: UnsafeMutableBufferPointer<Float>) {
            for i in buffer.indices { buffer[i] = random.next() * 0.02 }
        }
        func constant(_ value: Float) -> (UnsafeMutableBufferPointer<Float>) -> Void {
            { buffer in buffer.initialize(repeating: value) }
        }
        // LayerNorms are 1 and 0, but for the outlier dimensions: the LayerNorm that feeds each
        // layer's feed-forward block gives them their gains and biases, and the layer's last
        // LayerNorm gives their gains back (1 / gain), as the other weights of a trained model keep
        // the residual stream in check. Without that, a random-weight model compounds the gains
        // layer after layer (measured: 40× gains in every LayerNorm made the outliers 3,500× the
        // rest after 2 layers, and after 24 every text's vector points the same way).
        let dimensions = outliers?.dimensions(hiddenSize: h) ?? []
        func layerNorm(_ values: [Float]?, otherwise value: Float) -> (UnsafeMutableBufferPointer<Float>) -> Void {
            { buffer in
                buffer.initialize(repeating: value)
                if let values { for (i, d) in dimensions.enumerated() { buffer[d] = values[i % values.count] } }
            }
        }
        let feedForwardGain = layerNorm(outliers?.gains, otherwise: 1)
        let feedForwardShift = layerNorm(outliers?.biases, otherwise: 0)
        let outputGain = layerNorm(outliers?.gains.map { 1 / $0 }, otherwise: 1)
        var entries: [SafetensorsWriter.Entry] = [
            .init(name: "embeddings.word_embeddings.weight", shape: [config.vocabularySize, h], fill: normal),
            .init(name: "embeddings.position_embeddings.weight", shape: [config.maxPositions, h], fill: normal),
            .init(name: "embeddings.token_type_embeddings.weight", shape: [config.typeVocabularySize, h], fill: normal),
            .init(name: "embeddings.LayerNorm.weight", shape: [h], fill: constant(1)),
            .init(name: "embeddings.LayerNorm.bias", shape: [h], fill: constant(0)),
        ]
        for layer in 0..<config.layers {
            let base = "encoder.layer.\(layer)."
            for part in ["query", "key", "value"] {
                entries.append(.init(name: base + "attention.self.\(part).weight", shape: [h, h], fill: normal))
                entries.append(.init(name: base + "attention.self.\(part).bias", shape: [h], fill: constant(0)))
            }
            entries += [
                .init(name: base + "attention.output.dense.weight", shape: [h, h], fill: normal),
                .init(name: base + "attention.output.dense.bias", shape: [h], fill: constant(0)),
                .init(name: base + "attention.output.LayerNorm.weight", shape: [h], fill: feedForwardGain),
                .init(name: base + "attention.output.LayerNorm.bias", shape: [h], fill: feedForwardShift),
                .init(name: base + "intermediate.dense.weight", shape: [config.intermediateSize, h], fill: normal),
                .init(name: base + "intermediate.dense.bias", shape: [config.intermediateSize], fill: constant(0)),
                .init(name: base + "output.dense.weight", shape: [h, config.intermediateSize], fill: normal),
                .init(name: base + "output.dense.bias", shape: [h], fill: constant(0)),
                .init(name: base + "output.LayerNorm.weight", shape: [h], fill: outputGain),
                .init(name: base + "output.LayerNorm.bias", shape: [h], fill: constant(0)),
            ]
        }
        entries += [
            .init(name: "pooler.dense.weight", shape: [h, h], fill: normal),
            .init(name: "pooler.dense.bias", shape: [h], fill: constant(0)),
        ]
        try SafetensorsWriter.write(entries, to: directory.appendingPathComponent("model.safetensors"), progress: progress)

        try writeHeads(hiddenSize: h, to: directory, random: &random)

        let configJSON: [String: Any] = [
            "architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta", "hidden_size": h,
            "num_hidden_layers": config.layers, "num_attention_heads": config.heads, "intermediate_size": config.intermediateSize,
            "max_position_embeddings": config.maxPositions, "vocab_size": config.vocabularySize, "type_vocab_size": config.typeVocabularySize,
            "layer_norm_eps": Double(config.layerNormEpsilon), "pad_token_id": Int(config.padTokenID), "bos_token_id": 0, "eos_token_id": 2,
            "hidden_act": "gelu", "position_embedding_type": "absolute", "torch_dtype": "float32",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        ]
        try JSONSerialization.data(withJSONObject: configJSON, options: [.prettyPrinted, .sortedKeys])
            .write(to: directory.appendingPathComponent("config.json"))
        let specials: [String: Any] = ["bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": "<mask>",
                                       "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"]
        try JSONSerialization.data(withJSONObject: specials, options: [.prettyPrinted, .sortedKeys])
            .write(to: directory.appendingPathComponent("special_tokens_map.json"))
        var tokenizerConfig = specials
        tokenizerConfig["model_max_length"] = config.maximumSequenceLength
        tokenizerConfig["tokenizer_class"] = "XLMRobertaTokenizer"
        try JSONSerialization.data(withJSONObject: tokenizerConfig, options: [.prettyPrinted, .sortedKeys])
            .write(to: directory.appendingPathComponent("tokenizer_config.json"))
        let destination = directory.appendingPathComponent("tokenizer.json")
        if destination.standardizedFileURL != tokenizer.standardizedFileURL {
            try? FileManager.default.removeItem(at: destination)
            try FileManager.default.copyItem(at: tokenizer, to: destination)
        }
    }

    /// Writes random `sparse_linear.pt` and `colbert_linear.pt` for an encoder of this width, so
    /// that an encoder without BGE-M3's heads (all-MiniLM-L6-v2, say) runs all three outputs for
    /// precision measurements. The head outputs mean nothing; how precision changes them does.
    public static func writeHeads(hiddenSize: Int, to directory: URL, seed: UInt64 = 42) throws {
        var random = NormalGenerator(seed: seed)
        try writeHeads(hiddenSize: hiddenSize, to: directory, random: &random)
    }

    private static func writeHeads(hiddenSize h: Int, to directory: URL, random: inout NormalGenerator) throws {
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in random.next() * 0.02 } }
        try PyTorchWriter.write([("weight", [1, h], values(h)), ("bias", [1], [0])],
                                to: directory.appendingPathComponent("sparse_linear.pt"))
        try PyTorchWriter.write([("weight", [h, h], values(h * h)), ("bias", [h], [Float](repeating: 0, count: h))],
                                to: directory.appendingPathComponent("colbert_linear.pt"))
    }
}

/// Standard normal numbers from a fixed seed (xorshift + Box-Muller), fast enough for 568 M weights.
struct NormalGenerator {
    private var state: UInt64
    private var spare: Float?

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    private mutating func uniform() -> Float {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return (Float(state >> 40) + 0.5) / Float(1 << 24)
    }

    mutating func next() -> Float {
        if let spare {
            self.spare = nil
            return spare
        }
        let u = uniform(), v = uniform()
        let radius = (-2 * Foundation.log(u)).squareRoot()
        let angle = 2 * Float.pi * v
        spare = radius * Foundation.sin(angle)
        return radius * Foundation.cos(angle)
    }
}
