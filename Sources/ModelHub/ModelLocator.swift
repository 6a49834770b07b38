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

        public var description: String {
            switch self {
            case .notFound(let model, let cache):
                return "\(model) is neither a directory nor a model in the Hugging Face cache at \(cache); give --model DIR, or run `bgem3 download \(model)`"
            case .revisionNotCached(let model, let revision, let cache):
                return "\(model) is in the Hugging Face cache at \(cache) but not at revision \(revision)"
            case .invalidIdentifier(let model):
                return "\(model) is not a directory and not a hub id of the form OWNER/NAME"
            }
        }
    }

    /// The directory holding the model's files.
    public func locate(_ model: String, revision: String = "main") throws(LocateError) -> URL {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory), isDirectory.boolValue {
            return URL(fileURLWithPath: model)
        }
        let parts = model.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && !$0.contains("..") }) else { throw .invalidIdentifier(model) }
        let repository = cacheDirectory.appendingPathComponent("models--\(parts[0])--\(parts[1])")
        guard FileManager.default.fileExists(atPath: repository.path) else { throw .notFound(model: model, cache: cacheDirectory.path) }
        let commit: String
        if revision.count == 40, revision.allSatisfy(\.isHexDigit) {
            commit = revision
        } else if let reference = try? String(contentsOf: repository.appendingPathComponent("refs/\(revision)"), encoding: .utf8) {
            commit = reference.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            throw .revisionNotCached(model: model, revision: revision, cache: cacheDirectory.path)
        }
        let snapshot = repository.appendingPathComponent("snapshots/\(commit)")
        guard FileManager.default.fileExists(atPath: snapshot.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .revisionNotCached(model: model, revision: revision, cache: cacheDirectory.path)
        }
        return snapshot
    }
}
