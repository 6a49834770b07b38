import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import ModelHub
import Testing

/// Downloads from a local server that answers like the Hugging Face hub (model info API,
/// `resolve` URLs with `X-Linked-*` headers, range requests), with faults on demand.
@Suite(.serialized) struct HubDownloaderTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tiny-bge-m3")
    static let commit = "abcdef0123456789abcdef0123456789abcdef01"
    static let lfs: Set<String> = ["model.safetensors", "pytorch_model.bin", "sparse_linear.pt", "colbert_linear.pt"]

    /// What the fake hub does and has seen.
    final class Hub: @unchecked Sendable {
        private let lock = NSLock()
        var cutModelAfter: Int?
        var wrongChecksum = false
        private(set) var gets: [String] = []
        private(set) var ranges: [String] = []

        func record(_ file: String, range: String?) {
            lock.withLock {
                gets.append(file)
                if let range { ranges.append(range) }
            }
        }

        func takeCut() -> Int? {
            lock.withLock {
                defer { cutModelAfter = nil }
                return cutModelAfter
            }
        }

        var getsSoFar: [String] { lock.withLock { gets } }
        var rangesSoFar: [String] { lock.withLock { ranges } }
    }

    static func sha256(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    /// Runs `body` with a fake hub listening on a free loopback port.
    func withHub(_ hub: Hub, _ body: (URL) async throws -> Void) async throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.fixture.path)
        let router = Router()
        router.get("/api/models/:owner/:name/revision/:revision") { _, context in
            guard context.parameters.get("revision") == "main" else { throw HTTPError(.notFound) }
            let siblings = files.map { ["rfilename": $0] }
            let json = try JSONSerialization.data(withJSONObject: ["sha": Self.commit, "siblings": siblings])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: json)))
        }
        @Sendable func headers(_ file: String, _ data: Data) -> HTTPFields {
            var fields: HTTPFields = [:]
            if Self.lfs.contains(file) {
                fields[HTTPField.Name("X-Linked-Etag")!] = "\"\(hub.wrongChecksum && file == "model.safetensors" ? String(repeating: "0", count: 64) : Self.sha256(data))\""
                fields[HTTPField.Name("X-Linked-Size")!] = String(data.count)
            } else {
                fields[.eTag] = "\"\(Self.sha256(data).prefix(40))\""
            }
            return fields
        }
        router.head("/:owner/:name/resolve/:commit/:file") { _, context in
            let file = context.parameters.get("file") ?? ""
            guard let data = FileManager.default.contents(atPath: Self.fixture.appendingPathComponent(file).path) else { throw HTTPError(.notFound) }
            var fields = headers(file, data)
            fields[.contentLength] = String(data.count)
            return Response(status: .ok, headers: fields)
        }
        router.get("/:owner/:name/resolve/:commit/:file") { request, context in
            let file = context.parameters.get("file") ?? ""
            guard let data = FileManager.default.contents(atPath: Self.fixture.appendingPathComponent(file).path) else { throw HTTPError(.notFound) }
            let range = request.headers[.range]
            hub.record(file, range: range)
            var start = 0
            var status = HTTPResponse.Status.ok
            if let range, range.hasPrefix("bytes="), let from = Int(range.dropFirst(6).split(separator: "-").first ?? "") {
                start = from
                status = .partialContent
            }
            let slice = data.subdata(in: start..<data.count)
            var fields = headers(file, data)
            fields[.contentLength] = String(slice.count)
            if file == "model.safetensors", let cut = hub.takeCut() {
                // Send part of the file, then drop the connection.
                return Response(status: status, headers: fields, body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(bytes: slice.prefix(cut)))
                    throw CancellationError()
                })
            }
            return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: slice)))
        }
        let ports = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in ports.continuation.yield(channel.localAddress?.port ?? 0) })
        let server = Task { try await app.run() }
        defer { server.cancel() }
        var iterator = ports.stream.makeAsyncIterator()
        let port = try #require(await iterator.next())
        try await body(URL(string: "http://127.0.0.1:\(port)")!)
    }

    func temporaryCache() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("bgem3-download-\(UUID().uuidString)")
    }

    @Test func freshDownloadThenReuseWithoutFetchingAgain() async throws {
        let hub = Hub()
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        try await withHub(hub) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            let snapshot = try await downloader.download("BAAI/bge-m3")
            #expect(snapshot.lastPathComponent == Self.commit)
            for file in ["config.json", "tokenizer.json", "model.safetensors", "sparse_linear.pt", "colbert_linear.pt"] {
                #expect(FileManager.default.contents(atPath: snapshot.appendingPathComponent(file).path)
                        == FileManager.default.contents(atPath: Self.fixture.appendingPathComponent(file).path), "\(file)")
            }
            #expect(!hub.getsSoFar.contains("pytorch_model.bin"), "safetensors is preferred")
            let reference = try String(contentsOf: cache.appendingPathComponent("models--BAAI--bge-m3/refs/main"), encoding: .utf8)
            #expect(reference == Self.commit)
            #expect(try ModelLocator(cacheDirectory: cache).locate("BAAI/bge-m3").standardizedFileURL.path == snapshot.standardizedFileURL.path)
            let fetched = hub.getsSoFar.count
            _ = try await downloader.download("BAAI/bge-m3")
            #expect(hub.getsSoFar.count == fetched, "a complete cache is reused")
        }
    }

    @Test func aCutDownloadResumesWithARangeRequest() async throws {
        let hub = Hub()
        hub.cutModelAfter = 700_000
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        try await withHub(hub) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            await #expect(throws: HubDownloader.DownloadError.self) { try await downloader.download("BAAI/bge-m3") }
            let snapshot = try await downloader.download("BAAI/bge-m3")
            #expect(hub.rangesSoFar.contains { $0.hasPrefix("bytes=") && $0 != "bytes=0-" }, "resumed: \(hub.rangesSoFar)")
            #expect(FileManager.default.contents(atPath: snapshot.appendingPathComponent("model.safetensors").path)
                    == FileManager.default.contents(atPath: Self.fixture.appendingPathComponent("model.safetensors").path))
        }
    }

    @Test func aChecksumMismatchDeletesThePartialFile() async throws {
        let hub = Hub()
        hub.wrongChecksum = true
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        try await withHub(hub) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            do {
                _ = try await downloader.download("BAAI/bge-m3")
                Issue.record("expected a checksum mismatch")
            } catch let error as HubDownloader.DownloadError {
                guard case .checksumMismatch(let file, _, _) = error else { Issue.record("got \(error)"); return }
                #expect(file == "model.safetensors")
                #expect(error.description.contains("deleted"))
            }
            let blobs = try FileManager.default.contentsOfDirectory(atPath: cache.appendingPathComponent("models--BAAI--bge-m3/blobs").path)
            #expect(!blobs.contains { $0.hasSuffix(".incomplete") }, "\(blobs)")
            #expect(!blobs.contains(String(repeating: "0", count: 64)))
        }
    }

    /// A full disk while the weights arrive: the partial file (here `/dev/full`, which answers
    /// every write with ENOSPC) is never used, the error says it is the disk, and no snapshot
    /// link or blob points at half a file.
    @Test func aFullDiskIsAFilesystemErrorAndNothingHalfWrittenIsUsed() async throws {
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let weights = try Data(contentsOf: Self.fixture.appendingPathComponent("model.safetensors"))
        let blobs = cache.appendingPathComponent("models--BAAI--bge-m3/blobs")
        try FileManager.default.createDirectory(at: blobs, withIntermediateDirectories: true)
        let partial = blobs.appendingPathComponent(Self.sha256(weights) + ".incomplete")
        try FileManager.default.createSymbolicLink(atPath: partial.path, withDestinationPath: "/dev/full")
        try await withHub(Hub()) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            do {
                _ = try await downloader.download("BAAI/bge-m3")
                Issue.record("expected the write to fail")
            } catch let error as HubDownloader.DownloadError {
                guard case .filesystem(let message) = error else { Issue.record("got \(error)"); return }
                #expect(message.contains("model.safetensors") && message.contains("space"), "\(message)")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: blobs.appendingPathComponent(Self.sha256(weights)).path), "no blob from half a file")
        let snapshot = cache.appendingPathComponent("models--BAAI--bge-m3/snapshots/\(Self.commit)/model.safetensors")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: snapshot.path)) == nil, "no link to the weights")
        #expect(throws: (any Error).self) { try ModelLocator(cacheDirectory: cache).locate("BAAI/bge-m3") }
    }

    /// A cache directory that cannot be created (its path runs through a file): a filesystem
    /// error naming the path, before any download.
    @Test func anUnwritableCacheIsAFilesystemErrorNamingThePath() async throws {
        let blocker = temporaryCache()
        defer { try? FileManager.default.removeItem(at: blocker) }
        try Data("a file".utf8).write(to: blocker)
        let hub = Hub()
        try await withHub(hub) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: blocker.appendingPathComponent("hub"))
            do {
                _ = try await downloader.download("BAAI/bge-m3")
                Issue.record("expected a filesystem error")
            } catch let error as HubDownloader.DownloadError {
                guard case .filesystem(let message) = error else { Issue.record("got \(error)"); return }
                #expect(message.contains(blocker.path), "\(message)")
                #expect(error.description.contains("cannot write the model cache"))
            }
        }
        #expect(!hub.getsSoFar.contains("model.safetensors"), "nothing downloaded into nowhere")
    }

    @Test func aMissingRevisionIs404() async throws {
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        try await withHub(Hub()) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            await #expect(throws: HubDownloader.DownloadError.revisionNotFound(repository: "BAAI/bge-m3", revision: "v9")) {
                try await downloader.download("BAAI/bge-m3", revision: "v9")
            }
        }
    }
}
