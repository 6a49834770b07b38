/// SentencePiece's compiled normalisation rules (`"type": "Precompiled"`), applied as Hugging Face
/// `tokenizers` applies them.
///
/// The reference walks extended grapheme clusters. A cluster shorter than 6 bytes is looked up
/// whole; when that finds nothing, each of its characters is looked up alone. A lookup returns the
/// replacement of the shortest rule that is a *prefix* of what was looked up, so a rule for `ﬁ`
/// also rewrites `ﬁ` + combining accent to `fi`, dropping the accent. When a replacement has fewer
/// characters than what it replaces, the difference is charged to the previously written
/// character; at the very start there is none, so those characters stay unconsumed and shift the
/// alignment of what follows. All of this is deliberate: it is what the reference does.
struct PrecompiledNormalizer: TextNormalizer {
    let charsmap: PrecompiledCharsmap

    func normalize(_ text: inout NormalizedText) {
        guard !text.isEmpty else { return }
        var writer = AlignedTextWriter(source: text)
        var modified = false
        text.bytes.withUnsafeBufferPointer { bytes in
            Graphemes.forEach(in: bytes) { cluster in
                let clusterBytes = UnsafeBufferPointer(rebasing: bytes[cluster])
                if cluster.count < 6, let replacement = charsmap.replacement(for: clusterBytes) {
                    modified = true
                    replace(UTF8Width.scalarCount(clusterBytes), with: replacement, in: &writer)
                    return
                }
                var i = cluster.lowerBound
                while i < cluster.upperBound {
                    let width = UTF8Width.of(leadByte: bytes[i])
                    let character = UnsafeBufferPointer(rebasing: bytes[i..<(i + width)])
                    if let replacement = charsmap.replacement(for: character) {
                        modified = true
                        replace(1, with: replacement, in: &writer)
                    } else {
                        writer.write(character: character, change: 0)
                    }
                    i += width
                }
            }
        }
        if modified { text = writer.finish() }
    }

    private func replace(_ oldCount: Int, with replacement: Range<Int>, in writer: inout AlignedTextWriter) {
        charsmap.withReplacement(replacement) { newBytes in
            let difference = UTF8Width.scalarCount(newBytes) - oldCount
            writer.write(characters: newBytes, inserted: max(difference, 0))
            if difference < 0 { writer.adjustLastChange(by: difference) }
        }
    }
}
