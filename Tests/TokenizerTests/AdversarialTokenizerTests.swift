import Foundation
import Testing
import Tokenizer

/// Hard inputs (white space, lone combining marks, controls, NUL, emoji sequences, full-width and
/// compatibility forms, added tokens inside text, random code points), expected values from
/// Hugging Face `tokenizers` 0.22.1 (Tests/Fixtures/golden/make_tokenizer_goldens.py).
@Suite struct AdversarialTokenizerTests {
    struct Document: Decodable {
        let tokenizers: [String: [GoldenCase]]
    }

    static func cases(_ tokenizer: String) -> [GoldenCase] {
        guard let data = try? Data(contentsOf: Fixtures.project("golden/tokenizer-adversarial.json")),
              let document = try? JSONDecoder().decode(Document.self, from: data) else { return [] }
        return document.tokenizers[tokenizer] ?? []
    }

    static let xlmrCases = cases("xlmr")
    static let tinyCases = cases("tiny")

    @Test func goldenFileIsThere() {
        #expect(Self.xlmrCases.count > 60)
        #expect(Self.tinyCases.count == Self.xlmrCases.count)
    }

    @Test("Real XLM-R tokenizer", arguments: xlmrCases)
    func real(_ golden: GoldenCase) throws {
        try check(golden, with: try Fixtures.realTokenizer.get())
    }

    @Test("Tiny model tokenizer (Strip, Replace to ▁, normalized <mask> with lstrip)", arguments: tinyCases)
    func tiny(_ golden: GoldenCase) throws {
        try check(golden, with: try Fixtures.tinyTokenizer.get())
    }

    private func check(_ golden: GoldenCase, with tokenizer: UnigramTokenizer) throws {
        let encoding = tokenizer.encode(golden.text, options: EncodeOptions(maxLength: golden.maxLength))
        #expect(encoding.ids == golden.ids)
        #expect(encoding.offsetPairs == golden.offsets)
    }

    @Test func emptyTextIsBosEos() throws {
        let tokenizer = try Fixtures.realTokenizer.get()
        #expect(tokenizer.encode("").ids == [0, 2])
        #expect(tokenizer.encode("", options: EncodeOptions(addSpecialTokens: false)).ids == [])
    }

    @Test func truncationKeepsSpecialTokensAndReportsTheFullLength() throws {
        let tokenizer = try Fixtures.realTokenizer.get()
        let full = tokenizer.encode("one two three four five six seven")
        let cut = tokenizer.encode("one two three four five six seven", options: EncodeOptions(maxLength: 4))
        #expect(cut.ids == [0] + full.ids[1..<3] + [2])
        #expect(cut.isTruncated)
        #expect(cut.untruncatedCount == full.ids.count)
        #expect(!full.isTruncated)
    }

    @Test func tokenTextsAndSpecialMask() throws {
        let tokenizer = try Fixtures.realTokenizer.get()
        let encoding = tokenizer.encode("hello <mask> world", options: EncodeOptions(includeTokenTexts: true))
        #expect(encoding.tokens == ["<s>", "▁hell", "o", "▁", "<mask>", "▁world", "</s>"])
        #expect(encoding.specialTokensMask == [true, false, false, false, true, false, true])
    }

    /// 1 MB of text in linear time: joined lines give exactly the concatenated tokens of each line,
    /// and four times the text takes well under the 16 times a quadratic step would.
    @Test func oneMegabyteInLinearTime() throws {
        let tokenizer = try Fixtures.realTokenizer.get()
        let lines = [
            "The quick brown fox jumps over the lazy dog.",
            "Москва — столица России.",
            "東京は日本の首都です。",
            "नई दिल्ली भारत की राजधानी है।",
            "emoji 👨‍👩‍👧 and ﬁ ligatures ①",
        ]
        let perLine = lines.map { tokenizer.encode($0, options: EncodeOptions(addSpecialTokens: false)).ids }
        func document(bytes: Int) -> (String, [Int32]) {
            var text = ""
            var ids: [Int32] = []
            var i = 0
            while text.utf8.count < bytes {
                if !text.isEmpty { text += " " }
                text += lines[i % lines.count]
                ids += perLine[i % lines.count]
                i += 1
            }
            return (text, ids)
        }
        let (quarter, _) = document(bytes: 262_144)
        let (whole, expected) = document(bytes: 1_048_576)
        let quarterSeconds = seconds { _ = tokenizer.encode(quarter) }
        var encoding: Encoding?
        let wholeSeconds = seconds { encoding = tokenizer.encode(whole) }
        #expect(encoding?.ids == [0] + expected + [2])
        #expect(encoding?.offsets.last == TextSpan(start: 0, end: 0))
        #expect(wholeSeconds / quarterSeconds < 8, "1 MB took \(wholeSeconds) s against \(quarterSeconds) s for 256 KB")

        // One 1 MB "word" with no space: the lattice must stay linear too.
        let word = String(repeating: "abcdefghij", count: 104_858)
        let wordEncoding = tokenizer.encode(word, options: EncodeOptions(addSpecialTokens: false, includeTokenTexts: true))
        #expect(wordEncoding.tokens.joined() == "▁" + word)
        var next: Int32 = 0
        for span in wordEncoding.offsets {
            #expect(span.start == next)
            next = span.end
        }
        #expect(next == Int32(word.unicodeScalars.count))
    }

    /// CPU seconds this thread spends in `body` (encoding runs on the calling thread). Wall time
    /// counted the other suites' work on a two-core CI machine: the ratio once read 9.85 for
    /// linear code.
    private func seconds(_ body: () -> Void) -> Double {
        func now() -> Double {
            var time = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
            return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
        }
        let start = now()
        body()
        return now() - start
    }

    /// Random strings of code points: offsets stay inside the text and in order, and nothing traps.
    @Test func randomCodePointsKeepOffsetsInBounds() throws {
        let tokenizer = try Fixtures.realTokenizer.get()
        var generator = SplitMix64(seed: 42)
        for _ in 0..<500 {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<Int(generator.next() % 40) {
                var value = UInt32(generator.next() % 0x110000)
                if (0xD800...0xDFFF).contains(value) { value = 0x41 }
                scalars.append(Unicode.Scalar(value)!)
            }
            let text = String(scalars)
            let encoding = tokenizer.encode(text)
            let length = Int32(text.unicodeScalars.count)
            #expect(encoding.ids.first == 0 && encoding.ids.last == 2)
            var previousStart: Int32 = 0
            for span in encoding.offsets.dropFirst().dropLast() {
                #expect(span.start >= previousStart && span.start <= span.end && span.end <= length, "\(text.debugDescription)")
                previousStart = span.start
            }
        }
    }
}

/// A small deterministic generator, so random tests repeat exactly.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
