import Foundation
import Testing
import TestSupport

/// `bgem3 tokenize` and `bgem3 bench` end to end.
@Suite struct TokenizeCommandTests {
    let tiny = RepositoryFixtures.url("tiny-bge-m3/tokenizer.json").path

    struct Line: Decodable, Equatable {
        let ids: [Int]
        let offsets: [[Int]]
        let tokens: [String]?
    }

    func lines(_ output: String) throws -> [Line] {
        try output.split(separator: "\n").map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
    }

    @Test func jsonlModeMatchesTheGoldenIDs() async throws {
        let input = """
            {"text": "What is BGE M3?", "max_length": 64}
            {"text": "What is BGE M3?", "max_length": 5}
            {"text": ""}
            {"text": "\u{FEFF}bom"}

            """
        let result = try await BGEM3Process.run(["tokenize", "--tokenizer", tiny, "--jsonl"], input: Data(input.utf8))
        #expect(result.status == 0, "\(result.standardError)")
        let output = try lines(result.standardOutput)
        #expect(output.count == 4)
        guard output.count == 4 else { return }
        #expect(output[0].ids == [0, 322, 95, 8, 292, 204, 245, 193, 337, 300, 408, 2])
        #expect(output[1].ids == [0, 322, 95, 8, 2])
        #expect(output[2] == Line(ids: [0, 2], offsets: [[0, 0], [0, 0]], tokens: nil))
        // A byte-order mark at the start of the text is part of the text (JSONSerialization drops it).
        #expect(output[3].offsets == [[0, 0], [0, 3], [3, 4], [0, 0]])
    }

    @Test func plainModeTokenisesEachLineAndShowsTokens() async throws {
        let result = try await BGEM3Process.run(["tokenize", "--tokenizer", tiny], input: Data("Hello world\r\nsecond line\n".utf8))
        #expect(result.status == 0, "\(result.standardError)")
        let output = try lines(result.standardOutput)
        #expect(output.count == 2)
        #expect(output.first?.tokens?.first == "<s>")
        #expect(output.first?.tokens?.last == "</s>")
        #expect(output.first?.tokens?.joined().contains("world") == true)
    }

    @Test func invalidUTF8NamesTheLine() async throws {
        var input = Data("{\"text\": \"fine\"}\n".utf8)
        input.append(contentsOf: [0x7B, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D, 0x0A])
        let result = try await BGEM3Process.run(["tokenize", "--tokenizer", tiny, "--jsonl"], input: input)
        #expect(result.status == 1)
        #expect(!result.terminatedBySignal)
        #expect(result.standardError.contains("line 2"))
        #expect(result.standardError.contains("invalid UTF-8"))
    }

    @Test func badJSONLinesNameTheLineAndTheProblem() async throws {
        let cases: [(String, String)] = [
            ("{\"text\": \"a\"}\n{not json}\n", "line 2: not a valid JSON object"),
            ("{\"txt\": \"a\"}\n", "line 1: missing \"text\""),
            ("{\"text\": 5}\n", "line 1: \"text\" has the wrong type"),
            ("{\"text\": \"a\", \"max_length\": 1}\n", "line 1: \"max_length\" is 1; it must be at least 2"),
        ]
        for (input, message) in cases {
            let result = try await BGEM3Process.run(["tokenize", "--tokenizer", tiny, "--jsonl"], input: Data(input.utf8))
            #expect(result.status == 1, "\(input)")
            #expect(result.standardError.contains(message), "\(result.standardError)")
        }
    }

    @Test func badTokenizerFilesFailWithAClearError() async throws {
        let scratch = try ScratchDirectory("cli")
        defer { scratch.remove() }
        let directory = scratch.url
        let original = try Data(contentsOf: URL(fileURLWithPath: tiny))
        let truncated = directory.appendingPathComponent("truncated.json")
        try original.prefix(original.count / 3).write(to: truncated)
        var text = String(decoding: original, as: UTF8.self)
        text = text.replacingOccurrences(of: "\"type\": \"Unigram\"", with: "\"type\": \"WordPiece\"")
        let wrongModel = directory.appendingPathComponent("wordpiece.json")
        try Data(text.utf8).write(to: wrongModel)

        let cases: [(String, String)] = [
            (truncated.path, "is not valid JSON"),
            (wrongModel.path, "model type \"WordPiece\""),
            (directory.appendingPathComponent("absent.json").path, "cannot read tokenizer file"),
        ]
        for (path, message) in cases {
            let result = try await BGEM3Process.run(["tokenize", "--tokenizer", path], input: Data("x\n".utf8))
            #expect(result.status == 1)
            #expect(!result.terminatedBySignal)
            #expect(result.standardError.contains(message), "\(result.standardError)")
            #expect(result.standardError.contains(path) || message.contains("model type"), "\(result.standardError)")
        }
    }

    @Test func modelDirectoryFindsItsTokenizer() async throws {
        let result = try await BGEM3Process.run(["tokenize", "--model", RepositoryFixtures.tinyModel.path], input: Data("Hi\n".utf8))
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try lines(result.standardOutput).count == 1)
    }

    @Test func benchPrintsTheJSONShapeOfTheSpec() async throws {
        let result = try await BGEM3Process.run(["bench", "--tokenizer", tiny, "--workloads", "tokenizer", "--runs", "1", "--json"])
        #expect(result.status == 0, "\(result.standardError)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        for key in ["version", "precision", "threads", "cpu", "matmul_gflops", "workloads"] {
            #expect(object.keys.contains(key), "missing \(key)")
        }
        let workload = try #require((object["workloads"] as? [[String: Any]])?.first)
        #expect(workload["name"] as? String == "tokenizer")
        #expect((workload["load_seconds"] as? Double ?? 0) > 0)
        #expect((workload["mb_per_s"] as? Double ?? 0) > 0)
        #expect((workload["tokens_per_s"] as? Double ?? 0) > 0)
    }

    @Test func benchRefusesUnknownWorkloads() async throws {
        let result = try await BGEM3Process.run(["bench", "--tokenizer", tiny, "--workloads", "nonsense"])
        #expect(result.status != 0)
        #expect(result.standardError.contains("unknown workload 'nonsense'"))
    }

    @Test func helpExplainsTheCommands() async throws {
        let result = try await BGEM3Process.run(["--help"])
        #expect(result.status == 0)
        #expect(result.standardOutput.contains("tokenize"))
        #expect(result.standardOutput.contains("bench"))
    }
}
