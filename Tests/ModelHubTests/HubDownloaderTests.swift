import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import ModelHub
import Synchronization
import TestSupport
import Testing

/// Downloads from a local server that answers like the Hugging Face hub (model info API,
/// `resolve` URLs with `X-Linked-*` headers, range requests with `Content-Range`), with faults on
/// demand.
@Suite(.serialized) struct HubDownloaderTests {
    static let fixture = RepositoryFixtures.tinyModel
    static let commit = "abcdef0123456789abcdef0123456789abcdef01"
    static let lfs: Set<String> = ["model.safetensors", "pytorch_model.bin", "sparse_linear.pt", "colbert_linear.pt"]
    static let neededFiles = ["config.json", "tokenizer.json", "model.safetensors", "sparse_linear.pt", "colbert_linear.pt"]

    /// How a resumed request for the weights is answered wrongly, once.
    enum ContentRangeFault: CaseIterable {
        /// 206 with the whole file, labelled as such (`bytes 0-…`): a server that ignored the start.
        case wrongStart
        /// 206 with the right bytes but another total.
        case wrongTotal
        /// 206 without `Content-Range`.
        case missing
    }

    /// What the fake hub does and has seen.
    final class Hub: Sendable {
        struct State {
            var sha = HubDownloaderTests.commit
            var revisions: Set<String> = ["main"]
            var cutModelAfter: Int?
            var wrongChecksum = false
            /// Replaces the weights' `X-Linked-Etag`.
            var modelEtag: String?
            /// Files whose git ETag is the blob id of other content.
            var wrongGitBlob: Set<String> = []
            var contentRangeFault: ContentRangeFault?
            /// Bytes sent after the weights, beyond the declared size.
            var extraModelBytes = 0
            /// Sends the weights in 20 chunks `chunkDelay` apart, once `waitForModelHeads` HEAD
            /// requests for them have arrived (so that every downloader has reached them).
            var chunkDelay: Duration?
            var waitForModelHeads = 0
            /// Sends this many bytes of the weights, then nothing until `stallReleased`.
            var stallModelAfter: Int?
            var stallReleased = false
            var gets: [String] = []
            var ranges: [String] = []
            var heads: [String] = []
            var infoRevisions: [String] = []
        }

        let state = Mutex(State())

        func set(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }
        var current: State { state.withLock { $0 } }
        var getsSoFar: [String] { current.gets }
        var rangesSoFar: [String] { current.ranges }
        func gets(of file: String) -> Int { current.gets.filter { $0 == file }.count }

        func record(_ file: String, range: String?) {
            set {
                $0.gets.append(file)
                if let range { $0.ranges.append(range) }
            }
        }

        func takeCut() -> Int? {
            state.withLock { state in
                defer { state.cutModelAfter = nil }
                return state.cutModelAfter
            }
        }

        func takeContentRangeFault() -> ContentRangeFault? {
            state.withLock { state in
                defer { state.contentRangeFault = nil }
                return state.contentRangeFault
            }
        }
    }

    /// The notices downloads reported, from any task.
    final class Notices: Sendable {
        private let list = Mutex<[HubDownloader.Notice]>([])
        @Sendable func append(_ notice: HubDownloader.Notice) { list.withLock { $0.append(notice) } }
        var all: [HubDownloader.Notice] { list.withLock { $0 } }
    }

