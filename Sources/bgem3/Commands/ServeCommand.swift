import ArgumentParser
import Engine
import Foundation
import Logging
import ModelHub
import Scheduling
import Server

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve embeddings over HTTP (SPEC §3): OpenAI-compatible /v1/embeddings, /v1/m3/embeddings and more.",
        discussion: """
            Every option can also be set with its BGE_M3_* variable (the flag wins), e.g. BGE_M3_BIND, \
            BGE_M3_MODEL, BGE_M3_MAX_BATCH. The server listens at once and loads the model in the \
            background: /ready answers 503 until it is loaded, and requests that arrive meanwhile wait \
            for it within their deadline. On SIGTERM /ready fails at once and requests are still \
            served for --drain-secs (load balancers stop routing here meanwhile); then the server stops \
            accepting, lets requests in flight finish, and exits 0 (SIGINT skips the drain). Every \
            request is admitted within the memory budget before its body is read: what it holds \
            (body, results, the response being written) is reserved first, and responses are \
            streamed. --model takes a directory or a hub id; a hub id missing from \
            the Hugging Face cache is downloaded first (HF_ENDPOINT, HF_TOKEN; HF_HUB_OFFLINE=1 forbids it).
            """)

    @Option(name: .long, help: ArgumentHelp("A model directory, or a hub id such as BAAI/bge-m3 in the Hugging Face cache or downloaded into it (BGE_M3_MODEL, default BAAI/bge-m3).", valueName: "dir|repo")) var model: String?
    @Option(name: .long, help: "Revision of a hub id: a branch, tag or commit (BGE_M3_REVISION, default main).") var revision: String?
    @Option(name: .long, help: ArgumentHelp("Hugging Face cache where hub ids are looked up and downloaded (BGE_M3_CACHE_DIR; default HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub).", valueName: "dir")) var cacheDir: String?
    @Option(name: .long, help: ArgumentHelp("Address to listen on (BGE_M3_BIND, default 0.0.0.0:8081).", valueName: "host:port")) var bind: String?
    @Option(name: .long, help: "Kernel threads (BGE_M3_THREADS; default: the container's CPU quota).") var threads: Int?
    @Option(name: .long, help: "Matrix-product precision: auto (the fastest that passes the accuracy gates on the loaded weights, measured at start and cached: int8, else bf16 where the CPU has it, else fp32), fp32 (exact parity with FlagEmbedding), bf16 (CPUs with AVX512-BF16; refused elsewhere, naming the feature) or int8 (BGE_M3_PRECISION, default auto; `bgem3 eval` measures the cost).") var precision: String?
    @Option(name: .long, help: "Texts per request, 1...100000 (BGE_M3_MAX_BATCH, default 256).") var maxBatch: Int?
    @Option(name: .long, help: "Tokens per text, 2...8192 (BGE_M3_MAX_SEQ_LENGTH, default 8192).") var maxSeqLength: Int?
    @Option(name: .long, help: "Characters per text, checked before tokenising (BGE_M3_MAX_TEXT_CHARS, default 200000).") var maxTextChars: Int?
    @Option(name: .long, help: "Bytes per request body (BGE_M3_MAX_BODY_BYTES, default 16777216).") var maxBodyBytes: Int?
    @Option(name: .long, help: "Requests admitted at once, waiting or working, before 429 (BGE_M3_QUEUE_CAPACITY, default \(ServerLimits().queueCapacity)).") var queueCapacity: Int?
    @Option(name: .long, help: "Tokens of admitted requests not yet answered before 429; a request with more alone gets 413 (BGE_M3_QUEUE_TOKENS, default \(ServerLimits().queueTokens)).") var queueTokens: Int?
    @Option(name: .long, help: "Seconds before a request gets 504 (BGE_M3_REQUEST_TIMEOUT_SECS, default 60).") var requestTimeoutSecs: Double?
    @Option(name: .long, help: "Require 'Authorization: Bearer KEY' (BGE_M3_API_KEY).") var apiKey: String?
    @Option(name: .long, help: "reject: inputs must be texts, and token ids get a 400 naming the likely cause (LangChain's OpenAIEmbeddings sends tiktoken ids unless check_embedding_ctx_length=False); accept: token ids are taken as XLM-R's, as /tokenize returns them (BGE_M3_TOKEN_IDS, default reject).") var tokenIds: String?
    @Option(name: .long, help: ArgumentHelp("Memory the server may use, e.g. 4GiB or 3000MB (BGE_M3_MEMORY_LIMIT; default: the cgroup limit, else MemTotal).", valueName: "size")) var memoryLimit: String?
    @Option(name: .long, help: "Fraction of the memory limit to plan for, 0.1...1 (BGE_M3_MEMORY_SAFETY, default 0.9).") var memorySafety: Double?
    @Option(name: .long, help: "Fraction of the memory left after the model that requests may hold outside the forward pass (bodies, token ids, results, responses being written), 0.05...0.9; the rest is workspace (BGE_M3_REQUEST_MEMORY_SHARE, default \(MemorySettings().requestShare)).") var requestMemoryShare: Double?
    @Option(name: .long, help: "auto (cached fit, else measure), off (conservative model) or force (measure again) (BGE_M3_PROBE, default auto).") var probe: String?
    @Option(name: .long, help: ArgumentHelp("Directory of cached probe fits, shareable between replicas (BGE_M3_PROBE_CACHE_DIR, default $XDG_CACHE_HOME/bgem3 or ~/.cache/bgem3).", valueName: "dir")) var probeCacheDir: String?
    @Option(name: .long, help: "Workspace bytes per token: with --cost-b, replaces the probe (BGE_M3_COST_A).") var costA: Double?
    @Option(name: .long, help: "Workspace bytes per token² per sequence: with --cost-a, replaces the probe (BGE_M3_COST_B).") var costB: Double?
    @Option(name: .long, help: "Unload the weights after this many idle seconds, 0 = never; the next request loads them again (BGE_M3_IDLE_TIMEOUT_SECS, default 0).") var idleTimeoutSecs: Double?
    @Option(name: .long, help: "Seconds between SIGTERM and no longer accepting: /ready fails at once while requests are still served, so that load balancers stop routing here first; 0 stops at once (BGE_M3_DRAIN_SECS, default 5).") var drainSecs: Double?
    @Option(name: .long, help: "text or json (BGE_M3_LOG_FORMAT, default text).") var logFormat: String?
    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical (BGE_M3_LOG_LEVEL, default info).") var logLevel: String?

    func run() async throws {
        let settings = Settings(environment: ProcessInfo.processInfo.environment)
        let format = try settings.choice(logFormat, "LOG_FORMAT", default: "text", allowed: ["text", "json"])
        let levelName = try settings.choice(logLevel, "LOG_LEVEL", default: "info", allowed: Logger.Level.allCases.map(\.rawValue))
        let level = Logger.Level(rawValue: levelName)!
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "bgem3")
        ServerMetrics.bootstrap()

        let modelArgument = model ?? settings.string("MODEL") ?? "BAAI/bge-m3"
        let revisionName = revision ?? settings.string("REVISION") ?? "main"
        let environment = ProcessInfo.processInfo.environment
        var locator = ModelLocator(environment: environment)
        if let cache = cacheDir ?? settings.string("CACHE_DIR") { locator = ModelLocator(cacheDirectory: URL(fileURLWithPath: cache)) }
        let modelURL: URL
        do {
            modelURL = try locator.locate(modelArgument, revision: revisionName)
        } catch let error where error.isUnusableName {
            throw CommandFailure(error.description)
        } catch {
            // Not in the cache: download it on first use, unless told to stay offline.
            guard environment["HF_HUB_OFFLINE"] != "1" else {
                throw CommandFailure("\(error.description); HF_HUB_OFFLINE=1 forbids downloading it (give --model DIR)")
            }
            logger.info("downloading", metadata: ["model": .string(modelArgument), "revision": .string(revisionName)])
            do {
                modelURL = try await DownloadCommand.fetch(modelArgument, revision: revisionName, cacheDirectory: locator.cacheDirectory.path,
                                                          environment: environment)
            } catch {
                throw CommandFailure("\(modelArgument) is not in the Hugging Face cache and could not be downloaded: \(error); give --model DIR with a local model directory")
            }
        }
        let modelPath = modelURL.path
        let (host, port) = try settings.address(bind, default: "0.0.0.0:8081")
        var limits = ServerLimits()
        limits.maxBatch = try settings.integer(maxBatch, "MAX_BATCH", default: limits.maxBatch, range: 1...100_000)
        limits.maxSequenceLength = try settings.integer(maxSeqLength, "MAX_SEQ_LENGTH", default: limits.maxSequenceLength, range: 2...8192)
        limits.maxTextCharacters = try settings.integer(maxTextChars, "MAX_TEXT_CHARS", default: limits.maxTextCharacters, range: 1...100_000_000)
        limits.maxBodyBytes = try settings.integer(maxBodyBytes, "MAX_BODY_BYTES", default: limits.maxBodyBytes, range: 1024...(1 << 34))
        limits.queueCapacity = try settings.integer(queueCapacity, "QUEUE_CAPACITY", default: limits.queueCapacity, range: 1...1_000_000)
        limits.queueTokens = try settings.integer(queueTokens, "QUEUE_TOKENS", default: limits.queueTokens, range: 2...(1 << 40))
        limits.requestTimeoutSeconds = try settings.double(requestTimeoutSecs, "REQUEST_TIMEOUT_SECS", default: limits.requestTimeoutSeconds, range: 0.001...86_400)
        limits.apiKey = try settings.apiKey(apiKey)
        limits.acceptsTokenIDs = try settings.choice(tokenIds, "TOKEN_IDS", default: "reject", allowed: ["reject", "accept"]) == "accept"
        limits.modelName = settings.string("MODEL_NAME") ?? (modelArgument.contains("/") && !FileManager.default.fileExists(atPath: modelArgument)
            ? modelArgument : URL(fileURLWithPath: modelPath).lastPathComponent)
        let threadCount: Int? = threads != nil || settings.string("THREADS") != nil
            ? try settings.integer(threads, "THREADS", default: 1, range: 1...1024) : nil

        let memory = try settings.memory(limit: memoryLimit, safety: memorySafety, requestShare: requestMemoryShare, probe: probe, cacheDirectory: probeCacheDir,
                                         costA: costA, costB: costB)
        let drain = try settings.double(drainSecs, "DRAIN_SECS", default: 5, range: 0...3600)
        var scheduling = SchedulerSettings()
        scheduling.requestTimeout = .milliseconds(Int64(limits.requestTimeoutSeconds * 1000))
        let idle = try settings.double(idleTimeoutSecs, "IDLE_TIMEOUT_SECS", default: 0, range: 0...31_536_000)
        scheduling.idleTimeout = idle > 0 ? .milliseconds(Int64(idle * 1000)) : nil

        let precisionName = try settings.choice(precision, "PRECISION", default: "auto", allowed: PrecisionRequest.choices)
        let requested = PrecisionChoice(argument: precisionName)!
        try requested.validate()
        logger.info("precision", metadata: ["requested": .string(precisionName), "isa": .string(OneDNNRuntime.effectiveISA),
                                            "vnni": .stringConvertible(OneDNNRuntime.hasVNNI),
                                            "avx512_bf16": .stringConvertible(Precision.bf16.unsupportedReason == nil),
                                            "int8_levels": .string(Int8Levels.forThisCPU.description)])

        try await EmbeddingServer(host: host, port: port, modelDirectory: URL(fileURLWithPath: modelPath), threads: threadCount,
                                  precision: requested.request, limits: limits, memory: memory, scheduling: scheduling,
                                  drainDelay: .milliseconds(Int64(drain * 1000)), version: BGEM3Version.string, logger: logger).run()
    }
}

