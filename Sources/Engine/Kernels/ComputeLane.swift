import COneDNN
import Foundation

/// The thread team a batch runs on, and everything its kernels write that another team must not
/// touch: the OpenMP team size, oneDNN streams, the buffers a product converts its inputs into,
/// the products' scratchpads and the primitives made for this team's size.
///
/// Batches on different lanes run at once and share the model's weights: the server's workers
/// (`BGE_M3_WORKERS`) each run on a lane of their own. One lane runs one batch at a time (a batch
/// nested at a checkpoint runs between two products, which is allowed). A lane is meant to live as
/// long as the models it runs: the primitives made for it are kept with each product's until that
/// model is freed.
public final class ComputeLane: @unchecked Sendable {
    /// Threads in the lane's team (OpenMP's team size on whichever thread runs a batch on it).
    public let threads: Int
    /// Tells the lane's primitives apart from other lanes' in a product's cache.
    let id: Int
    /// bf16 or u8 copies of a product's inputs.
    let conversionBuffer = ConversionBuffer()
    /// The products' scratchpads (see ``Scratchpad``).
    let scratchpadBuffer = ConversionBuffer()
    private let lock = NSLock()
    /// Stream `i` belongs to the team's thread `i`: the attention products each thread runs alone.
    private var streams: [dnnl_stream_t] = []

    nonisolated(unsafe) private static var lastID = 0
    private static let idLock = NSLock()

    /// A lane of `threads` threads (at least 1).
    public init(threads: Int) {
        self.threads = max(1, threads)
        id = Self.idLock.withLock {
            Self.lastID += 1
            return Self.lastID
        }
    }

    deinit {
        for stream in streams { dnnl_stream_destroy(stream) }
    }

    /// Sizes the calling thread's OpenMP team to the lane's (a per-thread setting); call before
    /// a primitive is made (oneDNN fixes its thread count then) and before it runs.
    func enter() {
        omp_set_num_threads(Int32(threads))
    }

    /// The stream of the team's thread `worker` (0 for the products the whole team runs).
    func stream(_ worker: Int, engine: dnnl_engine_t) throws(OneDNNError) -> dnnl_stream_t {
        lock.lock()
        defer { lock.unlock() }
        while streams.count <= worker {
            var stream: dnnl_stream_t?
            try check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "dnnl_stream_create")
            streams.append(stream!)
        }
        return streams[worker]
    }
}
