import Foundation

/// The XLM-RoBERTa (or BERT) encoder: embeddings, then N post-LayerNorm layers of self-attention
/// and GELU feed-forward, over a batch of unpadded sequences laid end to end.
final class TransformerEncoder: @unchecked Sendable {
    let config: ModelConfig
    let weights: TransformerWeights
    let attention: BlockedAttention
    /// oneDNN's attention products, where ``AttentionKernel/products(_:)`` was chosen.
    let matmulAttention: MatmulAttention?
    /// Time by stage since the last ``takeProfile()`` (the products keep their own).
    private let clock = StageClock()

    /// The pass's time by stage since the last call, products included, and restarts the counts.
    func takeProfile() -> PassProfile {
        weights.layers.reduce(clock.take()) {
            $0 + $1.queryKeyValue.takeProfile() + $1.attentionOutput.takeProfile() + $1.intermediate.takeProfile() + $1.output.takeProfile()
        }
    }

    /// Rows computed at a time by the matrix products (see ``inRowBlocks(_:checkpoint:_:)``).
    static let rowBlock = 512

    init(config: ModelConfig, weights: TransformerWeights, threads: Int, matmulAttention: MatmulAttention?) {
        self.config = config
        self.weights = weights
        self.attention = BlockedAttention(heads: config.heads, headSize: config.headSize, threads: threads)
        self.matmulAttention = matmulAttention
    }

    /// The exact workspace a batch of these sequence lengths needs.
    func plan(lengths: [Int]) -> WorkspacePlan {
        Self.plan(lengths: lengths, config: config, attention: attention, matmulAttention: matmulAttention?.operands)
    }

    /// The exact workspace of a batch, from the shapes alone (no weights needed).
    static func plan(lengths: [Int], config: ModelConfig, attention: BlockedAttention, matmulAttention: AttentionOperands?) -> WorkspacePlan {
        let tokens = lengths.reduce(0, +)
        let longest = lengths.max() ?? 0
        let h = config.hiddenSize
        let f = MemoryLayout<Float>.size
        return WorkspacePlan(
            hidden: tokens * h * f, queryKeyValue: tokens * 3 * h * f, context: tokens * h * f,
            projected: tokens * h * f, feedForward: min(tokens, rowBlock) * config.intermediateSize * f,
            attentionScratch: max(attention.scratchBytes(longest: longest),
                                  matmulAttention.map {
                                      MatmulAttention.scratchBytes(longest: longest, heads: config.heads, headSize: config.headSize,
                                                                   threads: attention.threads, operands: $0)
                                  } ?? 0))
    }

    /// Position ids as Hugging Face computes them: for XLM-R, `padding_idx` plus the count of
    /// non-pad tokens up to and including this one (`padding_idx` for a pad token); for BERT, 0, 1, 2…
    func positions(of sequence: [Int32]) -> [Int32] {
        guard config.architecture == .xlmRoberta else { return (0..<Int32(sequence.count)).map { $0 } }
        var count: Int32 = 0
        return sequence.map { id in
            if id == config.padTokenID { return config.padTokenID }
            count += 1
            return config.padTokenID + count
        }
    }

