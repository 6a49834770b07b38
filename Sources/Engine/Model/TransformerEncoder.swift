import Foundation

/// The XLM-RoBERTa (or BERT) encoder: embeddings, then N post-LayerNorm layers of self-attention
/// and GELU feed-forward, over a batch of unpadded sequences laid end to end.
final class TransformerEncoder: @unchecked Sendable {
    let config: ModelConfig
    let weights: TransformerWeights
    let attention: BlockedAttention
    /// Time spent in attention since the last ``takeAttentionSeconds()``.
    private var attentionNanoseconds: UInt64 = 0

    /// Seconds spent in attention since the last call, and restarts the count.
    func takeAttentionSeconds() -> Double {
        defer { attentionNanoseconds = 0 }
        return Double(attentionNanoseconds) / 1e9
    }

    /// Rows of the feed-forward computed at a time, bounding its `rows × intermediate` buffer.
    let feedForwardRows = 512

    init(config: ModelConfig, weights: TransformerWeights, threads: Int) {
        self.config = config
        self.weights = weights
        self.attention = BlockedAttention(heads: config.heads, headSize: config.headSize, threads: threads)
    }

    /// The exact workspace a batch of these sequence lengths needs.
    func plan(lengths: [Int]) -> WorkspacePlan {
        let tokens = lengths.reduce(0, +)
        let longest = lengths.max() ?? 0
        let h = config.hiddenSize
        let f = MemoryLayout<Float>.size
        return WorkspacePlan(
            hidden: tokens * h * f, queryKeyValue: tokens * 3 * h * f, context: tokens * h * f,
            projected: tokens * h * f, feedForward: min(tokens, feedForwardRows) * config.intermediateSize * f,
            attentionScratch: attention.scratchBytes(longest: longest))
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
    /// The workspace must already hold ``plan(lengths:)`` for these sequences.
    func forward(_ sequences: [[Int32]], workspace: Workspace) throws(EngineError) {
        let h = config.hiddenSize
        let hidden = workspace.hidden.floats
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
        do {
            for layer in weights.layers {
                try layer.queryKeyValue.run(rows: tokens, input: hidden, output: workspace.queryKeyValue.floats)
                let attentionStart = DispatchTime.now().uptimeNanoseconds
                attention.run(qkv: workspace.queryKeyValue.floats, context: workspace.context.floats, sequences: spans,
                              scratch: workspace.attentionScratch.pointer!)
                attentionNanoseconds += DispatchTime.now().uptimeNanoseconds - attentionStart
                try layer.attentionOutput.run(rows: tokens, input: workspace.context.floats, output: workspace.projected.floats)
                normalizeRows(hidden, adding: workspace.projected.floats, rows: tokens, norm: layer.attentionNorm)
                var start = 0
                while start < tokens {
                    let rows = min(feedForwardRows, tokens - start)
                    let block = hidden + start * h
                    try layer.intermediate.run(rows: rows, input: block, output: workspace.feedForward.floats)
                    try layer.output.run(rows: rows, input: workspace.feedForward.floats, output: workspace.projected.floats + start * h)
                    start += rows
                }
                normalizeRows(hidden, adding: workspace.projected.floats, rows: tokens, norm: layer.outputNorm)
            }
        } catch {
            throw .kernel(error.description)
        }
    }

    /// `hidden[r] = LayerNorm(hidden[r] + update[r])` for every row, spread over the threads.
    private func normalizeRows(_ hidden: UnsafeMutablePointer<Float>, adding update: UnsafeMutablePointer<Float>, rows: Int,
                               norm: (gamma: FloatBuffer, beta: FloatBuffer)) {
        let h = config.hiddenSize
        let epsilon = config.layerNormEpsilon
        let workers = min(attention.threads, max(1, rows / 64))
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
