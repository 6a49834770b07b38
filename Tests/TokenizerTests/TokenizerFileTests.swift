import Foundation
import Testing
import Tokenizer

/// Loading `tokenizer.json`: both Metaspace spellings, and clear errors for bad files.
@Suite struct TokenizerFileTests {
    static var tinyJSON: [String: Any] { (try? Fixtures.json("tiny-bge-m3/tokenizer.json")) ?? [:] }

    static func load(_ edit: (inout [String: Any]) -> Void) throws -> UnigramTokenizer {
        var document = tinyJSON
        edit(&document)
        let data = try JSONSerialization.data(withJSONObject: document)
        return try UnigramTokenizer(json: [UInt8](data), path: "edited.json")
    }

    static func loadError(_ bytes: [UInt8]) -> TokenizerLoadError? {
        do {
            _ = try UnigramTokenizer(json: bytes, path: "bad.json")
            return nil
        } catch {
            return error
        }
    }

    static func loadError(_ edit: (inout [String: Any]) -> Void) -> TokenizerLoadError? {
        var document = tinyJSON
        edit(&document)
        guard let data = try? JSONSerialization.data(withJSONObject: document) else { return nil }
        return loadError([UInt8](data))
    }

    /// The tiny tokenizer with one component replaced (`component` is a tokenizer.json key such as
    /// `pre_tokenizer`), and what the reference gives with it.
    struct Variant: Decodable, CustomTestStringConvertible, Sendable {
        let name: String
        let cases: [GoldenCase]
        /// Which list of the golden file this variant came from, and which component it replaces.
        var list = ""
        var component = ""
        var testDescription: String { name }

        private enum CodingKeys: String, CodingKey { case name, cases }

        /// The replacement component, read with `JSONSerialization` (plain strings and booleans).
        var replacement: [String: Any] {
            let doc = try? Fixtures.json("golden/tokenizer-adversarial.json")
            let variants = doc?[list] as? [[String: Any]] ?? []
            return variants.first { $0["name"] as? String == name }?[component] as? [String: Any] ?? [:]
        }

        static func load(list: String, component: String) -> [Variant] {
            guard let data = try? Data(contentsOf: Fixtures.project("golden/tokenizer-adversarial.json")),
                  let document = try? JSONDecoder().decode([String: AnyVariants].self, from: data),
                  let variants = document[list]?.variants else { return [] }
            return variants.map { variant in
                var copy = variant
                copy.list = list
                copy.component = component
                return copy
            }
        }
    }

    /// Decodes a list of variants, and anything else as nothing.
    struct AnyVariants: Decodable {
        let variants: [Variant]?
        init(from decoder: any Decoder) throws {
            variants = try? decoder.singleValueContainer().decode([Variant].self)
        }
    }

    static let metaspaceVariants = Variant.load(list: "metaspace_variants", component: "pre_tokenizer")
    static let normalizerVariants = Variant.load(list: "normalizer_variants", component: "normalizer")

    @Test func variantsAreThere() {
        #expect(Self.metaspaceVariants.count == 4)
        #expect(Self.normalizerVariants.count == 4)
    }

    @Test("Metaspace spellings and prepend schemes", arguments: metaspaceVariants)
    func metaspaceVariant(_ variant: Variant) throws {
        try check(variant)
    }

    @Test("NFKC, Strip, Prepend and Replace normalisers", arguments: normalizerVariants)
    func normalizerVariant(_ variant: Variant) throws {
        try check(variant)
    }

    private func check(_ variant: Variant) throws {
        #expect(!variant.cases.isEmpty)
        let replacement = variant.replacement
        #expect(!replacement.isEmpty)
        let tokenizer = try Self.load { $0[variant.component] = replacement }
        for golden in variant.cases {
            let encoding = tokenizer.encode(golden.text)
            #expect(encoding.ids == golden.ids, "\(golden.text.debugDescription)")
            #expect(encoding.offsetPairs == golden.offsets, "\(golden.text.debugDescription)")
        }
    }

    @Test func truncatedFileIsInvalidJSON() throws {
        let bytes = try [UInt8](Data(contentsOf: Fixtures.project("tiny-bge-m3/tokenizer.json")))
        let error = Self.loadError(Array(bytes.prefix(bytes.count / 2)))
        guard case .invalidJSON(let path, let reason) = error else {
            Issue.record("expected invalidJSON, got \(String(describing: error))")
            return
        }
        #expect(path == "bad.json")
        #expect(reason.contains("truncated"))
        #expect(error?.description.contains("bad.json") == true)
    }

