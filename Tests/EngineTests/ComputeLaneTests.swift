import Engine
import Foundation
import Testing

/// Batches on different lanes at once (the server's workers) share the weights and nothing else.
@Suite struct ComputeLaneTests {
    /// Texts of 5, 3, 150 and 40 tokens (150 and 40 run through the bf16 attention products where
    /// the CPU has them) and one of 700 tokens (two row blocks).
    static func text(_ count: Int, step: Int, modulo: Int) -> [Int32] {
        [0] + (0..<count).map { (i: Int) -> Int32 in Int32(5 + i * step % modulo) } + [2]
    }
    let batches: [[[Int32]]] = [
        [[0, 100, 200, 300, 2], [0, 42, 2], Self.text(148, step: 11, modulo: 4000)],
        [Self.text(38, step: 5, modulo: 3000), Self.text(698, step: 13, modulo: 4500)],
    ]

    /// Two threads each encode on a lane of their own, 60 times, at the same time: every
    /// result equals what the model's own lane (both threads) computes alone, at every precision
    /// this CPU runs. Before lanes, the products' instances and input buffers were one per model;
    /// two passes at once would have written into each other's. (With the lanes sharing the products'
    /// instances, 60 rounds failed at fp32 here; 6 rounds did not: the passes are short.)
    @Test(arguments: Precision.allCases.filter { $0.unsupportedReason == nil })
    func lanesRunAtOnceAndAgreeWithTheModelsOwn(_ precision: Precision) async throws {
        let model = try BGEM3Model(directory: EngineFixtures.tinyModel, threads: 2, precision: precision)
        let expected = try batches.map { try model.encode($0, outputs: .all) }
        let results = try await Self.onThreads(2) { _ in
            let workspace = EncoderWorkspace(lane: ComputeLane(threads: 1))
            var passes: [[SequenceEmbedding]] = []
            for round in 0..<60 {
                passes.append(try model.encode(batches[round % 2], outputs: .all, workspace: workspace, checkpoint: nil))
            }
            return passes
        }
        #expect(results.count == 2)
        // Counted rather than compared one by one: a failure would print megabytes of floats.
        let differing = results.flatMap { $0.enumerated().filter { $0.element != expected[$0.offset % 2] }.map(\.offset) }
        #expect(differing.isEmpty, "passes differing from the model's own lane: \(differing)")
    }

    /// Runs `body` on `count` threads of its own and returns their results: on tasks, two passes
    /// of seconds each would hold both of the cooperative pool's threads on a 2-core machine, and
    /// the other suites' timed tests would wait for them.
    static func onThreads<Result: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> Result) async throws -> [Result] {
        let collected = Collected<Result>()
        return try await withCheckedThrowingContinuation { continuation in
            for index in 0..<count {
                let thread = Thread {
                    let outcome = Swift.Result { try body(index) }
                    let done: [Int: Swift.Result<Result, any Error>]? = collected.lock.withLock {
                        collected.results[index] = outcome
                        return collected.results.count == count ? collected.results : nil
                    }
                    guard let done else { return }
                    do {
                        continuation.resume(returning: try (0..<count).map { try done[$0]!.get() })
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.stackSize = 8 << 20
                thread.start()
            }
        }
    }

    @Test func aLaneHasAtLeastOneThread() {
        #expect(ComputeLane(threads: 0).threads == 1)
        #expect(ComputeLane(threads: 3).threads == 3)
    }
}

/// What ``ComputeLaneTests/onThreads(_:_:)``'s threads have finished, by index.
private final class Collected<Result: Sendable>: @unchecked Sendable {
    let lock = NSLock()
    var results: [Int: Swift.Result<Result, any Error>] = [:]
}
