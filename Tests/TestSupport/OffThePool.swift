import Foundation

/// Runs `body`, which blocks (waits for a child process, reads a pipe to its end), on a thread of
/// its own and resumes the caller when it returns.
///
/// Why: Swift Testing runs tests, synchronous ones included, on the cooperative pool, which has
/// as many threads as cores: 2 here. Tests that waited there for a child process (`bench` or the
/// precision check, tens of seconds) held those threads, and other tests' tasks stood still: a
/// scheduler test whose first batch starts within 15 ms alone took 26-28 s in the full suite, once
/// over its 30 s guard; with the waits moved here it took 15 and 37 s in two runs: CPU-bound tests
/// still hold the pool, and ``waitUntil(_:timeout:interval:_:)``'s 120 s guard is what lets it pass.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// A value handed to ``offThePool(_:)``'s thread that the compiler cannot prove `Sendable`
/// (`Process`, `Pipe`): only that thread uses it until the caller resumes.
struct HandedOver<Value>: @unchecked Sendable {
    let value: Value
}
