import Foundation
import TestSupport
import Testing
import Tokenizer

/// The tokenizers and golden files of the tokenizer suites (``RepositoryFixtures`` says where they are).
enum Fixtures {
    static func project(_ path: String) -> URL {
        RepositoryFixtures.url(path)
    }

    static let realTokenizer: Result<UnigramTokenizer, any Error> = Result {
        try UnigramTokenizer(contentsOf: try RepositoryFixtures.xlmrTokenizer())
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
