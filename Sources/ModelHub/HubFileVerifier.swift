import Crypto
import Foundation

/// What a downloaded file is checked against: its size, always, and the checksum its ETag names.
///
/// The hub's ETag is a content hash: for an LFS file (the HEAD answer has `X-Linked-Etag` and
/// `X-Linked-Size`) it is the sha256 of the file, and for a file stored in git it is the git blob
/// id, the sha1 of `"blob <size>\0"` followed by the content (what `git hash-object` prints).
struct HubFileVerifier: Sendable {
    enum Checksum: Sendable, Equatable {
        case sha256(String)
        case gitBlobSHA1(String)
        /// A file in git whose ETag is not a git blob id (a mirror that makes up its own ETags):
        /// only its size can be checked, as `huggingface_hub` does for every file.
        case none
    }

    let file: String
    let size: Int
    let checksum: Checksum

    /// The verifier for `file` from the HEAD answer to `url`. An LFS file must have a sha256
    /// (64 hex digits) as its ETag, else ``HubDownloader/DownloadError/invalidHubAnswer(url:reason:)``:
    /// a 2 GB weights file checked by size alone could be any 2 GB.
    static func make(file: String, etag: String, size: Int, isLFS: Bool, url: URL) throws(HubDownloader.DownloadError) -> HubFileVerifier {
        if isLFS {
            guard HubNames.isHex(etag, count: 64) else {
                throw .invalidHubAnswer(url: url.absoluteString,
                                        reason: "\(file) is an LFS file but its ETag `\(etag)` is not a sha256 (64 hex digits), so it cannot be verified")
            }
            return HubFileVerifier(file: file, size: size, checksum: .sha256(etag.lowercased()))
        }
        return HubFileVerifier(file: file, size: size, checksum: HubNames.isHex(etag, count: 40) ? .gitBlobSHA1(etag.lowercased()) : .none)
    }

    /// Checks the file at `path`: size first (cheap), then the checksum (reads the whole file:
    /// sha256 of the 2.2 GB BGE-M3 weights takes a few seconds).
    func verify(_ path: URL) throws(HubDownloader.DownloadError) {
        let actualSize = Self.size(of: path) ?? 0
        guard actualSize == size else { throw .sizeMismatch(file: file, expected: size, actual: actualSize) }
        switch checksum {
        case .none:
            return
        case .sha256(let expected):
            var hasher = SHA256()
            try Self.read(path) { hasher.update(data: $0) }
            let actual = Self.hex(hasher.finalize())
            guard actual == expected else { throw .checksumMismatch(file: file, expected: "sha256 \(expected)", actual: "sha256 \(actual)") }
        case .gitBlobSHA1(let expected):
            var hasher = Insecure.SHA1()
            hasher.update(data: Data("blob \(actualSize)\0".utf8))
            try Self.read(path) { hasher.update(data: $0) }
            let actual = Self.hex(hasher.finalize())
            guard actual == expected else { throw .checksumMismatch(file: file, expected: "git blob \(expected)", actual: "git blob \(actual)") }
        }
    }

    /// The size of the file or link at `path` (the link itself, not its target), if it exists.
    static func size(of path: URL) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path.path)[.size] as? NSNumber)?.intValue
    }

    private static func read(_ path: URL, _ consume: (Data) -> Void) throws(HubDownloader.DownloadError) {
        guard let handle = FileHandle(forReadingAtPath: path.path) else { throw .filesystem("cannot read \(path.path) to verify it") }
        defer { try? handle.close() }
        while true {
            let chunk: Data
            do { chunk = try handle.read(upToCount: 8 << 20) ?? Data() } catch {
                throw .filesystem("reading \(path.path) to verify it failed: \(error.localizedDescription)")
            }
            if chunk.isEmpty { return }
            consume(chunk)
        }
    }

    private static func hex(_ digest: some Digest) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
