import Engine
import Foundation
import TestSupport
import Testing

/// Bad model directories fail with an error naming the file and the problem, never a crash.
@Suite struct ModelLoadingTests {
    private func loadError(_ directory: URL) -> WeightLoadError? {
        do {
            _ = try BGEM3Model(directory: directory, threads: 1)
            return nil
        } catch {
            return error
        }
    }

    /// A scratch model whose file `name` is replaced by `bytes`.
    private func model(replacing name: String, with bytes: [UInt8]) throws -> URL {
        let directory = try EngineFixtures.scratchModel(excluding: [name])
        try Data(bytes).write(to: directory.appendingPathComponent(name))
        return directory
    }

    private func safetensorsBytes() throws -> [UInt8] {
        Array(try Data(contentsOf: EngineFixtures.tinyModel.appendingPathComponent("model.safetensors")))
    }

    @Test func truncatedSafetensors() throws {
        let bytes = try safetensorsBytes()
        for cut in [4, 100, bytes.count / 2, bytes.count - 1] {
            let directory = try model(replacing: "model.safetensors", with: Array(bytes.prefix(cut)))
            defer { try? FileManager.default.removeItem(at: directory) }
            guard case .malformed(let file, let reason) = loadError(directory) else {
                Issue.record("cut at \(cut): expected .malformed")
                continue
            }
            #expect(file.hasSuffix("model.safetensors"))
            #expect(reason.contains("truncated") || reason.contains("short"), "\(reason)")
        }
    }

