import Foundation
import Testing

/// Runs the real `bgem3` executable, as a user would.
///
/// The binary is `BGEM3_BINARY` when set (scripts/test.sh sets it), else the one this package
/// built next to the tests.
struct BGEM3Process {
    struct Output {
        var status: Int32
        var standardOutput: String
        var standardError: String
        var terminatedBySignal: Bool
    }

    static let packageDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func binary() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["BGEM3_BINARY"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        for configuration in ["release", "debug"] {
            let url = packageDirectory.appendingPathComponent(".build/\(configuration)/bgem3")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        Issue.record("no bgem3 binary: set BGEM3_BINARY or run `swift build` first")
        throw CancellationError()
    }

    static func fixture(_ path: String) -> String {
        packageDirectory.appendingPathComponent("Tests/Fixtures").appendingPathComponent(path).path
    }

    /// Runs `bgem3 arguments…` with `input` on standard input.
    static let scratchProbeCache = FileManager.default.temporaryDirectory.appendingPathComponent("bgem3-test-probe-\(UUID().uuidString)")

    /// Runs the binary to its end; one still running after `timeout` seconds (a server that should
    /// have refused to start) is stopped, and its output says so.
    static func run(_ arguments: [String], input: Data = Data(), environment: [String: String] = [:], timeout: Double = 600) throws -> Output {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = arguments
        // Probe fits (embed and serve measure on first use) go to one scratch cache for the test
        // run, never the user's ~/.cache.
        process.environment = ProcessInfo.processInfo.environment.merging(["BGE_M3_PROBE_CACHE_DIR": scratchProbeCache.path]) { $1 }
            .merging(environment) { $1 }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Feed and drain concurrently so large inputs or outputs cannot deadlock on full pipes.
        // A binary that exits before reading all of its input (a refused option) closes the pipe:
        // that is the test's to judge from the exit status, not a crash of the test process.
        let writer = Thread {
            try? stdin.fileHandleForWriting.write(contentsOf: input)
            try? stdin.fileHandleForWriting.close()
        }
        writer.start()
        let watchdog = DispatchWorkItem { [process] in if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        defer { watchdog.cancel() }
        let errorData = LockedData()
        let errorReader = Thread { errorData.set(stderr.fileHandleForReading.readDataToEndOfFile()) }
        errorReader.start()
        let outputData = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errorData.isSet { Thread.sleep(forTimeInterval: 0.01) }
        return Output(
            status: process.terminationStatus,
            standardOutput: String(decoding: outputData, as: UTF8.self),
            standardError: String(decoding: errorData.value, as: UTF8.self),
            terminatedBySignal: process.terminationReason == .uncaughtSignal)
    }
}

/// A value written once by another thread.
final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?

    func set(_ value: Data) { lock.withLock { data = value } }
    var isSet: Bool { lock.withLock { data != nil } }
    var value: Data { lock.withLock { data ?? Data() } }
}
