import Engine
import Foundation
import Testing

// Expected values for the heads were read with Python's `zipfile` and a restricted
// `pickle.Unpickler` (no torch), printed as hex floats so they compare exactly.

@Suite("PyTorchCheckpoint")
struct PyTorchCheckpointTests {
    // MARK: - Real fixtures

    @Test("every tensor of pytorch_model.bin equals model.safetensors")
    func modelMatchesSafetensors() throws {
        let checkpoint = try PyTorchCheckpoint(path: TorchTestFiles.path("pytorch_model.bin"))
        let reference = try SafetensorsReference(path: TorchTestFiles.path("model.safetensors"))

        #expect(checkpoint.archivePrefix == "pytorch_model/")
        #expect(checkpoint.tensorNames.count == 39)
        #expect(Set(checkpoint.tensorNames) == Set(reference.tensors.keys))
        for name in checkpoint.tensorNames {
            let tensor = try checkpoint.tensor(name)
            let expected = try #require(reference.tensors[name])
            #expect(tensor.name == name)
            #expect(tensor.dtype == .float32, "\(name)")
            #expect(tensor.shape == expected.shape, "\(name)")
            let values = try tensor.floats()
            // Bit patterns, so that a NaN or a signed zero would also have to match.
            #expect(values.map(\.bitPattern) == expected.values.map(\.bitPattern), "\(name)")
        }
    }

