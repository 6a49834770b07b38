import Foundation

/// A Hugging Face `tokenizer.json` pipeline with a Unigram model, as the XLM-R family (BGE-M3,
/// multilingual-e5, XLM-RoBERTa) ships it; ids and offsets are identical to Hugging Face
/// `tokenizers`.
///
/// The pipeline: added tokens are cut out of the raw text; each remaining piece is normalised,
/// then searched for added tokens declared `normalized`; Metaspace splits the pieces into words;
/// the Unigram model segments each word; the template adds `<s>` and `</s>`, after right
/// truncation.
public struct UnigramTokenizer: Tokenizer {
    let normalizer: (any TextNormalizer)?
    let preTokenizer: MetaspacePreTokenizer?
    let model: UnigramModel
    let rawAddedTokens: AddedTokenMatcher
    let normalizedAddedTokens: AddedTokenMatcher
    let template: SpecialTokenTemplate
    let addedTokensByID: [Int32: String]
    /// `truncation.max_length` from the file, used when a call gives none.
    let configuredMaxLength: Int?

    public var vocabularySize: Int {
        max(model.pieces.count, Int(addedTokensByID.keys.max() ?? -1) + 1)
    }

    public var specialTokenCount: Int { template.addedCount }

    public func token(forID id: Int32) -> String? {
        if let added = addedTokensByID[id] { return added }
        guard id >= 0, Int(id) < model.pieces.count else { return nil }
        return model.pieces[Int(id)]
    }

    /// The text of `ids` as the Metaspace decoder gives it back: the pieces joined, `▁` read as a
    /// space, the space that starts the text dropped; added tokens (`<s>`, `</s>`, …) left out when
    /// `skipSpecialTokens`, else written as they are. Ids outside the vocabulary are left out.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = true) -> String {
        var text = ""
        for id in ids {
            if let added = addedTokensByID[id] {
                if !skipSpecialTokens { text += added }
                continue
            }
            guard id >= 0, Int(id) < model.pieces.count else { continue }
            text += model.pieces[Int(id)].replacingOccurrences(of: "\u{2581}", with: " ")
        }
        return text.hasPrefix(" ") ? String(text.dropFirst()) : text
    }

    /// The id of a piece or added token, if the vocabulary has it.
    public func id(forToken token: String) -> Int32? {
        if let added = addedTokensByID.first(where: { $0.value == token }) { return added.key }
        return model.pieceID(of: token)
    }

    public func encode(_ text: String, options: EncodeOptions) -> Encoding {
        var output = EncodingBuilder(includeTexts: options.includeTokenTexts)
        let bytes = Array(text.utf8)
        var scalars = ScalarCounter(bytes: bytes)
        let splits = rawAddedTokens.split(bytes) ?? [AddedTokenSplit(range: 0..<bytes.count, token: nil)]
        for split in splits {
            let firstScalar = scalars.position(atByte: split.range.lowerBound)
            if let index = split.token {
                let token = rawAddedTokens.tokens[index]
                let span = TextSpan(start: firstScalar, end: scalars.position(atByte: split.range.upperBound))
                output.append(id: token.id, span: span, special: token.special) {
                    String(decoding: bytes[split.range], as: UTF8.self)
                }
                continue
            }
            var piece = NormalizedText(utf8: bytes[split.range], firstScalar: firstScalar)
            normalizer?.normalize(&piece)
            guard !piece.isEmpty else { continue }
            guard let inner = normalizedAddedTokens.split(piece.bytes) else {
                tokenizeWords(of: &piece, into: &output)
                continue
            }
            for part in inner {
                if let index = part.token {
                    let token = normalizedAddedTokens.tokens[index]
                    output.append(id: token.id, span: piece.originalSpan(of: part.range), special: token.special) {
                        String(decoding: piece.bytes[part.range], as: UTF8.self)
                    }
                } else if !part.range.isEmpty {
                    var subpiece = piece.slice(part.range)
                    tokenizeWords(of: &subpiece, into: &output)
                }
            }
        }
        return output.finish(template: options.addSpecialTokens ? template : .none, maxLength: options.maxLength ?? configuredMaxLength)
    }

    private func tokenizeWords(of piece: inout NormalizedText, into output: inout EncodingBuilder) {
        let words = preTokenizer?.preTokenize(&piece) ?? (piece.isEmpty ? [] : [0..<piece.bytes.count])
        piece.bytes.withUnsafeBufferPointer { buffer in
            for word in words {
                output.wordTokens.removeAll(keepingCapacity: true)
                model.tokenize(UnsafeBufferPointer(rebasing: buffer[word]), lattice: &output.lattice, into: &output.wordTokens)
                for token in output.wordTokens {
                    let range = (word.lowerBound + token.range.lowerBound)..<(word.lowerBound + token.range.upperBound)
                    output.append(id: token.id, span: piece.originalSpan(of: range), special: false) {
                        String(decoding: buffer[range], as: UTF8.self)
                    }
                }
            }
        }
    }
}

/// Converts byte offsets of the original text to scalar positions, moving forward only.
private struct ScalarCounter {
    let bytes: [UInt8]
    var byte = 0
    var scalar: Int32 = 0

    mutating func position(atByte target: Int) -> Int32 {
        while byte < target {
            if bytes[byte] & 0xC0 != 0x80 { scalar += 1 }
            byte += 1
        }
        return scalar
    }
}

/// Collects tokens, then truncates and adds the template's special tokens.
private struct EncodingBuilder {
    let includeTexts: Bool
    var ids: [Int32] = []
    var offsets: [TextSpan] = []
    var special: [Bool] = []
    var texts: [String] = []
    var lattice = UnigramLattice()
    var wordTokens: [WordToken] = []

    init(includeTexts: Bool) {
        self.includeTexts = includeTexts
    }

    mutating func append(id: Int32, span: TextSpan, special isSpecial: Bool, text: () -> String) {
        ids.append(id)
        offsets.append(span)
        special.append(isSpecial)
        if includeTexts { texts.append(text()) }
    }

    mutating func finish(template: SpecialTokenTemplate, maxLength: Int?) -> Encoding {
        let untruncated = ids.count + template.addedCount
        if let maxLength {
            let keep = max(0, maxLength - template.addedCount)
            if ids.count > keep {
                ids.removeLast(ids.count - keep)
                offsets.removeLast(offsets.count - keep)
                special.removeLast(special.count - keep)
                if includeTexts { texts.removeLast(texts.count - keep) }
            }
        }
        if template.addedCount > 0 {
            let zero = TextSpan(start: 0, end: 0)
            ids = template.prefix.map(\.id) + ids + template.suffix.map(\.id)
            offsets = Array(repeating: zero, count: template.prefix.count) + offsets + Array(repeating: zero, count: template.suffix.count)
            special = Array(repeating: true, count: template.prefix.count) + special + Array(repeating: true, count: template.suffix.count)
            if includeTexts { texts = template.prefix.map(\.token) + texts + template.suffix.map(\.token) }
        }
        return Encoding(ids: ids, offsets: offsets, specialTokensMask: special, tokens: texts, untruncatedCount: untruncated)
    }
}