/// Settings from a flag or a `BGE_M3_*` variable, validated with errors naming both.
struct Settings {
    let environment: [String: String]

    func string(_ name: String) -> String? {
        environment["BGE_M3_" + name].flatMap { $0.isEmpty ? nil : $0 }
    }

    func integer(_ flag: Int?, _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        let source = flag.map { ($0, "--" + name.lowercased().replacingOccurrences(of: "_", with: "-")) }
            ?? string(name).map { (Int($0) ?? Int.min, "BGE_M3_\(name)=\($0)") }
        guard let (number, origin) = source else { return value }
        guard range.contains(number) else {
            throw ValidationError("\(origin) must be a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    func double(_ flag: Double?, _ name: String, default value: Double, range: ClosedRange<Double>) throws -> Double {
        let source = flag.map { ($0, "--" + name.lowercased().replacingOccurrences(of: "_", with: "-")) }
            ?? string(name).map { (Double($0) ?? .nan, "BGE_M3_\(name)=\($0)") }
        guard let (number, origin) = source else { return value }
        guard range.contains(number) else { throw ValidationError("\(origin) must be a number in \(range.lowerBound)...\(range.upperBound)") }
        return number
    }

    func choice(_ flag: String?, _ name: String, default value: String, allowed: [String]) throws -> String {
        guard let given = flag ?? string(name) else { return value }
        guard allowed.contains(given) else {
            throw ValidationError("\(flag != nil ? "--" + name.lowercased().replacingOccurrences(of: "_", with: "-") : "BGE_M3_" + name) must be one of \(allowed.joined(separator: ", ")), not \(given)")
        }
        return given
    }

    /// The memory settings of SPEC §5. A `--memory-limit` flag is handed on as
    /// `BGE_M3_MEMORY_LIMIT`, which ``MemoryLimit/detect(environment:root:procSelfCgroup:memInfo:)`` reads.
    func memory(limit: String?, safety: Double?, requestShare: Double?, probe: String?, cacheDirectory: String?, costA: Double?,
                costB: Double?) throws -> MemorySettings {
        var memory = MemorySettings()
        // 0 would load the model and then have no room for any request: refused here, naming it.
        if let limit {
            guard let bytes = MemoryLimit.parseSize(limit), bytes > 0 else {
                throw ValidationError("--memory-limit must be a size above 0 such as 4GiB, 3000MB or 3221225472, not \(limit)")
            }
            setenv("BGE_M3_MEMORY_LIMIT", String(bytes), 1)
        } else if let value = string("MEMORY_LIMIT"), (MemoryLimit.parseSize(value) ?? 0) <= 0 {
            throw ValidationError("BGE_M3_MEMORY_LIMIT must be a size above 0 such as 4GiB, 3000MB or 3221225472, not \(value)")
        }
        memory.safety = try double(safety, "MEMORY_SAFETY", default: memory.safety, range: 0.1...1)
        memory.requestShare = try double(requestShare, "REQUEST_MEMORY_SHARE", default: memory.requestShare, range: 0.05...0.9)
        memory.probe = ProbeMode(rawValue: try choice(probe, "PROBE", default: "auto", allowed: ProbeMode.allCases.map(\.rawValue)))!
        let a = try costA.map { $0 } ?? string("COST_A").map { value in
            guard let number = Double(value) else { throw ValidationError("BGE_M3_COST_A must be a number of bytes, not \(value)") }
            return number
        }
        let b = try costB.map { $0 } ?? string("COST_B").map { value in
            guard let number = Double(value) else { throw ValidationError("BGE_M3_COST_B must be a number of bytes, not \(value)") }
            return number
        }
        switch (a, b) {
        case (nil, nil): break
        case let (a?, b?):
            guard a.isFinite, b.isFinite, a >= 0, b >= 0, a + b > 0 else {
                throw ValidationError("BGE_M3_COST_A and BGE_M3_COST_B must be finite, >= 0 and not both 0 (got \(a), \(b))")
            }
            memory.costOverride = CostModel(a: a, b: b)
        default:
            throw ValidationError("set both BGE_M3_COST_A and BGE_M3_COST_B (or --cost-a and --cost-b), or neither")
        }
        memory.cacheDirectory = cacheDirectory.map { URL(fileURLWithPath: $0) } ?? ProbeCache.defaultDirectory(environment: environment)
        return memory
    }

    /// `--api-key` / `BGE_M3_API_KEY`. An empty key is refused rather than read as "no key": a
    /// deployment that sets the variable from a missing secret would otherwise run without
    /// authentication and not say so.
    func apiKey(_ flag: String?) throws -> String? {
        if let flag {
            guard !flag.isEmpty else { throw ValidationError("--api-key must not be empty; leave it out to serve without authentication") }
            return flag
        }
        guard let value = environment["BGE_M3_API_KEY"] else { return nil }
        guard !value.isEmpty else {
            throw ValidationError("BGE_M3_API_KEY is set but empty; unset it to serve without authentication, or give the key")
        }
        return value
    }

    func address(_ flag: String?, default value: String) throws -> (String, Int) {
        let text = flag ?? string("BIND") ?? value
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(flag != nil ? "--bind" : "BGE_M3_BIND") must be HOST:PORT with a port in 0...65535, not \(text)")
        }
        return (String(text[..<colon]), port)
    }
}

extension ModelLocator.LocateError {
    /// The name itself is wrong (a malformed id or revision): downloading cannot help.
    var isUnusableName: Bool {
        switch self {
        case .invalidIdentifier, .invalidRevision: return true
        default: return false
        }
    }
}
