import COneDNN

/// Carries a value into concurrent workers that Swift cannot prove safe to share: raw buffers of
/// which each worker writes a disjoint part, and reads of immutable data.
struct Shared<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Workers for a pass over `values` values on a team of `threads`: one per 32 Ki values, so that
/// a worker has some microseconds of work for the microsecond that waking it costs.
/// One named function rather than inline arithmetic: `rows * columns >> 15` reads as this, but
/// Swift's `>>` binds tighter than `*` and it shifts `columns` alone (to 0 for every layer).
func workerCount(values: Int, threads: Int) -> Int {
    min(max(1, threads), max(1, values / 32_768))
}

/// Runs `body(worker)` for `workers` workers at once and returns when all are done.
///
/// The workers are the calling thread's OpenMP team, the threads oneDNN's matrix products use: one
/// pool of threads for the whole engine (none left spinning or competing between kernels), and
/// threads that inherit the priority of the thread that first ran a parallel region. If the team
/// is smaller than asked, each thread takes several worker indices.
func runWorkers(_ workers: Int, _ body: @Sendable (Int) -> Void) {
    guard workers > 1 else {
        body(0)
        return
    }
    withoutActuallyEscaping(body) { body in
        var region = ParallelRegion(workers: workers, body: body)
        withUnsafeMutablePointer(to: &region) { pointer in
            GOMP_parallel({ raw in
                let region = raw!.assumingMemoryBound(to: ParallelRegion.self)
                let team = Int(omp_get_num_threads())
                var worker = Int(omp_get_thread_num())
                while worker < region.pointee.workers {
                    region.pointee.body(worker)
                    worker += team
                }
            }, pointer, UInt32(workers), 0)
        }
    }
}

/// What a parallel region's threads read: the worker count and the body.
private struct ParallelRegion {
    let workers: Int
    let body: @Sendable (Int) -> Void
}
