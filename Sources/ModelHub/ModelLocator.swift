import Foundation

/// Where a `--model` argument points: a model directory, or a hub id (`BAAI/bge-m3`) already in
/// the Hugging Face cache, as `huggingface_hub` lays it out:
/// `<cache>/models--BAAI--bge-m3/refs/<revision>` holds a commit hash, and
/// `<cache>/models--BAAI--bge-m3/snapshots/<hash>/` holds the files.
public struct ModelLocator: Sendable {
    /// The hub cache directory: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    public let cacheDirectory: URL

    public init(cacheDirectory: URL) {
        self.cacheDirectory = cacheDirectory
    }

    /// The cache directory the environment names.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let hub = environment["HF_HUB_CACHE"], !hub.isEmpty {
            cacheDirectory = URL(fileURLWithPath: hub)
        } else if let home = environment["HF_HOME"], !home.isEmpty {
            cacheDirectory = URL(fileURLWithPath: home).appendingPathComponent("hub")
        } else {
            let user = environment["HOME"].map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser
            cacheDirectory = user.appendingPathComponent(".cache/huggingface/hub")
        }
    }

    /// Why a model could not be found. Each case says what to do.
    public enum LocateError: Error, Sendable, Equatable, CustomStringConvertible {
        case notFound(model: String, cache: String)
        case revisionNotCached(model: String, revision: String, cache: String)
        case invalidIdentifier(String)
        /// The revision could not name a file under `refs/` (`..` or `.` as a component, a
        /// leading `/`, a backslash or control character, empty, over 255 bytes).
        case invalidRevision(revision: String, reason: String)
        /// `refs/<revision>` holds something other than a commit hash, so it is not followed.
        case invalidReference(model: String, revision: String, path: String)
        /// The snapshot lacks files a model needs (an interrupted download): `missing` names them.
        case incompleteSnapshot(model: String, revision: String, missing: [String], path: String)

        public var description: String {
            switch self {
            case .notFound(let model, let cache):
                return "\(model) is neither a directory nor a model in the Hugging Face cache at \(cache); give --model DIR, or run `bgem3 download \(model)`"
            case .revisionNotCached(let model, let revision, let cache):
                return "\(model) is in the Hugging Face cache at \(cache) but not at revision \(revision)"
            case .invalidIdentifier(let model):
                return "\(model) is not a directory and not a hub id of the form OWNER/NAME"
            case .invalidRevision(let revision, let reason):
                return "the revision `\(revision)` is not usable: \(reason)"
            case .invalidReference(let model, let revision, let path):
                return "\(path) should hold the commit of \(model) at \(revision) (40 hex digits) but does not; run `bgem3 download \(model) --revision \(revision)` to rewrite it"
            case .incompleteSnapshot(let model, let revision, let missing, let path):
                return "the cached snapshot of \(model) at \(revision) (\(path)) lacks \(missing.joined(separator: ", ")); run `bgem3 download \(model) --revision \(revision)` to complete it"
            }
        }
    }

    /// The files a snapshot must have for ``locate(_:revision:)`` to return it: each entry is
    /// satisfied by any one of its names.
    static let neededFiles: [[String]] = HubDownloader.requiredFiles.map { [$0] } + [HubDownloader.weightFiles]

    /// The directory holding the model's files.
    ///
    /// A directory path is returned as it is (the model loader names any file it lacks). A hub
    /// id is looked up in the cache: the revision (a commit hash, or a name whose `refs/` file
    /// holds one) must have a snapshot with every file a model needs, each a readable regular
    /// file or a link to one; otherwise ``LocateError/incompleteSnapshot(model:revision:missing:path:)``
    /// names what is missing, and downloading the revision again completes it.
    public func locate(_ model: String, revision: String = "main") throws(LocateError) -> URL {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory), isDirectory.boolValue {
            return URL(fileURLWithPath: model)
        }
        guard let (owner, name) = HubNames.repositoryParts(model) else { throw .invalidIdentifier(model) }
        if let problem = HubNames.revisionProblem(revision) { throw .invalidRevision(revision: revision, reason: problem) }
        let repository = cacheDirectory.appendingPathComponent(HubNames.repositoryFolder(owner: owner, name: name))
        guard FileManager.default.fileExists(atPath: repository.path) else { throw .notFound(model: model, cache: cacheDirectory.path) }
        let commit: String
        if HubNames.isCommitHash(revision) {
            commit = revision
        } else {
            let reference = repository.appendingPathComponent("refs").appendingPathComponent(revision)
            guard let text = try? String(contentsOf: reference, encoding: .utf8) else {
                throw .revisionNotCached(model: model, revision: revision, cache: cacheDirectory.path)
            }
            commit = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard HubNames.isCommitHash(commit) else { throw .invalidReference(model: model, revision: revision, path: reference.path) }
        }
        let snapshot = repository.appendingPathComponent("snapshots").appendingPathComponent(commit)
        guard FileManager.default.fileExists(atPath: snapshot.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .revisionNotCached(model: model, revision: revision, cache: cacheDirectory.path)
        }
        let missing = Self.neededFiles.filter { names in
            !names.contains { Self.isReadableFile(snapshot.appendingPathComponent($0)) }
        }.map { $0.joined(separator: " or ") }
        guard missing.isEmpty else { throw .incompleteSnapshot(model: model, revision: revision, missing: missing, path: snapshot.path) }
        return snapshot
    }

    /// A regular file, or a link that resolves to one, that this process may read.
    private static func isReadableFile(_ url: URL) -> Bool {
        var status = stat()
        guard stat(url.path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return false }
        return access(url.path, R_OK) == 0
    }
}
