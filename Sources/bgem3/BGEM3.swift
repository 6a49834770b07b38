import ArgumentParser

@main
struct BGEM3: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bgem3",
        abstract: "BGE-M3 embeddings: dense, sparse lexical and ColBERT vectors from one forward pass.",
        discussion: """
            This build has the tokenizer (identical ids and offsets to Hugging Face `tokenizers` for \
            the XLM-R family), the native engine (fp32, int8, and bf16 where the CPU has it; eval \
            measures what each costs in accuracy), the HTTP server (serve) with its memory-aware \
            scheduler and start-up memory probe (probe), and hub downloads.
            """,
        version: BGEM3Version.string,
        subcommands: [ServeCommand.self, DownloadCommand.self, EmbedCommand.self, TokenizeCommand.self, ProbeCommand.self, BenchCommand.self, EvalCommand.self, SynthCommand.self, HealthCommand.self, SettingsCommand.self])
}

enum BGEM3Version {
    static let string = "0.1.0"
}