    @Test("tensor names come in the state dict's order")
    func namesInPickleOrder() throws {
        let names = try PyTorchCheckpoint(path: TorchTestFiles.path("pytorch_model.bin")).tensorNames
        #expect(Array(names.prefix(3)) == [
            "embeddings.word_embeddings.weight",
            "embeddings.position_embeddings.weight",
            "embeddings.token_type_embeddings.weight",
        ])
        #expect(Array(names.suffix(2)) == ["pooler.dense.weight", "pooler.dense.bias"])
    }

    @Test("contiguous tensors are slices of the memory map, not copies")
    func contiguousTensorsAreZeroCopy() throws {
        let checkpoint = try PyTorchCheckpoint(path: TorchTestFiles.path("pytorch_model.bin"))
        let tensor = try checkpoint.tensor("embeddings.word_embeddings.weight")
        #expect(tensor.shape == [6002, 64])
        #expect(tensor.bytes.count == 6002 * 64 * 4)
        let map = try #require(tensor.owner as? MappedFile)
        let mapStart = try #require(map.bytes.baseAddress)
        let tensorStart = try #require(tensor.bytes.baseAddress)
        #expect(tensorStart >= mapStart)
        #expect(tensorStart + tensor.bytes.count <= mapStart + map.bytes.count)
    }

    @Test("sparse_linear.pt holds nn.Linear(64, 1)")
    func sparseHead() throws {
        let head = try PyTorchCheckpoint(path: TorchTestFiles.path("sparse_linear.pt"))
        #expect(head.archivePrefix == "sparse_linear/")
        #expect(head.tensorNames == ["weight", "bias"])
        let weight = try head.tensor("weight")
        #expect(weight.shape == [1, 64])
        let weights = try weight.floats()
        #expect(weights[0] == 0x1.195894p-2)
        #expect(weights[1] == 0x1.9fc91cp-1)
        #expect(weights[63] == 0x1.18cb6cp-2)
        let bias = try head.tensor("bias")
        #expect(bias.shape == [1])
        #expect(try bias.floats() == [0x1.99999ap-5])
    }

    @Test("colbert_linear.pt holds nn.Linear(64, 64)")
    func colbertHead() throws {
        let head = try PyTorchCheckpoint(path: TorchTestFiles.path("colbert_linear.pt"))
        #expect(head.tensorNames == ["weight", "bias"])
        let weight = try head.tensor("weight")
        #expect(weight.shape == [64, 64])
        let weights = try weight.floats()
        #expect(weights[0] == 0x1.3ddcccp-5)
        #expect(weights[1] == -0x1.06edbp-11)
        #expect(weights[4095] == -0x1.ef77bap-5)
        let bias = try head.tensor("bias")
        #expect(bias.shape == [64])
        let biases = try bias.floats()
        #expect(biases[0] == -0x1.d48e4p-7)
        #expect(biases[1] == -0x1.681p-10)
        #expect(biases[63] == 0x1.2966b8p-4)
    }

    @Test("asking for an absent tensor names it")
    func missingTensor() throws {
        let head = try PyTorchCheckpoint(path: TorchTestFiles.path("sparse_linear.pt"))
        let path = TorchTestFiles.path("sparse_linear.pt")
        #expect(throws: WeightLoadError.missingTensor(file: path, tensor: "weights")) { try head.tensor("weights") }
    }

    // MARK: - Damaged files

    @Test("a truncated pytorch_model.bin is refused", arguments: [0.10, 0.50, 0.99])
    func truncatedModel(fraction: Double) throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let original = try TorchTestFiles.bytes("pytorch_model.bin")
        let path = try scratch.write(Array(original.prefix(Int(Double(original.count) * fraction))), as: "truncated.bin")
        try expectMalformed(path)
    }

    @Test("the first 100 bytes of pytorch_model.bin are refused")
    func first100Bytes() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let path = try scratch.write(Array(try TorchTestFiles.bytes("pytorch_model.bin").prefix(100)), as: "head.bin")
        try expectMalformed(path)
    }

    @Test("every prefix of sparse_linear.pt is refused without a crash")
    func everyPrefixOfSmallCheckpoint() throws {
        let scratch = try TorchScratch()
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
        let scratch = try TorchScratch()
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
        let scratch = try TorchScratch()
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
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        var bytes = try TorchTestFiles.bytes("sparse_linear.pt")
        let layout = try TorchZipLayout(bytes)
        TorchBytes.put32(&bytes, at: layout.endRecord + 16, UInt32(bytes.count + 1000))
        TorchBytes.put64(&bytes, at: layout.zip64Record + 48, UInt64(bytes.count + 1000))
        try expectMalformed(try scratch.write(bytes, as: "lying.pt"))
    }

    @Test("end of central directory records that disagree are refused")
    func endRecordsDisagree() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        var bytes = try TorchTestFiles.bytes("sparse_linear.pt")
        let layout = try TorchZipLayout(bytes)
        TorchBytes.put32(&bytes, at: layout.endRecord + 16, 0)
        let reason = try expectMalformed(try scratch.write(bytes, as: "lying.pt"))
        #expect(reason.contains("disagree"), "\(reason)")
    }

    @Test("an entry size reaching past the end of the file is refused, naming the entry")
    func entrySizeLies() throws {
        let scratch = try TorchScratch()
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
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        var bytes = try TorchTestFiles.bytes("sparse_linear.pt")
        let header = try TorchZipLayout(bytes).centralHeader(of: "sparse_linear/data/1")
        TorchBytes.put32(&bytes, at: header + 42, 5)
        let reason = try expectMalformed(try scratch.write(bytes, as: "lying.pt"))
        #expect(reason.contains("sparse_linear/data/1"), "\(reason)")
    }

    @Test("an empty file and a file that is not a zip are refused")
    func notZipFiles() throws {
        let scratch = try TorchScratch()
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

    // MARK: - Hostile pickles

    @Test("a pickle naming a foreign global is refused, naming it", arguments: [
        ("os", "system"), ("builtins", "eval"), ("posix", "system"), ("subprocess", "Popen"), ("torch", "load"),
    ])
    func foreignGlobal(module: String, name: String) throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        var pickle = TorchPickle(protocol: 2)
        pickle.global(module, name)
        pickle.text("echo pwned > /tmp/pwned")
        pickle.op(0x85) // TUPLE1
        pickle.op(0x52) // REDUCE
        pickle.op(0x2E) // STOP
        let reason = try expectForbidden(scratch.checkpoint(pickle: pickle.bytes))
        #expect(reason.contains("\(module).\(name)"), "\(reason)")
    }

    @Test("a foreign global reached through STACK_GLOBAL is refused")
    func foreignStackGlobal() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        var pickle = TorchPickle(protocol: 4)
        pickle.global("builtins", "exec")
        pickle.text("import os")
        pickle.op(0x85, 0x52, 0x2E)
        let reason = try expectForbidden(scratch.checkpoint(pickle: pickle.framed()))
        #expect(reason.contains("builtins.exec"), "\(reason)")
    }

    @Test("a foreign global in place of a storage type inside a valid state dict is refused", arguments: [UInt8(2), 4])
    func foreignGlobalInsideStateDict(protocol version: UInt8) throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        var tensor = FakeTensor(name: "weight", storageKey: "0", storageElements: 4, shape: [4], strides: [1])
        tensor.storageType = "load"
        let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([1, 2, 3, 4])], protocol: version)
        let reason = try expectForbidden(path)
        #expect(reason.contains("torch.load"), "\(reason)")
    }

    @Test("unknown opcodes are refused, naming the byte", arguments: [UInt8(0xFF), 0x69, 0x81, 0x30])
    func unknownOpcode(opcode: UInt8) throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        var pickle = TorchPickle(protocol: 2)
        pickle.op(0x4E, opcode, 0x2E) // NONE, the opcode, STOP
        let reason = try expectForbidden(scratch.checkpoint(pickle: pickle.bytes))
        #expect(reason.contains("0x" + String(opcode, radix: 16)), "\(reason)")
    }

    static let malformedPickles: [(String, [UInt8])] = [
        ("stack underflow", [0x80, 0x02, 0x52, 0x2E]),
        ("bad memo index", [0x80, 0x02, 0x68, 0x09, 0x2E]),
        ("truncated string", [0x80, 0x02, 0x58, 0xE8, 0x03, 0x00, 0x00, 0x61, 0x62]),
        ("no STOP", [0x80, 0x02, 0x7D]),
        ("not a dict", [0x80, 0x02, 0x4E, 0x2E]),
        ("SETITEMS without MARK", [0x80, 0x02, 0x7D, 0x75, 0x2E]),
        ("REDUCE on a string", [0x80, 0x02, 0x58, 0x01, 0x00, 0x00, 0x00, 0x61, 0x29, 0x52, 0x2E]),
        ("invalid UTF-8", [0x80, 0x02, 0x58, 0x01, 0x00, 0x00, 0x00, 0xFF, 0x2E]),
        ("protocol 6", [0x80, 0x06, 0x7D, 0x2E]),
        ("huge LONG1", [0x80, 0x02, 0x8A, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x2E]),
        ("frame longer than the pickle", [0x80, 0x04, 0x95, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0x7D, 0x2E]),
        ("MARK left open", [0x80, 0x02, 0x7D, 0x28, 0x2E]),
    ]

    @Test("malformed pickles are refused as malformed", arguments: malformedPickles)
    func malformedPickle(label: String, pickle: [UInt8]) throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let reason = try expectMalformed(scratch.checkpoint(pickle: pickle))
        #expect(reason.contains("archive/data.pkl"), "\(label): \(reason)")
    }

    // MARK: - Storages and tensors

    @Test("a storage entry the pickle names but the archive lacks is refused, naming it")
    func missingStorageEntry() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let tensor = FakeTensor(name: "weight", storageKey: "7", storageElements: 4, shape: [4], strides: [1])
        let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([1, 2, 3, 4])])
        let reason = try expectMalformed(path)
        #expect(reason.contains("archive/data/7"), "\(reason)")
        #expect(reason.contains("weight"), "\(reason)")
    }

    @Test("a storage entry smaller than its declared size is refused")
    func storageEntryTooSmall() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let tensor = FakeTensor(name: "weight", storageKey: "0", storageElements: 16, shape: [4, 4], strides: [4, 1])
        let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats(Array(repeating: 1, count: 8))])
        let reason = try expectMalformed(path)
        #expect(reason.contains("holds only 32 bytes"), "\(reason)")
    }

    @Test("a tensor reaching beyond its storage is refused, naming it")
    func tensorLargerThanStorage() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let tensor = FakeTensor(name: "weight", storageKey: "0", storageElements: 4, shape: [4, 4], strides: [4, 1])
        let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([1, 2, 3, 4])])
        let reason = try expectMalformed(path)
        #expect(reason.contains("`weight`"), "\(reason)")
        #expect(reason.contains("reaches element 15"), "\(reason)")
    }

    @Test("an offset view into a shared storage is served without a copy")
    func offsetView() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let storage = TorchBytes.floats([0, 1, 2, 3, 4, 5])
        let tensors = [
            FakeTensor(name: "head", storageKey: "0", storageElements: 6, shape: [2], strides: [1]),
            FakeTensor(name: "tail", storageKey: "0", storageElements: 6, offset: 3, shape: [3], strides: [1]),
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
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        // Storage [[0, 1, 2], [3, 4, 5]] viewed as its transpose: shape [3, 2], strides [1, 3].
        let tensor = FakeTensor(name: "t", storageKey: "0", storageElements: 6, shape: [3, 2], strides: [1, 3])
        let checkpoint = try PyTorchCheckpoint(path: scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([0, 1, 2, 3, 4, 5])]))
        let view = try checkpoint.tensor("t")
        #expect(view.shape == [3, 2])
        #expect(try view.floats() == [0, 3, 1, 4, 2, 5])
        #expect(!(view.owner is MappedFile))
    }

    @Test("a broadcast tensor (stride 0) is expanded")
    func broadcastTensor() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let tensor = FakeTensor(name: "row", storageKey: "0", storageElements: 2, shape: [3, 2], strides: [0, 1])
        let checkpoint = try PyTorchCheckpoint(path: scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([7, 8])]))
        #expect(try checkpoint.tensor("row").floats() == [7, 8, 7, 8, 7, 8])
    }

    @Test("a huge stride on a size-1 dimension of a copied tensor does not overflow")
    func hugeStrideOnUnitDimension() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        // Offset 1 + Int64.max overflows if the odometer's final carry is not wrapping.
        let tensor = FakeTensor(name: "odd", storageKey: "0", storageElements: 2, offset: 1, shape: [1, 2], strides: [Int(Int64.max), 0])
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
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        for (index, (storageType, dtype, bytes)) in cases.enumerated() {
            var tensor = FakeTensor(name: "x", storageKey: "0", storageElements: 2, shape: [2], strides: [1])
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
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let tensors = [
            FakeTensor(name: "a", storageKey: "0", storageElements: 3, shape: [3], strides: [1]),
            FakeTensor(name: "b", storageKey: "1", storageElements: 70_000, offset: 69_998, shape: [1, 2], strides: [2, 1], parameter: true),
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

    // MARK: - Archive variants

    @Test("a ZIP64 archive (sizes and offsets in ZIP64 extra fields, ZIP64 end records) loads", arguments: [false, true])
    func zip64Archive(zip64: Bool) throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let tensor = FakeTensor(name: "w", storageKey: "0", storageElements: 4, shape: [2, 2], strides: [2, 1])
        let path = try scratch.checkpoint(
            tensors: [tensor], storages: ["0": TorchBytes.floats([1, 2, 3, 4])], zip64: zip64, comment: "an archive comment")
        let checkpoint = try PyTorchCheckpoint(path: path)
        #expect(try checkpoint.tensor("w").floats() == [1, 2, 3, 4])
    }

    @Test("an end record signature inside the archive comment is not mistaken for the end record")
    func signatureInComment() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let tensor = FakeTensor(name: "w", storageKey: "0", storageElements: 1, shape: [1], strides: [1])
        let path = try scratch.checkpoint(
            tensors: [tensor], storages: ["0": TorchBytes.floats([9])],
            comment: "PK\u{5}\u{6} looks like an end record, but this is a comment written by a test")
        #expect(try PyTorchCheckpoint(path: path).tensor("w").floats() == [9])
    }

    @Test("a compressed entry is refused, naming it")
    func compressedEntry() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        var pickle = TorchPickle(protocol: 2)
        pickle.op(0x7D, 0x2E)
        let archive = TorchZip.archive([
            .init(name: "archive/data.pkl", data: pickle.bytes, method: 8),
        ])
        let reason = try expectMalformed(scratch.write(archive, as: "deflated.pt"))
        #expect(reason.contains("archive/data.pkl"), "\(reason)")
        #expect(reason.contains("compressed"), "\(reason)")
    }

    @Test("a big-endian checkpoint is refused")
    func bigEndian() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let tensor = FakeTensor(name: "w", storageKey: "0", storageElements: 1, shape: [1], strides: [1])
        let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([1])], byteOrder: "big")
        let reason = try expectMalformed(path)
        #expect(reason.contains("big"), "\(reason)")
    }

    @Test("an empty state dict loads with no tensors")
    func emptyStateDict() throws {
        let scratch = try TorchScratch()
        defer { scratch.remove() }
        let checkpoint = try PyTorchCheckpoint(path: scratch.checkpoint(tensors: [], storages: [:]))
        #expect(checkpoint.tensorNames.isEmpty)
    }
}

