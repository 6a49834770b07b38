import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A real `bgem3 serve` process on a loopback port chosen by the system, for end-to-end tests.
public final class ServerProcess: @unchecked Sendable {
    public let process = Process()
    public let port: Int
    private let errors = Pipe()
    private let log = LockedData()

    /// Starts the server with the tiny model and waits, off the cooperative pool
    /// (``offThePool(_:)``), until it reports its address.
    /// - Parameters:
    ///   - replacingModel: `extra` gives its own `--model`.
    ///   - unprivileged: run as `nobody` when the tests run as root (through `setpriv`), for tests
    ///     of permissions, which root would bypass.
    public init(arguments extra: [String] = [], replacingModel: Bool = false, environment: [String: String] = [:], unprivileged: Bool = false) async throws {
        let binary = try BGEM3Process.binary()
        let model = replacingModel ? [] : ["--model", RepositoryFixtures.tinyModel.path]
        // fp32 unless a test asks otherwise: the end-to-end tests check parity with the reference.
        let precision = extra.contains("--precision") ? [] : ["--precision", "fp32"]
        let arguments = ["serve"] + model + ["--bind", "127.0.0.1:0", "--threads", "2"] + precision + extra
        if unprivileged && getuid() == 0 {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        // Probe fits go to a scratch cache unless a test names one (never the user's ~/.cache).
        env["BGE_M3_PROBE_CACHE_DIR"] = ScratchDirectory.unusedPath("test-probe").path
        // Stop at once on SIGTERM unless a test measures the drain.
        env["BGE_M3_DRAIN_SECS"] = "0"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let started = HandedOver(value: (process, errors))
        let (found, text) = try await offThePool { Self.address(of: started.value.0, logging: started.value.1) }
        guard let found else {
            process.terminate()
            throw TestSupportError("the server did not start: \(text)")
        }
        port = found
        let handle = errors.fileHandleForReading
        let log = self.log
        log.set(Data(text.utf8))
        handle.readabilityHandler = { h in
            let data = h.availableData
            if !data.isEmpty { log.append(data) }
        }
    }

    /// The port the server logs ("listening address=[IPv4]127.0.0.1/127.0.0.1:PORT") within 30 s,
    /// and what it logged until then.
    private static func address(of process: Process, logging errors: Pipe) -> (port: Int?, text: String) {
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && process.isRunning {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { Thread.sleep(forTimeInterval: 0.02); continue }
            text += String(decoding: chunk, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.contains("listening") }),
               let colon = line.lastIndex(of: ":") {
                return (Int(line[line.index(after: colon)...].prefix { $0.isNumber }), text)
            }
        }
        return (nil, text)
    }

    public var output: String { String(decoding: log.value, as: UTF8.self) }

    public func url(_ path: String) -> URL { URL(string: "http://127.0.0.1:\(port)\(path)")! }

    /// Sends a request and returns the status, headers and body.
    public func request(_ path: String, method: String = "GET", body: Data? = nil, contentType: String? = "application/json",
                 headers: [String: String] = [:]) async throws -> (status: Int, headers: [String: String], body: Data) {
        var request = URLRequest(url: url(path))
        request.httpMethod = method
        request.httpBody = body
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        for (key, value) in headers { request.setValue(value, forHTTPHeaderField: key) }
        request.timeoutInterval = 60
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (key, value) in http.allHeaderFields { fields[String(describing: key).lowercased()] = String(describing: value) }
        return (http.statusCode, fields, data)
    }

    public func post(_ path: String, json: String, headers: [String: String] = [:]) async throws -> (status: Int, headers: [String: String], body: Data) {
        try await request(path, method: "POST", body: Data(json.utf8), headers: headers)
    }

    /// Waits for `/ready` (15 s).
    public func waitUntilReady() async throws {
        for _ in 0..<300 {
            if let (status, _, _) = try? await request("/ready"), status == 200 { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw TestSupportError("the server never became ready: \(output)")
    }

    /// Sends SIGTERM and waits for the exit status.
    public func stop() -> Int32 {
        if process.isRunning { process.interrupt(); kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        errors.fileHandleForReading.readabilityHandler = nil
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}

extension LockedData {
    public func append(_ more: Data) { set(value + more) }
}
