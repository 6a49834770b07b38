import Engine

/// A model as the probe runs it: batches of random in-vocabulary tokens, all three outputs (the
/// costliest), in a workspace of the probe's own that is freed between shapes.
public final class EngineProbeSubject: ProbeSubject {
    private let model: BGEM3Model
    private let workspace: EncoderWorkspace
    private var generator = SeededGenerator(seed: 0x6267_656d_33)

    public init(model: BGEM3Model, workspace: EncoderWorkspace = EncoderWorkspace()) {
        self.model = model
        self.workspace = workspace
    }

    public func runShape(batch: Int, length: Int) throws -> Int {
        let vocabulary = UInt64(max(model.tokenizer?.vocabularySize ?? model.config.vocabularySize, 8))
        let sequences = (0..<batch).map { _ -> [Int32] in
            guard length > 2 else { return Array([0, 2].prefix(max(length, 1))) }
            let inner = (0..<(length - 2)).map { _ in Int32(5 + generator.next() % (vocabulary - 5)) }
            return [0] + inner + [2]
        }
        _ = try model.encode(sequences, outputs: .all, workspace: workspace, checkpoint: nil)
        return model.workspaceBytes(lengths: sequences.map(\.count), outputs: .all)
    }

    public func releaseWorkspace() {
        workspace.release()
    }
}