// MARK: - Error expectations

private func torchLoadFailure(_ path: String) -> WeightLoadError? {
    do throws(WeightLoadError) {
        _ = try PyTorchCheckpoint(path: path)
        return nil
    } catch {
        return error
    }
}

/// Expects `.malformed` naming `path`; returns the reason for further checks.
@discardableResult
private func expectMalformed(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    let error = torchLoadFailure(path)
    guard case .malformed(let file, let reason) = error else {
        Issue.record("expected .malformed, got \(String(describing: error))", sourceLocation: sourceLocation)
        return ""
    }
    #expect(file == path, sourceLocation: sourceLocation)
    return reason
}

/// Expects `.forbiddenPickle` naming `path`; returns the reason for further checks.
private func expectForbidden(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    let error = torchLoadFailure(path)
    guard case .forbiddenPickle(let file, let reason) = error else {
        Issue.record("expected .forbiddenPickle, got \(String(describing: error))", sourceLocation: sourceLocation)
        return ""
    }
    #expect(file == path, sourceLocation: sourceLocation)
    return reason
}

// MARK: - Fixtures and scratch files

private enum TorchTestFiles {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/tiny-bge-m3")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: directory.appendingPathComponent(name))) }
}

/// A temporary directory; tests call `remove()` in a `defer` so it outlives every use of its files.
private final class TorchScratch {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("PyTorchCheckpointTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    func write(_ bytes: [UInt8], as name: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    /// A checkpoint laid out as torch.save lays it out, around a hand-written pickle.
    func checkpoint(pickle: [UInt8], storages: [String: [UInt8]] = [:], byteOrder: String = "little",
                    zip64: Bool = false, comment: String = "", file: String = "checkpoint.pt") throws -> String {
        var entries: [TorchZip.Entry] = [
            .init(name: "archive/data.pkl", data: pickle),
            .init(name: "archive/.format_version", data: Array("1".utf8)),
            .init(name: "archive/byteorder", data: Array(byteOrder.utf8)),
        ]
        for key in storages.keys.sorted() {
            entries.append(.init(name: "archive/data/\(key)", data: storages[key] ?? []))
        }
        entries.append(.init(name: "archive/version", data: Array("3\n".utf8)))
        return try write(TorchZip.archive(entries, zip64: zip64, comment: Array(comment.utf8)), as: file)
    }

    func checkpoint(tensors: [FakeTensor], storages: [String: [UInt8]], protocol version: UInt8 = 2, byteOrder: String = "little",
                    zip64: Bool = false, comment: String = "", file: String = "checkpoint.pt") throws -> String {
        try checkpoint(pickle: TorchPickle.stateDict(tensors, protocol: version), storages: storages,
                       byteOrder: byteOrder, zip64: zip64, comment: comment, file: file)
    }
}

// MARK: - Independent safetensors reader

/// Just enough of safetensors to check the torch reader against: an 8-byte little-endian header
/// length, a JSON header of dtype, shape and data offsets, then the data.
private struct SafetensorsReference {
    struct Tensor {
        let shape: [Int]
        let values: [Float]
    }

