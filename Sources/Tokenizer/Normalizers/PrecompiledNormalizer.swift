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
        text.rewriteClusters { cluster, writer in
            if cluster.count < 6, let replacement = charsmap.replacement(for: cluster) {
                charsmap.withReplacement(replacement) {
                    writer.write(replacement: $0, replacingCharacters: UTF8Width.scalarCount(cluster))
                }
                return true
            }
            var modified = false
            var i = 0
            while i < cluster.count {
                let width = UTF8Width.of(leadByte: cluster[i])
                let character = UnsafeBufferPointer(rebasing: cluster[i..<(i + width)])
                if let replacement = charsmap.replacement(for: character) {
                    modified = true
                    charsmap.withReplacement(replacement) { writer.write(replacement: $0, replacingCharacters: 1) }
                } else {
                    writer.write(character: character, change: 0)
                }
                i += width
            }
            return modified
        }
    }
}
