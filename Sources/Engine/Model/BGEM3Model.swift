import Foundation
import Tokenizer

/// A BGE-M3 model directory loaded for inference: tokenizer, encoder and heads.
///
/// Expects the Hugging Face layout of `BAAI/bge-m3`: `config.json`, `model.safetensors` (or
/// `pytorch_model.bin`), `tokenizer.json`, `sparse_linear.pt` and `colbert_linear.pt`. The heads
/// are required: the reference silently randomises missing ones, which gives meaningless output.
/// A BERT encoder (`model_type: "bert"`, e.g. all-MiniLM-L6-v2 with heads added by `bgem3 synth
/// --heads-for`) also loads; its WordPiece tokenizer is not one this engine runs, so it encodes
/// token ids made elsewhere (``tokenizer`` is nil).
/// Batches on different lanes (``ComputeLane``) run at once and share the weights; on one lane
/// they take turns.
public final class BGEM3Model: Encoder, @unchecked Sendable {
    public let directory: URL
    public let config: ModelConfig
    /// Nil for a BERT model whose `tokenizer.json` is not a SentencePiece Unigram tokenizer; the
    /// server and `embed` refuse such a model (``requireTokenizer()``), `eval` takes token ids.
    public let tokenizer: UnigramTokenizer?
    /// Threads the kernels use.
    public let threads: Int
    /// The matrix products' operand format.
    public let precision: Precision
    /// The weights file that was loaded.
    public let weightsFile: URL
    /// Bytes of packed layer weights held in memory while loaded (embeddings are read from the file map).
    public let packedWeightBytes: Int
    /// The implementation oneDNN chose for the largest matrix product (for logs and benchmarks).
    public let matmulImplementation: String
    private let runtime: OneDNNRuntime
    /// Width of the ColBERT vectors (from `colbert_linear.pt`).
    private let colbertDimension: Int
    private let excludedSparseIDs: Set<Int32>
    /// Sizes workspaces without the weights, so a plan is available while they are unloaded.
    private let attentionShape: BlockedAttention
    /// The weights; nil after ``unloadWeights()`` until the next pass loads them again.
    private var network: Network?
    private let networkLock = NSLock()
    /// The lane of workspaces without one of their own: all the model's threads.
    private let ownLane: ComputeLane
    /// The workspace of ``encode(_:outputs:)``, whose calls take turns.
    private let ownWorkspace = EncoderWorkspace()
    private let lock = NSLock()
    /// Time in the heads after the encoder, since the last ``takeProfile()``.
    private let headsClock = StageClock()

    public var dimension: Int { config.hiddenSize }
    public var maximumSequenceLength: Int { config.maximumSequenceLength }

    /// Which attention kernel runs (its description names it in logs, `/info` and `bench`).
    public let attentionKernel: AttentionKernel

    /// Whether the weights are in memory now.
    public var isLoaded: Bool { networkLock.withLock { network != nil } }

