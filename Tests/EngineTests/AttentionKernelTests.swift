import Engine
import Testing

/// The bf16 attention products (reduced precisions, CPUs with AVX512-BF16) against the fp32 kernel.
@Suite struct AttentionKernelTests {
    /// Lengths at the edges of the bf16 kernel's padding and blocks (multiples of 16 and 64 and
    /// one past them, one block of 128 query rows and one past it, the longest it takes), with
    /// sequences on either side of its range in the same batch.
    @Test func bf16ProductsFollowTheFp32KernelOrTheTestSaysWhyNot() throws {
        let lengths = [31, 32, 33, 64, 65, 127, 128, 129, 300, 2048, 2049, 7]
        guard let agreement = try AttentionDiagnostics.bf16Agreement(lengths: lengths, threads: 2) else {
            print("bf16 attention comparison skipped: \(Precision.bf16.unsupportedReason ?? "bf16 attention unavailable")")
            #expect(Precision.bf16.unsupportedReason != nil, "bf16 attention is off although the CPU runs bf16")
            return
        }
        print("bf16 attention vs fp32: minimum cosine \(agreement.minimumCosine), maximum difference \(agreement.maximumDifference), \(agreement.rounds) rounds")
        // bf16 operands carry 8 significant bits: per-row context vectors keep their direction.
        #expect(agreement.minimumCosine >= 0.999, "minimum cosine \(agreement.minimumCosine)")
        #expect(agreement.maximumDifference < 0.05, "maximum difference \(agreement.maximumDifference)")
        #expect(agreement.rounds >= 2, "a checkpoint between rounds of a long batch")
        #expect(!agreement.scratchOverrun)
    }

    /// A batch whose longest sequence needs less scratch per worker than a shorter one (576 keys
    /// get 112 query rows per block, 512 keys 128: with 16-wide heads the shorter needs more). The
    /// kernel once sized its workers' parts by the longest and wrote past the last one: the
    /// server crashed with a corrupted heap under load.
    @Test func noSequenceWritesPastTheScratchTheKernelAskedFor() throws {
        for headSize in [16, 32, 64] {
            guard let agreement = try AttentionDiagnostics.bf16Agreement(lengths: [576, 512, 300, 40], heads: 2, headSize: headSize, threads: 2) else { return }
            #expect(!agreement.scratchOverrun, "head size \(headSize)")
            #expect(agreement.minimumCosine >= 0.999, "head size \(headSize): minimum cosine \(agreement.minimumCosine)")
        }
    }

    @Test func oneWorkerGivesTheSameAgreement() throws {
        guard let agreement = try AttentionDiagnostics.bf16Agreement(lengths: [200, 40], threads: 1) else { return }
        #expect(agreement.minimumCosine >= 0.999, "minimum cosine \(agreement.minimumCosine)")
    }
}
