import Foundation

/// Runs the real `bgem3` executable, as a user would.
///
/// The binary is `BGEM3_BINARY` when set (scripts/test.sh sets it), else the one this package
/// built next to the tests.
public struct BGEM3Process {
    public struct Output: Sendable {
        public var status: Int32
        public var standardOutput: String
        public var standardError: String
        public var terminatedBySignal: Bool
    }

    public static func binary() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["BGEM3_BINARY"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        for configuration in ["release", "debug"] {
            let url = RepositoryFixtures.packageDirectory.appendingPathComponent(".build/\(configuration)/bgem3")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw TestSupportError("no bgem3 binary: set BGEM3_BINARY or run `swift build` first")
    }

    /// Probe fits (embed and serve measure on first use) go to one scratch cache for the test run,
    /// never the user's ~/.cache.
    public static let scratchProbeCache = ScratchDirectory.unusedPath("test-probe")

    /// Runs the binary to its end; one still running after `timeout` seconds (a server that should
    /// have refused to start) is stopped, and its output says so. The wait is off the cooperative
    /// pool (``offThePool(_:)``).
    public static func run(_ arguments: [String], input: Data = Data(), environment: [String: String] = [:],
                           timeout: Double = 600) async throws -> Output {
        try await offThePool { try runToEnd(arguments, input: input, environment: environment, timeout: timeout) }
    }

    private static func runToEnd(_ arguments: [String], input: Data, environment: [String: String], timeout: Double) throws -> Output {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = arguments
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
public final class LockedData: @unchecked Sendable {
    public init() {}

    private let lock = NSLock()
    private var data: Data?

    public func set(_ value: Data) { lock.withLock { data = value } }
    public var isSet: Bool { lock.withLock { data != nil } }
    public var value: Data { lock.withLock { data ?? Data() } }
}
