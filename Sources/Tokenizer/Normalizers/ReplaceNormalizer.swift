/// Replaces every match of a pattern with fixed content (`"type": "Replace"`).
///
/// As in the reference, each replacement character is aligned to the last byte of the match it
/// replaces: `"a   b"` with `" {2,}"` → `" "` aligns the single space to the third original space.
struct ReplaceNormalizer: TextNormalizer {
    let pattern: TextPattern
    let content: [UInt8]

    func normalize(_ text: inout NormalizedText) {
        let matches = pattern.matches(in: text.bytes)
        guard !matches.isEmpty else { return }
        var bytes: [UInt8] = []
        var alignments: [TextSpan] = []
        bytes.reserveCapacity(text.bytes.count)
        alignments.reserveCapacity(text.bytes.count)
        var copied = 0
        for match in matches {
            bytes.append(contentsOf: text.bytes[copied..<match.lowerBound])
            alignments.append(contentsOf: text.alignments[copied..<match.lowerBound])
            let alignment = match.upperBound >= 1 ? text.alignments[match.upperBound - 1] : TextSpan(start: text.origin, end: text.origin)
            bytes.append(contentsOf: content)
            alignments.append(contentsOf: repeatElement(alignment, count: content.count))
            copied = match.upperBound
        }
        bytes.append(contentsOf: text.bytes[copied...])
        alignments.append(contentsOf: text.alignments[copied...])
        text = NormalizedText(bytes: bytes, alignments: alignments, origin: text.origin)
    }
}

/// What a `Replace` normaliser or a `Split` looks for: `{"String": …}` or `{"Regex": …}`.
enum TextPattern: Sendable {
    /// Every occurrence of these bytes, left to right, without overlap.
    case literal([UInt8])
    /// A run of one character repeated `minimum...maximum` times (the form XLM-R uses: `" {2,}"`),
    /// matched greedily without a regex engine.
    case repeated(character: [UInt8], minimum: Int, maximum: Int?)
    /// Any other regular expression, through Swift's `Regex`.
    case regex(CompiledRegex)

    /// Non-overlapping matches, as byte ranges, leftmost first.
    func matches(in bytes: [UInt8]) -> [Range<Int>] {
        switch self {
        case .literal(let needle):
            return Self.literalMatches(of: needle, in: bytes)
        case .repeated(let character, let minimum, let maximum):
            return Self.runMatches(of: character, minimum: minimum, maximum: maximum, in: bytes)
        case .regex(let regex):
            return regex.matches(in: bytes)
        }
    }

    private static func literalMatches(of needle: [UInt8], in bytes: [UInt8]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        guard !needle.isEmpty, needle.count <= bytes.count else { return result }
        var i = 0
        let first = needle[0]
        while i + needle.count <= bytes.count {
            if bytes[i] == first && bytes[i..<(i + needle.count)].elementsEqual(needle) {
                result.append(i..<(i + needle.count))
                i += needle.count
            } else {
                i += 1
            }
        }
        return result
    }

    private static func runMatches(of character: [UInt8], minimum: Int, maximum: Int?, in bytes: [UInt8]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        let width = character.count
        var i = 0
        while i < bytes.count {
            var count = 0
            var j = i
            while j + width <= bytes.count, bytes[j..<(j + width)].elementsEqual(character), maximum.map({ count < $0 }) ?? true {
                count += 1
                j += width
            }
            if count >= minimum && count > 0 {
                result.append(i..<j)
                i = j
            } else {
                i += count > 0 ? width : 1
            }
        }
        return result
    }

    /// Reads a pattern object of `tokenizer.json`.
    static func parse(_ value: JSONValue?, field: String) throws(TokenizerLoadError) -> TextPattern {
        guard let object = value?.object else { throw .invalidField(field: field, reason: "must be an object like {\"String\": …} or {\"Regex\": …}") }
        if let literal = object["String"]?.string {
            guard !literal.isEmpty else { throw .invalidField(field: field + ".String", reason: "must not be empty") }
            return .literal(Array(literal.utf8))
        }
        if let source = object["Regex"]?.string {
            if let repeated = parseRepetition(source) { return repeated }
            do {
                return .regex(try CompiledRegex(source))
            } catch {
                throw .invalidField(field: field + ".Regex", reason: "is not a regular expression bgem3 can compile: \(source)")
            }
        }
        throw .invalidField(field: field, reason: "must hold a \"String\" or a \"Regex\"")
    }

    /// Recognises `X{n,}`, `X{n}`, `X{n,m}` and `X+` where `X` is one literal character.
    private static func parseRepetition(_ source: String) -> TextPattern? {
        var scalars = Array(source.unicodeScalars)
        guard !scalars.isEmpty else { return nil }
        var atom: Unicode.Scalar
        if scalars[0] == "\\" {
            guard scalars.count >= 2, "^$.|?*+()[]{}\\/ ".unicodeScalars.contains(scalars[1]) else { return nil }
            atom = scalars[1]
            scalars.removeFirst(2)
        } else {
            atom = scalars[0]
            guard !"^$.|?*+()[]{}\\".unicodeScalars.contains(atom) else { return nil }
            scalars.removeFirst()
        }
        let character = Array(String(Character(atom)).utf8)
        let rest = String(String.UnicodeScalarView(scalars))
        if rest == "+" { return .repeated(character: character, minimum: 1, maximum: nil) }
        guard rest.hasPrefix("{"), rest.hasSuffix("}") else { return nil }
        let bounds = rest.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
        guard let minimum = Int(bounds.first ?? "") else { return nil }
        switch bounds.count {
        case 1: return minimum > 0 ? .repeated(character: character, minimum: minimum, maximum: minimum) : nil
        case 2:
            if bounds[1].isEmpty { return minimum > 0 ? .repeated(character: character, minimum: minimum, maximum: nil) : nil }
            guard let maximum = Int(bounds[1]), maximum >= minimum, minimum > 0 else { return nil }
            return .repeated(character: character, minimum: minimum, maximum: maximum)
        default: return nil
        }
    }
}

/// A regular expression compiled once at load.
///
/// Swift's `Regex` is an immutable value once built; it is wrapped so the pattern enum can be
/// `Sendable`. Patterns beyond the simple repetitions above may differ from Oniguruma's semantics
/// in corner cases (none of the XLM-R family's tokenizers uses one).
final class CompiledRegex: @unchecked Sendable {
    private let regex: Regex<AnyRegexOutput>

    init(_ source: String) throws {
        regex = try Regex(source)
    }

    func matches(in bytes: [UInt8]) -> [Range<Int>] {
        let string = String(decoding: bytes, as: UTF8.self)
        let utf8 = string.utf8
        return string.matches(of: regex).compactMap { match in
            let start = utf8.distance(from: utf8.startIndex, to: match.range.lowerBound)
            let end = utf8.distance(from: utf8.startIndex, to: match.range.upperBound)
            return start < end ? start..<end : nil
        }
    }
}
