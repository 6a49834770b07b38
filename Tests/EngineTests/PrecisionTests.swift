import Engine
import Foundation
import Testing

/// Reduced-precision matrix products: accuracy gates against fp32 on the tiny model, and the
/// refusal on CPUs that lack the feature.
@Suite struct PrecisionTests {
    let texts: [[Int32]] = (0..<12).map { (i: Int) -> [Int32] in
        var sequence: [Int32] = [0]
        for j in 0..<(8 + 37 * i) { sequence.append(Int32(5 + (j * 31 + i * 7) % 5900)) }
        sequence.append(2)
        return sequence
    }

    func cosine(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } / (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
    }

    @Test func bf16MatchesFp32WithinTheGateOrIsRefusedNamingTheFeature() throws {
        if let reason = Precision.bf16.unsupportedReason {
            // This CPU lacks AVX512-BF16: loading must refuse, naming it (the gate cannot run here).
            #expect(reason.contains("AVX512-BF16"))
            #expect(throws: WeightLoadError.unsupportedPrecision(reason)) {
                _ = try BGEM3Model(directory: EngineFixtures.tinyModel, threads: 2, precision: .bf16)
            }
            print("bf16 accuracy gate skipped: \(reason)")
            return
        }
        let reference = try BGEM3Model(directory: EngineFixtures.tinyModel, threads: 2)
        let reduced = try BGEM3Model(directory: EngineFixtures.tinyModel, threads: 2, precision: .bf16)
        #expect(reduced.precision == .bf16)
        #expect(reduced.packedWeightBytes < reference.packedWeightBytes)
        let expected = try reference.encode(texts, outputs: .all)
        let got = try reduced.encode(texts, outputs: .all)
        let cosines = zip(expected, got).map { cosine($0.dense!, $1.dense!) }
        #expect(cosines.min()! >= 0.999, "dense cosine min \(cosines.min()!)")
        for (e, g) in zip(expected, got) {
            #expect(e.sparse!.ids == g.sparse!.ids || Set(e.sparse!.ids).symmetricDifference(g.sparse!.ids).count <= 2)
            #expect(cosine(e.colbert!.values, g.colbert!.values) >= 0.999)
        }
    }
}
