/// Why a `tokenizer.json` could not be loaded. Every case names what to fix.
public enum TokenizerLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be read.
    case unreadable(path: String, reason: String)
    /// The file is not valid JSON (for example, truncated).
    case invalidJSON(path: String, reason: String)
    /// A required field is absent or has the wrong type; `field` is a JSON path such as `model.vocab`.
    case invalidField(field: String, reason: String)
    /// A component type this tokenizer does not implement (it is never silently ignored).
    case unsupported(component: String, type: String)
    /// The Precompiled normaliser's `precompiled_charsmap` is not a valid charsmap.
    case invalidCharsmap(String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "cannot read tokenizer file \(path): \(reason)"
        case .invalidJSON(let path, let reason):
            return "tokenizer file \(path) is not valid JSON: \(reason)"
        case .invalidField(let field, let reason):
            return "tokenizer.json field `\(field)` \(reason)"
        case .unsupported(let component, let type):
            return "tokenizer.json uses \(component) type \"\(type)\", which bgem3 does not implement"
        case .invalidCharsmap(let reason):
            return "the Precompiled normalizer's precompiled_charsmap is corrupt: \(reason)"
        }
    }
}
