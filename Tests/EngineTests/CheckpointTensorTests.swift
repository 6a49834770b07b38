import Engine
import Foundation
import TestSupport
import Testing

/// How a state dict's tensors map onto their storages: shared storages, strided views, element
/// types, and every storage or view that does not fit.
@Suite("PyTorchCheckpoint: storages and tensor views")
struct CheckpointTensorTests {
    @Test("a storage entry the pickle names but the archive lacks is refused, naming it")
    func missingStorageEntry() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let tensor = TensorRecord(name: "weight", storageKey: "7", storageElements: 4, shape: [4], strides: [1])
        let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([1, 2, 3, 4])])
        let reason = try expectMalformed(path)
        #expect(reason.contains("archive/data/7"), "\(reason)")
        #expect(reason.contains("weight"), "\(reason)")
    }

    @Test("a storage entry smaller than its declared size is refused")
    func storageEntryTooSmall() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let tensor = TensorRecord(name: "weight", storageKey: "0", storageElements: 16, shape: [4, 4], strides: [4, 1])
        let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats(Array(repeating: 1, count: 8))])
        let reason = try expectMalformed(path)
        #expect(reason.contains("holds only 32 bytes"), "\(reason)")
    }

    @Test("a tensor reaching beyond its storage is refused, naming it")
    func tensorLargerThanStorage() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let tensor = TensorRecord(name: "weight", storageKey: "0", storageElements: 4, shape: [4, 4], strides: [4, 1])
        let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([1, 2, 3, 4])])
        let reason = try expectMalformed(path)
        #expect(reason.contains("`weight`"), "\(reason)")
        #expect(reason.contains("reaches element 15"), "\(reason)")
    }

    @Test("an offset view into a shared storage is served without a copy")
    func offsetView() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let storage = TorchBytes.floats([0, 1, 2, 3, 4, 5])
        let tensors = [
            TensorRecord(name: "head", storageKey: "0", storageElements: 6, shape: [2], strides: [1]),
            TensorRecord(name: "tail", storageKey: "0", storageElements: 6, offset: 3, shape: [3], strides: [1]),
        ]
        let checkpoint = try PyTorchCheckpoint(path: scratch.checkpoint(tensors: tensors, storages: ["0": storage]))
        #expect(checkpoint.tensorNames == ["head", "tail"])
        #expect(try checkpoint.tensor("head").floats() == [0, 1])
        let tail = try checkpoint.tensor("tail")
        #expect(try tail.floats() == [3, 4, 5])
        #expect(tail.owner is MappedFile)
    }

    @Test("a transposed tensor is copied into row-major order")
    func transposedTensorIsCopied() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        // Storage [[0, 1, 2], [3, 4, 5]] viewed as its transpose: shape [3, 2], strides [1, 3].
        let tensor = TensorRecord(name: "t", storageKey: "0", storageElements: 6, shape: [3, 2], strides: [1, 3])
        let checkpoint = try PyTorchCheckpoint(path: scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([0, 1, 2, 3, 4, 5])]))
        let view = try checkpoint.tensor("t")
        #expect(view.shape == [3, 2])
        #expect(try view.floats() == [0, 3, 1, 4, 2, 5])
        #expect(!(view.owner is MappedFile))
    }

    @Test("a broadcast tensor (stride 0) is expanded")
    func broadcastTensor() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let tensor = TensorRecord(name: "row", storageKey: "0", storageElements: 2, shape: [3, 2], strides: [0, 1])
        let checkpoint = try PyTorchCheckpoint(path: scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([7, 8])]))
        #expect(try checkpoint.tensor("row").floats() == [7, 8, 7, 8, 7, 8])
    }

    @Test("a huge stride on a size-1 dimension of a copied tensor does not overflow")
    func hugeStrideOnUnitDimension() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        // Offset 1 + Int64.max overflows if the odometer's final carry is not wrapping.
        let tensor = TensorRecord(name: "odd", storageKey: "0", storageElements: 2, offset: 1, shape: [1, 2], strides: [Int(Int64.max), 0])
        let checkpoint = try PyTorchCheckpoint(path: try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([2, 3])]))
        #expect(try checkpoint.tensor("odd").floats() == [3, 3])
    }

    @Test("storage types map to element types")
    func storageTypes() throws {
        let cases: [(String, TensorDType, [UInt8])] = [
            ("HalfStorage", .float16, [0x00, 0x3C, 0x00, 0xC0]), // 1.0, -2.0
            ("BFloat16Storage", .bfloat16, [0x80, 0x3F, 0x00, 0xC0]), // 1.0, -2.0
            ("DoubleStorage", .float64, Array(repeating: 0, count: 16)),
            ("LongStorage", .int64, Array(repeating: 0, count: 16)),
            ("IntStorage", .int32, Array(repeating: 0, count: 8)),
            ("ShortStorage", .int16, Array(repeating: 0, count: 4)),
            ("CharStorage", .int8, [1, 2]),
            ("ByteStorage", .uint8, [1, 2]),
            ("BoolStorage", .bool, [1, 0]),
        ]
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        for (index, (storageType, dtype, bytes)) in cases.enumerated() {
            var tensor = TensorRecord(name: "x", storageKey: "0", storageElements: 2, shape: [2], strides: [1])
            tensor.storageType = storageType
            let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": bytes], file: "types\(index).pt")
            let view = try PyTorchCheckpoint(path: path).tensor("x")
            #expect(view.dtype == dtype, "\(storageType)")
            #expect(Array(view.bytes) == bytes, "\(storageType)")
            if dtype == .float16 || dtype == .bfloat16 {
                #expect(try view.floats() == [1, -2], "\(storageType)")
            }
        }
    }

    @Test("protocol 4 pickles (FRAME, MEMOIZE, STACK_GLOBAL, short strings) load")
    func protocol4Pickle() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let tensors = [
            TensorRecord(name: "a", storageKey: "0", storageElements: 3, shape: [3], strides: [1]),
            TensorRecord(name: "b", storageKey: "1", storageElements: 70_000, offset: 69_998, shape: [1, 2], strides: [2, 1], parameter: true),
        ]
        var big = Array(repeating: Float(0), count: 70_000)
        big[69_998] = 5
        big[69_999] = 6
        let path = try scratch.checkpoint(
            tensors: tensors, storages: ["0": TorchBytes.floats([1, 2, 3]), "1": TorchBytes.floats(big)], protocol: 4)
        let checkpoint = try PyTorchCheckpoint(path: path)
        #expect(checkpoint.tensorNames == ["a", "b"])
        #expect(try checkpoint.tensor("a").floats() == [1, 2, 3])
        let b = try checkpoint.tensor("b")
        #expect(b.shape == [1, 2])
        #expect(try b.floats() == [5, 6])
    }
}
