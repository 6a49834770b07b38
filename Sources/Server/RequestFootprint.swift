import Engine

/// What a request holds in memory outside the forward pass, estimated from above before it is
/// spent, for admission (``RequestAdmission``). The forward pass's workspace is the batch
/// scheduler's business (the probe's cost model); these are the bytes that live beside it.
public enum RequestFootprint {
    /// Fixed overhead of one Swift array or string on the heap (header and malloc slack).
    static let perAllocation = 64

    /// Tokeniser working memory per character of the text being tokenised (normalised text, its
    /// alignments, the Unigram lattice and the encoding under construction): `bgem3 tokenize` on
    /// one text of 2.0-2.5 million characters (ASCII, or mixed with CJK and Cyrillic) peaked 47-52 MB
    /// above a one-word text, 19-26 bytes a character with its output line; twice that, for margin.
    /// Texts are tokenised one at a time per tokenising thread, so this is held per thread, not per
    /// request: see ``tokenizerScratch(threads:maxTextCharacters:)``.
    static let tokenizerBytesPerCharacter = 48

    /// What the tokenising threads may hold at once: one text each, at most `maxTextCharacters`.
    static func tokenizerScratch(threads: Int, maxTextCharacters: Int) -> Int {
        threads * maxTextCharacters * tokenizerBytesPerCharacter
    }

    /// A body of `bytes` while it is read and decoded: the buffer it arrives in and the decoder's
    /// peak (Foundation's `JSONDecoder`, measured on 14-17 MB bodies: 1.05 times the body for
    /// texts, 4.1 times for token ids, whose every number is a node), plus the token ids it
    /// becomes (see ``decodedBody(bytes:maxTokens:)``).
    static func body(bytes: Int, maxTokens: Int) -> Int {
        5 * bytes + ids(bytes: bytes, maxTokens: maxTokens)
    }

    /// The same body once decoded: its strings or numbers (at most its size again) and the token
    /// ids being built from it, until the request is answered.
    static func decodedBody(bytes: Int, maxTokens: Int) -> Int {
        bytes + ids(bytes: bytes, maxTokens: maxTokens)
    }

    /// Token ids from a body of `bytes`: at most two tokens for every two bytes of JSON text (a
    /// one-letter word and its space), and at most `maxTokens` in all (texts × max length).
    private static func ids(bytes: Int, maxTokens: Int) -> Int {
        4 * min(maxTokens, bytes)
    }

    /// The results held until the request completes, given each input's (``item(tokens:outputs:dimension:)``),
    /// and the response being written (``JSONBodyStream`` holds about two pieces at a time). The
    /// token ids are counted with the body.
    static func results(items: [Int]) -> Int {
        items.reduce(0) { $0 + perAllocation + $1 } + response
    }

    /// One input's results (only the outputs asked for: a batch shared with other requests drops
    /// the rest as soon as it ends), freed once its part of the response is written.
    public static func item(tokens: Int, outputs: EmbeddingOutputs, dimension: Int) -> Int {
        var bytes = 0
        if outputs.contains(.dense) { bytes += 4 * dimension + 2 * perAllocation }
        if outputs.contains(.sparse) { bytes += 8 * tokens + 3 * perAllocation }
        if outputs.contains(.colbert) { bytes += 4 * dimension * tokens + 2 * perAllocation }
        return bytes
    }

    /// The response being written: two of ``JSONBodyStream``'s pieces and a base64 run.
    static let response = 2 * JSONBodyStream.flushBytes + 64 << 10

    /// `/tokenize`: one text's encoding at a time (id, offsets, special flag and token text, about
    /// 48 bytes a token, at most one token per character plus the two special tokens) and the
    /// response being written.
    static func tokenize(longestText characters: Int) -> Int {
        48 * (characters + 2) + perAllocation + response
    }
}
