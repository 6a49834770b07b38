import Foundation

/// Checks of the names that become paths in the hub cache: the repository id, the revision, the
/// commit hash and the blob name (ETag).
///
/// Each comes from a user or from the hub's answers (or a mirror's, which may be wrong or hostile),
/// and each is joined into a path under the cache directory, so each is checked before use: a
/// commit of `../../x` would otherwise make the downloader create, delete and link files outside
/// the cache.
enum HubNames {
    /// `OWNER/NAME` split in two, if both parts are what the hub allows: ASCII letters, digits,
    /// `-`, `_` and `.`, at most 96 characters, neither `..` nor `--` (the cache folder name
    /// `models--OWNER--NAME` uses `--` as its separator).
    static func repositoryParts(_ repository: String) -> (owner: String, name: String)? {
        let parts = repository.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        for part in parts {
            guard !part.isEmpty, part.count <= 96, !part.contains(".."), !part.contains("--"),
                  part.unicodeScalars.allSatisfy({ $0.isASCII && (isAlphanumeric($0) || "-_.".unicodeScalars.contains($0)) }) else {
                return nil
            }
        }
        return (String(parts[0]), String(parts[1]))
    }

    /// The cache folder of a repository, as `huggingface_hub` names it.
    static func repositoryFolder(owner: String, name: String) -> String {
        "models--\(owner)--\(name)"
    }

    /// Why `revision` cannot be used as a path under `refs/`, or nil if it can.
    ///
    /// Branch and tag names may contain `/` (`refs/pr/1` is a real hub revision, stored as the file
    /// `refs/refs/pr/1`), so slashes are allowed; what is refused is anything that could leave the
    /// `refs` folder or confuse a filesystem: an empty name or component, `.` or `..` as a
    /// component, a leading `/`, a backslash, control characters (NUL among them), and more than
    /// 255 characters.
    static func revisionProblem(_ revision: String) -> String? {
        if revision.isEmpty { return "it is empty" }
        if revision.utf8.count > 255 { return "it is longer than 255 bytes" }
        if revision.hasPrefix("/") { return "it starts with /" }
        if revision.contains("\\") { return "it contains a backslash" }
        if revision.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return "it contains a control character" }
        for component in revision.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty { return "it has an empty path component (// or a trailing /)" }
            if component == "." || component == ".." { return "it has a `\(component)` path component" }
        }
        return nil
    }

    /// A full git commit hash: exactly 40 hex digits (either case).
    static func isCommitHash(_ text: String) -> Bool {
        isHex(text, count: 40)
    }

    /// `text` is exactly `count` hex digits.
    static func isHex(_ text: String, count: Int) -> Bool {
        text.utf8.count == count && text.unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit }
    }

    /// An ETag usable as a blob file name (and as a lock file name): 1 to 128 ASCII letters,
    /// digits and `-`. The hub's are 64 hex digits (LFS, the sha256) or 40 (git, the blob id).
    static func isBlobName(_ etag: String) -> Bool {
        !etag.isEmpty && etag.utf8.count <= 128
            && etag.unicodeScalars.allSatisfy { $0.isASCII && (isAlphanumeric($0) || $0 == "-") }
    }

    private static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }
}
