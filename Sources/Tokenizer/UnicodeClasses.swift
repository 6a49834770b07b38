/// Character classes the reference takes from Rust's `char` and its regex crate.
enum UnicodeClasses {
    /// Rust's `char::is_whitespace` and regex `\s`: the Unicode `White_Space` property.
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace
    }

    /// Regex `\w` in Unicode mode: alphabetic, marks, decimal digits, connector punctuation, join controls.
    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// Whether the character at `range` of valid UTF-8 `bytes` is white space.
    static func isWhitespace(_ bytes: [UInt8], _ range: Range<Int>) -> Bool {
        if range.count == 1 {
            let b = bytes[range.lowerBound]
            return b == 0x20 || (b >= 0x09 && b <= 0x0D)
        }
        guard let scalar = decode(bytes[range]) else { return false }
        return isWhitespace(scalar)
    }

    /// The scalar encoded by one UTF-8 sequence.
    static func decode<C: Collection>(_ bytes: C) -> Unicode.Scalar? where C.Element == UInt8 {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        if case .scalarValue(let scalar) = decoder.decode(&iterator) { return scalar }
        return nil
    }
}
