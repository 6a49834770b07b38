import ArgumentParser
import Engine
import Foundation
import Logging
import Scheduling

struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Measure the model's workspace memory and fit workspace = a·B·S + b·B·S² (the server's start-up probe; docs/memory.md).",
        discussion: """
            Loads the model, finds the memory limit (BGE_M3_MEMORY_LIMIT or --memory-limit, the cgroup, \
            else MemTotal) and the per-worker budget, then runs the probe's shapes smallest first, \
            skipping any the conservative model says would not fit, and prints each shape's measured \
            resident-set growth, the engine's own accounting, and the fit's prediction. With \
            --cache-dir the fit is stored there, so servers with the same model, threads and \
            max length start without probing. Progress goes to standard error.
            """)

    @OptionGroup var modelOptions: ModelOptions
    var model: String { modelOptions.model }
    var threads: Int? { modelOptions.threads }
    @Option(name: .long, help: "Precision, as serve takes it (the fit is cached per precision).") var precision: PrecisionChoice = .auto
    @Option(name: .long, help: "Longest sequence to probe, 2...8192 (default: the model's maximum).") var maxSeqLength: Int?
    @Option(name: .long, help: ArgumentHelp("Memory limit, e.g. 4GiB (default: as the server finds it).", valueName: "size")) var memoryLimit: String?
    @Option(name: .long, help: "Fraction of the limit to plan for, 0.1...1.") var memorySafety: Double = 0.9
    @Option(name: .long, help: ArgumentHelp("Store the fit in this probe cache directory.", valueName: "dir")) var cacheDir: String?
    @Flag(name: .long, help: "Print one JSON object instead of a table.") var json = false

    func validate() throws {
        if let maxSeqLength, !(2...8192).contains(maxSeqLength) { throw ValidationError("--max-seq-length must be in 2...8192") }
        if !(0.1...1).contains(memorySafety) { throw ValidationError("--memory-safety must be in 0.1...1") }
        if let memoryLimit, MemoryLimit.parseSize(memoryLimit) == nil { throw ValidationError("--memory-limit must be a size such as 4GiB, not \(memoryLimit)") }
    }

    func run() throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = Logger(label: "bgem3.probe")
        ProcessMemory.configureAllocator()
        var environment = ProcessInfo.processInfo.environment
        if let memoryLimit { environment["BGE_M3_MEMORY_LIMIT"] = memoryLimit }
        let limit: MemoryLimit
        do { limit = try MemoryLimit.detect(environment: environment) } catch { throw CommandFailure(error.description) }
        let loaded = try precision.load(directory: URL(fileURLWithPath: model), threads: threads, limit: limit,
                                        cacheDirectory: cacheDir.map { URL(fileURLWithPath: $0) }, logger: logger).model
        var settings = MemorySettings()
        settings.safety = memorySafety
        settings.probe = .force
        settings.cacheDirectory = cacheDir.map { URL(fileURLWithPath: $0) }
        let plan = MemoryPlanner.plan(model: loaded, limit: limit, settings: settings, engineVersion: BGEM3Version.string,
                                      maxSequenceLength: min(maxSeqLength ?? loaded.maximumSequenceLength, loaded.maximumSequenceLength),
                                      gauge: ProcessMemoryGauge(), logger: logger)
        let shapes = zip(plan.samples, plan.predictions)
        if json {
            let rows = shapes.map { sample, prediction in
                "{\"batch\":\(sample.batch),\"length\":\(sample.length),\"rss_delta_bytes\":\(sample.measuredBytes),"
                    + "\"engine_bytes\":\(sample.engineBytes),\"predicted_bytes\":\(prediction.predicted)}"
            }
            print("{\"limit_bytes\":\(limit.bytes),\"limit_source\":\"\(limit.source.rawValue)\",\"resident_bytes\":\(plan.residentBytes),"
                  + "\"budget_bytes\":\(plan.budgetBytes),\"status\":\"\(plan.status.rawValue)\","
                  + "\"fallback\":\(plan.fallback.map { "\"\($0.rawValue)\"" } ?? "null"),\"a\":\(plan.cost.a),\"b\":\(plan.cost.b),"
                  + "\"shapes\":[\(rows.joined(separator: ","))]}")
            return
        }
        func mib(_ bytes: Int) -> String { String(format: "%.1f", Double(bytes) / 1_048_576) }
        print("memory limit \(mib(limit.bytes)) MiB (\(limit.source.rawValue)); resident after load \(mib(plan.residentBytes)) MiB; "
              + "budget \(mib(plan.budgetBytes)) MiB (safety \(memorySafety))")
        print("shape          RSS delta MiB   engine MiB   predicted MiB")
        for (sample, prediction) in shapes {
            let shape = "(\(sample.batch), \(sample.length))".padding(toLength: 14, withPad: " ", startingAt: 0)
            print("\(shape) \(mib(sample.measuredBytes).leftPadded(13))   \(mib(sample.engineBytes).leftPadded(10))   \(mib(prediction.predicted).leftPadded(13))")
        }
        print("fit: \(plan.cost) (\(plan.status.rawValue)\(plan.fallback.map { ": \($0.rawValue)" } ?? ""))")
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
