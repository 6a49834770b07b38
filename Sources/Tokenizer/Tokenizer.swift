/// Turns text into token ids: the seam the engine, the server and the command line see.
public protocol Tokenizer: Sendable {
    /// Encodes one text. Never fails: any valid Swift string has an encoding.
    func encode(_ text: String, options: EncodeOptions) -> Encoding
    /// Number of ids the model's embedding table must cover.
    var vocabularySize: Int { get }
    /// The piece or added token with this id.
    func token(forID id: Int32) -> String?
    /// How many special tokens ``EncodeOptions/addSpecialTokens`` adds around one text.
    var specialTokenCount: Int { get }
}

extension Tokenizer {
    /// Encodes with special tokens and no length limit.
    public func encode(_ text: String) -> Encoding {
        encode(text, options: EncodeOptions())
    }
}
