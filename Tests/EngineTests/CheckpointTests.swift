import Engine
import Foundation
import Testing

/// Safe points inside a pass (where a scheduler runs urgent work) and idle unload.
@Suite struct CheckpointTests {
    let long: [[Int32]] = (0..<3).map { (i: Int) -> [Int32] in
        var sequence: [Int32] = [0]
        for j in 0..<900 { sequence.append(Int32(5 + (j * 7 + i * 13) % 5000)) }
        sequence.append(2)
        return sequence
    }
    /// Two short texts and one of 150 tokens (long enough for the bf16 attention products).
    let short: [[Int32]] = [[0, 100, 200, 300, 2], [0, 42, 2], [0] + (0..<148).map { Int32(7 + $0 * 11 % 4000) } + [2]]

    /// A pass interrupted at every safe point by another pass (in another workspace, on the same
    /// thread) gives exactly the results of both run alone, at every precision this CPU runs
    /// (the reduced ones share quantisation buffers and attention primitives between passes).
    @Test(arguments: Precision.allCases.filter { $0.unsupportedReason == nil })
    func nestedPassesAtSafePointsChangeNothing(_ precision: Precision) throws {
        let model = try BGEM3Model(directory: EngineFixtures.tinyModel, threads: 2, precision: precision)
        let expectedLong = try model.encode(long, outputs: .all)
        let expectedShort = try model.encode(short, outputs: .all)
        let outer = EncoderWorkspace()
        let inner = EncoderWorkspace()
        var nested: [[SequenceEmbedding]] = []
        var failures: [any Error] = []
        let result = try model.encode(long, outputs: .all, workspace: outer) {
            do { nested.append(try model.encode(short, outputs: .all, workspace: inner, checkpoint: nil)) } catch { failures.append(error) }
        }
        #expect(failures.isEmpty)
        // Two layers × (row blocks of three matrix products + attention rounds) for 2,706 tokens.
        #expect(nested.count >= 2 * 3 * 5)
        #expect(result == expectedLong)
        for pass in nested { #expect(pass == expectedShort) }
        #expect(outer.retainedBytes == model.workspaceBytes(lengths: long.map(\.count), outputs: .all))
        outer.release()
        #expect(outer.retainedBytes == 0)
    }

    @Test func unloadedWeightsLoadAgainOnTheNextPass() throws {
        let model = try BGEM3Model(directory: EngineFixtures.tinyModel, threads: 2)
        let before = try model.encode(short, outputs: .all)
        #expect(model.isLoaded)
        model.unloadWeights()
        #expect(!model.isLoaded)
        #expect(model.workspaceBytes(lengths: [5, 3], outputs: .all) > 0, "workspace planning works without the weights")
        let after = try model.encode(short, outputs: .all)
        #expect(model.isLoaded)
        #expect(after == before)
    }
}
