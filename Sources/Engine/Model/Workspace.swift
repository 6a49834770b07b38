import Foundation

/// The buffers of one forward pass, sized for the batch and reused across calls.
///
/// Sizes follow the batch shape exactly (``TransformerEncoder/workspaceBytes(lengths:)`` gives the
/// same number), so the memory a batch costs is known before it runs.
final class Workspace {
    private(set) var hidden = GrowableBuffer()
    private(set) var queryKeyValue = GrowableBuffer()
    private(set) var context = GrowableBuffer()
    private(set) var projected = GrowableBuffer()
    private(set) var feedForward = GrowableBuffer()
    private(set) var attentionScratch = GrowableBuffer()
    private(set) var multiVector = GrowableBuffer()

    /// Bytes held now: what a scheduler's memory accounting sees of this workspace.
    var retainedBytes: Int {
        [hidden, queryKeyValue, context, projected, feedForward, attentionScratch, multiVector].reduce(0) { $0 + $1.capacity }
    }

    /// Makes every buffer at least as large as the plan needs.
    ///
    /// When any buffer must grow, all are released and allocated to exactly the plan: keeping each
    /// buffer's largest size across different batches could hold more than any one batch needs
    /// (many short sequences grow one buffer, one long sequence another), and the scheduler's
    /// budget is per batch.
    func reserve(_ plan: WorkspacePlan) throws(EngineError) {
        let sizes = [plan.hidden, plan.queryKeyValue, plan.context, plan.projected, plan.feedForward, plan.attentionScratch, plan.multiVector]
        let buffers = [hidden, queryKeyValue, context, projected, feedForward, attentionScratch, multiVector]
        if zip(buffers, sizes).contains(where: { $0.capacity < $1 }) { release() }
        try hidden.reserve(bytes: plan.hidden)
        try queryKeyValue.reserve(bytes: plan.queryKeyValue)
        try context.reserve(bytes: plan.context)
        try projected.reserve(bytes: plan.projected)
        try feedForward.reserve(bytes: plan.feedForward)
        try attentionScratch.reserve(bytes: plan.attentionScratch)
        try multiVector.reserve(bytes: plan.multiVector)
    }

    /// Returns all memory (for idle unload or after a huge batch).
    func release() {
        for buffer in [hidden, queryKeyValue, context, projected, feedForward, attentionScratch, multiVector] { buffer.release() }
    }
}

/// The buffers of one forward pass, owned by a caller that runs several passes side by side: a
/// scheduler keeps one for bulk batches and one for the urgent batches it runs inside their
/// checkpoints. A workspace is used by one pass at a time.
public final class EncoderWorkspace: @unchecked Sendable {
    let storage = Workspace()
    /// The thread team batches in this workspace run on; nil: the model's own, which has the
    /// model's threads and which every workspace without a lane shares (their batches must not
    /// overlap).
    public let lane: ComputeLane?

    /// A workspace whose batches run on `lane` (nil: the model's own lane).
    public init(lane: ComputeLane? = nil) {
        self.lane = lane
    }

    /// Bytes held now.
    public var retainedBytes: Int { storage.retainedBytes }

    /// Returns the memory (it grows back on the next pass).
    public func release() { storage.release() }
}

/// Byte sizes of the workspace for one batch shape.
struct WorkspacePlan: Equatable {
    var hidden: Int
    var queryKeyValue: Int
    var context: Int
    var projected: Int
    var feedForward: Int
    var attentionScratch: Int
    /// ColBERT projections of every token, when asked for.
    var multiVector: Int = 0

    var total: Int { hidden + queryKeyValue + context + projected + feedForward + attentionScratch + multiVector }
}

/// A 64-byte aligned buffer that only grows (until released).
final class GrowableBuffer {
    private(set) var pointer: UnsafeMutableRawPointer?
    private(set) var capacity = 0

    func reserve(bytes: Int) throws(EngineError) {
        guard bytes > capacity else { return }
        release()
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { throw .outOfMemory(bytes: bytes) }
        pointer = raw
        capacity = bytes
    }

    func release() {
        free(pointer)
        pointer = nil
        capacity = 0
    }

    var floats: UnsafeMutablePointer<Float> {
        pointer!.assumingMemoryBound(to: Float.self)
    }

    deinit { free(pointer) }
}
