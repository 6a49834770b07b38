/// Puts a string in front of non-empty text (`"type": "Prepend"`).
struct PrependNormalizer: TextNormalizer {
    let prefix: [UInt8]

    func normalize(_ text: inout NormalizedText) {
        text.prepend(prefix)
    }
}

extension NormalizedText {
    /// The reference's `NormalizedString::prepend`: the new characters take the alignment of the
    /// first old character (which keeps its own). Empty text stays empty.
    mutating func prepend(_ prefix: [UInt8]) {
        guard !bytes.isEmpty, !prefix.isEmpty else { return }
        bytes.insert(contentsOf: prefix, at: 0)
        alignments.insert(contentsOf: repeatElement(alignments[0], count: prefix.count), at: 0)
    }
}