    @Test func emptyAndNonObjectFiles() {
        #expect(Self.loadError([]).map { if case .invalidJSON = $0 { true } else { false } } == true)
        #expect(Self.loadError(Array("[1, 2]".utf8)).map { if case .invalidJSON = $0 { true } else { false } } == true)
    }

    @Test func unknownModelTypeIsRefused() {
        let error = Self.loadError { doc in
            var model = doc["model"] as! [String: Any]
            model["type"] = "BPE"
            doc["model"] = model
        }
        #expect(error == .unsupported(component: "model", type: "BPE"))
        #expect(error?.description.contains("BPE") == true)
    }

    @Test func unknownNormalizerIsRefusedNotIgnored() {
        let error = Self.loadError { doc in
            doc["normalizer"] = ["type": "Sequence", "normalizers": [["type": "Lowercase"]]]
        }
        #expect(error == .unsupported(component: "normalizer", type: "Lowercase"))
    }

    @Test func unknownPreTokenizerIsRefused() {
        let error = Self.loadError { $0["pre_tokenizer"] = ["type": "ByteLevel"] }
        #expect(error == .unsupported(component: "pre_tokenizer", type: "ByteLevel"))
    }

    @Test func corruptBase64CharsmapIsRefused() {
        let error = Self.loadError { doc in
            doc["normalizer"] = ["type": "Precompiled", "precompiled_charsmap": "not*base64!"]
        }
        guard case .invalidCharsmap(let reason) = error else {
            Issue.record("expected invalidCharsmap, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("base64"))
    }

    @Test func truncatedCharsmapIsRefused() {
        // Valid base64 of a blob whose header announces more trie than it holds.
        let blob: [UInt8] = [0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4]
        let error = Self.loadError { doc in
            doc["normalizer"] = ["type": "Precompiled", "precompiled_charsmap": Data(blob).base64EncodedString()]
        }
        guard case .invalidCharsmap(let reason) = error else {
            Issue.record("expected invalidCharsmap, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("256-byte trie"))
    }

    @Test func malformedVocabularyNamesTheEntry() {
        let error = Self.loadError { doc in
            var model = doc["model"] as! [String: Any]
            var vocab = model["vocab"] as! [Any]
            vocab[7] = ["piece"]
            model["vocab"] = vocab
            doc["model"] = model
        }
        #expect(error == .invalidField(field: "model.vocab[7]", reason: "must be a [string, finite number] pair"))
    }

    @Test func unknownIDOutsideTheVocabularyIsRefused() {
        let error = Self.loadError { doc in
            var model = doc["model"] as! [String: Any]
            model["unk_id"] = 999_999
            doc["model"] = model
        }
        guard case .invalidField(let field, _) = error else {
            Issue.record("expected invalidField, got \(String(describing: error))")
            return
        }
        #expect(field == "model.unk_id")
    }

    @Test func contradictoryMetaspaceIsRefused() {
        let error = Self.loadError { doc in
            doc["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁", "add_prefix_space": false, "prepend_scheme": "always"]
        }
        guard case .invalidField(let field, _) = error else {
            Issue.record("expected invalidField, got \(String(describing: error))")
            return
        }
        #expect(field == "pre_tokenizer.add_prefix_space")
    }

    @Test func missingFileIsUnreadable() {
        #expect(throws: TokenizerLoadError.self) {
            try UnigramTokenizer(contentsOf: URL(fileURLWithPath: "/nonexistent/tokenizer.json"))
        }
    }

    @Test func vocabularyLookups() throws {
        let tokenizer = try Fixtures.tinyTokenizer.get()
        #expect(tokenizer.vocabularySize == 6002)
        #expect(tokenizer.token(forID: 0) == "<s>")
        #expect(tokenizer.token(forID: 6001) == "<mask>")
        #expect(tokenizer.token(forID: 6002) == nil)
        #expect(tokenizer.id(forToken: "▁") == 4)
        #expect(tokenizer.id(forToken: "<mask>") == 6001)
        #expect(tokenizer.specialTokenCount == 2)
    }
}