    let tensors: [String: Tensor]

    init(path: String) throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerLength = Int(TorchBytes.get64(bytes, at: 0))
        let header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any])
        let dataStart = 8 + headerLength
        var tensors: [String: Tensor] = [:]
        for (name, value) in header where name != "__metadata__" {
            let entry = try #require(value as? [String: Any])
            #expect(entry["dtype"] as? String == "F32", "\(name)")
            let shape = try #require(entry["shape"] as? [Int])
            let offsets = try #require(entry["data_offsets"] as? [Int])
            let values = stride(from: dataStart + offsets[0], to: dataStart + offsets[1], by: 4).map {
                Float(bitPattern: TorchBytes.get32(bytes, at: $0))
            }
            tensors[name] = Tensor(shape: shape, values: values)
        }
        self.tensors = tensors
    }
}

// MARK: - Byte helpers

enum TorchBytes {
    static func get64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { value, index in
            offset + index < bytes.count ? value | UInt64(bytes[offset + index]) << (8 * UInt64(index)) : value
        }
    }

    static func get32(_ bytes: [UInt8], at offset: Int) -> UInt32 { UInt32(get64(bytes, at: offset) & 0xFFFF_FFFF) }

    static func put32(_ bytes: inout [UInt8], at offset: Int, _ value: UInt32) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
    }

    static func put64(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
        for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }

    static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    static func floats(_ values: [Float]) -> [UInt8] { values.flatMap { le($0.bitPattern) } }
}