    /// Loads the model.
    /// - Parameters:
    ///   - threads: the kernels' threads (default: the container's CPU quota).
    ///   - precision: the matrix products' precision.
    ///   - attention: the attention kernel (default: ``AttentionKernel/forThisCPU(precision:headSize:)``);
    ///     `bench` compares them on a new CPU.
    public init(directory: URL, threads: Int? = nil, precision: Precision = .fp32, attention: AttentionKernel? = nil) throws(WeightLoadError) {
        if let reason = precision.unsupportedReason { throw .unsupportedPrecision(reason) }
        let config = try ModelConfig(contentsOf: directory.appendingPathComponent("config.json"))
        let attention = attention ?? AttentionKernel.forThisCPU(precision: precision, headSize: config.headSize)
        if let reason = attention.unsupportedReason(headSize: config.headSize) { throw .unsupportedPrecision(reason) }
        self.directory = directory
        self.precision = precision
        attentionKernel = attention
        let threads = threads ?? CPUQuota.available()
        self.threads = threads
        ownLane = ComputeLane(threads: threads)
        self.config = config
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        do {
            let tokenizer = try UnigramTokenizer(contentsOf: tokenizerURL)
            guard tokenizer.vocabularySize <= config.vocabularySize else {
                throw WeightLoadError.invalidConfig(file: tokenizerURL.path, reason: "the tokenizer has \(tokenizer.vocabularySize) ids but config.json's vocab_size is \(config.vocabularySize)")
            }
            self.tokenizer = tokenizer
        } catch let error as WeightLoadError {
            throw error
        } catch {
            guard config.architecture == .bert else { throw .invalidConfig(file: tokenizerURL.path, reason: "\(error)") }
            self.tokenizer = nil
        }
        do { runtime = try OneDNNRuntime.shared(threads: threads) } catch {
            throw .unreadable(file: directory.path, reason: "the matrix library did not start: \(error)")
        }
        let candidates = ["model.safetensors", "pytorch_model.bin"].map { directory.appendingPathComponent($0) }
        guard let weightsURL = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw .missingFile(path: candidates[0].path, purpose: "model weights: model.safetensors or pytorch_model.bin")
        }
        weightsFile = weightsURL
        excludedSparseIDs = Self.excludedSparseIDs(directory: directory, tokenizer: tokenizer, tokenizerFile: tokenizerURL)
        attentionShape = BlockedAttention(heads: config.heads, headSize: config.headSize, threads: threads)
        let network = try Network(directory: directory, weightsFile: weightsURL, config: config, threads: threads,
                                  excludedSparseIDs: excludedSparseIDs, precision: precision, attention: attention, runtime: runtime)
        packedWeightBytes = network.encoder.weights.packedBytes + network.heads.colbert.residentBytes
        colbertDimension = network.heads.colbertDimension
        matmulImplementation = network.encoder.weights.layers.first?.intermediate.implementation ?? "none"
        self.network = network
    }

    /// Frees the weights (idle unload); the next pass loads them again from the same files.
    public func unloadWeights() {
        networkLock.withLock { network = nil }
    }

    /// The weights, loading them again if they were unloaded.
    private func loadedNetwork() throws(EngineError) -> Network {
        networkLock.lock()
        defer { networkLock.unlock() }
        if let network { return network }
        do {
            let loaded = try Network(directory: directory, weightsFile: weightsFile, config: config, threads: threads,
                                     excludedSparseIDs: excludedSparseIDs, precision: precision, attention: attentionKernel, runtime: runtime)
            network = loaded
            return loaded
        } catch {
            throw .reloadFailed(error.description)
        }
    }

    /// The tokenizer, or an error naming why this model has none the engine runs.
    public func requireTokenizer() throws(WeightLoadError) -> UnigramTokenizer {
        guard let tokenizer else {
            throw .invalidConfig(file: directory.appendingPathComponent("tokenizer.json").path,
                                 reason: "not a SentencePiece Unigram (XLM-R) tokenizer; this model can only encode token ids (bgem3 eval --token-ids)")
        }
        return tokenizer
    }

    /// The ids FlagEmbedding never weights: the tokenizer's cls, eos, pad and unk tokens (for a
    /// model without a Unigram tokenizer, looked up among `tokenizer.json`'s added tokens).
    private static func excludedSparseIDs(directory: URL, tokenizer: UnigramTokenizer?, tokenizerFile: URL) -> Set<Int32> {
        let bert = tokenizer == nil
        var names = bert ? ["cls_token": "[CLS]", "eos_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]"]
                         : ["cls_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"]
        if bert { names["sep_token"] = "[SEP]" }
        if let data = try? Data(contentsOf: directory.appendingPathComponent("special_tokens_map.json")),
           let map = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            for key in names.keys {
                if let value = map[key] as? String { names[key] = value }
                if let value = (map[key] as? [String: Any])?["content"] as? String { names[key] = value }
            }
        }
        if let tokenizer { return Set(names.values.compactMap { tokenizer.id(forToken: $0) }) }
        var added: [String: Int32] = [:]
        if let data = try? Data(contentsOf: tokenizerFile),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let tokens = object["added_tokens"] as? [[String: Any]] {
            for token in tokens {
                if let content = token["content"] as? String, let id = token["id"] as? Int { added[content] = Int32(id) }
            }
        }
        return Set(names.values.compactMap { added[$0] })
    }

    /// The workspace bytes a batch of these sequence lengths needs, exactly as ``encode(_:outputs:)``
    /// will allocate them.
    public func workspaceBytes(lengths: [Int], outputs: EmbeddingOutputs) -> Int {
        plan(lengths: lengths, outputs: outputs).total
    }

    private func plan(lengths: [Int], outputs: EmbeddingOutputs) -> WorkspacePlan {
        var plan = TransformerEncoder.plan(lengths: lengths, config: config, attention: attentionShape,
                                           matmulAttention: attentionKernel.operands)
        if outputs.contains(.colbert) { plan.multiVector = lengths.reduce(0, +) * colbertDimension * MemoryLayout<Float>.size }
        return plan
    }

    /// Where the passes since the last call spent their time, by stage; restarts the counts.
    public func takeProfile() -> PassProfile {
        guard let network = networkLock.withLock({ network }) else { return PassProfile() }
        let colbert = network.heads.colbert.takeProfile()
        var heads = headsClock.take()
        // The heads' clock ran around the ColBERT product too; its stages count it already.
        heads[.heads] = max(0, heads[.heads] - colbert.total)
        return network.encoder.takeProfile() + colbert + heads
    }

    /// Frees the workspace of ``encode(_:outputs:)`` (it grows back on the next batch).
    public func releaseWorkspace() {
        lock.withLock { ownWorkspace.release() }
    }

    /// Encodes a batch with the model's own workspace; concurrent calls take turns.
    public func encode(_ sequences: [[Int32]], outputs: EmbeddingOutputs) throws(EngineError) -> [SequenceEmbedding] {
        lock.lock()
        defer { lock.unlock() }
        return try encode(sequences, outputs: outputs, workspace: ownWorkspace, checkpoint: nil)
    }

    /// Encodes a batch in the caller's workspace, on the workspace's lane, calling `checkpoint` at
    /// safe points every few milliseconds. The checkpoint may itself encode another batch, in
    /// another workspace, on this thread and lane (a scheduler runs urgent work that way inside a
    /// long batch). Calls on different lanes may run at once (at most ``threads`` threads of a lane
    /// work: the workspace is sized for that many); calls on one lane must not overlap otherwise.
    public func encode(_ sequences: [[Int32]], outputs: EmbeddingOutputs, workspace: EncoderWorkspace,
                       checkpoint: (() -> Void)?) throws(EngineError) -> [SequenceEmbedding] {
        for (index, sequence) in sequences.enumerated() {
            guard !sequence.isEmpty else { throw .emptySequence(index: index) }
            guard sequence.count <= maximumSequenceLength else {
                throw .sequenceTooLong(index: index, length: sequence.count, limit: maximumSequenceLength)
            }
            if let bad = sequence.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
                throw .tokenOutOfRange(index: index, token: bad, vocabularySize: config.vocabularySize)
            }
        }
        guard !sequences.isEmpty else { return [] }
        let network = try loadedNetwork()
        let lane = workspace.lane ?? ownLane
        let workspace = workspace.storage
        try workspace.reserve(plan(lengths: sequences.map(\.count), outputs: outputs))
        try network.encoder.forward(sequences, workspace: workspace, lane: lane, checkpoint: checkpoint)
        let headsStart = StageClock.now()
        defer { headsClock.lap(.heads, since: headsStart) }
        let heads = network.heads
        let hidden = workspace.hidden.floats
        let h = config.hiddenSize
        let tokens = sequences.reduce(0) { $0 + $1.count }
        if outputs.contains(.colbert) {
            do {
                let d = heads.colbertDimension
                var start = 0
                while start < tokens {
                    let rows = min(TransformerEncoder.rowBlock, tokens - start)
                    try heads.colbert.run(rows: rows, input: hidden + start * h, output: workspace.multiVector.floats + start * d, lane: lane)
                    start += rows
                    if start < tokens { checkpoint?() }
                }
            } catch {
                throw .kernel(error.description)
            }
        }
        var results: [SequenceEmbedding] = []
        results.reserveCapacity(sequences.count)
        var start = 0
        for sequence in sequences {
            var result = SequenceEmbedding()
            let rows = hidden + start * h
            if outputs.contains(.dense) {
                var dense = Array(UnsafeBufferPointer(start: rows, count: h))
                dense.withUnsafeMutableBufferPointer { VectorMath.normalize($0.baseAddress!, count: h) }
                result.dense = dense
            }
            if outputs.contains(.sparse) {
                result.sparse = heads.sparse(hidden: rows, tokens: sequence, hiddenSize: h)
            }
            if outputs.contains(.colbert) {
                // Every token after <s>, </s> included, each normalised.
                let d = heads.colbertDimension
                let count = sequence.count - 1
                var values = Array(UnsafeBufferPointer(start: workspace.multiVector.floats + (start + 1) * d, count: count * d))
                values.withUnsafeMutableBufferPointer { buffer in
                    for row in 0..<count { VectorMath.normalize(buffer.baseAddress! + row * d, count: d) }
                }
                result.colbert = MultiVector(count: count, dimension: d, values: values)
            }
            results.append(result)
            start += sequence.count
        }
        return results
    }
}

