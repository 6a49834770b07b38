/// The tokens of one text.
public struct Encoding: Sendable, Equatable {
    /// Token ids, special tokens included.
    public var ids: [Int32]
    /// Where each token came from in the original text, in Unicode scalar positions;
    /// `(0, 0)` for special tokens the template added.
    public var offsets: [TextSpan]
    /// Whether each token is a special token (added by the template, or a special added token
    /// written in the text).
    public var specialTokensMask: [Bool]
    /// Each token's text as the tokenizer saw it (normalised), when asked for; else empty.
    public var tokens: [String]
    /// How many tokens the text had before truncation, special tokens included.
    public var untruncatedCount: Int

    /// Whether tokens were dropped to respect the maximum length.
    public var isTruncated: Bool { untruncatedCount > ids.count }

    public init(ids: [Int32], offsets: [TextSpan], specialTokensMask: [Bool], tokens: [String], untruncatedCount: Int) {
        self.ids = ids
        self.offsets = offsets
        self.specialTokensMask = specialTokensMask
        self.tokens = tokens
        self.untruncatedCount = untruncatedCount
    }
}

/// How to encode a text.
public struct EncodeOptions: Sendable, Equatable {
    /// Wrap the tokens in the template's special tokens (`<s> … </s>`).
    public var addSpecialTokens: Bool
    /// Keep at most this many tokens, special tokens included, dropping from the right.
    /// Must be at least the number of special tokens the template adds; nil means no limit.
    public var maxLength: Int?
    /// Fill ``Encoding/tokens`` with each token's text.
    public var includeTokenTexts: Bool

    public init(addSpecialTokens: Bool = true, maxLength: Int? = nil, includeTokenTexts: Bool = false) {
        self.addSpecialTokens = addSpecialTokens
        self.maxLength = maxLength
        self.includeTokenTexts = includeTokenTexts
    }
}
