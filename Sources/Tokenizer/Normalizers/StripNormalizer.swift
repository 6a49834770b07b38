/// Removes white space at either end (`"type": "Strip"`); the characters kept keep their alignment.
struct StripNormalizer: TextNormalizer {
    let left: Bool
    let right: Bool

    func normalize(_ text: inout NormalizedText) {
        var characters: [Range<Int>] = []
        text.forEachCharacter { characters.append($0) }
        var first = 0
        var last = characters.count
        if left {
            while first < last, UnicodeClasses.isWhitespace(text.bytes, characters[first]) { first += 1 }
        }
        if right {
            while last > first, UnicodeClasses.isWhitespace(text.bytes, characters[last - 1]) { last -= 1 }
        }
        guard first > 0 || last < characters.count else { return }
        let kept = first < last ? characters[first].lowerBound..<characters[last - 1].upperBound : 0..<0
        text = NormalizedText(bytes: Array(text.bytes[kept]), alignments: Array(text.alignments[kept]), origin: text.origin)
    }
}
