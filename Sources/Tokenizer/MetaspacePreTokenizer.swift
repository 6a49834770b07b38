/// When the Metaspace pre-tokeniser puts its replacement character in front of a piece.
enum PrependScheme: String, Sendable {
    /// Before every piece that does not already start with it.
    case always
    /// Only before the piece at the very start of the text.
    case first
    /// Never.
    case never
}

/// SentencePiece's word boundaries (`"type": "Metaspace"`): spaces become `▁`, a `▁` is prepended
/// per the scheme, and the text is split before every `▁`.
///
/// Accepts both spellings found in `tokenizer.json` files: the old `add_prefix_space: true|false`
/// and the newer `prepend_scheme` with `split`.
struct MetaspacePreTokenizer: Sendable {
    let replacement: [UInt8]
    let prependScheme: PrependScheme
    let split: Bool

    /// Rewrites `text` and returns the byte ranges of its words (never empty ones).
    func preTokenize(_ text: inout NormalizedText) -> [Range<Int>] {
        replaceSpaces(in: &text)
        let startsWithReplacement = text.bytes.starts(with: replacement)
        switch prependScheme {
        case .always where !startsWithReplacement:
            text.prepend(replacement)
        case .first where !startsWithReplacement && text.origin == 0:
            text.prepend(replacement)
        default:
            break
        }
        guard !text.isEmpty else { return [] }
        guard split else { return [0..<text.bytes.count] }
        // Each replacement character starts a new word (the reference's MergedWithNext).
        var words: [Range<Int>] = []
        var start = 0
        var i = 0
        let bytes = text.bytes
        let width = replacement.count
        let lead = replacement[0]
        while i < bytes.count {
            if bytes[i] == lead, i + width <= bytes.count, bytes[i..<(i + width)].elementsEqual(replacement) {
                if i > start { words.append(start..<i) }
                start = i
                i += width
            } else {
                i += 1
            }
        }
        if start < bytes.count { words.append(start..<bytes.count) }
        return words
    }

    /// Every space becomes the replacement, aligned to that space.
    private func replaceSpaces(in text: inout NormalizedText) {
        guard text.bytes.contains(0x20) else { return }
        var bytes: [UInt8] = []
        var alignments: [TextSpan] = []
        bytes.reserveCapacity(text.bytes.count + text.bytes.count / 2)
        alignments.reserveCapacity(bytes.capacity)
        for (byte, alignment) in zip(text.bytes, text.alignments) {
            if byte == 0x20 {
                bytes.append(contentsOf: replacement)
                for _ in 0..<replacement.count { alignments.append(alignment) }
            } else {
                bytes.append(byte)
                alignments.append(alignment)
            }
        }
        text = NormalizedText(bytes: bytes, alignments: alignments, origin: text.origin)
    }
}
