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
        abstract: "Serve embeddings over HTTP: OpenAI-compatible /v1/embeddings, /v1/m3/embeddings, TEI, Ollama and Cohere routes (docs/server.md; /openapi.json).",
        discussion: """
            Every option can also be set with its BGE_M3_* variable (the flag wins), e.g. BGE_M3_BIND, \
            BGE_M3_MODEL, BGE_M3_MAX_BATCH; `bgem3 settings` lists them all. The server listens at once and loads the model in the \
            background: /ready answers 503 until it is loaded, and requests that arrive meanwhile wait \
            for it within their deadline. On SIGTERM /ready fails at once and requests are still \
            served for --drain-secs (load balancers stop routing here meanwhile); then the server stops \
            accepting, lets requests in flight finish, and exits 0 (SIGINT skips the drain). Every \
            request is admitted within the memory budget before its body is read: what it holds \
            (body, results, the response being written) is reserved first, and responses are \
            streamed. --model takes a directory or a hub id; a hub id missing from \
            the Hugging Face cache is downloaded first (HF_ENDPOINT, HF_TOKEN; HF_HUB_OFFLINE=1 forbids it).
            """)

    @Option(name: .long, help: ServeSettings.model.argumentHelp) var model: String?
    @Option(name: .long, help: ServeSettings.revision.argumentHelp) var revision: String?
    @Option(name: .long, help: ServeSettings.cacheDir.argumentHelp) var cacheDir: String?
    @Option(name: .long, help: ServeSettings.bind.argumentHelp) var bind: String?
    @Option(name: .long, help: ServeSettings.threads.argumentHelp) var threads: Int?
    @Option(name: .long, help: ServeSettings.workers.argumentHelp) var workers: Int?
    @Option(name: .long, help: ServeSettings.precision.argumentHelp) var precision: String?
    @Option(name: .long, help: ServeSettings.attention.argumentHelp) var attention: String?
    @Option(name: .long, help: ServeSettings.maxBatch.argumentHelp) var maxBatch: Int?
    @Option(name: .long, help: ServeSettings.maxSeqLength.argumentHelp) var maxSeqLength: Int?
    @Option(name: .long, help: ServeSettings.maxTextChars.argumentHelp) var maxTextChars: Int?
    @Option(name: .long, help: ServeSettings.maxBodyBytes.argumentHelp) var maxBodyBytes: Int?
    @Option(name: .long, help: ServeSettings.tokenIds.argumentHelp) var tokenIds: String?
    @Option(name: .long, help: ServeSettings.queueCapacity.argumentHelp) var queueCapacity: Int?
    @Option(name: .long, help: ServeSettings.queueTokens.argumentHelp) var queueTokens: Int?
    @Option(name: .long, help: ServeSettings.requestTimeoutSecs.argumentHelp) var requestTimeoutSecs: Double?
    @Option(name: .long, help: ServeSettings.apiKey.argumentHelp) var apiKey: String?
    @Option(name: .long, help: ServeSettings.memoryLimit.argumentHelp) var memoryLimit: String?
    @Option(name: .long, help: ServeSettings.memorySafety.argumentHelp) var memorySafety: Double?
    @Option(name: .long, help: ServeSettings.requestMemoryShare.argumentHelp) var requestMemoryShare: Double?
    @Option(name: .long, help: ServeSettings.probe.argumentHelp) var probe: String?
    @Option(name: .long, help: ServeSettings.probeCacheDir.argumentHelp) var probeCacheDir: String?
    @Option(name: .long, help: ServeSettings.costA.argumentHelp) var costA: Double?
    @Option(name: .long, help: ServeSettings.costB.argumentHelp) var costB: Double?
    @Option(name: .long, help: ServeSettings.idleTimeoutSecs.argumentHelp) var idleTimeoutSecs: Double?
    @Option(name: .long, help: ServeSettings.drainSecs.argumentHelp) var drainSecs: Double?
    @Option(name: .long, help: ServeSettings.logFormat.argumentHelp) var logFormat: String?
    @Option(name: .long, help: ServeSettings.logLevel.argumentHelp) var logLevel: String?

    func run() async throws {
        let settings = Settings(environment: ProcessInfo.processInfo.environment)
        let format = try settings.choice(logFormat, ServeSettings.logFormat)
        let levelName = try settings.choice(logLevel, ServeSettings.logLevel)
        let level = Logger.Level(rawValue: levelName)!
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "bgem3")
        ServerMetrics.bootstrap()

        let modelArgument = model ?? settings.string(ServeSettings.model) ?? "BAAI/bge-m3"
        let revisionName = revision ?? settings.string(ServeSettings.revision) ?? "main"
        let environment = ProcessInfo.processInfo.environment
        var locator = ModelLocator(environment: environment)
        if let cache = cacheDir ?? settings.string(ServeSettings.cacheDir) { locator = ModelLocator(cacheDirectory: URL(fileURLWithPath: cache)) }
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
        let (host, port) = try settings.address(bind, ServeSettings.bind)
        var limits = ServerLimits()
        limits.maxBatch = try settings.integer(maxBatch, ServeSettings.maxBatch, default: limits.maxBatch)
        limits.maxSequenceLength = try settings.integer(maxSeqLength, ServeSettings.maxSeqLength, default: limits.maxSequenceLength)
        limits.maxTextCharacters = try settings.integer(maxTextChars, ServeSettings.maxTextChars, default: limits.maxTextCharacters)
        limits.maxBodyBytes = try settings.integer(maxBodyBytes, ServeSettings.maxBodyBytes, default: limits.maxBodyBytes)
        limits.queueCapacity = try settings.integer(queueCapacity, ServeSettings.queueCapacity, default: limits.queueCapacity)
        limits.queueTokens = try settings.integer(queueTokens, ServeSettings.queueTokens, default: limits.queueTokens)
        limits.requestTimeoutSeconds = try settings.double(requestTimeoutSecs, ServeSettings.requestTimeoutSecs, default: limits.requestTimeoutSeconds)
        limits.apiKey = try settings.apiKey(apiKey)
        limits.acceptsTokenIDs = try settings.choice(tokenIds, ServeSettings.tokenIds) == "accept"
        limits.modelName = settings.string(ServeSettings.modelName) ?? (modelArgument.contains("/") && !FileManager.default.fileExists(atPath: modelArgument)
            ? modelArgument : URL(fileURLWithPath: modelPath).lastPathComponent)
        let threadCount: Int? = threads != nil || settings.string(ServeSettings.threads) != nil
            ? try settings.integer(threads, ServeSettings.threads, default: 1) : nil

        let workerCount = try settings.integer(workers, ServeSettings.workers, default: 1)
        var memory = try settings.memory(limit: memoryLimit, safety: memorySafety, requestShare: requestMemoryShare, probe: probe, cacheDirectory: probeCacheDir,
                                         costA: costA, costB: costB)
        let drain = try settings.double(drainSecs, ServeSettings.drainSecs, default: 5)
        memory.workers = workerCount
        var scheduling = SchedulerSettings()
        scheduling.requestTimeout = .milliseconds(Int64(limits.requestTimeoutSeconds * 1000))
        // A test hook, for A/B runs of the load scripts: 0 turns the interactive rejoin window off.
        if let rejoin = ProcessInfo.processInfo.environment["BGE_M3_TEST_REJOIN_WINDOW_MS"].flatMap(Double.init) {
            scheduling.interactiveRejoinWindow = .microseconds(Int64(rejoin * 1000))
        }
        let idle = try settings.double(idleTimeoutSecs, ServeSettings.idleTimeoutSecs, default: 0)
        scheduling.idleTimeout = idle > 0 ? .milliseconds(Int64(idle * 1000)) : nil

        let precisionName = try settings.choice(precision, ServeSettings.precision)
        let requested = PrecisionChoice(argument: precisionName)!
        try requested.validate()
        let attentionName = try settings.choice(attention, ServeSettings.attention)
        let attentionKernel = AttentionChoice(rawValue: attentionName)!.kernel
        if let reason = attentionKernel?.unsupportedReason() {
            throw ValidationError("\(attention != nil ? ServeSettings.attention.flag : ServeSettings.attention.variable) \(attentionName): \(reason)")
        }
        logger.info("precision", metadata: ["requested": .string(precisionName), "isa": .string(OneDNNRuntime.effectiveISA),
                                            "vnni": .stringConvertible(OneDNNRuntime.hasVNNI),
                                            "avx512_bf16": .stringConvertible(Precision.bf16.unsupportedReason == nil),
                                            "int8_levels": .string(Int8Levels.forThisCPU.description), "attention": .string(attentionName)])

        try await EmbeddingServer(host: host, port: port, modelDirectory: URL(fileURLWithPath: modelPath), threads: threadCount,
                                  precision: requested.request, attention: attentionKernel, limits: limits, memory: memory, scheduling: scheduling,
                                  drainDelay: .milliseconds(Int64(drain * 1000)), version: BGEM3Version.string, logger: logger).run()
    }
}

