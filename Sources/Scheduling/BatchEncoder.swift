import Engine

/// The engine as the scheduler sees it: batches encoded in a caller-owned workspace, with safe
/// points where urgent work may run, and weights that can be unloaded while idle.
public protocol BatchEncoder: AnyObject, Sendable {
    /// Encodes a batch in `workspace`, calling `checkpoint` at safe points; the checkpoint may
    /// encode another batch in another workspace on the same thread.
    func encode(_ sequences: [[Int32]], outputs: EmbeddingOutputs, workspace: EncoderWorkspace,
                checkpoint: (() -> Void)?) throws(EngineError) -> [SequenceEmbedding]
    /// Frees the weights; the next batch loads them again.
    func unloadWeights()
    /// Whether the weights are in memory.
    var isLoaded: Bool { get }
}

extension BGEM3Model: BatchEncoder {}
