extension HubDownloader {
    /// Why a download failed; each case names the file or what to do.
    public enum DownloadError: Error, Sendable, Equatable, CustomStringConvertible {
        case revisionNotFound(repository: String, revision: String)
        /// The revision cannot name a file under `refs/` (see ``HubDownloader/download(_:revision:progress:onNotice:)``).
        case invalidRevision(revision: String, reason: String)
        case unauthorized(repository: String)
        case missingFile(repository: String, file: String)
        /// The hub (or the mirror at `HF_ENDPOINT`) answered something bgem3 will not use: a commit
        /// that is not 40 hex digits, an LFS file whose ETag is not a sha256, a 206 for a range that
        /// was not asked for. Nothing was written from that answer.
        case invalidHubAnswer(url: String, reason: String)
        case checksumMismatch(file: String, expected: String, actual: String)
        case sizeMismatch(file: String, expected: Int, actual: Int)
        /// The body ran past the size the hub declared; the partial file was deleted.
        case bodyTooLong(file: String, expected: Int)
        case http(url: String, status: Int)
        /// A connection failed, timed out or was cut: what was received is kept, and the next run
        /// resumes from it.
        case network(String)
        case filesystem(String)

        public var description: String {
            switch self {
            case .revisionNotFound(let repository, let revision): return "\(repository) has no revision \(revision) on the hub"
            case .invalidRevision(let revision, let reason): return "the revision `\(revision)` is not usable: \(reason)"
            case .unauthorized(let repository): return "the hub refused access to \(repository); set HF_TOKEN for gated or private models"
            case .missingFile(let repository, let file): return "\(repository) has no \(file), which bgem3 needs"
            case .invalidHubAnswer(let url, let reason):
                return "the hub's answer to \(url) is not usable: \(reason); check HF_ENDPOINT if it names a mirror"
            case .checksumMismatch(let file, let expected, let actual):
                return "\(file) failed verification (checksum \(actual), expected \(expected)); the partial file was deleted, run again to download it anew"
            case .sizeMismatch(let file, let expected, let actual): return "\(file) has \(actual) bytes, expected \(expected); run again to resume"
            case .bodyTooLong(let file, let expected):
                return "the hub sent more than the \(expected) bytes it declared for \(file); the partial file was deleted, run again to download it anew"
            case .http(let url, let status): return "GET \(url) answered HTTP \(status)"
            case .network(let message): return "download failed: \(message); run again to resume"
            case .filesystem(let message): return "cannot write the model cache: \(message)"
            }
        }
    }

    /// Something a download waits for or works around, reported as it happens so that a log or a
    /// terminal can show why nothing moves.
    public enum Notice: Sendable, Equatable, CustomStringConvertible {
        /// Another process (a replica on a shared volume, or `huggingface_hub`) holds the lock of
        /// this file's blob. The download waits for it, then verifies what the other process wrote
        /// and uses it, or downloads the file itself if nothing usable was left.
        case waitingForOtherDownload(file: String, lock: String)
        /// The cache's filesystem refused the lock (`flock`); the file is downloaded without it,
        /// still verified before it is moved into place.
        case lockUnavailable(file: String, lock: String, reason: String)

        public var description: String {
            switch self {
            case .waitingForOtherDownload(let file, let lock): return "waiting for another download of \(file) (lock \(lock))"
            case .lockUnavailable(let file, let lock, let reason): return "downloading \(file) without a lock: cannot lock \(lock) (\(reason))"
            }
        }
    }
}