    /// Runs the encoder; the last hidden states end up in `workspace.hidden` (`tokens × hidden`).
    /// The workspace must already hold ``plan(lengths:)`` for these sequences. `checkpoint` is
    /// called at safe points (between row blocks and attention rounds); it may run another forward
    /// pass with another workspace on this thread and lane.
    func forward(_ sequences: [[Int32]], workspace: Workspace, lane: ComputeLane, checkpoint: (() -> Void)? = nil) throws(EngineError) {
        let h = config.hiddenSize
        let hidden = workspace.hidden.floats
        let embeddingStart = StageClock.now()
        var spans: [(start: Int, length: Int)] = []
        var row = 0
        for sequence in sequences {
            let positions = positions(of: sequence)
            let first = row
            for (token, position) in zip(sequence, positions) {
                let out = hidden + row * h
                try weights.wordEmbeddings.read(row: Int(token), into: out)
                // The position rows go in the projected buffer, then are added.
                try weights.positionEmbeddings.read(row: Int(position), into: workspace.projected.floats + row * h)
                row += 1
                if row % Self.rowBlock == 0 { checkpoint?() }
            }
            for r in first..<row {
                let out = hidden + r * h
                VectorMath.add(workspace.projected.floats + r * h, into: out, count: h)
                VectorMath.add(weights.tokenTypeEmbeddings.pointer, into: out, count: h)
                VectorMath.layerNorm(out, residual: nil, count: h, gamma: weights.embeddingNorm.gamma.pointer,
                                     beta: weights.embeddingNorm.beta.pointer, epsilon: config.layerNormEpsilon)
            }
            spans.append((first, sequence.count))
        }
        let tokens = row
        clock.lap(.embeddings, since: embeddingStart)
        do {
            for layer in weights.layers {
                try inRowBlocks(tokens, checkpoint: checkpoint) { start, rows throws(OneDNNError) in
                    try layer.queryKeyValue.run(rows: rows, input: hidden + start * h, output: workspace.queryKeyValue.floats + start * 3 * h, lane: lane)
                }
                let attentionStart = StageClock.now()
                try attend(spans, workspace: workspace, lane: lane, checkpoint: checkpoint)
                clock.lap(.attention, since: attentionStart)
                try inRowBlocks(tokens, checkpoint: checkpoint) { start, rows throws(OneDNNError) in
                    try layer.attentionOutput.run(rows: rows, input: workspace.context.floats + start * h, output: workspace.projected.floats + start * h, lane: lane)
                }
                normalizeRows(hidden, adding: workspace.projected.floats, rows: tokens, norm: layer.attentionNorm, threads: lane.threads)
                try inRowBlocks(tokens, checkpoint: checkpoint) { start, rows throws(OneDNNError) in
                    try layer.intermediate.run(rows: rows, input: hidden + start * h, output: workspace.feedForward.floats, lane: lane)
                    checkpoint?()
                    try layer.output.run(rows: rows, input: workspace.feedForward.floats, output: workspace.projected.floats + start * h, lane: lane)
                }
                normalizeRows(hidden, adding: workspace.projected.floats, rows: tokens, norm: layer.outputNorm, threads: lane.threads)
            }
        } catch {
            throw .kernel(error.description)
        }
    }

    /// Attention for every sequence: ``MatmulAttention`` for those it takes, ``BlockedAttention``
    /// for the rest (and for everything when the kernel is ``AttentionKernel/blocked``).
    private func attend(_ spans: [(start: Int, length: Int)], workspace: Workspace, lane: ComputeLane, checkpoint: (() -> Void)?) throws(OneDNNError) {
        let scratch = workspace.attentionScratch.pointer!
        var remaining = spans
        if let matmulAttention {
            let taken = spans.filter { MatmulAttention.takes(length: $0.length) }
            remaining = spans.filter { !MatmulAttention.takes(length: $0.length) }
            if !taken.isEmpty {
                try matmulAttention.run(qkv: workspace.queryKeyValue.floats, context: workspace.context.floats, sequences: taken,
                                        scratch: scratch, lane: lane, checkpoint: checkpoint)
            }
        }
        if !remaining.isEmpty {
            attention.run(qkv: workspace.queryKeyValue.floats, context: workspace.context.floats, sequences: remaining,
                          scratch: scratch, lane: lane, checkpoint: checkpoint)
        }
    }

    /// Runs `body(start, rows)` over `tokens` rows in blocks of ``rowBlock`` rows, calling `checkpoint`
    /// between blocks. Blocks bound the feed-forward buffer and give a scheduler a safe point every
    /// few milliseconds; 512 rows keep the matrix products at full speed.
    private func inRowBlocks(_ tokens: Int, checkpoint: (() -> Void)?,
                             _ body: (_ start: Int, _ rows: Int) throws(OneDNNError) -> Void) throws(OneDNNError) {
        var start = 0
        while start < tokens {
            let rows = min(Self.rowBlock, tokens - start)
            try body(start, rows)
            start += rows
            if start < tokens { checkpoint?() }
        }
    }

    /// `hidden[r] = LayerNorm(hidden[r] + update[r])` for every row, spread over `threads` threads.
    private func normalizeRows(_ hidden: UnsafeMutablePointer<Float>, adding update: UnsafeMutablePointer<Float>, rows: Int,
                               norm: (gamma: FloatBuffer, beta: FloatBuffer), threads: Int) {
        let start = StageClock.now()
        defer { clock.lap(.layerNorms, since: start) }
        let h = config.hiddenSize
        let epsilon = config.layerNormEpsilon
        let workers = min(threads, max(1, rows / 64))
        let shared = Shared((hidden: hidden, update: update, gamma: norm.gamma.pointer, beta: norm.beta.pointer))
        runWorkers(workers) { worker in
            let (hidden, update, gamma, beta) = shared.value
            var r = worker
            while r < rows {
                VectorMath.layerNorm(hidden + r * h, residual: update + r * h, count: h, gamma: gamma, beta: beta, epsilon: epsilon)
                r += workers
            }
        }
    }
}