    @Test func headerThatLiesAboutOffsets() throws {
        var bytes = try safetensorsBytes()
        let headerLength = Int(bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        var header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        // Make the LayerNorm bias claim 8 bytes more than its shape needs, keeping the header's length.
        let range = try #require(header.range(of: #""embeddings.LayerNorm.bias":\{"dtype":"F32","shape":\[64\],"data_offsets":\[(\d+),(\d+)\]"#, options: .regularExpression))
        let entry = String(header[range])
        let numbers = entry.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        let (start, end) = (numbers[numbers.count - 2], numbers[numbers.count - 1])
        let lie = entry.replacingOccurrences(of: "[\(start),\(end)]", with: "[\(start),\(end + 8)]")
        guard lie.utf8.count == entry.utf8.count else {
            // Offsets of different widths: lie about the start instead (same digit count).
            Issue.record("could not forge a same-length header")
            return
        }
        header.replaceSubrange(range, with: lie)
        bytes.replaceSubrange(8..<(8 + headerLength), with: Array(header.utf8))
        let directory = try model(replacing: "model.safetensors", with: bytes)
        defer { try? FileManager.default.removeItem(at: directory) }
        guard case .malformed(_, let reason) = loadError(directory) else {
            Issue.record("expected .malformed")
            return
        }
        #expect(reason.contains("embeddings.LayerNorm.bias"))
    }

    @Test func offsetsPastTheEndOfTheFile() throws {
        let header = #"{"embeddings.word_embeddings.weight":{"dtype":"F32","shape":[6002,64],"data_offsets":[0,1536512]}}"#
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) } + Array(header.utf8)
        bytes += [UInt8](repeating: 0, count: 1000)
        let directory = try model(replacing: "model.safetensors", with: bytes)
        defer { try? FileManager.default.removeItem(at: directory) }
        guard case .malformed(_, let reason) = loadError(directory) else {
            Issue.record("expected .malformed")
            return
        }
        #expect(reason.contains("word_embeddings") && reason.contains("truncated"))
    }

    /// Header numbers whose products or sums overflow `Int` (a crafted file) are errors naming the
    /// tensor, not arithmetic traps, which would kill the whole process.
    @Test func headerNumbersThatOverflowAreMalformedNotATrap() throws {
        let cases: [(tensor: String, entry: String)] = [
            ("huge_count", #"{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}"#),
            ("huge_bytes", #"{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,16]}"#),
            ("huge_bytes_f64", #"{"dtype":"F64","shape":[2,1152921504606846976],"data_offsets":[0,16]}"#),
            ("end_near_int_max", #"{"dtype":"U8","shape":[9223372036854775807],"data_offsets":[0,9223372036854775807]}"#),
            ("start_near_int_max", #"{"dtype":"U8","shape":[7],"data_offsets":[9223372036854775800,9223372036854775807]}"#),
            ("past_int64", #"{"dtype":"U8","shape":[16],"data_offsets":[18446744073709551600,18446744073709551616]}"#),
            ("dimension_past_int64", #"{"dtype":"U8","shape":[18446744073709551617],"data_offsets":[0,16]}"#),
            ("fraction", #"{"dtype":"U8","shape":[16.5],"data_offsets":[0,16]}"#),
        ]
        for (tensor, entry) in cases {
            let header = #"{"\#(tensor)":\#(entry)}"#
            let bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) } + Array(header.utf8) + [UInt8](repeating: 0, count: 16)
            let scratch = try ScratchDirectory("overflow")
            defer { scratch.remove() }
            let path = URL(fileURLWithPath: try scratch.write(bytes, as: "model.safetensors"))
            do {
                _ = try SafetensorsFile(path: path.path)
                Issue.record("\(tensor): expected .malformed")
            } catch .malformed(let file, let reason) {
                #expect(file == path.path)
                #expect(reason.contains(tensor), "\(tensor): \(reason)")
            } catch {
                Issue.record("\(tensor): expected .malformed, got \(error)")
            }
        }
    }

    @Test func wrongShapesNameTheTensor() throws {
        let directory = try EngineFixtures.scratchModel(excluding: ["config.json"])
        defer { try? FileManager.default.removeItem(at: directory) }
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: EngineFixtures.tinyModel.appendingPathComponent("config.json"))) as? [String: Any])
        config["intermediate_size"] = 96
        try JSONSerialization.data(withJSONObject: config).write(to: directory.appendingPathComponent("config.json"))
        #expect(loadError(directory) == .wrongShape(tensor: "encoder.layer.0.intermediate.dense.weight", expected: [96, 64], found: [128, 64]))
    }

    @Test func picklesWithForeignGlobalsAreRefused() throws {
        var pickle = PickleWriter(protocol: 2)
        pickle.global("os", "system")
        pickle.text("echo this must never run")
        pickle.op(.tuple1, .reduce, .stop)
        let archive = ZipWriter.archive([.init(name: "sparse_linear/data.pkl", data: pickle.bytes)])
        let directory = try model(replacing: "sparse_linear.pt", with: archive)
        defer { try? FileManager.default.removeItem(at: directory) }
        guard case .forbiddenPickle(let file, let reason) = loadError(directory) else {
            Issue.record("expected .forbiddenPickle")
            return
        }
        #expect(file.hasSuffix("sparse_linear.pt"))
        #expect(reason.contains("os.system"))
    }

    @Test func missingHeadsRefuseToLoad() throws {
        for head in ["sparse_linear.pt", "colbert_linear.pt"] {
            let directory = try EngineFixtures.scratchModel(excluding: [head])
            defer { try? FileManager.default.removeItem(at: directory) }
            guard case .missingFile(let path, let purpose) = loadError(directory) else {
                Issue.record("\(head): expected .missingFile")
                continue
            }
            #expect(path.hasSuffix(head))
            #expect(purpose.contains("head"))
        }
    }

    @Test func missingWeightsAndConfig() throws {
        let noWeights = try EngineFixtures.scratchModel(excluding: ["model.safetensors", "pytorch_model.bin"])
        defer { try? FileManager.default.removeItem(at: noWeights) }
        guard case .missingFile(_, let purpose) = loadError(noWeights) else {
            Issue.record("expected .missingFile for the weights")
            return
        }
        #expect(purpose.contains("model.safetensors or pytorch_model.bin"))
        let noConfig = try EngineFixtures.scratchModel(excluding: ["config.json"])
        defer { try? FileManager.default.removeItem(at: noConfig) }
        guard case .missingFile(let path, _) = loadError(noConfig) else {
            Issue.record("expected .missingFile for config.json")
            return
        }
        #expect(path.hasSuffix("config.json"))
    }

    @Test func headsWithTheWrongShape() throws {
        let scratch = try ScratchDirectory("head")
        defer { scratch.remove() }
        let path = scratch.url("sparse_linear.pt")
        try PyTorchWriter.write([("weight", [2, 64], [Float](repeating: 0, count: 128)), ("bias", [2], [0, 0])], to: path)
        let bytes = Array(try Data(contentsOf: path))
        let directory = try model(replacing: "sparse_linear.pt", with: bytes)
        defer { try? FileManager.default.removeItem(at: directory) }
        guard case .wrongShape(let tensor, let expected, let found) = loadError(directory) else {
            Issue.record("expected .wrongShape")
            return
        }
        #expect(tensor.hasSuffix("sparse_linear.pt: weight"))
        #expect(expected == [1, 64] && found == [2, 64])
    }
}