private struct TorchFixtureLayoutError: Error {}

/// Where the records of a real torch.save zip are, for damaging them on purpose.
private struct TorchZipLayout {
    let bytes: [UInt8]
    let endRecord: Int
    let zip64Record: Int

    init(_ bytes: [UInt8]) throws {
        self.bytes = bytes
        // torch.save writes no archive comment, so the classic record is the last 22 bytes,
        // right after the 20-byte ZIP64 locator.
        endRecord = bytes.count - 22
        try #require(TorchBytes.get32(bytes, at: endRecord) == 0x0605_4B50)
        try #require(TorchBytes.get32(bytes, at: endRecord - 20) == 0x0706_4B50)
        zip64Record = Int(TorchBytes.get64(bytes, at: endRecord - 20 + 8))
        try #require(TorchBytes.get32(bytes, at: zip64Record) == 0x0606_4B50)
    }

    /// The central directory header of the entry with this name.
    func centralHeader(of name: String) throws -> Int {
        var at = Int(TorchBytes.get32(bytes, at: endRecord + 16))
        while TorchBytes.get32(bytes, at: at) == 0x0201_4B50 {
            let nameLength = Int(TorchBytes.get64(bytes, at: at + 28) & 0xFFFF)
            let extraLength = Int(TorchBytes.get64(bytes, at: at + 30) & 0xFFFF)
            let commentLength = Int(TorchBytes.get64(bytes, at: at + 32) & 0xFFFF)
            if String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self) == name { return at }
            at += 46 + nameLength + extraLength + commentLength
        }
        Issue.record("no central header for \(name)")
        throw TorchFixtureLayoutError()
    }
}

