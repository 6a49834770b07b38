import Foundation
import Testing
import Tokenizer

/// Identity with Hugging Face `tokenizers` on the shared golden files.
@Suite struct GoldenTokenizerTests {
    static let xlmrCases = GoldenCase.load("golden/xlmr-tokenizer-public.json")
    static let tinyModelCases = GoldenCase.load("golden/tiny-model-public.json")

    @Test func goldenFilesAreThere() {
        #expect(Self.xlmrCases.count == 62)
        #expect(Self.tinyModelCases.count == 53)
    }

    @Test("Real XLM-R tokenizer: ids and offsets", arguments: xlmrCases)
    func realTokenizer(_ golden: GoldenCase) throws {
        let tokenizer = try Fixtures.realTokenizer.get()
        let encoding = tokenizer.encode(golden.text, options: EncodeOptions(maxLength: golden.maxLength))
        #expect(encoding.ids == golden.ids)
        #expect(encoding.offsetPairs == golden.offsets)
    }

    @Test("Tiny model: input_ids at each case's max_length", arguments: tinyModelCases)
    func tinyModel(_ golden: GoldenCase) throws {
        let tokenizer = try Fixtures.tinyTokenizer.get()
        let encoding = tokenizer.encode(golden.text, options: EncodeOptions(maxLength: golden.maxLength))
        #expect(encoding.ids == golden.ids)
    }
}
