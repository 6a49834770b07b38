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

    /// The tiny tokenizer with another Metaspace configuration, and what the reference gives with it.
    struct Variant: Decodable, CustomTestStringConvertible, Sendable {
        let name: String
        let cases: [GoldenCase]
        var testDescription: String { name }

        /// The variant's `pre_tokenizer` object (plain strings and booleans only).
        var preTokenizer: [String: Any] {
            let doc = try? Fixtures.json("golden/tokenizer-adversarial.json")
            let variants = doc?["metaspace_variants"] as? [[String: Any]] ?? []
            return variants.first { $0["name"] as? String == name }?["pre_tokenizer"] as? [String: Any] ?? [:]
        }
    }

    static let variants: [Variant] = {
        struct Document: Decodable { let metaspace_variants: [Variant] }
        guard let data = try? Data(contentsOf: Fixtures.project("golden/tokenizer-adversarial.json")),
              let document = try? JSONDecoder().decode(Document.self, from: data) else { return [] }
        return document.metaspace_variants
    }()

    @Test func variantsAreThere() {
        #expect(Self.variants.count == 4)
    }

    @Test("Metaspace spellings and prepend schemes", arguments: variants)
    func metaspaceVariant(_ variant: Variant) throws {
        #expect(!variant.cases.isEmpty)
        let preTokenizer = variant.preTokenizer
        #expect(!preTokenizer.isEmpty)
        let tokenizer = try Self.load { $0["pre_tokenizer"] = preTokenizer }
        for golden in variant.cases {
            let encoding = tokenizer.encode(golden.text)
            #expect(encoding.ids == golden.ids, "\(golden.text.debugDescription)")
            #expect(encoding.offsetPairs == golden.offsets, "\(golden.text.debugDescription)")
        }
    }

    /// The tiny tokenizer with another normaliser, and what the reference gives with it.
    struct NormalizerVariant: Decodable, CustomTestStringConvertible, Sendable {
        let name: String
        let cases: [GoldenCase]
        var testDescription: String { name }

        var normalizer: [String: Any] {
            let doc = try? Fixtures.json("golden/tokenizer-adversarial.json")
            let variants = doc?["normalizer_variants"] as? [[String: Any]] ?? []
            return variants.first { $0["name"] as? String == name }?["normalizer"] as? [String: Any] ?? [:]
        }
    }

    static let normalizerVariants: [NormalizerVariant] = {
        struct Document: Decodable { let normalizer_variants: [NormalizerVariant] }
        guard let data = try? Data(contentsOf: Fixtures.project("golden/tokenizer-adversarial.json")),
              let document = try? JSONDecoder().decode(Document.self, from: data) else { return [] }
        return document.normalizer_variants
    }()

    @Test func normalizerVariantsAreThere() {
        #expect(Self.normalizerVariants.count == 4)
    }

    @Test("NFKC, Strip, Prepend and Replace normalisers", arguments: normalizerVariants)
    func normalizerVariant(_ variant: NormalizerVariant) throws {
        #expect(!variant.cases.isEmpty)
        let normalizer = variant.normalizer
        let tokenizer = try Self.load { $0["normalizer"] = normalizer }
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
