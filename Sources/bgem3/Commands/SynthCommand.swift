import ArgumentParser
import Engine
import Foundation
import Tokenizer

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a random-weight model in the exact BGE-M3 layout, for benchmarks.",
        discussion: """
            The directory gets config.json, model.safetensors, sparse_linear.pt, colbert_linear.pt, \
            the tokenizer (copied from --tokenizer) and its token maps, with the names and shapes of \
            BAAI/bge-m3 (preset bge-m3: 24 layers, hidden 1024, 16 heads, FFN 4096, 8194 positions, \
            250,002 pieces; about 2.3 GB) or of the tiny test model (preset tiny). The outputs are \
            meaningless; the speed and memory are those of the real model.

            With --heads-for DIR it instead gives an existing encoder (a BERT or XLM-R model \
            directory without BGE-M3's heads, such as all-MiniLM-L6-v2) random sparse and ColBERT \
            heads: --out gets links to DIR's files plus the two heads, so `bgem3 eval` can measure \
            how a precision changes all three outputs on real encoder weights.
            """)

    @Option(name: .long, help: "bge-m3 or tiny.")
    var preset: String = "bge-m3"

    @Option(name: .long, help: ArgumentHelp("Directory to write (created if needed).", valueName: "dir"))
    var out: String

    @Option(name: .long, help: ArgumentHelp("The tokenizer.json to copy in; its ids must fit the preset's vocabulary (the real XLM-R tokenizer for bge-m3).", valueName: "file"))
    var tokenizer: String?

    @Option(name: .long, help: ArgumentHelp("An encoder directory to give random heads (instead of a preset).", valueName: "dir"))
    var headsFor: String?

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 42

    @Flag(name: .long, help: "Give 4 hidden dimensions the large LayerNorm gains (12-40) and biases (±2-5) of trained BERT/RoBERTa models in every layer, to test quantisation where it is known to break.")
    var outliers = false

    @Option(name: .long, help: "With --outliers: multiply their gains and biases by this (above 1: a stress beyond trained models, for tests of the precision check).")
    var outlierScale: Float = 1

    func validate() throws {
        guard outlierScale > 0, outlierScale.isFinite else { throw ValidationError("--outlier-scale must be a positive number") }
        if outlierScale != 1 && !outliers { throw ValidationError("--outlier-scale needs --outliers") }
        if headsFor != nil && outliers { throw ValidationError("--outliers applies to a preset, not to --heads-for") }
    }

    func run() throws {
        if let headsFor { return try writeHeads(for: URL(fileURLWithPath: headsFor)) }
        guard let tokenizer else { throw ValidationError("give --tokenizer FILE (or --heads-for DIR)") }
        guard let preset = SyntheticModel.Preset(rawValue: preset) else {
            throw ValidationError("unknown preset '\(self.preset)'; use bge-m3 or tiny")
        }
        let tokenizerURL = URL(fileURLWithPath: tokenizer)
        let loaded: UnigramTokenizer
        do { loaded = try UnigramTokenizer(contentsOf: tokenizerURL) } catch { throw CommandFailure(error.description) }
        guard loaded.vocabularySize <= preset.config.vocabularySize else {
            throw CommandFailure("\(tokenizer) has \(loaded.vocabularySize) ids but preset \(preset.rawValue) has a vocabulary of \(preset.config.vocabularySize)")
        }
        let directory = URL(fileURLWithPath: out)
        var bar: ProgressBar?
        try SyntheticModel.write(preset: preset, to: directory, tokenizer: tokenizerURL, seed: seed, outliers: outliers ? SyntheticModel.Outliers.trained.scaled(by: outlierScale) : nil) { written, total in
            if bar == nil { bar = ProgressBar(total: total / 1_000_000, unit: "MB") }
            bar?.update(written / 1_000_000)
        }
        bar?.finish()
        FileHandle.standardError.write(Data("synth: wrote \(preset.rawValue) model\(outliers ? " with outlier dimensions" : "") to \(directory.path)\n".utf8))
    }

    private func writeHeads(for source: URL) throws {
        let config: ModelConfig
        do { config = try ModelConfig(contentsOf: source.appendingPathComponent("config.json")) } catch { throw CommandFailure(error.description) }
        let directory = URL(fileURLWithPath: out)
        let manager = FileManager.default
        try manager.createDirectory(at: directory, withIntermediateDirectories: true)
        let linked = ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "special_tokens_map.json", "tokenizer_config.json"]
        for name in linked where manager.fileExists(atPath: source.appendingPathComponent(name).path) {
            let link = directory.appendingPathComponent(name)
            try? manager.removeItem(at: link)
            try manager.createSymbolicLink(at: link, withDestinationURL: source.appendingPathComponent(name).standardizedFileURL)
        }
        try SyntheticModel.writeHeads(hiddenSize: config.hiddenSize, to: directory, seed: seed)
        FileHandle.standardError.write(Data("synth: linked \(source.path) into \(directory.path) with random heads (hidden \(config.hiddenSize))\n".utf8))
    }
}
