/// One step of a tokenizer's normalisation, editing text while keeping its alignment to the original.
protocol TextNormalizer: Sendable {
    func normalize(_ text: inout NormalizedText)
}

/// Normalisers applied one after another (`"type": "Sequence"`).
struct NormalizerSequence: TextNormalizer {
    let steps: [any TextNormalizer]

    func normalize(_ text: inout NormalizedText) {
        for step in steps { step.normalize(&text) }
    }
}