// MARK: - Writing zips

/// A ZIP writer for STORED entries, optionally in ZIP64 form, to build test archives.
enum TorchZip {
    struct Entry {
        var name: String
        var data: [UInt8]
        var method: UInt16 = 0
    }

    static func archive(_ entries: [Entry], zip64: Bool = false, comment: [UInt8] = []) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        let version: UInt16 = zip64 ? 45 : 20
        for entry in entries {
            let name = Array(entry.name.utf8)
            let crc = crc32(entry.data)
            let offset = out.count
            let size = UInt32(entry.data.count)
            // Local header: in ZIP64 form both sizes move to the extra field.
            let localExtra = zip64 ? TorchBytes.le(UInt16(1)) + TorchBytes.le(UInt16(16)) + TorchBytes.le(UInt64(size)) + TorchBytes.le(UInt64(size)) : []
            out += TorchBytes.le(UInt32(0x0403_4B50)) + TorchBytes.le(version) + TorchBytes.le(UInt16(0x0800)) + TorchBytes.le(entry.method)
            out += TorchBytes.le(UInt32(0)) + TorchBytes.le(crc)
            out += TorchBytes.le(zip64 ? UInt32.max : size) + TorchBytes.le(zip64 ? UInt32.max : size)
            out += TorchBytes.le(UInt16(name.count)) + TorchBytes.le(UInt16(localExtra.count)) + name + localExtra
            out += entry.data

            let centralExtra = zip64
                ? TorchBytes.le(UInt16(1)) + TorchBytes.le(UInt16(24)) + TorchBytes.le(UInt64(size)) + TorchBytes.le(UInt64(size)) + TorchBytes.le(UInt64(offset))
                : []
            central += TorchBytes.le(UInt32(0x0201_4B50)) + TorchBytes.le(UInt16(0x031E)) + TorchBytes.le(version)
            central += TorchBytes.le(UInt16(0x0800)) + TorchBytes.le(entry.method) + TorchBytes.le(UInt32(0)) + TorchBytes.le(crc)
            central += TorchBytes.le(zip64 ? UInt32.max : size) + TorchBytes.le(zip64 ? UInt32.max : size)
            central += TorchBytes.le(UInt16(name.count)) + TorchBytes.le(UInt16(centralExtra.count)) + TorchBytes.le(UInt16(0))
            central += TorchBytes.le(UInt16(0)) + TorchBytes.le(UInt16(0)) + TorchBytes.le(UInt32(0))
            central += TorchBytes.le(zip64 ? UInt32.max : UInt32(offset)) + name + centralExtra
        }
        let centralOffset = out.count
        out += central
        let count = entries.count
        if zip64 {
            let recordOffset = out.count
            out += TorchBytes.le(UInt32(0x0606_4B50)) + TorchBytes.le(UInt64(44)) + TorchBytes.le(UInt16(0x031E)) + TorchBytes.le(version)
            out += TorchBytes.le(UInt32(0)) + TorchBytes.le(UInt32(0)) + TorchBytes.le(UInt64(count)) + TorchBytes.le(UInt64(count))
            out += TorchBytes.le(UInt64(central.count)) + TorchBytes.le(UInt64(centralOffset))
            out += TorchBytes.le(UInt32(0x0706_4B50)) + TorchBytes.le(UInt32(0)) + TorchBytes.le(UInt64(recordOffset)) + TorchBytes.le(UInt32(1))
        }
        out += TorchBytes.le(UInt32(0x0605_4B50)) + TorchBytes.le(UInt16(0)) + TorchBytes.le(UInt16(0))
        out += TorchBytes.le(zip64 ? UInt16.max : UInt16(count)) + TorchBytes.le(zip64 ? UInt16.max : UInt16(count))
        out += TorchBytes.le(zip64 ? UInt32.max : UInt32(central.count)) + TorchBytes.le(zip64 ? UInt32.max : UInt32(centralOffset))
        out += TorchBytes.le(UInt16(comment.count)) + comment
        return out
    }

    /// CRC-32 (IEEE), so that the archives are valid for other readers too.
    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}

