import Foundation

extension UnigramTokenizer {
    /// Loads a `tokenizer.json` file.
    public init(contentsOf url: URL) throws(TokenizerLoadError) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .unreadable(path: url.path, reason: (error as NSError).localizedDescription)
        }
        try self.init(json: [UInt8](data), path: url.path)
    }

    /// Loads a tokenizer from the contents of a `tokenizer.json` file; `path` is only used in errors.
    public init(json: [UInt8], path: String = "tokenizer.json") throws(TokenizerLoadError) {
        let root: JSONObject
        do {
            guard let object = try JSONParser.parse(json).object else {
                throw TokenizerLoadError.invalidJSON(path: path, reason: "the document is not a JSON object")
            }
            root = object
        } catch let error as JSONSyntaxError {
            throw .invalidJSON(path: path, reason: error.description)
        } catch let error as TokenizerLoadError {
            throw error
        } catch {
            throw .invalidJSON(path: path, reason: "\(error)")
        }
        let model = try Self.loadModel(root["model"])
        let normalizer = try Self.loadNormalizer(root["normalizer"], field: "normalizer")
        let preTokenizer = try Self.loadPreTokenizer(root["pre_tokenizer"], field: "pre_tokenizer")
        let added = try Self.loadAddedTokens(root["added_tokens"])
        let template = try Self.loadPostProcessor(root["post_processor"], field: "post_processor")

        var raw: [AddedToken] = []
        var normalized: [AddedToken] = []
        var normalizedPatterns: [[UInt8]] = []
        for token in added {
            if token.normalized {
                var text = NormalizedText(utf8: ArraySlice(token.content.utf8), firstScalar: 0)
                normalizer?.normalize(&text)
                guard !text.isEmpty else { continue }
                normalized.append(token)
                normalizedPatterns.append(text.bytes)
            } else {
                raw.append(token)
            }
        }
        var maxLength: Int?
        if let truncation = root["truncation"], !truncation.isNull {
            guard let length = truncation.object?["max_length"]?.integer, length >= template.addedCount else {
                throw .invalidField(field: "truncation.max_length", reason: "must be a whole number of at least \(template.addedCount)")
            }
            maxLength = length
        }
        self.init(
            normalizer: normalizer,
            preTokenizer: preTokenizer,
            model: model,
            rawAddedTokens: AddedTokenMatcher(tokens: raw, patterns: raw.map { Array($0.content.utf8) }),
            normalizedAddedTokens: AddedTokenMatcher(tokens: normalized, patterns: normalizedPatterns),
            template: template,
            addedTokensByID: Dictionary(added.map { ($0.id, $0.content) }, uniquingKeysWith: { _, last in last }),
            configuredMaxLength: maxLength)
    }

    // MARK: - Model

    private static func loadModel(_ value: JSONValue?) throws(TokenizerLoadError) -> UnigramModel {
        guard let object = value?.object else { throw .invalidField(field: "model", reason: "is missing or not an object") }
        let type = object["type"]?.string ?? (object["vocab"]?.array != nil ? "Unigram" : "unknown")
        guard type == "Unigram" else { throw .unsupported(component: "model", type: type) }
        guard let vocab = object["vocab"]?.array, !vocab.isEmpty else {
            throw .invalidField(field: "model.vocab", reason: "must be a non-empty array of [piece, score] pairs")
        }
        var pieces: [String] = []
        var scores: [Double] = []
        pieces.reserveCapacity(vocab.count)
        scores.reserveCapacity(vocab.count)
        for (index, entry) in vocab.enumerated() {
            guard let pair = entry.array, pair.count == 2, let piece = pair[0].string, let score = pair[1].number, score.isFinite else {
                throw .invalidField(field: "model.vocab[\(index)]", reason: "must be a [string, finite number] pair")
            }
            pieces.append(piece)
            scores.append(score)
        }
        guard let unknown = object["unk_id"]?.integer, unknown >= 0, unknown < pieces.count else {
            throw .invalidField(field: "model.unk_id", reason: "must be an id inside the vocabulary (0..<\(pieces.count))")
        }
        var byteFallback = false
        if let value = object["byte_fallback"], !value.isNull {
            guard let flag = value.bool else { throw .invalidField(field: "model.byte_fallback", reason: "must be a boolean") }
            byteFallback = flag
        }
        return UnigramModel(pieces: pieces, scores: scores, unknownID: Int32(unknown), byteFallback: byteFallback)
    }

    // MARK: - Normalizers

    private static func loadNormalizer(_ value: JSONValue?, field: String) throws(TokenizerLoadError) -> (any TextNormalizer)? {
        guard let value, !value.isNull else { return nil }
        guard let object = value.object, let type = object["type"]?.string else {
            throw .invalidField(field: field, reason: "must be null or an object with a \"type\"")
        }
        switch type {
        case "Sequence":
            guard let list = object["normalizers"]?.array else {
                throw .invalidField(field: field + ".normalizers", reason: "must be an array")
            }
            var steps: [any TextNormalizer] = []
            for (index, item) in list.enumerated() {
                if let step = try loadNormalizer(item, field: "\(field).normalizers[\(index)]") { steps.append(step) }
            }
            return NormalizerSequence(steps: steps)
        case "Precompiled":
            guard let encoded = object["precompiled_charsmap"]?.string else {
                throw .invalidField(field: field + ".precompiled_charsmap", reason: "must be a base64 string")
            }
            guard let blob = Data(base64Encoded: encoded) else {
                throw .invalidCharsmap("\(field).precompiled_charsmap is not valid base64")
            }
            return PrecompiledNormalizer(charsmap: try PrecompiledCharsmap(blob: [UInt8](blob)))
        case "Replace":
            let pattern = try TextPattern.parse(object["pattern"], field: field + ".pattern")
            guard let content = object["content"]?.string else {
                throw .invalidField(field: field + ".content", reason: "must be a string")
            }
            return ReplaceNormalizer(pattern: pattern, content: Array(content.utf8))
        case "Strip":
            return StripNormalizer(
                left: try optionalBool(object, "strip_left", field: field, default: true),
                right: try optionalBool(object, "strip_right", field: field, default: true))
        case "Prepend":
            guard let prefix = object["prepend"]?.string else {
                throw .invalidField(field: field + ".prepend", reason: "must be a string")
            }
            return PrependNormalizer(prefix: Array(prefix.utf8))
        case "NFKC":
            return NFKCNormalizer()
        default:
            throw .unsupported(component: "normalizer", type: type)
        }
    }

    // MARK: - Pre-tokenizer

    private static func loadPreTokenizer(_ value: JSONValue?, field: String) throws(TokenizerLoadError) -> MetaspacePreTokenizer? {
        guard let value, !value.isNull else { return nil }
        guard let object = value.object, let type = object["type"]?.string else {
            throw .invalidField(field: field, reason: "must be null or an object with a \"type\"")
        }
        if type == "Sequence", let list = object["pretokenizers"]?.array, list.count == 1 {
            return try loadPreTokenizer(list[0], field: field + ".pretokenizers[0]")
        }
        guard type == "Metaspace" else { throw .unsupported(component: "pre_tokenizer", type: type) }
        guard let replacement = object["replacement"]?.string, replacement.unicodeScalars.count == 1 else {
            throw .invalidField(field: field + ".replacement", reason: "must be a single character")
        }
        var scheme = PrependScheme.always
        if let value = object["prepend_scheme"], !value.isNull {
            guard let name = value.string, let parsed = PrependScheme(rawValue: name) else {
                throw .invalidField(field: field + ".prepend_scheme", reason: "must be \"always\", \"first\" or \"never\"")
            }
            scheme = parsed
        }
        if let value = object["add_prefix_space"], !value.isNull {
            guard let addPrefixSpace = value.bool else {
                throw .invalidField(field: field + ".add_prefix_space", reason: "must be a boolean")
            }
            let declared = object["prepend_scheme"].flatMap { $0.isNull ? nil : $0 } != nil
            if !addPrefixSpace {
                if declared && scheme != .never {
                    throw .invalidField(field: field + ".add_prefix_space", reason: "is false but prepend_scheme is \"\(scheme.rawValue)\"")
                }
                scheme = .never
            }
        }
        let split = try optionalBool(object, "split", field: field, default: true)
        return MetaspacePreTokenizer(replacement: Array(replacement.utf8), prependScheme: scheme, split: split)
    }

    // MARK: - Added tokens and post-processor

    private static func loadAddedTokens(_ value: JSONValue?) throws(TokenizerLoadError) -> [AddedToken] {
        guard let value, !value.isNull else { return [] }
        guard let list = value.array else { throw .invalidField(field: "added_tokens", reason: "must be an array") }
        var tokens: [AddedToken] = []
        for (index, item) in list.enumerated() {
            let field = "added_tokens[\(index)]"
            guard let object = item.object, let id = object["id"]?.integer, id >= 0, id <= Int(Int32.max),
                  let content = object["content"]?.string else {
                throw .invalidField(field: field, reason: "must be an object with a non-negative \"id\" and a \"content\" string")
            }
            guard !content.isEmpty else { continue }
            tokens.append(AddedToken(
                id: Int32(id), content: content,
                singleWord: try optionalBool(object, "single_word", field: field, default: false),
                leftStrip: try optionalBool(object, "lstrip", field: field, default: false),
                rightStrip: try optionalBool(object, "rstrip", field: field, default: false),
                normalized: try optionalBool(object, "normalized", field: field, default: true),
                special: try optionalBool(object, "special", field: field, default: false)))
        }
        return tokens
    }

    private static func loadPostProcessor(_ value: JSONValue?, field: String) throws(TokenizerLoadError) -> SpecialTokenTemplate {
        guard let value, !value.isNull else { return .none }
        guard let object = value.object, let type = object["type"]?.string else {
            throw .invalidField(field: field, reason: "must be null or an object with a \"type\"")
        }
        switch type {
        case "TemplateProcessing":
            guard let single = object["single"]?.array else {
                throw .invalidField(field: field + ".single", reason: "must be an array")
            }
            let specials = object["special_tokens"]?.object ?? JSONObject()
            var prefix: [(id: Int32, token: String)] = []
            var suffix: [(id: Int32, token: String)] = []
            var seenSequence = false
            for (index, item) in single.enumerated() {
                let itemField = "\(field).single[\(index)]"
                if let sequence = item.object?["Sequence"]?.object {
                    guard sequence["id"]?.string == "A", !seenSequence else {
                        throw .invalidField(field: itemField, reason: "must be the single sequence \"A\"")
                    }
                    seenSequence = true
                } else if let name = item.object?["SpecialToken"]?.object?["id"]?.string {
                    guard let entry = specials[name]?.object, let ids = entry["ids"]?.array, let tokens = entry["tokens"]?.array,
                          ids.count == tokens.count else {
                        throw .invalidField(field: "\(field).special_tokens.\(name)", reason: "must give matching \"ids\" and \"tokens\"")
                    }
                    for (id, token) in zip(ids, tokens) {
                        guard let id = id.integer, let token = token.string else {
                            throw .invalidField(field: "\(field).special_tokens.\(name)", reason: "has a malformed id or token")
                        }
                        if seenSequence { suffix.append((Int32(id), token)) } else { prefix.append((Int32(id), token)) }
                    }
                } else {
                    throw .invalidField(field: itemField, reason: "must be a {\"Sequence\": …} or {\"SpecialToken\": …} item")
                }
            }
            guard seenSequence else { throw .invalidField(field: field + ".single", reason: "never mentions the sequence \"A\"") }
            return SpecialTokenTemplate(prefix: prefix, suffix: suffix)
        case "RobertaProcessing", "BertProcessing":
            guard let cls = object["cls"]?.array, cls.count == 2, let clsToken = cls[0].string, let clsID = cls[1].integer,
                  let sep = object["sep"]?.array, sep.count == 2, let sepToken = sep[0].string, let sepID = sep[1].integer else {
                throw .invalidField(field: field, reason: "must give \"cls\" and \"sep\" as [token, id] pairs")
            }
            return SpecialTokenTemplate(prefix: [(Int32(clsID), clsToken)], suffix: [(Int32(sepID), sepToken)])
        default:
            throw .unsupported(component: "post_processor", type: type)
        }
    }

    private static func optionalBool(_ object: JSONObject, _ key: String, field: String, default defaultValue: Bool) throws(TokenizerLoadError) -> Bool {
        guard let value = object[key], !value.isNull else { return defaultValue }
        guard let flag = value.bool else { throw .invalidField(field: "\(field).\(key)", reason: "must be a boolean") }
        return flag
    }
}
