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

    /// Makes every buffer at least as large as the plan needs.
    func reserve(_ plan: WorkspacePlan) throws(EngineError) {
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
