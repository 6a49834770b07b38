import Foundation

/// A fresh directory under the system's temporary directory for one test's files.
///
/// Tests call ``remove()`` in a `defer`: removal on deinit could run before the test's last use of
/// a path taken from it, since Swift may end an object's life after its last use.
public final class ScratchDirectory: Sendable {
    public let url: URL

    /// Creates `bgem3-<label>-<UUID>`.
    public init(_ label: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("bgem3-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// `bgem3-<label>-<UUID>` under the temporary directory, not created: for a directory the
    /// program under test must create itself (a cache it makes).
    public static func unusedPath(_ label: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("bgem3-\(label)-\(UUID().uuidString)")
    }

    public var path: String { url.path }

    public func url(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// Writes `bytes` to `name` and returns its path.
    @discardableResult
    public func write(_ bytes: [UInt8], as name: String) throws -> String {
        let file = url(name)
        try Data(bytes).write(to: file)
        return file.path
    }

    /// A scratch directory of symbolic links to `model`'s files except `excluded`: a model directory
    /// to edit or remove files in.
    public static func linkedModel(_ model: URL = RepositoryFixtures.tinyModel, excluding excluded: Set<String> = []) throws -> ScratchDirectory {
        let scratch = try ScratchDirectory("model")
        for name in try FileManager.default.contentsOfDirectory(atPath: model.path) where !excluded.contains(name) {
            try FileManager.default.createSymbolicLink(at: scratch.url(name), withDestinationURL: model.appendingPathComponent(name))
        }
        return scratch
    }

    public func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}
