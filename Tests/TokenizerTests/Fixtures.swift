import Foundation
import Testing
import Tokenizer

/// Where test data lives: the project's own small fixtures, and the shared fixtures (the 17 MB
/// real XLM-R tokenizer) found through `BGE_M3_FIXTURES`, which `scripts/test.sh` sets.
enum Fixtures {
    static let projectDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func project(_ path: String) -> URL {
        projectDirectory.appendingPathComponent(path)
    }

    /// The real XLM-R `tokenizer.json`. A test that needs it fails, loudly, when it is missing.
    static func realTokenizerURL() throws -> URL {
        guard let root = ProcessInfo.processInfo.environment["BGE_M3_FIXTURES"], !root.isEmpty else {
            Issue.record("BGE_M3_FIXTURES is not set: it must name the shared fixtures directory (scripts/test.sh sets it to ../shared/fixtures). This test needs the real 250,002-piece XLM-R tokenizer.")
            throw FixtureMissing()
        }
        let url = URL(fileURLWithPath: root).appendingPathComponent("xlmr-tokenizer/tokenizer.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            Issue.record("BGE_M3_FIXTURES=\(root) has no xlmr-tokenizer/tokenizer.json")
            throw FixtureMissing()
        }
        return url
    }

    struct FixtureMissing: Error {}

    static let realTokenizer: Result<UnigramTokenizer, any Error> = Result {
        try UnigramTokenizer(contentsOf: try realTokenizerURL())
    }

    static let tinyTokenizer: Result<UnigramTokenizer, any Error> = Result {
        try UnigramTokenizer(contentsOf: project("tiny-bge-m3/tokenizer.json"))
    }

    static func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: project(path))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

/// One expected tokenisation from a golden file. Golden files are read with `JSONDecoder`:
/// `JSONSerialization` on Linux drops a byte-order mark at the start of a string.
struct GoldenCase: Decodable, CustomTestStringConvertible, Sendable {
    var name: String
    let text: String
    let maxLength: Int?
    let ids: [Int32]
    let offsets: [[Int]]?

    var testDescription: String { "\(name) \(text.debugDescription.prefix(40)) max_length=\(maxLength.map(String.init) ?? "none")" }

    private enum CodingKeys: String, CodingKey {
        case name, text, max_length, ids, input_ids, offsets
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
        text = try container.decode(String.self, forKey: .text)
        maxLength = try container.decodeIfPresent(Int.self, forKey: .max_length)
        ids = try container.decodeIfPresent([Int32].self, forKey: .ids) ?? container.decode([Int32].self, forKey: .input_ids)
        offsets = try container.decodeIfPresent([[Int]].self, forKey: .offsets)
    }

    /// The cases of a golden file shaped `{"cases": [...]}`, named by position.
    static func load(_ path: String) -> [GoldenCase] {
        struct Document: Decodable { let cases: [GoldenCase] }
        guard let data = try? Data(contentsOf: Fixtures.project(path)),
              let document = try? JSONDecoder().decode(Document.self, from: data) else { return [] }
        return document.cases.enumerated().map { index, golden in
            var named = golden
            named.name = "case \(index)"
            return named
        }
    }
}

extension Encoding {
    var offsetPairs: [[Int]] { offsets.map { [Int($0.start), Int($0.end)] } }
}
