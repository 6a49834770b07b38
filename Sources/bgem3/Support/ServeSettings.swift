import ArgumentParser
import Engine
import Scheduling
import Server

/// One `bgem3 serve` setting, declared once: its `--flag`, its `BGE_M3_*` variable, its default,
/// what it accepts and its help. The flags' help, the validation and the settings table of docs/server.md
/// (`bgem3 settings`) all come from these declarations, as TEI's router declares each setting
/// once with its default and help.
struct ServeSetting: Sendable {
    /// What a value must be; the validation and the table read it.
    enum Rule: Sendable {
        case integer(ClosedRange<Int>)
        case number(ClosedRange<Double>)
        case choice([String])
        case text
        case size
    }

    let key: String
    let rule: Rule
    /// The default as written in help and the table ("none" when there is none).
    let defaultText: String
    let help: String
    var valueName: String? = nil
    /// Only a variable, no flag.
    var variableOnly = false

    var variable: String { "BGE_M3_" + key }
    var flag: String { "--" + key.lowercased().replacingOccurrences(of: "_", with: "-") }

    /// What it accepts, in words.
    var accepts: String {
        switch rule {
        case .integer(let range): return "\(range.lowerBound)…\(range.upperBound)"
        case .number(let range): return "\(range.lowerBound)…\(range.upperBound)"
        case .choice(let names): return names.joined(separator: ", ")
        case .text: return "text"
        case .size: return "a size: 4GiB, 3000MB, bytes"
        }
    }

    /// The help swift-argument-parser shows for the flag.
    var argumentHelp: ArgumentHelp {
        ArgumentHelp("\(help) (\(variable), default \(defaultText)).", valueName: valueName)
    }
}

