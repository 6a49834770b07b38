import Engine
import Foundation
import TestSupport
import Testing

/// Real checkpoints cut short, damaged byte by byte, or with zip records that lie: refused as
/// malformed, never a crash or a read out of bounds.
@Suite("PyTorchCheckpoint: damaged files")
struct DamagedCheckpointTests {
    @Test("a truncated pytorch_model.bin is refused", arguments: [0.10, 0.50, 0.99])
    func truncatedModel(fraction: Double) throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let original = try TorchTestFiles.bytes("pytorch_model.bin")
        let path = try scratch.write(Array(original.prefix(Int(Double(original.count) * fraction))), as: "truncated.bin")
        try expectMalformed(path)
    }

    @Test("the first 100 bytes of pytorch_model.bin are refused")
    func first100Bytes() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let path = try scratch.write(Array(try TorchTestFiles.bytes("pytorch_model.bin").prefix(100)), as: "head.bin")
        try expectMalformed(path)
    }

    @Test("every prefix of sparse_linear.pt is refused without a crash")
    func everyPrefixOfSmallCheckpoint() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let original = try TorchTestFiles.bytes("sparse_linear.pt")
        for length in 0..<original.count {
            let path = try scratch.write(Array(original.prefix(length)), as: "prefix.pt")
            let error = torchLoadFailure(path)
            guard case .malformed = error else {
                Issue.record("a \(length)-byte prefix gave \(String(describing: error)), expected .malformed")
                continue
            }
        }
    }

    @Test("any single damaged byte of sparse_linear.pt loads or throws, never crashes")
    func everyDamagedByteOfSmallCheckpoint() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let original = try TorchTestFiles.bytes("sparse_linear.pt")
        for position in 0..<original.count {
            for damage: UInt8 in [0xFF, 0x80] {
                var damaged = original
                damaged[position] ^= damage
                let path = try scratch.write(damaged, as: "damaged.pt")
                // A damaged byte in tensor data loads fine; reading every tensor must stay in bounds.
                guard let checkpoint = try? PyTorchCheckpoint(path: path) else { continue }
                for name in checkpoint.tensorNames {
                    _ = try? checkpoint.tensor(name).floats()
                }
            }
        }
    }

    @Test("a central directory offset that points into entry data is refused")
    func centralDirectoryOffsetIntoData() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        var bytes = try TorchTestFiles.bytes("sparse_linear.pt")
        let layout = try TorchZipLayout(bytes)
        TorchBytes.put32(&bytes, at: layout.endRecord + 16, 100)
        TorchBytes.put64(&bytes, at: layout.zip64Record + 48, 100)
        let reason = try expectMalformed(try scratch.write(bytes, as: "lying.pt"))
        #expect(reason.contains("central"), "\(reason)")
    }

    @Test("a central directory offset past the end of the file is refused")
    func centralDirectoryOffsetPastEnd() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        var bytes = try TorchTestFiles.bytes("sparse_linear.pt")
        let layout = try TorchZipLayout(bytes)
        TorchBytes.put32(&bytes, at: layout.endRecord + 16, UInt32(bytes.count + 1000))
        TorchBytes.put64(&bytes, at: layout.zip64Record + 48, UInt64(bytes.count + 1000))
        try expectMalformed(try scratch.write(bytes, as: "lying.pt"))
    }

    @Test("end of central directory records that disagree are refused")
    func endRecordsDisagree() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        var bytes = try TorchTestFiles.bytes("sparse_linear.pt")
        let layout = try TorchZipLayout(bytes)
        TorchBytes.put32(&bytes, at: layout.endRecord + 16, 0)
        let reason = try expectMalformed(try scratch.write(bytes, as: "lying.pt"))
        #expect(reason.contains("disagree"), "\(reason)")
    }

    @Test("an entry size reaching past the end of the file is refused, naming the entry")
    func entrySizeLies() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        var bytes = try TorchTestFiles.bytes("sparse_linear.pt")
        let header = try TorchZipLayout(bytes).centralHeader(of: "sparse_linear/data/0")
        TorchBytes.put32(&bytes, at: header + 20, 0x7FFF_0000)
        TorchBytes.put32(&bytes, at: header + 24, 0x7FFF_0000)
        let reason = try expectMalformed(try scratch.write(bytes, as: "lying.pt"))
        #expect(reason.contains("sparse_linear/data/0"), "\(reason)")
    }

    @Test("a local header offset that lies is refused, naming the entry")
    func localHeaderOffsetLies() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        var bytes = try TorchTestFiles.bytes("sparse_linear.pt")
        let header = try TorchZipLayout(bytes).centralHeader(of: "sparse_linear/data/1")
        TorchBytes.put32(&bytes, at: header + 42, 5)
        let reason = try expectMalformed(try scratch.write(bytes, as: "lying.pt"))
        #expect(reason.contains("sparse_linear/data/1"), "\(reason)")
    }

    @Test("an empty file and a file that is not a zip are refused")
    func notZipFiles() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        try expectMalformed(try scratch.write([], as: "empty.bin"))
        try expectMalformed(TorchTestFiles.path("config.json"))
        let legacy = try expectMalformed(try scratch.write([0x80, 0x02, 0x8A, 0x0A] + Array(repeating: 0, count: 40), as: "legacy.bin"))
        #expect(legacy.contains("legacy"), "\(legacy)")
    }

    @Test("a missing file is unreadable")
    func missingFile() {
        let error = torchLoadFailure("/nonexistent/pytorch_model.bin")
        guard case .unreadable(let file, _) = error else {
            Issue.record("expected .unreadable, got \(String(describing: error))")
            return
        }
        #expect(file == "/nonexistent/pytorch_model.bin")
    }
}
