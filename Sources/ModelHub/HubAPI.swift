import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The hub's HTTP API as the downloader uses it: the revision's commit and file list, and each
/// file's ETag and size. Every answer that becomes a path is checked here (see ``HubNames``).
struct HubAPI: Sendable {
    let endpoint: URL
    let token: String?
    let repository: String
    let readTimeout: Duration
    /// Follows redirects (file bodies come from a CDN).
    let client: HTTPClient
    /// Does not: the `X-Linked-*` headers are on the hub's redirect itself.
    let headClient: HTTPClient

    /// A backstop for a server that accepts a request and never answers; a stall after the
    /// request is sent is caught sooner by the read timeout.
    static let responseHeadDeadline = TimeAmount.minutes(2)

    init(endpoint: URL, token: String?, repository: String, readTimeout: Duration, connectTimeout: Duration) {
        self.endpoint = endpoint
        self.token = token
        self.repository = repository
        self.readTimeout = readTimeout
        let timeout = HTTPClient.Configuration.Timeout(connect: Self.timeAmount(connectTimeout), read: Self.timeAmount(readTimeout))
        var following = HTTPClient.Configuration(redirectConfiguration: .follow(max: 10, allowCycles: false))
        following.timeout = timeout
        var notFollowing = HTTPClient.Configuration(redirectConfiguration: .disallow)
        notFollowing.timeout = timeout
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: following)
        headClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: notFollowing)
    }

    func shutdown() async {
        try? await client.shutdown()
        try? await headClient.shutdown()
    }

    /// The commit `revision` resolves to (checked: 40 hex digits), and the repository's file names.
    func revisionInfo(_ revision: String) async throws -> (commit: String, files: Set<String>) {
        let infoURL = url("api/models/\(repository)/revision/\(Self.pathSegment(revision))")
        let response: HTTPClientResponse
        do { response = try await client.execute(request(infoURL), timeout: Self.responseHeadDeadline) } catch {
            throw HubDownloader.DownloadError.network("\(infoURL): \(describe(error))")
        }
        switch response.status.code {
        case 200: break
        case 401, 403: throw HubDownloader.DownloadError.unauthorized(repository: repository)
        case 404: throw HubDownloader.DownloadError.revisionNotFound(repository: repository, revision: revision)
        default: throw HubDownloader.DownloadError.http(url: infoURL.absoluteString, status: Int(response.status.code))
        }
        let body: Data
        do { body = Data(try await response.body.collect(upTo: 16 << 20).readableBytesView) } catch {
            throw HubDownloader.DownloadError.network("\(infoURL): \(describe(error))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let commit = object["sha"] as? String else {
            throw HubDownloader.DownloadError.invalidHubAnswer(url: infoURL.absoluteString, reason: "it is not model info with a `sha`")
        }
        guard HubNames.isCommitHash(commit) else {
            throw HubDownloader.DownloadError.invalidHubAnswer(url: infoURL.absoluteString,
                                                               reason: "the commit `\(commit.prefix(100))` is not 40 hex digits")
        }
        if HubNames.isCommitHash(revision), revision.lowercased() != commit.lowercased() {
            throw HubDownloader.DownloadError.invalidHubAnswer(url: infoURL.absoluteString, reason: "asked for commit \(revision), it named \(commit)")
        }
        let files = Set((object["siblings"] as? [[String: Any]] ?? []).compactMap { $0["rfilename"] as? String })
        return (commit, files)
    }

    /// The file's URL at `commit`, how to verify it, and its blob name (the ETag), from a HEAD
    /// request that does not follow the redirect to the CDN (the hub puts the LFS sha256 and size
    /// in `X-Linked-*` headers of the redirect).
    func fileMetadata(commit: String, file: String) async throws -> (URL, HubFileVerifier, String) {
        let fileURL = url("\(repository)/resolve/\(commit)/\(file)")
        let response: HTTPClientResponse
        do { response = try await headClient.execute(request(fileURL, method: .HEAD), timeout: Self.responseHeadDeadline) } catch {
            throw HubDownloader.DownloadError.network("\(fileURL): \(describe(error))")
        }
        guard response.status.code < 400 else {
            if response.status.code == 404 { throw HubDownloader.DownloadError.missingFile(repository: repository, file: file) }
            if response.status.code == 401 || response.status.code == 403 { throw HubDownloader.DownloadError.unauthorized(repository: repository) }
            throw HubDownloader.DownloadError.http(url: fileURL.absoluteString, status: Int(response.status.code))
        }
        let linkedEtag = response.headers.first(name: "X-Linked-Etag")
        let isLFS = linkedEtag != nil
        let etag = (linkedEtag ?? response.headers.first(name: "ETag") ?? "")
            .replacingOccurrences(of: "W/", with: "").trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        let sizeText = (isLFS ? response.headers.first(name: "X-Linked-Size") : nil) ?? response.headers.first(name: "Content-Length") ?? ""
        guard HubNames.isBlobName(etag) else {
            throw HubDownloader.DownloadError.invalidHubAnswer(url: fileURL.absoluteString,
                                                               reason: "the ETag `\(etag.prefix(140))` of \(file) is not 1 to 128 letters, digits and dashes")
        }
        guard let size = Int(sizeText), size >= 0 else {
            throw HubDownloader.DownloadError.invalidHubAnswer(url: fileURL.absoluteString, reason: "no usable size for \(file) (`\(sizeText.prefix(40))`)")
        }
        return (fileURL, try HubFileVerifier.make(file: file, etag: etag, size: size, isLFS: isLFS, url: fileURL), etag)
    }

    func url(_ path: String) -> URL {
        URL(string: endpoint.absoluteString.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/" + path)!
    }

    func request(_ url: URL, method: HTTPMethod = .GET) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        request.headers.add(name: "User-Agent", value: "bgem3")
        // Sizes and checksums are of the file itself, not of a compressed transfer.
        request.headers.add(name: "Accept-Encoding", value: "identity")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        return request
    }

    /// An error from the HTTP client in words, the timeouts spelled out.
    func describe(_ error: any Error) -> String {
        switch error as? HTTPClientError {
        case .readTimeout?: return "no data for \(readTimeout) (read timeout)"
        case .connectTimeout?: return "could not connect in time (connect timeout)"
        case .deadlineExceeded?: return "no answer within \(Self.responseHeadDeadline)"
        default: return "\(error)"
        }
    }

    /// `revision` as one URL path segment: branch names like `refs/pr/1` are sent as
    /// `refs%2Fpr%2F1`, as `huggingface_hub` does.
    static func pathSegment(_ text: String) -> String {
        var allowed = CharacterSet()
        allowed.insert(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    private static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
