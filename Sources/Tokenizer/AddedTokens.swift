/// A token declared in `added_tokens` (such as `<s>` or `<mask>`), matched in the text before the
/// model sees it.
public struct AddedToken: Sendable, Equatable {
    public var id: Int32
    public var content: String
    /// Only matches when not inside a word.
    public var singleWord: Bool
    /// Also takes the white space on its left.
    public var leftStrip: Bool
    /// Also takes the white space on its right.
    public var rightStrip: Bool
    /// Matched in the normalised text instead of the raw text.
    public var normalized: Bool
    public var special: Bool
}

/// Where a piece of text is an added token.
struct AddedTokenSplit {
    var range: Range<Int>
    /// Index into the matcher's tokens, or nil for ordinary text.
    var token: Int?
}

/// Finds added tokens in text the way the reference's `AddedVocabulary::find_matches` does:
/// leftmost-longest matches (Aho-Corasick semantics), then the `single_word`, `lstrip` and
/// `rstrip` rules.
struct AddedTokenMatcher: Sendable {
    let tokens: [AddedToken]
    private let trie: PieceTrie
    private let startsToken: [Bool]

    /// - Parameter patterns: the UTF-8 each token is matched as (its content, or its content
    ///   normalised for `normalized` tokens).
    init(tokens: [AddedToken], patterns: [[UInt8]]) {
        self.tokens = tokens
        self.trie = PieceTrie(pieces: patterns)
        var starts = [Bool](repeating: false, count: 256)
        for pattern in patterns where !pattern.isEmpty { starts[Int(pattern[0])] = true }
        self.startsToken = starts
    }

    var isEmpty: Bool { tokens.isEmpty }

    /// Splits `bytes` into added tokens and the text between them, covering all of it. Returns nil
    /// when there is no match (the common case), so callers keep the text as it is.
    func split(_ bytes: [UInt8]) -> [AddedTokenSplit]? {
        guard !tokens.isEmpty else { return nil }
        var splits: [AddedTokenSplit] = []
        var consumed = 0
        bytes.withUnsafeBufferPointer { buffer in
            var i = 0
            while i < buffer.count {
                guard startsToken[Int(buffer[i])] else { i += 1; continue }
                var matchEnd = -1
                var matchToken: Int32 = -1
                trie.forEachPiece(in: buffer, from: i) { end, token in
                    matchEnd = end
                    matchToken = token
                }
                guard matchEnd >= 0 else { i += 1; continue }
                let token = tokens[Int(matchToken)]
                var start = i
                var stop = matchEnd
                i = matchEnd
                if token.singleWord {
                    let wordBefore = start > 0 && Self.lastCharacterIsWord(buffer, before: start)
                    let wordAfter = stop < buffer.count && Self.firstCharacterIsWord(buffer, from: stop)
                    if wordBefore || wordAfter { continue }
                }
                if token.leftStrip {
                    start = max(Self.startOfTrailingWhitespace(buffer, before: start), consumed)
                }
                if token.rightStrip {
                    stop = Self.endOfLeadingWhitespace(buffer, from: stop)
                }
                if consumed < start { splits.append(AddedTokenSplit(range: consumed..<start, token: nil)) }
                splits.append(AddedTokenSplit(range: start..<stop, token: Int(matchToken)))
                consumed = stop
            }
        }
        guard !splits.isEmpty else { return nil }
        if consumed != bytes.count { splits.append(AddedTokenSplit(range: consumed..<bytes.count, token: nil)) }
        return splits
    }

    private static func scalar(_ buffer: UnsafeBufferPointer<UInt8>, at i: Int) -> Unicode.Scalar? {
        let width = UTF8Width.of(leadByte: buffer[i])
        guard i + width <= buffer.count else { return nil }
        return UnicodeClasses.decode(buffer[i..<(i + width)])
    }

    private static func startOfPreviousCharacter(_ buffer: UnsafeBufferPointer<UInt8>, before i: Int) -> Int {
        var j = i - 1
        while j > 0 && buffer[j] & 0xC0 == 0x80 { j -= 1 }
        return j
    }

    private static func lastCharacterIsWord(_ buffer: UnsafeBufferPointer<UInt8>, before i: Int) -> Bool {
        scalar(buffer, at: startOfPreviousCharacter(buffer, before: i)).map(UnicodeClasses.isWordCharacter) ?? false
    }

    private static func firstCharacterIsWord(_ buffer: UnsafeBufferPointer<UInt8>, from i: Int) -> Bool {
        scalar(buffer, at: i).map(UnicodeClasses.isWordCharacter) ?? false
    }

    private static func startOfTrailingWhitespace(_ buffer: UnsafeBufferPointer<UInt8>, before i: Int) -> Int {
        var start = i
        while start > 0 {
            let previous = startOfPreviousCharacter(buffer, before: start)
            guard let s = scalar(buffer, at: previous), UnicodeClasses.isWhitespace(s) else { break }
            start = previous
        }
        return start
    }

    private static func endOfLeadingWhitespace(_ buffer: UnsafeBufferPointer<UInt8>, from i: Int) -> Int {
        var end = i
        while end < buffer.count, let s = scalar(buffer, at: end), UnicodeClasses.isWhitespace(s) {
            end += UTF8Width.of(leadByte: buffer[end])
        }
        return end
    }
}