/// Every setting of `bgem3 serve`, in the order `--help` and docs/server.md list them.
enum ServeSettings {
    static let model = ServeSetting(key: "MODEL", rule: .text, defaultText: "BAAI/bge-m3",
                                    help: "A model directory, or a hub id such as BAAI/bge-m3 in the Hugging Face cache or downloaded into it", valueName: "dir|repo")
    static let revision = ServeSetting(key: "REVISION", rule: .text, defaultText: "main", help: "Revision of a hub id: a branch, tag or commit")
    static let cacheDir = ServeSetting(key: "CACHE_DIR", rule: .text, defaultText: "HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub",
                                       help: "Hugging Face cache where hub ids are looked up and downloaded", valueName: "dir")
    static let modelName = ServeSetting(key: "MODEL_NAME", rule: .text, defaultText: "the hub id, or the directory's name",
                                        help: "The model name responses report", variableOnly: true)
    static let bind = ServeSetting(key: "BIND", rule: .text, defaultText: "0.0.0.0:8081", help: "Address to listen on", valueName: "host:port")
    static let threads = ServeSetting(key: "THREADS", rule: .integer(1...1024), defaultText: "the container's CPU quota",
                                      help: "Kernel threads, all workers together")
    static let workers = ServeSetting(
        key: "WORKERS", rule: .integer(1...64), defaultText: "1",
        help: "Batches computed at once, each on THREADS/WORKERS threads and in its own share of the workspace budget, all sharing one copy "
            + "of the weights; more than 1 pays only on many cores (docs/operations.md)")
    static let precision = ServeSetting(
        key: "PRECISION", rule: .choice(PrecisionRequest.choices), defaultText: "auto",
        help: "Matrix-product precision: auto (the fastest that keeps the accuracy gates on the loaded weights, measured at start and cached: "
            + "int8, else bf16 where it runs faster than fp32, else fp32), fp32 (exact parity with FlagEmbedding), bf16 (CPUs with AVX512-BF16) or int8")
    static let attention = ServeSetting(
        key: "ATTENTION", rule: .choice(AttentionChoice.allCases.map(\.rawValue)), defaultText: "auto",
        help: "Attention kernel at int8 and bf16 (fp32 keeps its own, exact either way): auto (\(AttentionChoice.automatic)), "
            + "f32 (int8 or bf16 products with fp32 attention, for a model whose attention int8 costs too much: docs/precisions.md), "
            + "int8, bf16 or blocked (the engine's own fp32 kernel); the precision check measures the reduced precisions with it",
        valueName: "kernel")
    static let maxBatch = ServeSetting(key: "MAX_BATCH", rule: .integer(1...100_000), defaultText: "256", help: "Texts per request")
    static let maxSeqLength = ServeSetting(key: "MAX_SEQ_LENGTH", rule: .integer(2...8192), defaultText: "8192", help: "Tokens per text, <s> and </s> included")
    static let maxTextChars = ServeSetting(key: "MAX_TEXT_CHARS", rule: .integer(1...100_000_000), defaultText: "200000",
                                           help: "Characters per text, checked before tokenising")
    static let maxBodyBytes = ServeSetting(key: "MAX_BODY_BYTES", rule: .integer(1024...(1 << 34)), defaultText: "16777216", help: "Bytes per request body")
    static let tokenIds = ServeSetting(
        key: "TOKEN_IDS", rule: .choice(["reject", "accept"]), defaultText: "reject",
        help: "reject: inputs must be texts, and token ids get a 400 naming the likely cause (LangChain's OpenAIEmbeddings sends tiktoken ids "
            + "unless check_embedding_ctx_length=False); accept: token ids are taken as XLM-R's, as /tokenize returns them")
    static let queueCapacity = ServeSetting(key: "QUEUE_CAPACITY", rule: .integer(1...1_000_000), defaultText: "\(ServerLimits().queueCapacity)",
                                            help: "Requests admitted at once, waiting or working, before 429")
    static let queueTokens = ServeSetting(key: "QUEUE_TOKENS", rule: .integer(2...(1 << 40)), defaultText: "\(ServerLimits().queueTokens)",
                                          help: "Tokens of admitted requests not yet answered before 429; a request with more alone gets 413")
    static let requestTimeoutSecs = ServeSetting(key: "REQUEST_TIMEOUT_SECS", rule: .number(0.001...86_400), defaultText: "60",
                                                 help: "Seconds before a request gets 504")
    static let apiKey = ServeSetting(key: "API_KEY", rule: .text, defaultText: "none", help: "Require 'Authorization: Bearer KEY' (not empty)")
    static let memoryLimit = ServeSetting(key: "MEMORY_LIMIT", rule: .size, defaultText: "the cgroup limit, else MemTotal",
                                          help: "Memory the server may use", valueName: "size")
    static let memorySafety = ServeSetting(key: "MEMORY_SAFETY", rule: .number(0.1...1), defaultText: "0.9", help: "Fraction of the memory limit to plan for")
    static let requestMemoryShare = ServeSetting(
        key: "REQUEST_MEMORY_SHARE", rule: .number(0.05...0.9), defaultText: "\(MemorySettings().requestShare)",
        help: "Fraction of the memory left after the model that requests may hold outside the forward pass (bodies, token ids, results, "
            + "responses being written); the rest is workspace")
    static let probe = ServeSetting(key: "PROBE", rule: .choice(ProbeMode.allCases.map(\.rawValue)), defaultText: "auto",
                                    help: "auto (cached fit, else measure), off (conservative model) or force (measure again)")
    static let probeCacheDir = ServeSetting(key: "PROBE_CACHE_DIR", rule: .text, defaultText: "$XDG_CACHE_HOME/bgem3 or ~/.cache/bgem3",
                                            help: "Directory of cached probe fits and precision checks, shareable between replicas", valueName: "dir")
    static let costA = ServeSetting(key: "COST_A", rule: .number(0...1e12), defaultText: "none", help: "Workspace bytes per token: with COST_B, replaces the probe")
    static let costB = ServeSetting(key: "COST_B", rule: .number(0...1e12), defaultText: "none",
                                    help: "Workspace bytes per token² per sequence: with COST_A, replaces the probe")
    static let idleTimeoutSecs = ServeSetting(key: "IDLE_TIMEOUT_SECS", rule: .number(0...31_536_000), defaultText: "0",
                                              help: "Unload the weights after this many idle seconds, 0 = never; the next request loads them again")
    static let drainSecs = ServeSetting(
        key: "DRAIN_SECS", rule: .number(0...3600), defaultText: "5",
        help: "Seconds between SIGTERM and no longer accepting: /ready fails at once while requests are still served, so that load balancers "
            + "stop routing here first; 0 stops at once")
    static let logFormat = ServeSetting(key: "LOG_FORMAT", rule: .choice(["text", "json"]), defaultText: "text", help: "Log lines as text or JSON")
    static let logLevel = ServeSetting(key: "LOG_LEVEL", rule: .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]),
                                       defaultText: "info", help: "The least severe log level written")

    static let all: [ServeSetting] = [
        model, revision, cacheDir, modelName, bind, threads, workers, precision, attention, maxBatch, maxSeqLength, maxTextChars, maxBodyBytes, tokenIds,
        queueCapacity, queueTokens, requestTimeoutSecs, apiKey, memoryLimit, memorySafety, requestMemoryShare, probe, probeCacheDir,
        costA, costB, idleTimeoutSecs, drainSecs, logFormat, logLevel,
    ]

    /// The settings table of docs/server.md.
    static var markdown: String {
        var lines = ["| variable | flag | accepts | default | what it sets |", "|---|---|---|---|---|"]
        for setting in all {
            let flag = setting.variableOnly ? "—" : "`\(setting.flag)`"
            lines.append("| `\(setting.variable)` | \(flag) | \(setting.accepts) | \(setting.defaultText) | \(setting.help.replacingOccurrences(of: "|", with: "\\|")) |")
        }
        return lines.joined(separator: "\n")
    }
}
