import ArgumentParser

/// `--model` and `--threads`, shared by the commands that load a model directory (`embed`, `eval`,
/// `probe`) through `@OptionGroup`. (`serve` takes hub ids too and reads `BGE_M3_*` variables;
/// `bench` may run without a model.)
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The model directory (config.json, weights, tokenizer.json, heads).", valueName: "dir"))
    var model: String

    @Option(name: .long, help: "Threads for the kernels (default: the container's CPU quota).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }
}
