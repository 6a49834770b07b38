import Foundation

/// Unicode compatibility composition (`"type": "NFKC"`).
///
/// Applied per extended grapheme cluster (composition never crosses a cluster boundary), with
/// alignments assigned like the Precompiled normaliser's replacements. The text it produces is
/// NFKC; for clusters whose length changes, offsets may differ from the reference, which tracks
/// alignment through its own decomposition tables. The XLM-R family normalises with `Precompiled`
/// (which embeds NFKC), so this step only serves other tokenizer files.
struct NFKCNormalizer: TextNormalizer {
    func normalize(_ text: inout NormalizedText) {
        guard !text.isEmpty else { return }
        var writer = AlignedTextWriter(source: text)
        var modified = false
        text.bytes.withUnsafeBufferPointer { bytes in
            Graphemes.forEach(in: bytes) { cluster in
                let clusterBytes = UnsafeBufferPointer(rebasing: bytes[cluster])
                if cluster.count == 1 && bytes[cluster.lowerBound] < 0x80 {
                    writer.write(character: clusterBytes, change: 0)
                    return
                }
                let original = String(decoding: clusterBytes, as: UTF8.self)
                let composed = Array(original.precomposedStringWithCompatibilityMapping.utf8)
                if composed.elementsEqual(clusterBytes) {
                    writer.write(characters: clusterBytes, inserted: 0)
                    return
                }
                modified = true
                composed.withUnsafeBufferPointer { newBytes in
                    let difference = UTF8Width.scalarCount(newBytes) - UTF8Width.scalarCount(clusterBytes)
                    writer.write(characters: newBytes, inserted: max(difference, 0))
                    if difference < 0 { writer.adjustLastChange(by: difference) }
                }
            }
        }
        if modified { text = writer.finish() }
    }
}
