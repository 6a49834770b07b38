import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// Downloads a model from the Hugging Face hub's HTTP API into the hub cache layout, so that
/// ``ModelLocator`` (and `huggingface_hub`) find it: resumable (HTTP range requests on a
/// `.incomplete` file), verified (size, and sha256 of LFS files), placed atomically.
public struct HubDownloader: Sendable {
    public let endpoint: URL
    public let token: String?
    public let cacheDirectory: URL

    /// The files a BGE-M3 directory needs; the weights are `model.safetensors` or, failing that,
    /// `pytorch_model.bin`.
    public static let requiredFiles = ["config.json", "tokenizer.json", "sparse_linear.pt", "colbert_linear.pt"]
    public static let optionalFiles = ["tokenizer_config.json", "special_tokens_map.json"]

    public init(endpoint: URL, token: String?, cacheDirectory: URL) {
        self.endpoint = endpoint
        self.token = token
        self.cacheDirectory = cacheDirectory
    }

    /// `HF_ENDPOINT` (default `https://huggingface.co`), `HF_TOKEN`, and the cache of ``ModelLocator``.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.endpoint = URL(string: environment["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co")!
        self.token = environment["HF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        self.cacheDirectory = ModelLocator(environment: environment).cacheDirectory
    }

    /// Why a download failed; each case names the file or what to do.
    public enum DownloadError: Error, Sendable, Equatable, CustomStringConvertible {
        case revisionNotFound(repository: String, revision: String)
        case unauthorized(repository: String)
        case missingFile(repository: String, file: String)
        case checksumMismatch(file: String, expected: String, actual: String)
        case sizeMismatch(file: String, expected: Int, actual: Int)
        case http(url: String, status: Int)
        case network(String)
        case filesystem(String)

        public var description: String {
            switch self {
            case .revisionNotFound(let repository, let revision): return "\(repository) has no revision \(revision) on the hub"
            case .unauthorized(let repository): return "the hub refused access to \(repository); set HF_TOKEN for gated or private models"
            case .missingFile(let repository, let file): return "\(repository) has no \(file), which bgem3 needs"
            case .checksumMismatch(let file, let expected, let actual):
                return "\(file) failed verification (sha256 \(actual), expected \(expected)); the partial file was deleted, run again to download it anew"
            case .sizeMismatch(let file, let expected, let actual): return "\(file) has \(actual) bytes, expected \(expected); run again to resume"
            case .http(let url, let status): return "GET \(url) answered HTTP \(status)"
            case .network(let message): return "download failed: \(message); run again to resume"
            case .filesystem(let message): return "cannot write the model cache: \(message)"
            }
        }
    }

    /// Progress of one file: bytes so far and in all.
    public typealias Progress = @Sendable (_ file: String, _ done: Int, _ total: Int) -> Void

