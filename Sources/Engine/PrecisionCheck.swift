import Foundation
import Tokenizer

/// Measures faster precisions against fp32 on the weights in one model directory: the check
/// behind `--precision auto` and `bgem3 eval`.
///
/// One model is in memory at a time: fp32 first (its outputs are kept, a few MB), then each
/// candidate. Trained models can carry outlier dimensions that random and small models lack, so
/// only a measurement on the loaded weights says whether a precision keeps the rankings.
public struct PrecisionCheck: Sendable {
    public let directory: URL
    public let threads: Int?
    public let sequences: EvalSequences
    public let config: ModelConfig
    /// Tokens per forward pass: small enough that the full-size model's workspace stays a few
    /// hundred MB at fp32.
    public var tokensPerBatch = 2048
    /// The candidates' attention kernel (`bgem3 eval --attention`); nil for this CPU's choice.
    public var attention: AttentionKernel?

    public init(directory: URL, threads: Int?, sequences: EvalSequences) throws(WeightLoadError) {
        self.directory = directory
        self.threads = threads
        self.sequences = sequences
        config = try ModelConfig(contentsOf: directory.appendingPathComponent("config.json"))
    }

    /// The built-in texts (``EvalTexts/builtIn``) encoded by the model's own tokenizer, passages
    /// cut to `passageTokens` tokens if given; nil when the model has no tokenizer this engine runs.
    public static func onBuiltInTexts(directory: URL, threads: Int?, passageTokens: Int?) throws(WeightLoadError) -> PrecisionCheck? {
        let file = directory.appendingPathComponent("tokenizer.json")
        guard let tokenizer = try? UnigramTokenizer(contentsOf: file) else { return nil }
        var sequences = EvalTexts.builtIn.tokenized(by: tokenizer)
        if let passageTokens { sequences = sequences.truncatingPassages(to: passageTokens) }
        return try PrecisionCheck(directory: directory, threads: threads, sequences: sequences)
    }

    /// What decides the figures besides the weights: oneDNN's ISA, int8's levels on this CPU
    /// (full range with VNNI, 7 bits without), whether outlier columns are taken apart, and the
    /// attention kernel of the reduced precisions.
    public static var arithmetic: String { arithmetic(attention: nil) }

    /// ``arithmetic`` with the candidates' attention kernel chosen (nil: this CPU's choice at int8).
    public static func arithmetic(attention: AttentionKernel?) -> String {
        "\(OneDNNRuntime.effectiveISA); int8 \(Int8Levels.forThisCPU.description); outlier columns \(OutlierColumns.areHandled ? "apart" : "not handled"); "
            + "attention \((attention ?? AttentionKernel.forThisCPU(precision: .int8)).name)"
    }

    /// One precision's figures against fp32.
    public struct Measurement: Sendable, Equatable {
        public var precision: Precision
        public var comparison: PrecisionComparison
        /// Loading and encoding the texts at this precision.
        public var seconds: Double

        public var passes: Bool { comparison.passesGates(for: precision) }
    }

    /// The fp32 outputs, measured once per check.
    public struct Reference: Sendable {
        let embeddings: [SequenceEmbedding]
        public let seconds: Double
    }

    public func reference() throws -> Reference {
        let started = Date()
        let model = try BGEM3Model(directory: directory, threads: threads, precision: .fp32)
        let embeddings = try encode(with: model)
        return Reference(embeddings: embeddings, seconds: Date().timeIntervalSince(started))
    }

    /// Loads the model at `precision`, encodes the texts and compares with `reference`. Returns
    /// the model too, so that the one chosen is served without loading it again.
    public func measure(_ precision: Precision, against reference: Reference) throws -> (Measurement, BGEM3Model) {
        let started = Date()
        let model = try BGEM3Model(directory: directory, threads: threads, precision: precision, attention: attention)
        let embeddings = try encode(with: model)
        let comparison = PrecisionComparison(reference: reference.embeddings, candidate: embeddings,
                                             queries: sequences.queries.count, relevant: sequences.relevant)
        return (Measurement(precision: precision, comparison: comparison, seconds: Date().timeIntervalSince(started)), model)
    }

    /// All three outputs of every text, in batches of about ``tokensPerBatch`` tokens.
    func encode(with model: BGEM3Model) throws(EngineError) -> [SequenceEmbedding] {
        var results: [SequenceEmbedding] = []
        var batch: [[Int32]] = []
        var tokens = 0
        for sequence in sequences.all {
            if tokens + sequence.count > tokensPerBatch, !batch.isEmpty {
                results += try model.encode(batch, outputs: .all)
                batch = []
                tokens = 0
            }
            batch.append(sequence)
            tokens += sequence.count
        }
        if !batch.isEmpty { results += try model.encode(batch, outputs: .all) }
        model.releaseWorkspace()
        return results
    }
}
