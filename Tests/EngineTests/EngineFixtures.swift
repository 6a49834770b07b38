import Engine
import Foundation
import TestSupport
import Testing
import Tokenizer

/// Test data of the engine suites: the tiny BGE-M3-layout model and its FlagEmbedding goldens.
enum EngineFixtures {
    static let tinyModel = RepositoryFixtures.tinyModel

    /// Loaded once and shared by the suites (a model runs one batch at a time).
    static let model: Result<BGEM3Model, any Error> = Result { try BGEM3Model(directory: tinyModel, threads: 2) }

    struct Case: Decodable, Sendable {
        let text: String
        let max_length: Int
        let input_ids: [Int32]
        let dense: [Float]
        let sparse: [String: Float]
        let colbert: [[Float]]
    }

    struct Scores: Decodable, Sendable {
        let pairs: [[String]]
        let max_passage_length: Int
        let weights: [Float]
        let colbert: [Float]
        let sparse: [Float]
        let dense: [Float]
        let sparseDense: [Float]
        let all: [Float]

        enum CodingKeys: String, CodingKey {
            case pairs, max_passage_length, weights, colbert, sparse, dense
            case sparseDense = "sparse+dense"
            case all = "colbert+sparse+dense"
        }
    }

    struct Golden: Decodable, Sendable {
        let cases: [Case]
        let scores: Scores
    }

    static let golden: Golden? = {
        guard let data = try? Data(contentsOf: RepositoryFixtures.golden("tiny-model-public.json")) else { return nil }
        return try? JSONDecoder().decode(Golden.self, from: data)
    }()

    /// A scratch copy of the tiny model directory (symbolic links), to edit or remove files in;
    /// the caller removes the directory.
    static func scratchModel(excluding excluded: Set<String> = []) throws -> URL {
        try ScratchDirectory.linkedModel(excluding: excluded).url
    }
}

func maxAbsoluteDifference(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
