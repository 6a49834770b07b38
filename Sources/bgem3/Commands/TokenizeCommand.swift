import ArgumentParser
import Foundation
import Server
import Tokenizer

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print token ids and offsets, exactly as Hugging Face tokenizers gives them.",
        discussion: """
            Reads standard input (or --input). Plain mode: each line is one text; each output line is \
            {"ids", "offsets", "tokens"}. With --jsonl: each input line is {"text", "max_length"?} and \
            each output line is {"ids", "offsets"}. Offsets are [start, end) in Unicode scalars of the \
            text; special tokens added around it have [0, 0]. Truncation keeps <s> and </s>.
            """)

    @OptionGroup var location: TokenizerLocation

    @Option(name: .long, help: "Keep at most N tokens, special tokens included (a JSON line's max_length wins).")
    var maxLength: Int?

    @Flag(name: .long, help: "Read {\"text\", \"max_length\"?} JSON lines instead of plain text lines.")
    var jsonl = false

    @Option(name: .long, help: ArgumentHelp("Read from this file instead of standard input ('-' is standard input).", valueName: "file"))
    var input: String?

    func run() throws {
        let tokenizer = try location.load()
        if let maxLength { try checkMaxLength(maxLength, tokenizer: tokenizer, where: "--max-length") }
        var lines = try InputLines(path: input)
        var output = try OutputSink(path: nil)
        while let line = try lines.next() {
            let text: String
            var lineMaxLength = maxLength
            if jsonl {
                if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
                (text, lineMaxLength) = try parseJSONLine(line, number: lines.lineNumber, defaultMaxLength: maxLength, tokenizer: tokenizer)
            } else {
                text = line
            }
            let encoding = tokenizer.encode(text, options: EncodeOptions(maxLength: lineMaxLength, includeTokenTexts: !jsonl))
            output.write(render(encoding, withTokens: !jsonl))
        }
        output.flush()
    }

    /// One `--jsonl` input line. Decoded with `JSONDecoder`: `JSONSerialization` on Linux drops a
    /// byte-order mark at the start of a string, which would change the text.
    private struct InputLine: Decodable {
        let text: String
        let max_length: Int?
    }

    private func parseJSONLine(_ line: String, number: Int, defaultMaxLength: Int?, tokenizer: UnigramTokenizer) throws -> (String, Int?) {
        let input: InputLine
        do {
            input = try JSONDecoder().decode(InputLine.self, from: Data(line.utf8))
        } catch DecodingError.keyNotFound(let key, _) {
            throw CommandFailure("line \(number): missing \"\(key.stringValue)\"")
        } catch DecodingError.typeMismatch(_, let context) {
            let field = context.codingPath.last?.stringValue ?? "the line"
            throw CommandFailure("line \(number): \"\(field)\" has the wrong type (text: string, max_length: whole number)")
        } catch {
            throw CommandFailure("line \(number): not a valid JSON object")
        }
        if let length = input.max_length {
            try checkMaxLength(length, tokenizer: tokenizer, where: "line \(number): \"max_length\"")
        }
        return (input.text, input.max_length ?? defaultMaxLength)
    }

    private func checkMaxLength(_ length: Int, tokenizer: UnigramTokenizer, where place: String) throws {
        let minimum = max(1, tokenizer.specialTokenCount)
        guard length >= minimum else {
            throw CommandFailure("\(place) is \(length); it must be at least \(minimum) (room for the special tokens)")
        }
    }

    private func render(_ encoding: Encoding, withTokens: Bool) -> String {
        var line = "{\"ids\":["
        line += encoding.ids.map(String.init).joined(separator: ",")
        line += "],\"offsets\":["
        line += encoding.offsets.map { "[\($0.start),\($0.end)]" }.joined(separator: ",")
        line += "]"
        if withTokens {
            line += ",\"tokens\":["
            line += encoding.tokens.map(JSONOutput.string).joined(separator: ",")
            line += "]"
        }
        line += "}\n"
        return line
    }
}
