import Foundation
import Tokenizer

/// Queries, passages, and which passages answer each query: what ``PrecisionComparison``
/// measures a precision on (`bgem3 eval`, and the check behind `--precision auto`).
public struct EvalTexts: Sendable, Decodable {
    public var queries: [String]
    public var passages: [String]
    /// For each query, the indices of its relevant passages.
    public var relevant: [[Int]]

    public init(queries: [String], passages: [String], relevant: [[Int]]) {
        self.queries = queries
        self.passages = passages
        self.relevant = relevant
    }

    /// The built-in set: 20 topics (some in other languages), one query and 5 relevant passages
    /// each, 11,105 XLM-R tokens in all.
    public static let builtIn: EvalTexts = {
        // The resource is part of the build; a decoding failure is a build defect, caught by tests.
        try! EvalTexts(json: Data(PackageResources.eval_texts_json))
    }()

    /// Decodes `{"queries", "passages", "relevant"}` and checks that every relevant index names a passage.
    public init(json: Data) throws {
        self = try JSONDecoder().decode(EvalTexts.self, from: json)
        guard relevant.count == queries.count, relevant.allSatisfy({ $0.allSatisfy { passages.indices.contains($0) } }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription:
                "\"relevant\" must list, for each query, indices of passages (0..<\(passages.count))"))
        }
    }

    /// The texts as token ids, truncated to `maxLength` tokens.
    public func tokenized(by tokenizer: UnigramTokenizer, maxLength: Int = 512) -> EvalSequences {
        let options = EncodeOptions(maxLength: maxLength)
        return EvalSequences(queries: queries.map { tokenizer.encode($0, options: options).ids },
                             passages: passages.map { tokenizer.encode($0, options: options).ids }, relevant: relevant)
    }
}

/// The eval texts as token ids.
public struct EvalSequences: Sendable {
    public var queries: [[Int32]]
    public var passages: [[Int32]]
    public var relevant: [[Int]]

    public init(queries: [[Int32]], passages: [[Int32]], relevant: [[Int]]) {
        self.queries = queries
        self.passages = passages
        self.relevant = relevant
    }

    /// Queries, then passages: the order ``PrecisionComparison`` reads.
    public var all: [[Int32]] { queries + passages }

    public var tokenCount: Int { all.reduce(0) { $0 + $1.count } }

    /// What the start-up check runs: every query and every passage, passages cut to their first
    /// `passageTokens` tokens (the last one kept as the end token). Every topic still competes with
    /// every passage, so the top-10 overlaps keep the full set's resolution, at about half its tokens.
    public func truncatingPassages(to passageTokens: Int) -> EvalSequences {
        var copy = self
        copy.passages = passages.map { $0.count <= passageTokens ? $0 : Array($0.prefix(passageTokens - 1)) + [$0.last!] }
        return copy
    }
}