    static func sha256(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    /// What `git hash-object` prints for `data`, the hub's ETag of a file stored in git.
    static func gitBlobID(_ data: Data) -> String {
        Insecure.SHA1.hash(data: Data("blob \(data.count)\0".utf8) + data).map { String(format: "%02x", $0) }.joined()
    }

    static func fixtureData(_ file: String) -> Data? {
        FileManager.default.contents(atPath: fixture.appendingPathComponent(file).path)
    }

    /// Runs `body` with a fake hub listening on a free loopback port.
    func withHub(_ hub: Hub, _ body: (URL) async throws -> Void) async throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.fixture.path)
        let router = Router()
        router.get("/api/models/:owner/:name/revision/**") { request, _ in
            // The revision is one segment, `/` sent as %2F.
            let raw = String(request.uri.path.split(separator: "/revision/", maxSplits: 1).last ?? "")
            let revision = raw.removingPercentEncoding ?? raw
            let state = hub.current
            hub.set { $0.infoRevisions.append(raw) }
            guard state.revisions.contains(revision) || revision == state.sha else { throw HTTPError(.notFound) }
            let siblings = files.map { ["rfilename": $0] }
            let json = try JSONSerialization.data(withJSONObject: ["sha": state.sha, "siblings": siblings])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: json)))
        }
        @Sendable func headers(_ file: String, _ data: Data) -> HTTPFields {
            let state = hub.current
            var fields: HTTPFields = [:]
            if Self.lfs.contains(file) {
                var etag = state.wrongChecksum && file == "model.safetensors" ? String(repeating: "0", count: 64) : Self.sha256(data)
                if file == "model.safetensors", let replacement = state.modelEtag { etag = replacement }
                fields[HTTPField.Name("X-Linked-Etag")!] = "\"\(etag)\""
                fields[HTTPField.Name("X-Linked-Size")!] = String(data.count)
            } else {
                fields[.eTag] = "\"\(Self.gitBlobID(state.wrongGitBlob.contains(file) ? data + Data("other".utf8) : data))\""
            }
            return fields
        }
        router.head("/:owner/:name/resolve/:commit/:file") { _, context in
            let file = context.parameters.get("file") ?? ""
            guard let data = Self.fixtureData(file) else { throw HTTPError(.notFound) }
            hub.set { $0.heads.append(file) }
            var fields = headers(file, data)
            fields[.contentLength] = String(data.count)
            return Response(status: .ok, headers: fields)
        }
        router.get("/:owner/:name/resolve/:commit/:file") { request, context in
            let file = context.parameters.get("file") ?? ""
            guard let data = Self.fixtureData(file) else { throw HTTPError(.notFound) }
            let range = request.headers[.range]
            hub.record(file, range: range)
            var start = 0
            var status = HTTPResponse.Status.ok
            var fields = headers(file, data)
            if let range, range.hasPrefix("bytes="), let from = Int(range.dropFirst(6).split(separator: "-").first ?? "") {
                start = from
                status = .partialContent
                fields[.contentRange] = "bytes \(start)-\(data.count - 1)/\(data.count)"
                if file == "model.safetensors", let fault = hub.takeContentRangeFault() {
                    switch fault {
                    case .wrongStart:
                        start = 0
                        fields[.contentRange] = "bytes 0-\(data.count - 1)/\(data.count)"
                    case .wrongTotal:
                        fields[.contentRange] = "bytes \(start)-\(data.count - 1)/\(data.count + 1000)"
                    case .missing:
                        fields[.contentRange] = nil
                    }
                }
            }
            let state = hub.current
            let extra = file == "model.safetensors" ? Data(repeating: 0x5A, count: state.extraModelBytes) : Data()
            let slice = data.subdata(in: start..<data.count) + extra
            fields[.contentLength] = String(slice.count)
            if file == "model.safetensors", let cut = hub.takeCut() {
                // Send part of the file, then drop the connection.
                return Response(status: status, headers: fields, body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(bytes: slice.prefix(cut)))
                    throw CancellationError()
                })
            }
            if file == "model.safetensors", let stall = state.stallModelAfter {
                // Send part of the file, then nothing, with the connection open.
                return Response(status: status, headers: fields, body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(bytes: slice.prefix(stall)))
                    for _ in 0..<600 where !hub.current.stallReleased { try await Task.sleep(for: .milliseconds(50)) }
                    throw CancellationError()
                })
            }
            if file == "model.safetensors", let delay = state.chunkDelay {
                let heads = state.waitForModelHeads
                return Response(status: status, headers: fields, body: ResponseBody { writer in
                    for _ in 0..<500 where hub.current.heads.filter({ $0 == file }).count < heads { try await Task.sleep(for: .milliseconds(10)) }
                    let chunk = (slice.count + 19) / 20
                    for offset in stride(from: 0, to: slice.count, by: chunk) {
                        try await writer.write(ByteBuffer(bytes: slice[offset..<min(offset + chunk, slice.count)]))
                        try await Task.sleep(for: delay)
                    }
                    try await writer.finish(nil)
                })
            }
            return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: slice)))
        }
        let ports = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in ports.continuation.yield(channel.localAddress?.port ?? 0) })
        let server = Task { try await app.run() }
        defer {
            hub.set { $0.stallReleased = true }
            server.cancel()
        }
        var iterator = ports.stream.makeAsyncIterator()
        let port = try #require(await iterator.next())
        try await body(URL(string: "http://127.0.0.1:\(port)")!)
    }

    func temporaryCache() -> URL {
        ScratchDirectory.unusedPath("download")
    }

    func repositoryFolder(_ cache: URL) -> URL { cache.appendingPathComponent("models--BAAI--bge-m3") }

    /// The names in `blobs/`.
    func blobNames(_ cache: URL) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: repositoryFolder(cache).appendingPathComponent("blobs").path)) ?? []
    }

    /// Every file a model needs in `snapshot` is the fixture's, byte for byte.
    func expectFixtureFiles(in snapshot: URL, sourceLocation: SourceLocation = #_sourceLocation) {
        for file in Self.neededFiles {
            #expect(FileManager.default.contents(atPath: snapshot.appendingPathComponent(file).path) == Self.fixtureData(file),
                    "\(file)", sourceLocation: sourceLocation)
        }
    }

    /// The error `body` throws, as a `DownloadError`.
    func downloadError(_ body: () async throws -> Void) async -> HubDownloader.DownloadError? {
        do {
            try await body()
            return nil
        } catch let error as HubDownloader.DownloadError {
            return error
        } catch {
            Issue.record("not a DownloadError: \(error)")
            return nil
        }
    }

    // MARK: - Downloads

    @Test func freshDownloadThenReuseWithoutFetchingAgain() async throws {
        let hub = Hub()
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        try await withHub(hub) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            let snapshot = try await downloader.download("BAAI/bge-m3")
            #expect(snapshot.lastPathComponent == Self.commit)
            expectFixtureFiles(in: snapshot)
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
        hub.set { $0.cutModelAfter = 700_000 }
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        try await withHub(hub) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            await #expect(throws: HubDownloader.DownloadError.self) { try await downloader.download("BAAI/bge-m3") }
            let snapshot = try await downloader.download("BAAI/bge-m3")
            #expect(hub.rangesSoFar.contains { $0.hasPrefix("bytes=") && $0 != "bytes=0-" }, "resumed: \(hub.rangesSoFar)")
            #expect(FileManager.default.contents(atPath: snapshot.appendingPathComponent("model.safetensors").path) == Self.fixtureData("model.safetensors"))
        }
    }

    /// A resumed request answered with a 206 whose `Content-Range` is not the one asked for (another
    /// start, another total, none): the partial file cannot be trusted to line up with the body, so
    /// the download starts again from byte 0 in the same call, and the blob is the right file.
    @Test func aResumeAnsweredWithTheWrongContentRangeStartsAgainFromZero() async throws {
        for fault in ContentRangeFault.allCases {
            let hub = Hub()
            hub.set { $0.cutModelAfter = 700_000 }
            let cache = temporaryCache()
            defer { try? FileManager.default.removeItem(at: cache) }
            try await withHub(hub) { endpoint in
                let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
                await #expect(throws: HubDownloader.DownloadError.self) { try await downloader.download("BAAI/bge-m3") }
                hub.set { $0.contentRangeFault = fault }
                let snapshot = try await downloader.download("BAAI/bge-m3")
                #expect(FileManager.default.contents(atPath: snapshot.appendingPathComponent("model.safetensors").path) == Self.fixtureData("model.safetensors"),
                        "\(fault)")
                // The cut GET, the resumed one (answered wrongly), then one for the whole file.
                #expect(hub.gets(of: "model.safetensors") == 3, "\(fault): \(hub.getsSoFar)")
                #expect(hub.rangesSoFar.count == 1, "\(fault): the restart asks for the whole file: \(hub.rangesSoFar)")
                #expect(!blobNames(cache).contains { $0.hasSuffix(".incomplete") }, "\(fault)")
            }
        }
    }

    @Test func aChecksumMismatchDeletesThePartialFile() async throws {
        let hub = Hub()
        hub.set { $0.wrongChecksum = true }
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
            let blobs = blobNames(cache)
            #expect(!blobs.contains { $0.hasSuffix(".incomplete") }, "\(blobs)")
            #expect(!blobs.contains(String(repeating: "0", count: 64)))
        }
    }

    /// A file stored in git (no `X-Linked-*` headers) is checked against its ETag, the git blob id.
    @Test func aGitFileThatDoesNotMatchItsBlobIDFailsVerification() async throws {
        let hub = Hub()
        hub.set { $0.wrongGitBlob = ["config.json"] }
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        try await withHub(hub) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            let error = await downloadError { _ = try await downloader.download("BAAI/bge-m3") }
            guard case .checksumMismatch(let file, let expected, let actual)? = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(file == "config.json")
            let config = try #require(Self.fixtureData("config.json"))
            #expect(expected == "git blob \(Self.gitBlobID(config + Data("other".utf8)))")
            #expect(actual == "git blob \(Self.gitBlobID(config))")
            #expect(blobNames(cache).isEmpty, "\(blobNames(cache))")
        }
    }

    /// An LFS file is only accepted with a sha256 to check it against.
    @Test func anLFSFileWhoseETagIsNotASHA256IsRefused() async throws {
        for etag in ["abc123", "weak-etag-1", String(repeating: "a", count: 40), String(repeating: "g", count: 64)] {
            let hub = Hub()
            hub.set { $0.modelEtag = etag }
            let cache = temporaryCache()
            defer { try? FileManager.default.removeItem(at: cache) }
            try await withHub(hub) { endpoint in
                let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
                let error = await downloadError { _ = try await downloader.download("BAAI/bge-m3") }
                guard case .invalidHubAnswer(let url, let reason)? = error else { Issue.record("\(etag): got \(String(describing: error))"); return }
                #expect(url.hasSuffix("/model.safetensors"))
                #expect(reason.contains(etag) && reason.contains("sha256"), "\(reason)")
                #expect(hub.gets(of: "model.safetensors") == 0, "nothing fetched that cannot be verified")
            }
        }
    }

    /// A body that runs past the declared size stops with an error; no blob, and nothing longer
    /// than the file on disk.
    @Test func aBodyLongerThanTheDeclaredSizeStopsWithoutABlob() async throws {
        let hub = Hub()
        hub.set { $0.extraModelBytes = 300_000 }
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let weights = try #require(Self.fixtureData("model.safetensors"))
        try await withHub(hub) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            let error = await downloadError { _ = try await downloader.download("BAAI/bge-m3") }
            #expect(error == .bodyTooLong(file: "model.safetensors", expected: weights.count))
            let blobs = repositoryFolder(cache).appendingPathComponent("blobs")
            #expect(!blobNames(cache).contains { $0.hasPrefix(Self.sha256(weights)) }, "\(blobNames(cache))")
            for name in blobNames(cache) {
                let size = try FileManager.default.attributesOfItem(atPath: blobs.appendingPathComponent(name).path)[.size] as? Int ?? 0
                #expect(size <= weights.count, "\(name) has \(size) bytes")
            }
        }
    }

    /// A connection that stops sending mid-body fails after the read timeout as a network error,
    /// keeping what arrived; the next run resumes from there.
    @Test func aStalledBodyTimesOutAsAResumableNetworkError() async throws {
        let hub = Hub()
        hub.set { $0.stallModelAfter = 500_000 }
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let weights = try #require(Self.fixtureData("model.safetensors"))
        try await withHub(hub) { endpoint in
            // 4 s, not 1: with the whole suite running in parallel, a small file's answer once took
            // over a second, timed out first, and the stalled file was never reached.
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache, readTimeout: .seconds(4))
            let started = ContinuousClock.now
            let error = await downloadError { _ = try await downloader.download("BAAI/bge-m3") }
            guard case .network(let message)? = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(message.contains("model.safetensors") && message.contains("read timeout"), "\(message)")
            #expect(error?.description.contains("resume") == true)
            #expect(ContinuousClock.now - started < .seconds(30), "the read timeout ended it, not the stall")
            let partial = repositoryFolder(cache).appendingPathComponent("blobs/\(Self.sha256(weights)).incomplete")
            let kept = try FileManager.default.attributesOfItem(atPath: partial.path)[.size] as? Int ?? 0
            #expect(kept == 500_000)

            hub.set { $0.stallModelAfter = nil; $0.stallReleased = true }
            let snapshot = try await downloader.download("BAAI/bge-m3")
            #expect(hub.rangesSoFar == ["bytes=500000-"])
            expectFixtureFiles(in: snapshot)
        }
    }

    // MARK: - Several downloaders on one cache

    /// Two downloads of one model into one cache at once (two replicas on a shared volume): the
    /// weights are fetched once, under the lock `huggingface_hub` uses; the other download waits
    /// (and says so), then verifies and links the same blob.
    @Test func twoConcurrentDownloadsFetchTheWeightsOnce() async throws {
        let hub = Hub()
        hub.set { $0.chunkDelay = .milliseconds(50); $0.waitForModelHeads = 2 }
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let weights = try #require(Self.fixtureData("model.safetensors"))
        let notices = Notices()
        try await withHub(hub) { endpoint in
            let first = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            let second = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            async let one = first.download("BAAI/bge-m3", onNotice: notices.append)
            async let two = second.download("BAAI/bge-m3", onNotice: notices.append)
            let (a, b) = try await (one, two)
            #expect(a.standardizedFileURL.path == b.standardizedFileURL.path)
            expectFixtureFiles(in: a)
            #expect(hub.gets(of: "model.safetensors") == 1, "\(hub.getsSoFar)")
            #expect(Set(hub.getsSoFar).count == hub.getsSoFar.count, "every file fetched once: \(hub.getsSoFar)")
            #expect(!blobNames(cache).contains { $0.hasSuffix(".incomplete") }, "\(blobNames(cache))")
            let lock = cache.appendingPathComponent(".locks/models--BAAI--bge-m3/\(Self.sha256(weights)).lock")
            #expect(FileManager.default.fileExists(atPath: lock.path), "the lock is where huggingface_hub takes it")
            // Small files may have been waited for too; the slow weights certainly were.
            #expect(notices.all.contains(.waitingForOtherDownload(file: "model.safetensors", lock: lock.path)), "\(notices.all)")
        }
    }

    /// Another process (here the test, as `huggingface_hub` would) holds the blob's lock: the
    /// download waits, then verifies what the holder left. A damaged blob is replaced; a good one
    /// is used without fetching.
    @Test func aDownloadWaitsForTheLockHolderThenVerifiesWhatItWrote() async throws {
        let weights = try #require(Self.fixtureData("model.safetensors"))
        var damaged = weights
        damaged[damaged.count / 2] ^= 0xFF
        for (left, fetches) in [(weights, 0), (damaged, 1)] {
            let hub = Hub()
            let cache = temporaryCache()
            defer { try? FileManager.default.removeItem(at: cache) }
            let lock = cache.appendingPathComponent(".locks/models--BAAI--bge-m3/\(Self.sha256(weights)).lock")
            try FileManager.default.createDirectory(at: lock.deletingLastPathComponent(), withIntermediateDirectories: true)
            let descriptor = open(lock.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            try #require(descriptor >= 0 && flock(descriptor, LOCK_EX | LOCK_NB) == 0)
            let waiting = AsyncStream<HubDownloader.Notice>.makeStream()
            try await withHub(hub) { endpoint in
                let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
                let download = Task {
                    defer { waiting.continuation.finish() }  // so that a download that never waits cannot hang the test
                    return try await downloader.download("BAAI/bge-m3", onNotice: { waiting.continuation.yield($0) })
                }
                var notices = waiting.stream.makeAsyncIterator()
                let notice = await notices.next()
                #expect(notice == .waitingForOtherDownload(file: "model.safetensors", lock: lock.path))
                // The holder finishes its download and lets go.
                try left.write(to: repositoryFolder(cache).appendingPathComponent("blobs/\(Self.sha256(weights))"))
                close(descriptor)
                let snapshot = try await download.value
                expectFixtureFiles(in: snapshot)
                #expect(hub.gets(of: "model.safetensors") == fetches, left == weights ? "a good blob is used" : "a damaged blob is replaced")
            }
        }
    }

    // MARK: - Answers that must not become paths

    /// A commit that is not 40 hex digits (a broken or hostile mirror) is refused before anything
    /// is written: no snapshot, no link and no ref, inside or outside the cache.
    @Test func aCommitThatIsNotAHashIsRefusedAndNothingIsWritten() async throws {
        for sha in ["../../escape", "../../../escape", "abc", String(repeating: "g", count: 40), Self.commit + "/../x"] {
            let hub = Hub()
            hub.set { $0.sha = sha }
            let sandbox = temporaryCache()
            defer { try? FileManager.default.removeItem(at: sandbox) }
            let cache = sandbox.appendingPathComponent("hub")
            try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
            try await withHub(hub) { endpoint in
                let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
                let error = await downloadError { _ = try await downloader.download("BAAI/bge-m3") }
                guard case .invalidHubAnswer(let url, let reason)? = error else { Issue.record("\(sha): got \(String(describing: error))"); return }
                #expect(url.contains("/api/models/BAAI/bge-m3/revision/main"))
                #expect(reason.contains(sha) && reason.contains("40 hex"), "\(reason)")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: sandbox.path) == ["hub"], "\(sha)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path) == [], "\(sha)")
        }
    }

    /// Revisions that could leave `refs/` are refused before any request; a branch with slashes,
    /// as the hub has for pull requests, is stored under `refs/` as `huggingface_hub` does.
    @Test func revisionsAreCheckedBeforeTheyBecomePaths() async throws {
        let hub = Hub()
        hub.set { $0.revisions = ["main", "refs/pr/1"] }
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        try await withHub(hub) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            for revision in ["../main", "refs/../../x", "/etc/passwd", "", "a//b", "main/", "a\\b", "a\u{0}b", String(repeating: "x", count: 256)] {
                let error = await downloadError { _ = try await downloader.download("BAAI/bge-m3", revision: revision) }
                guard case .invalidRevision(let named, _)? = error else { Issue.record("\(revision): got \(String(describing: error))"); continue }
                #expect(named == revision)
            }
            #expect(hub.current.infoRevisions.isEmpty, "nothing asked of the hub: \(hub.current.infoRevisions)")
            #expect(!FileManager.default.fileExists(atPath: cache.path))

            let snapshot = try await downloader.download("BAAI/bge-m3", revision: "refs/pr/1")
            #expect(hub.current.infoRevisions == ["refs%2Fpr%2F1"])
            let reference = repositoryFolder(cache).appendingPathComponent("refs/refs/pr/1")
            #expect(try String(contentsOf: reference, encoding: .utf8) == Self.commit)
            #expect(try ModelLocator(cacheDirectory: cache).locate("BAAI/bge-m3", revision: "refs/pr/1").path == snapshot.path)
        }
    }

    /// A snapshot that lost a file (an interrupted download at a pinned commit) is not located,
    /// the error names the file, and downloading again completes it without fetching the rest.
    @Test func anIncompleteSnapshotIsNotLocatedUntilADownloadCompletesIt() async throws {
        let hub = Hub()
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        try await withHub(hub) { endpoint in
            let downloader = HubDownloader(endpoint: endpoint, token: nil, cacheDirectory: cache)
            let snapshot = try await downloader.download("BAAI/bge-m3", revision: Self.commit)
            try FileManager.default.removeItem(at: snapshot.appendingPathComponent("model.safetensors"))
            let locator = ModelLocator(cacheDirectory: cache)
            #expect(throws: ModelLocator.LocateError.incompleteSnapshot(model: "BAAI/bge-m3", revision: Self.commit,
                                                                       missing: ["model.safetensors or pytorch_model.bin"], path: snapshot.path)) {
                try locator.locate("BAAI/bge-m3", revision: Self.commit)
            }
            let fetched = hub.getsSoFar.count
            _ = try await downloader.download("BAAI/bge-m3", revision: Self.commit)
            #expect(try locator.locate("BAAI/bge-m3", revision: Self.commit).path == snapshot.path)
            expectFixtureFiles(in: snapshot)
            #expect(hub.getsSoFar.count == fetched, "the blob was still there: \(hub.getsSoFar)")
        }
    }

    // MARK: - Failures

    /// A full disk while the weights arrive: the partial file (here `/dev/full`, which answers
    /// every write with ENOSPC) is never used, the error says it is the disk, and no snapshot
    /// link or blob points at half a file.
    @Test func aFullDiskIsAFilesystemErrorAndNothingHalfWrittenIsUsed() async throws {
        let cache = temporaryCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let weights = try #require(Self.fixtureData("model.safetensors"))
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
