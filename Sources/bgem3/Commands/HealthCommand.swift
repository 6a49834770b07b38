import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// A health check for container runtimes that have no HTTP client in the image (Docker's
/// `HEALTHCHECK`, an exec probe): GETs one of the server's status routes and sets the exit status.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Check a running server: exit 0 when the URL answers 2xx, 1 otherwise.",
        discussion: """
            For Docker's HEALTHCHECK and exec probes: GETs --url (default \
            http://127.0.0.1:8081/live; use /ready to ask whether the model can take requests, /health \
            for the details) and prints the status line and body.
            """)

    @Option(name: .long, help: ArgumentHelp("The route to check.", valueName: "url")) var url = "http://127.0.0.1:8081/live"
    @Option(name: .long, help: "Seconds to wait for the answer.") var timeout: Double = 5

    func validate() throws {
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be in 0...3600 seconds") }
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
            throw ValidationError("--url must be an http(s) URL such as http://127.0.0.1:8081/live, not \(url)")
        }
    }

    func run() async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let outcome: Result<(UInt, String), any Error>
        do {
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .milliseconds(Int64(timeout * 1000)))
            let body = try await response.body.collect(upTo: 1 << 20)
            outcome = .success((response.status.code, String(buffer: body)))
        } catch {
            outcome = .failure(error)
        }
        try? await client.shutdown()
        switch outcome {
        case .success(let (status, body)):
            print("\(status) \(body)")
            if !(200..<300).contains(status) { throw ExitCode(1) }
        case .failure(let error):
            FileHandle.standardError.write(Data("health: \(url) did not answer: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