    /// Downloads what is missing and returns the snapshot directory.
    public func download(_ repository: String, revision: String = "main", progress: Progress = { _, _, _ in }) async throws -> URL {
        let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                configuration: .init(redirectConfiguration: .follow(max: 10, allowCycles: false)))
        let headClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
        do {
            let snapshot = try await run(repository, revision: revision, client: client, headClient: headClient, progress: progress)
            try? await client.shutdown()
            try? await headClient.shutdown()
            return snapshot
        } catch {
            try? await client.shutdown()
            try? await headClient.shutdown()
            throw error
        }
    }

    private func run(_ repository: String, revision: String, client: HTTPClient, headClient: HTTPClient, progress: Progress) async throws -> URL {
        let parts = repository.split(separator: "/")
        guard parts.count == 2 else { throw ModelLocator.LocateError.invalidIdentifier(repository) }
        let root = cacheDirectory.appendingPathComponent("models--\(parts[0])--\(parts[1])")

        // 1. The revision's commit and file list.
        let info = try await fetch(url("api/models/\(repository)/revision/\(revision)"), client: client, repository: repository, revision: revision)
        guard let object = try? JSONSerialization.jsonObject(with: info) as? [String: Any], let commit = object["sha"] as? String else {
            throw DownloadError.network("the hub's model info for \(repository) is not what bgem3 expects")
        }
        let available = Set((object["siblings"] as? [[String: Any]] ?? []).compactMap { $0["rfilename"] as? String })
        var files = Self.requiredFiles
        for file in files where !available.contains(file) { throw DownloadError.missingFile(repository: repository, file: file) }
        if available.contains("model.safetensors") { files.append("model.safetensors") }
        else if available.contains("pytorch_model.bin") { files.append("pytorch_model.bin") }
        else { throw DownloadError.missingFile(repository: repository, file: "model.safetensors or pytorch_model.bin") }
        files += Self.optionalFiles.filter(available.contains)

        let snapshot = root.appendingPathComponent("snapshots/\(commit)")
        do {
            try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: root.appendingPathComponent("blobs"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: root.appendingPathComponent("refs"), withIntermediateDirectories: true)
        } catch {
            throw DownloadError.filesystem("\(root.path): \(error.localizedDescription)")
        }

        // 2. Each file into blobs/<etag>, linked from the snapshot.
        for file in files {
            let fileURL = url("\(repository)/resolve/\(commit)/\(file)")
            let (etag, size) = try await metadata(fileURL, client: headClient, repository: repository, file: file)
            let blob = root.appendingPathComponent("blobs/\(etag)")
            if let existing = Self.size(of: blob), existing == size {
                progress(file, size, size)
            } else {
                try await fetchBlob(fileURL, file: file, to: blob, size: size, sha256: etag.count == 64 ? etag : nil, client: client, progress: progress)
            }
            let link = snapshot.appendingPathComponent(file)
            try? FileManager.default.removeItem(at: link)
            do {
                try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "../../blobs/\(etag)")
            } catch {
                throw DownloadError.filesystem("\(link.path): \(error.localizedDescription)")
            }
        }

        // 3. The revision now points at this commit (written atomically).
        if revision != commit {
            let reference = root.appendingPathComponent("refs/\(revision)")
            do {
                try FileManager.default.createDirectory(at: reference.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(commit.utf8).write(to: reference, options: .atomic)
            } catch {
                throw DownloadError.filesystem("\(reference.path): \(error.localizedDescription)")
            }
        }
        return snapshot
    }

    private func url(_ path: String) -> URL {
        URL(string: endpoint.absoluteString.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/" + path)!
    }

    private func request(_ url: URL, method: HTTPMethod = .GET) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        request.headers.add(name: "User-Agent", value: "bgem3")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        return request
    }

    private func fetch(_ url: URL, client: HTTPClient, repository: String, revision: String) async throws -> Data {
        let response: HTTPClientResponse
        do { response = try await client.execute(request(url), timeout: .seconds(60)) } catch { throw DownloadError.network("\(url): \(error)") }
        switch response.status.code {
        case 200: break
        case 401, 403: throw DownloadError.unauthorized(repository: repository)
        case 404: throw DownloadError.revisionNotFound(repository: repository, revision: revision)
        default: throw DownloadError.http(url: url.absoluteString, status: Int(response.status.code))
        }
        do {
            let body = try await response.body.collect(upTo: 16 << 20)
            return Data(body.readableBytesView)
        } catch {
            throw DownloadError.network("\(url): \(error)")
        }
    }

    /// The blob name (the LFS sha256, or the git object id) and the size, from a HEAD request
    /// that does not follow the redirect to the CDN (the hub puts both in `X-Linked-*` headers).
    private func metadata(_ url: URL, client: HTTPClient, repository: String, file: String) async throws -> (String, Int) {
        let response: HTTPClientResponse
        do { response = try await client.execute(request(url, method: .HEAD), timeout: .seconds(60)) } catch { throw DownloadError.network("\(url): \(error)") }
        guard response.status.code < 400 else {
            if response.status.code == 404 { throw DownloadError.missingFile(repository: repository, file: file) }
            if response.status.code == 401 || response.status.code == 403 { throw DownloadError.unauthorized(repository: repository) }
            throw DownloadError.http(url: url.absoluteString, status: Int(response.status.code))
        }
        let etag = (response.headers.first(name: "X-Linked-Etag") ?? response.headers.first(name: "ETag") ?? "")
            .replacingOccurrences(of: "W/", with: "").trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        let sizeText = response.headers.first(name: "X-Linked-Size") ?? response.headers.first(name: "Content-Length") ?? ""
        guard !etag.isEmpty, etag.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }), let size = Int(sizeText) else {
            throw DownloadError.network("the hub gave no usable ETag and size for \(file)")
        }
        return (etag, size)
    }

    /// Downloads into `<blob>.incomplete`, resuming what is there, verifies, and renames.
    private func fetchBlob(_ url: URL, file: String, to blob: URL, size: Int, sha256: String?, client: HTTPClient, progress: Progress) async throws {
        let partial = URL(fileURLWithPath: blob.path + ".incomplete")
        var have = Self.size(of: partial) ?? 0
        if have > size { try? FileManager.default.removeItem(at: partial); have = 0 }
        if !FileManager.default.fileExists(atPath: partial.path) {
            guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
                throw DownloadError.filesystem("cannot create \(partial.path)")
            }
        }
        if have < size {
            var request = request(url)
            if have > 0 { request.headers.add(name: "Range", value: "bytes=\(have)-") }
            let handle: FileHandle
            do { handle = try FileHandle(forWritingTo: partial) } catch { throw DownloadError.filesystem("\(partial.path): \(error.localizedDescription)") }
            defer { try? handle.close() }
            do {
                let response = try await client.execute(request, timeout: .hours(6))
                switch response.status.code {
                case 206: try handle.seekToEnd()
                case 200: try handle.truncate(atOffset: 0); have = 0
                default: throw DownloadError.http(url: url.absoluteString, status: Int(response.status.code))
                }
                for try await buffer in response.body {
                    do {
                        try handle.write(contentsOf: Data(buffer.readableBytesView))
                    } catch {
                        // A full disk or a lost mount: the file stays `.incomplete` (never used),
                        // and the next run resumes from what was written.
                        throw DownloadError.filesystem("writing \(file) to \(partial.path) failed after \(have) of \(size) bytes (\(error.localizedDescription)); "
                                                       + "free space there, or set BGE_M3_CACHE_DIR elsewhere, and run again to resume")
                    }
                    have += buffer.readableBytes
                    progress(file, have, size)
                }
            } catch let error as DownloadError {
                throw error
            } catch {
                throw DownloadError.network("\(file) stopped at \(have) of \(size) bytes (\(error))")
            }
        }
        let actualSize = Self.size(of: partial) ?? 0
        guard actualSize == size else { throw DownloadError.sizeMismatch(file: file, expected: size, actual: actualSize) }
        if let sha256 {
            let actual = try Self.sha256(of: partial)
            guard actual == sha256.lowercased() else {
                try? FileManager.default.removeItem(at: partial)
                throw DownloadError.checksumMismatch(file: file, expected: sha256, actual: actual)
            }
        }
        do {
            try? FileManager.default.removeItem(at: blob)
            try FileManager.default.moveItem(at: partial, to: blob)
        } catch {
            throw DownloadError.filesystem("\(blob.path): \(error.localizedDescription)")
        }
    }

    private static func size(of url: URL) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue
    }

    private static func sha256(of url: URL) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw DownloadError.filesystem("cannot read \(url.path)") }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try? handle.read(upToCount: 8 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
