import Foundation
import NIOCore

/// Threads of their own for tokenising request bodies: a 16 MB body takes seconds to tokenise,
/// and on Swift's cooperative pool (one thread per core) that would stall every other request's
/// I/O meanwhile. Work runs first come, first served.
final class TokenizationWorkers: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue = CircularBuffer<() -> Void>()
    /// How many texts can be tokenised at once (the working memory admission sets aside).
    let threads: Int

    init(threads: Int) {
        self.threads = max(1, threads)
        for number in 0..<self.threads {
            let thread = Thread { [self] in work() }
            thread.name = "bgem3-tokenize-\(number)"
            thread.start()
        }
    }

    /// Runs `body` on a worker thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            condition.withLock {
                queue.append { continuation.resume(with: Result { try body() }) }
                condition.signal()
            }
        }
    }

    private func work() {
        while true {
            let next: () -> Void = condition.withLock {
                while queue.isEmpty { condition.wait() }
                return queue.removeFirst()
            }
            next()
        }
    }
}
