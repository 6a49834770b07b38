import ArgumentParser
import Foundation
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

    private func parseJSONLine(_ line: String, number: Int, defaultMaxLength: Int?, tokenizer: UnigramTokenizer) throws -> (String, Int?) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed])
        } catch {
            throw CommandFailure("line \(number): not valid JSON")
        }
        guard let fields = object as? [String: Any] else { throw CommandFailure("line \(number): expected a JSON object") }
        guard let text = fields["text"] as? String else { throw CommandFailure("line \(number): \"text\" must be a string") }
        var maxLength = defaultMaxLength
        if let value = fields["max_length"], !(value is NSNull) {
            guard let number = value as? NSNumber, let length = Int(exactly: number.doubleValue), !(value is Bool) else {
                throw CommandFailure("line \(number): \"max_length\" must be a whole number")
            }
            try checkMaxLength(length, tokenizer: tokenizer, where: "line \(number): \"max_length\"")
            maxLength = length
        }
        return (text, maxLength)
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
            line += encoding.tokens.map(JSONText.quoted).joined(separator: ",")
            line += "]"
        }
        line += "}\n"
        return line
    }
}

/// JSON string literals for hand-written output lines.
enum JSONText {
    static func quoted(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
