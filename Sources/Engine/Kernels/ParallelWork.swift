import Dispatch

/// Carries a value into concurrent workers that Swift cannot prove safe to share: raw buffers of
/// which each worker writes a disjoint part, and reads of immutable data.
struct Shared<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Runs `body(worker)` for `workers` workers at once and returns when all are done.
func runWorkers(_ workers: Int, _ body: @Sendable (Int) -> Void) {
    if workers <= 1 {
        body(0)
    } else {
        DispatchQueue.concurrentPerform(iterations: workers, execute: body)
    }
}
