import ArgumentParser
import Foundation
import Tokenizer

/// The `--tokenizer FILE | --model DIR` pair shared by commands that only need a tokenizer.
struct TokenizerLocation: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A tokenizer.json file.", valueName: "file"))
    var tokenizer: String?

    @Option(name: .long, help: ArgumentHelp("A model directory holding tokenizer.json (used when --tokenizer is not given).", valueName: "dir"))
    var model: String?

    func validate() throws {
        if tokenizer == nil && model == nil {
            throw ValidationError("give --tokenizer FILE or --model DIR")
        }
    }

    var fileURL: URL {
        if let tokenizer { return URL(fileURLWithPath: tokenizer) }
        return URL(fileURLWithPath: model ?? ".").appendingPathComponent("tokenizer.json")
    }

    func load() throws -> UnigramTokenizer {
        do {
            return try UnigramTokenizer(contentsOf: fileURL)
        } catch {
            throw CommandFailure(error.description)
        }
    }
}

/// A failure the user can act on: printed as `error: message`, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
