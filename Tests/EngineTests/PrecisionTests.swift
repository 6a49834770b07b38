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

    @Test func int8MatchesFp32WithinTheGateAndPacksAQuarterOfTheBytes() throws {
        let reference = try BGEM3Model(directory: EngineFixtures.tinyModel, threads: 2)
        let reduced = try BGEM3Model(directory: EngineFixtures.tinyModel, threads: 2, precision: .int8)
        #expect(reduced.precision == .int8)
        // s8 weights plus two floats per output channel, against four bytes per weight (the fp32
        // ColBERT head is in both).
        #expect(reduced.packedWeightBytes < reference.packedWeightBytes / 2)
        let expected = try reference.encode(texts, outputs: .all)
        let got = try reduced.encode(texts, outputs: .all)
        let cosines = zip(expected, got).map { cosine($0.dense!, $1.dense!) }
        let mean = cosines.reduce(0, +) / Float(cosines.count)
        #expect(cosines.min()! >= 0.99 && mean >= 0.995, "dense cosine min \(cosines.min()!) mean \(mean)")
        for (e, g) in zip(expected, got) {
            #expect(cosine(e.colbert!.values, g.colbert!.values) >= 0.99)
            #expect(abs(M3Score.lexical(e.sparse!, e.sparse!) - M3Score.lexical(g.sparse!, g.sparse!)) <= 0.05 * M3Score.lexical(e.sparse!, e.sparse!))
        }
        // The same pass twice gives the same answer (the shared quantisation buffer is reused).
        #expect(try reduced.encode(texts, outputs: .all) == got)
    }

    @Test func autoMeasuresTheFasterPrecisionsThisCPURunsAndUnknownNamesAreRejected() {
        #expect(PrecisionRequest("auto") == .automatic)
        // bf16 is a candidate only where it runs faster than fp32: never on a CPU without it, and
        // not on Intel's AVX512-BF16 without AMX (slower than fp32 on Emerald Rapids).
        #expect(PrecisionRequest.automatic.candidates == (Precision.bf16IsFasterThanFP32 ? [.int8, .bf16] : [.int8]))
        if Precision.bf16.unsupportedReason != nil { #expect(!Precision.bf16IsFasterThanFP32) }
        if CPUVendor.current == .intel && OneDNNRuntime.effectiveISA != "avx512_core_amx" { #expect(!Precision.bf16IsFasterThanFP32) }
        #expect(PrecisionRequest("int8") == .fixed(.int8) && PrecisionRequest.fixed(.int8).candidates == [.int8])
        #expect(PrecisionRequest.fixed(.fp32).candidates.isEmpty)
        #expect(PrecisionRequest("fp16") == nil)
        #expect(PrecisionRequest.choices == ["auto", "fp32", "bf16", "int8"])
    }

    @Test func theCheckTextsKeepEveryTopicAndCutPassagesKeepingTheEndToken() throws {
        let model = try EngineFixtures.model.get()
        let full = EvalTexts.builtIn.tokenized(by: try model.requireTokenizer())
        #expect(full.queries.count == 20 && full.passages.count == 100 && full.relevant.count == 20)
        let cut = full.truncatingPassages(to: 64)
        #expect(cut.queries == full.queries && cut.passages.count == 100)
        for (short, long) in zip(cut.passages, full.passages) {
            #expect(short.count == min(64, long.count) && short.first == long.first && short.last == long.last)
        }
    }

    @Test func int8LevelsFollowTheCPU() {
        // Exact u8×s8 products: with VNNI full range; without it one operand has 7 bits, so
        // vpmaddubsw's int16 pair sums cannot saturate.
        let levels = Int8Levels.forThisCPU
        #expect(levels == (OneDNNRuntime.hasVNNI ? .full : .withoutVNNI))
        #expect(2 * Int8Levels.withoutVNNI.activationMaximum * Int8Levels.withoutVNNI.weightMaximum <= Int(Int16.max))
    }

    @Test func comparisonOfIdenticalOutputsIsExactAndPassesEveryGate() throws {
        let model = try EngineFixtures.model.get()
        // Two queries, then the passages; each query's relevant passages include itself, so every
        // pair has a lexical score.
        let outputs = try model.encode(Array(texts.prefix(2)) + texts, outputs: .all)
        let comparison = PrecisionComparison(reference: outputs, candidate: outputs, queries: 2, relevant: [[0, 2], [1, 3]])
        #expect(comparison.denseCosineMin >= 0.99999 && comparison.lexicalRelativeErrorMax == 0 && comparison.colbertRelativeErrorMax == 0)
        #expect(comparison.top10Overlap.worst == 1 && comparison.pairs == 4 && comparison.texts == texts.count + 2)
        for precision in Precision.allCases { #expect(comparison.passesGates(for: precision)) }
        // A candidate with one dense vector turned around fails the int8 gate.
        var flipped = outputs
        flipped[5].dense = flipped[5].dense!.map { -$0 }
        let bad = PrecisionComparison(reference: outputs, candidate: flipped, queries: 2, relevant: [[0, 2], [1, 3]])
        #expect(bad.denseCosineMin < -0.99 && !bad.passesGates(for: .int8))
    }
}
