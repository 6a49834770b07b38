import Foundation

/// Runs `body`, which blocks (waits for a child process, reads a pipe to its end), on a thread of
/// its own and resumes the caller when it returns.
///
/// Why: Swift Testing runs tests, synchronous ones included, on the cooperative pool, which has
/// as many threads as cores: 2 here. Two tests blocked in `Process.waitUntilExit` took both, and
/// every other test's tasks stood still meanwhile: a scheduler test once waited 30 s "for the
/// first batch to start" in the full suite and passed alone.
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