// MARK: - Writing pickles

/// A tensor entry for a hand-built state dict.
private struct FakeTensor {
    var name: String
    var storageKey: String
    var storageType = "FloatStorage"
    var storageElements: Int
    var offset = 0
    var shape: [Int]
    var strides: [Int]
    /// Wraps the tensor in `torch._utils._rebuild_parameter`, as pickling an `nn.Parameter` does.
    var parameter = false
}

/// Emits pickle opcodes the way Python's pickler does for the protocol asked for.
struct TorchPickle {
    let version: UInt8
    private(set) var bytes: [UInt8]
    private var memoCount = 0

    init(protocol version: UInt8) {
        self.version = version
        bytes = [0x80, version]
    }

    mutating func op(_ opcodes: UInt8...) { bytes += opcodes }

    mutating func text(_ value: String) {
        let utf8 = Array(value.utf8)
        if version >= 4, utf8.count < 256 {
            op(0x8C, UInt8(utf8.count)) // SHORT_BINUNICODE
        } else {
            op(0x58) // BINUNICODE
            bytes += TorchBytes.le(UInt32(utf8.count))
        }
        bytes += utf8
    }

    mutating func int(_ value: Int) {
        switch value {
        case 0..<256: op(0x4B, UInt8(value)) // BININT1
        case 256..<65536: op(0x4D); bytes += TorchBytes.le(UInt16(value)) // BININT2
        case Int(Int32.min)...Int(Int32.max): op(0x4A); bytes += TorchBytes.le(Int32(value)) // BININT
        default: op(0x8A, 8); bytes += TorchBytes.le(Int64(value)) // LONG1
        }
    }

