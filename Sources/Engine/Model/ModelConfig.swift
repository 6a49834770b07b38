import Foundation

/// The encoder's hyper-parameters from `config.json`, validated.
public struct ModelConfig: Sendable, Equatable {
    public enum Architecture: String, Sendable {
        /// XLM-RoBERTa (BGE-M3): positions start after the padding index.
        case xlmRoberta = "xlm-roberta"
        /// BERT: positions start at 0.
        case bert
    }

    public var architecture: Architecture
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var vocabularySize: Int
    public var typeVocabularySize: Int
    public var layerNormEpsilon: Float
    public var padTokenID: Int32

    public var headSize: Int { hiddenSize / heads }

    /// The longest sequence the position table allows: XLM-R spends `pad_token_id + 1` rows
    /// before the first position.
    public var maximumSequenceLength: Int {
        architecture == .xlmRoberta ? maxPositions - Int(padTokenID) - 1 : maxPositions
    }

    public init(architecture: Architecture, hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int, maxPositions: Int,
                vocabularySize: Int, typeVocabularySize: Int, layerNormEpsilon: Float, padTokenID: Int32) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.heads = heads
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.vocabularySize = vocabularySize
        self.typeVocabularySize = typeVocabularySize
        self.layerNormEpsilon = layerNormEpsilon
        self.padTokenID = padTokenID
    }

    /// BGE-M3's shape: 24 layers, hidden 1024, 16 heads, FFN 4096, 8194 positions, 250,002 pieces.
    public static let bgeM3 = ModelConfig(architecture: .xlmRoberta, hiddenSize: 1024, layers: 24, heads: 16, intermediateSize: 4096,
                                          maxPositions: 8194, vocabularySize: 250_002, typeVocabularySize: 1,
                                          layerNormEpsilon: 1e-5, padTokenID: 1)

    private struct File: Decodable {
        let model_type: String?
        let architectures: [String]?
        let hidden_size: Int
        let num_hidden_layers: Int
        let num_attention_heads: Int
        let intermediate_size: Int
        let max_position_embeddings: Int
        let vocab_size: Int
        let type_vocab_size: Int?
        let layer_norm_eps: Double?
        let pad_token_id: Int?
        let hidden_act: String?
        let position_embedding_type: String?
    }

    /// Reads and checks `config.json`.
    public init(contentsOf url: URL) throws(WeightLoadError) {
        let path = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw .missingFile(path: path, purpose: "the model's config.json") }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch DecodingError.keyNotFound(let key, _) {
            throw .invalidConfig(file: path, reason: "missing \"\(key.stringValue)\"")
        } catch {
            throw .invalidConfig(file: path, reason: "not a valid config.json (\(error))")
        }
        let type = file.model_type ?? (file.architectures?.first?.lowercased().contains("roberta") == true ? "xlm-roberta" : "")
        guard let architecture = Architecture(rawValue: type) else {
            throw .invalidConfig(file: path, reason: "model_type \"\(type)\" is not supported (xlm-roberta, bert)")
        }
        guard file.hidden_act ?? "gelu" == "gelu" else {
            throw .invalidConfig(file: path, reason: "hidden_act \"\(file.hidden_act ?? "")\" is not supported (gelu)")
        }
        guard file.position_embedding_type ?? "absolute" == "absolute" else {
            throw .invalidConfig(file: path, reason: "position_embedding_type \"\(file.position_embedding_type ?? "")\" is not supported (absolute)")
        }
        let checks: [(String, Int, ClosedRange<Int>)] = [
            ("hidden_size", file.hidden_size, 8...16384), ("num_hidden_layers", file.num_hidden_layers, 1...256),
            ("num_attention_heads", file.num_attention_heads, 1...256), ("intermediate_size", file.intermediate_size, 8...65536),
            ("max_position_embeddings", file.max_position_embeddings, 4...1_000_000), ("vocab_size", file.vocab_size, 4...10_000_000),
            ("type_vocab_size", file.type_vocab_size ?? 1, 1...16),
        ]
        for (name, value, range) in checks where !range.contains(value) {
            throw .invalidConfig(file: path, reason: "\(name) is \(value), outside \(range.lowerBound)...\(range.upperBound)")
        }
        guard file.hidden_size % file.num_attention_heads == 0 else {
            throw .invalidConfig(file: path, reason: "hidden_size \(file.hidden_size) is not a multiple of num_attention_heads \(file.num_attention_heads)")
        }
        self.init(architecture: architecture, hiddenSize: file.hidden_size, layers: file.num_hidden_layers, heads: file.num_attention_heads,
                  intermediateSize: file.intermediate_size, maxPositions: file.max_position_embeddings, vocabularySize: file.vocab_size,
                  typeVocabularySize: file.type_vocab_size ?? 1, layerNormEpsilon: Float(file.layer_norm_eps ?? 1e-12),
                  padTokenID: Int32(file.pad_token_id ?? (architecture == .xlmRoberta ? 1 : 0)))
        guard maximumSequenceLength >= 2 else {
            throw .invalidConfig(file: path, reason: "max_position_embeddings \(maxPositions) leaves no room for a sequence")
        }
    }
}
