import Engine
import Foundation
import TestSupport
import Testing

/// Zip forms other writers produce (ZIP64, comments) and ones this reader refuses.
@Suite("PyTorchCheckpoint: archive variants")
struct CheckpointArchiveTests {
    @Test("a ZIP64 archive (sizes and offsets in ZIP64 extra fields, ZIP64 end records) loads", arguments: [false, true])
    func zip64Archive(zip64: Bool) throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let tensor = TensorRecord(name: "w", storageKey: "0", storageElements: 4, shape: [2, 2], strides: [2, 1])
        let path = try scratch.checkpoint(
            tensors: [tensor], storages: ["0": TorchBytes.floats([1, 2, 3, 4])], zip64: zip64, comment: "an archive comment")
        let checkpoint = try PyTorchCheckpoint(path: path)
        #expect(try checkpoint.tensor("w").floats() == [1, 2, 3, 4])
    }

    @Test("an end record signature inside the archive comment is not mistaken for the end record")
    func signatureInComment() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let tensor = TensorRecord(name: "w", storageKey: "0", storageElements: 1, shape: [1], strides: [1])
        let path = try scratch.checkpoint(
            tensors: [tensor], storages: ["0": TorchBytes.floats([9])],
            comment: "PK\u{5}\u{6} looks like an end record, but this is a comment written by a test")
        #expect(try PyTorchCheckpoint(path: path).tensor("w").floats() == [9])
    }

    @Test("a compressed entry is refused, naming it")
    func compressedEntry() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        var pickle = PickleWriter(protocol: 2)
        pickle.op(.emptyDict, .stop)
        let archive = ZipWriter.archive([
            .init(name: "archive/data.pkl", data: pickle.bytes, method: 8),
        ])
        let reason = try expectMalformed(scratch.write(archive, as: "deflated.pt"))
        #expect(reason.contains("archive/data.pkl"), "\(reason)")
        #expect(reason.contains("compressed"), "\(reason)")
    }

    @Test("a big-endian checkpoint is refused")
    func bigEndian() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let tensor = TensorRecord(name: "w", storageKey: "0", storageElements: 1, shape: [1], strides: [1])
        let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([1])], byteOrder: "big")
        let reason = try expectMalformed(path)
        #expect(reason.contains("big"), "\(reason)")
    }

    @Test("an empty state dict loads with no tensors")
    func emptyStateDict() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let checkpoint = try PyTorchCheckpoint(path: scratch.checkpoint(tensors: [], storages: [:]))
        #expect(checkpoint.tensorNames.isEmpty)
    }

    @Test("CRC-32 gives the standard check value, so other zip readers accept the archives")
    func crcCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([]) == 0)
    }
}
