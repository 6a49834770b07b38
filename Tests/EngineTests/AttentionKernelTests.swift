import Engine
import Testing

/// oneDNN's attention products (fp32 operands on AVX-512 CPUs, int8 at int8 with VNNI, bf16 at the
/// reduced precisions where bf16 runs faster) against the blocked fp32 kernel.
@Suite struct AttentionKernelTests {
    /// fp32 products compute the same sums in another order: agreement to fp32 rounding, on the
    /// same edge lengths as the bf16 test.
    @Test func f32ProductsEqualTheBlockedKernel() throws {
        let lengths = [31, 32, 33, 64, 65, 127, 128, 129, 300, 2048, 2049, 7]
        let agreement = try #require(try AttentionDiagnostics.agreement(of: .f32, lengths: lengths, threads: 2))
        print("f32 attention products vs the blocked kernel: minimum cosine \(agreement.minimumCosine), maximum difference \(agreement.maximumDifference)")
        #expect(agreement.minimumCosine >= 0.999_999, "minimum cosine \(agreement.minimumCosine)")
        #expect(agreement.maximumDifference < 1e-5, "maximum difference \(agreement.maximumDifference)")
        #expect(agreement.rounds >= 2, "a checkpoint between rounds of a long batch")
        #expect(!agreement.scratchOverrun)
    }

    /// The rule that picks the kernel: the blocked kernel without AVX-512, oneDNN's products with it;
    /// bf16 operands never at fp32, and at the reduced precisions only where bf16 runs faster.
    @Test func theKernelFollowsTheCPU() {
        #expect(AttentionKernel.forThisCPU(precision: .fp32) == (OneDNNRuntime.hasAVX512 ? .products(.f32) : .blocked))
        let reduced: AttentionKernel = !OneDNNRuntime.hasAVX512 ? .blocked : Precision.bf16IsFasterThanFP32 ? .products(.bf16) : .products(.f32)
        let int8: AttentionKernel = OneDNNRuntime.hasAVX512 && OneDNNRuntime.hasVNNI ? .products(.int8) : reduced
        #expect(AttentionKernel.forThisCPU(precision: .int8) == int8)
        #expect(AttentionKernel.forThisCPU(precision: .int8, headSize: 36) == reduced, "int8 operands need heads of a multiple of 8")
        #expect(AttentionKernel.forThisCPU(precision: .bf16) == reduced)
    }

    /// int8 attention in the engine's own AVX-512 loops gives the floats of oneDNN's products with
    /// the 8-lane Swift passes exactly: both sum in int32, and the loops' quantisation, softmax and
    /// scaling repeat the Swift passes' operations. Lengths around the key quantum (64) and the
    /// groups of 32 weights, partial tiles of 4 rows, and a long sequence of several row blocks.
    @Test func int8ProductLoopsGiveOneDNNsResults() throws {
        guard let difference = try AttentionDiagnostics.int8ProductsDifference(lengths: [32, 33, 63, 64, 65, 127, 130, 513, 2048], threads: 2) else {
            print("int8 attention product loops not compared: they do not run on this CPU")
            #expect(!(OneDNNRuntime.hasAVX512 && OneDNNRuntime.hasVNNI), "the loops are off although the CPU has AVX-512 and VNNI")
            return
        }
        #expect(difference == 0, "largest difference \(difference)")
    }

    /// int8 operands on the same edge lengths: queries and keys to s8 per row, values per column,
    /// softmax weights to u8 with the row's largest at 255. The bounds are what this quantisation
    /// keeps on random projections (whose attention is diffuse, the hard case for u8 weights);
    /// what it costs a real model is `bgem3 eval`'s to measure, and the MiniLM gate's.
    @Test func int8ProductsFollowTheFp32KernelOrTheTestSaysWhyNot() throws {
        let lengths = [31, 32, 33, 64, 65, 127, 128, 129, 300, 2048, 2049, 7]
        guard let agreement = try AttentionDiagnostics.agreement(of: .int8, lengths: lengths, threads: 2) else {
            let reason = AttentionKernel.products(.int8).unsupportedReason() ?? "int8 attention unavailable"
            print("int8 attention comparison skipped: \(reason)")
            #expect(!(OneDNNRuntime.hasAVX512 && OneDNNRuntime.hasVNNI), "int8 attention is off although the CPU has AVX-512 and VNNI")
            return
        }
        print("int8 attention vs fp32: minimum cosine \(agreement.minimumCosine), maximum difference \(agreement.maximumDifference), \(agreement.rounds) rounds")
        #expect(agreement.minimumCosine >= 0.998, "minimum cosine \(agreement.minimumCosine)")
        #expect(agreement.maximumDifference < 0.05, "maximum difference \(agreement.maximumDifference)")
        #expect(agreement.rounds >= 2, "a checkpoint between rounds of a long batch")
        #expect(!agreement.scratchOverrun)
        for headSize in [16, 32, 64] {
            let small = try #require(try AttentionDiagnostics.agreement(of: .int8, lengths: [576, 512, 300, 40], heads: 2, headSize: headSize, threads: 1))
            #expect(!small.scratchOverrun, "head size \(headSize)")
            #expect(small.minimumCosine >= 0.998, "head size \(headSize): minimum cosine \(small.minimumCosine)")
        }
    }

    /// Lengths at the edges of the bf16 kernel's padding and blocks (multiples of 16 and 64 and
    /// one past them, one block of 128 query rows and one past it, the longest it takes), with
    /// sequences on either side of its range in the same batch.
    @Test func bf16ProductsFollowTheFp32KernelOrTheTestSaysWhyNot() throws {
        let lengths = [31, 32, 33, 64, 65, 127, 128, 129, 300, 2048, 2049, 7]
        guard let agreement = try AttentionDiagnostics.agreement(of: .bf16, lengths: lengths, threads: 2) else {
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
            guard let agreement = try AttentionDiagnostics.agreement(of: .bf16, lengths: [576, 512, 300, 40], heads: 2, headSize: headSize, threads: 2) else { return }
            #expect(!agreement.scratchOverrun, "head size \(headSize)")
            #expect(agreement.minimumCosine >= 0.999, "head size \(headSize): minimum cosine \(agreement.minimumCosine)")
        }
    }

    @Test func oneWorkerGivesTheSameAgreement() throws {
        guard let agreement = try AttentionDiagnostics.agreement(of: .bf16, lengths: [200, 40], threads: 1) else { return }
        #expect(agreement.minimumCosine >= 0.999, "minimum cosine \(agreement.minimumCosine)")
    }
}