/// The parts of a loaded model that hold its weights: what idle unload frees.
private final class Network: @unchecked Sendable {
    let encoder: TransformerEncoder
    let heads: M3Heads
    /// Keeps the checkpoint maps alive: embeddings are read from them.
    let files: [any WeightFile]

    init(directory: URL, weightsFile: URL, config: ModelConfig, threads: Int, excludedSparseIDs: Set<Int32>,
         precision: Precision, attention: AttentionKernel, runtime: OneDNNRuntime) throws(WeightLoadError) {
        let weights = try openWeightFile(at: weightsFile)
        let sparseURL = directory.appendingPathComponent("sparse_linear.pt")
        let colbertURL = directory.appendingPathComponent("colbert_linear.pt")
        for (url, purpose) in [(sparseURL, "the sparse head; BGE-M3 ships it next to the weights"),
                               (colbertURL, "the ColBERT head; BGE-M3 ships it next to the weights")]
        where !FileManager.default.fileExists(atPath: url.path) {
            throw .missingFile(path: url.path, purpose: purpose)
        }
        let sparse = try openWeightFile(at: sparseURL)
        let colbert = try openWeightFile(at: colbertURL)
        var matmulAttention: MatmulAttention?
        if let operands = attention.operands {
            matmulAttention = MatmulAttention(heads: config.heads, headSize: config.headSize, threads: threads, operands: operands, runtime: runtime)
        }
        encoder = TransformerEncoder(config: config, weights: try TransformerWeights(file: weights, config: config, precision: precision, runtime: runtime),
                                     threads: threads, matmulAttention: matmulAttention)
        // The heads stay fp32 at every precision: they are a small share of the work.
        heads = try M3Heads(sparse: sparse, colbert: colbert, hiddenSize: config.hiddenSize, excludedSparseIDs: excludedSparseIDs, runtime: runtime)
        files = [weights, sparse, colbert]
        // Layer weights now live in packed copies; embeddings are read from the map on demand.
        for file in files { file.releaseResidentPages() }
    }
}