/// Settings from a flag or a `BGE_M3_*` variable (``ServeSettings``), validated with errors naming both.
struct Settings {
    let environment: [String: String]

    func string(_ setting: ServeSetting) -> String? {
        environment[setting.variable].flatMap { $0.isEmpty ? nil : $0 }
    }

    func integer(_ flag: Int?, _ setting: ServeSetting, default value: Int) throws -> Int {
        guard case .integer(let range) = setting.rule else { preconditionFailure("\(setting.key) is not an integer setting") }
        let source = flag.map { ($0, setting.flag) } ?? string(setting).map { (Int($0) ?? Int.min, "\(setting.variable)=\($0)") }
        guard let (number, origin) = source else { return value }
        guard range.contains(number) else {
            throw ValidationError("\(origin) must be a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    func double(_ flag: Double?, _ setting: ServeSetting, default value: Double) throws -> Double {
        guard case .number(let range) = setting.rule else { preconditionFailure("\(setting.key) is not a number setting") }
        let source = flag.map { ($0, setting.flag) } ?? string(setting).map { (Double($0) ?? .nan, "\(setting.variable)=\($0)") }
        guard let (number, origin) = source else { return value }
        guard range.contains(number) else { throw ValidationError("\(origin) must be a number in \(range.lowerBound)...\(range.upperBound)") }
        return number
    }

    /// The flag, else the variable, else the declared default; one of the declared names.
    func choice(_ flag: String?, _ setting: ServeSetting) throws -> String {
        guard case .choice(let allowed) = setting.rule else { preconditionFailure("\(setting.key) is not a choice setting") }
        guard let given = flag ?? string(setting) else { return setting.defaultText }
        guard allowed.contains(given) else {
            throw ValidationError("\(flag != nil ? setting.flag : setting.variable) must be one of \(allowed.joined(separator: ", ")), not \(given)")
        }
        return given
    }

    /// The number in `--cost-a` or `BGE_M3_COST_A` (and B).
    private func bytes(_ flag: Double?, _ setting: ServeSetting) throws -> Double? {
        if let flag { return flag }
        return try string(setting).map { value in
            guard let number = Double(value) else { throw ValidationError("\(setting.variable) must be a number of bytes, not \(value)") }
            return number
        }
    }

    /// The memory settings of SPEC §5; a limit given by flag or variable is carried as a value
    /// (``MemorySettings/limitBytes``), not through the environment.
    func memory(limit: String?, safety: Double?, requestShare: Double?, probe: String?, cacheDirectory: String?, costA: Double?,
                costB: Double?) throws -> MemorySettings {
        var memory = MemorySettings()
        // 0 would load the model and then have no room for any request: refused here, naming it.
        if let given = limit ?? string(ServeSettings.memoryLimit) {
            guard let bytes = MemoryLimit.parseSize(given), bytes > 0 else {
                throw ValidationError("\(limit != nil ? "--memory-limit" : "BGE_M3_MEMORY_LIMIT") must be a size above 0 such as 4GiB, 3000MB or 3221225472, not \(given)")
            }
            memory.limitBytes = bytes
        }
        memory.safety = try double(safety, ServeSettings.memorySafety, default: memory.safety)
        memory.requestShare = try double(requestShare, ServeSettings.requestMemoryShare, default: memory.requestShare)
        memory.probe = ProbeMode(rawValue: try choice(probe, ServeSettings.probe))!
        switch (try bytes(costA, ServeSettings.costA), try bytes(costB, ServeSettings.costB)) {
        case (nil, nil): break
        case let (a?, b?):
            guard a.isFinite, b.isFinite, a >= 0, b >= 0, a + b > 0 else {
                throw ValidationError("BGE_M3_COST_A and BGE_M3_COST_B must be finite, >= 0 and not both 0 (got \(a), \(b))")
            }
            memory.costOverride = CostModel(a: a, b: b)
        default:
            throw ValidationError("set both BGE_M3_COST_A and BGE_M3_COST_B (or --cost-a and --cost-b), or neither")
        }
        // BGE_M3_PROBE_CACHE_DIR is the first place defaultDirectory looks.
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
        guard let value = environment[ServeSettings.apiKey.variable] else { return nil }
        guard !value.isEmpty else {
            throw ValidationError("BGE_M3_API_KEY is set but empty; unset it to serve without authentication, or give the key")
        }
        return value
    }

    func address(_ flag: String?, _ setting: ServeSetting) throws -> (String, Int) {
        let text = flag ?? string(setting) ?? setting.defaultText
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(flag != nil ? setting.flag : setting.variable) must be HOST:PORT with a port in 0...65535, not \(text)")
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