    mutating func global(_ module: String, _ name: String) {
        if version >= 4 {
            text(module)
            memoize()
            text(name)
            memoize()
            op(0x93) // STACK_GLOBAL
        } else {
            op(0x63) // GLOBAL
            bytes += Array("\(module)\n\(name)\n".utf8)
        }
    }

    @discardableResult
    mutating func memoize() -> Int {
        if version >= 4 {
            op(0x94) // MEMOIZE
        } else if memoCount < 256 {
            op(0x71, UInt8(memoCount)) // BINPUT
        } else {
            op(0x72) // LONG_BINPUT
            bytes += TorchBytes.le(UInt32(memoCount))
        }
        memoCount += 1
        return memoCount - 1
    }

    mutating func get(_ index: Int) {
        if index < 256 {
            op(0x68, UInt8(index)) // BINGET
        } else {
            op(0x6A) // LONG_BINGET
            bytes += TorchBytes.le(UInt32(index))
        }
    }

    mutating func tuple(_ values: [Int]) {
        switch values.count {
        case 0: op(0x29)
        case 1...3:
            values.forEach { int($0) }
            op(0x84 + UInt8(values.count)) // TUPLE1...TUPLE3
        default:
            op(0x28)
            values.forEach { int($0) }
            op(0x74)
        }
    }

    /// Protocol 4 and later wrap the body in a FRAME.
    func framed() -> [UInt8] {
        guard version >= 4 else { return bytes }
        let body = Array(bytes.dropFirst(2))
        return [0x80, version, 0x95] + TorchBytes.le(UInt64(body.count)) + body
    }

    /// The pickle torch.save writes for a state dict, including the `_metadata` BUILD.
    fileprivate static func stateDict(_ tensors: [FakeTensor], protocol version: UInt8) -> [UInt8] {
        var pickle = TorchPickle(protocol: version)
        pickle.global("collections", "OrderedDict")
        let orderedDict = pickle.memoize()
        pickle.op(0x29, 0x52) // EMPTY_TUPLE, REDUCE
        pickle.memoize()
        if !tensors.isEmpty { pickle.op(0x28) } // MARK
        for tensor in tensors {
            pickle.text(tensor.name)
            pickle.memoize()
            if tensor.parameter { pickle.global("torch._utils", "_rebuild_parameter") }
            pickle.global("torch._utils", "_rebuild_tensor_v2")
            pickle.op(0x28, 0x28) // MARK for the arguments, MARK for the persistent id
            pickle.text("storage")
            pickle.global("torch", tensor.storageType)
            pickle.text(tensor.storageKey)
            pickle.text("cpu")
            pickle.int(tensor.storageElements)
            pickle.op(0x74, 0x51) // TUPLE, BINPERSID
            pickle.int(tensor.offset)
            pickle.tuple(tensor.shape)
            pickle.tuple(tensor.strides)
            pickle.op(0x89) // NEWFALSE
            pickle.get(orderedDict)
            pickle.op(0x29, 0x52) // EMPTY_TUPLE, REDUCE
            pickle.op(0x74, 0x52) // TUPLE, REDUCE
            if tensor.parameter {
                pickle.op(0x89) // requires_grad
                pickle.get(orderedDict)
                pickle.op(0x29, 0x52, 0x87, 0x52) // EMPTY_TUPLE, REDUCE, TUPLE3, REDUCE
            }
        }
        if !tensors.isEmpty { pickle.op(0x75) } // SETITEMS
        pickle.op(0x7D) // EMPTY_DICT
        pickle.text("_metadata")
        pickle.get(orderedDict)
        pickle.op(0x29, 0x52, 0x73, 0x62, 0x2E) // EMPTY_TUPLE, REDUCE, SETITEM, BUILD, STOP
        return pickle.framed()
    }
}
