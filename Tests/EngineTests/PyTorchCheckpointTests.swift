import Engine
import Foundation
import TestSupport
import Testing

// Expected values for the heads were read with Python's `zipfile` and a restricted
// `pickle.Unpickler` (no torch), printed as hex floats so they compare exactly.

/// The tiny model's checkpoints as `torch.save` wrote them.
@Suite("PyTorchCheckpoint: files torch.save wrote")
struct PyTorchCheckpointTests {
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
}
