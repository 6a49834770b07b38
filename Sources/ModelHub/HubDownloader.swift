import AsyncHTTPClient
import Foundation
import NIOCore

/// Downloads a model from the Hugging Face hub's HTTP API into the hub cache layout, so that
/// ``ModelLocator`` (and `huggingface_hub`) find it.
///
/// - Safe to run in several processes on one cache (replicas on a shared volume, or bgem3 next to
///   `huggingface_hub`): each blob is downloaded under the lock `huggingface_hub` uses for it
///   (see `BlobLock`), so one process downloads it and the others wait, then verify and use it.
/// - Resumable: an interrupted download leaves `blobs/<etag>.incomplete`, which the next run
///   continues with a range request (see `BlobTransfer` for what a resumed answer must look like).
/// - Verified: every file by its size and the checksum its ETag names (sha256 for LFS files, the
///   git blob id for the others), before it is moved into place with one `rename`.
/// - Careful with what the hub answers: the commit, the ETags and the revision become paths only
///   after they are checked, so a wrong or hostile mirror cannot write outside the cache.
public struct HubDownloader: Sendable {
    public let endpoint: URL
    public let token: String?
    public let cacheDirectory: URL
    /// How long a response may go without a single byte before the download fails with a
    /// (resumable) ``DownloadError/network(_:)``. There is no limit on a whole download, which may
    /// take hours for 2.2 GB on a slow line.
    public let readTimeout: Duration
    /// How long opening a connection may take.
    public let connectTimeout: Duration

    /// The files a BGE-M3 directory needs; the weights are `model.safetensors` or, failing that,
    /// `pytorch_model.bin`.
    public static let requiredFiles = ["config.json", "tokenizer.json", "sparse_linear.pt", "colbert_linear.pt"]
    /// The weights, in order of preference.
    public static let weightFiles = ["model.safetensors", "pytorch_model.bin"]
    public static let optionalFiles = ["tokenizer_config.json", "special_tokens_map.json"]

    public init(endpoint: URL, token: String?, cacheDirectory: URL,
                readTimeout: Duration = .seconds(60), connectTimeout: Duration = .seconds(30)) {
        self.endpoint = endpoint
        self.token = token
        self.cacheDirectory = cacheDirectory
        self.readTimeout = readTimeout
        self.connectTimeout = connectTimeout
    }

    /// `HF_ENDPOINT` (default `https://huggingface.co`), `HF_TOKEN`, and the cache of ``ModelLocator``.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.init(endpoint: URL(string: environment["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co")!,
                  token: environment["HF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 },
                  cacheDirectory: ModelLocator(environment: environment).cacheDirectory)
    }

    /// Progress of one file: bytes so far and in all.
    public typealias Progress = @Sendable (_ file: String, _ done: Int, _ total: Int) -> Void
    /// Receives each ``Notice`` as it happens.
    public typealias NoticeHandler = @Sendable (Notice) -> Void

    /// Downloads what is missing and returns the snapshot directory.
    ///
    /// - Parameters:
    ///   - repository: `OWNER/NAME`; anything else throws ``ModelLocator/LocateError/invalidIdentifier(_:)``.
    ///   - revision: a branch, tag or commit. Branch names may contain `/` (`refs/pr/1`); a
    ///     revision that could not be stored as a file under `refs/` (empty, `..` or `.` as a
    ///     component, a leading `/`, a backslash or control character, over 255 bytes) throws
    ///     ``DownloadError/invalidRevision(revision:reason:)`` before anything is fetched.
    ///   - progress: called as bytes arrive, and once with `done == total` for a file already there.
    ///   - onNotice: called when the download waits for another process or works without a lock.
    public func download(_ repository: String, revision: String = "main", progress: Progress = { _, _, _ in },
                         onNotice: NoticeHandler = { _ in }) async throws -> URL {
        guard let (owner, name) = HubNames.repositoryParts(repository) else { throw ModelLocator.LocateError.invalidIdentifier(repository) }
        if let problem = HubNames.revisionProblem(revision) { throw DownloadError.invalidRevision(revision: revision, reason: problem) }
        let hub = HubAPI(endpoint: endpoint, token: token, repository: repository, readTimeout: readTimeout, connectTimeout: connectTimeout)
        do {
            let snapshot = try await run(owner: owner, name: name, revision: revision, hub: hub, progress: progress, onNotice: onNotice)
            await hub.shutdown()
            return snapshot
        } catch {
            await hub.shutdown()
            throw error
        }
    }

    private func run(owner: String, name: String, revision: String, hub: HubAPI, progress: Progress, onNotice: NoticeHandler) async throws -> URL {
        let root = cacheDirectory.appendingPathComponent(HubNames.repositoryFolder(owner: owner, name: name))

        // 1. The revision's commit and file list. Only names from bgem3's own lists are fetched,
        //    so the hub's file list never becomes a path.
        let (commit, available) = try await hub.revisionInfo(revision)
        var files = Self.requiredFiles
        for file in files where !available.contains(file) { throw DownloadError.missingFile(repository: hub.repository, file: file) }
        guard let weights = Self.weightFiles.first(where: available.contains) else {
            throw DownloadError.missingFile(repository: hub.repository, file: Self.weightFiles.joined(separator: " or "))
        }
        files.append(weights)
        files += Self.optionalFiles.filter(available.contains)

        let snapshot = root.appendingPathComponent("snapshots").appendingPathComponent(commit)
        let blobs = root.appendingPathComponent("blobs")
        do {
            try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: blobs, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: root.appendingPathComponent("refs"), withIntermediateDirectories: true)
        } catch {
            throw DownloadError.filesystem("\(root.path): \(error.localizedDescription)")
        }

        // 2. Each file into blobs/<etag>, linked from the snapshot.
        for file in files {
            let (fileURL, verifier, etag) = try await hub.fileMetadata(commit: commit, file: file)
            let blob = blobs.appendingPathComponent(etag)
            let lock = BlobLock.path(cache: cacheDirectory, repositoryFolder: root.lastPathComponent, blob: etag)
            try await ensureBlob(blob, lock: lock, from: fileURL, verifier: verifier, hub: hub, progress: progress, onNotice: onNotice)
            try Self.link(snapshot.appendingPathComponent(file), to: "../../blobs/\(etag)")
        }

        // 3. The revision now points at this commit (written atomically).
        if revision != commit {
            let reference = root.appendingPathComponent("refs").appendingPathComponent(revision)
            do {
                try FileManager.default.createDirectory(at: reference.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(commit.utf8).write(to: reference, options: .atomic)
            } catch {
                throw DownloadError.filesystem("\(reference.path): \(error.localizedDescription)")
            }
        }
        return snapshot
    }

    /// Makes `blob` hold the verified file, downloading it if needed.
    ///
    /// What is verified when:
    /// - A blob present at the first look with the right size is used as it is, unread: blobs
    ///   only appear by a rename after verification, and hashing 2.2 GB again on every start
    ///   would cost seconds each time.
    /// - A blob that appeared while this process waited for the lock (another replica or
    ///   `huggingface_hub`, which checks sizes only, wrote it) is verified, size and checksum,
    ///   before it is used; if it fails, it is deleted (the lock is held) and downloaded again.
    /// - A download is verified before it is renamed into place.
    private func ensureBlob(_ blob: URL, lock lockPath: URL, from url: URL, verifier: HubFileVerifier, hub: HubAPI,
                            progress: Progress, onNotice: NoticeHandler) async throws {
        let file = verifier.file
        if Self.isRegularFile(blob), HubFileVerifier.size(of: blob) == verifier.size {
            progress(file, verifier.size, verifier.size)
            return
        }
        var held: BlobLock?
        switch try await BlobLock.acquire(lockPath, whenBusy: { onNotice(.waitingForOtherDownload(file: file, lock: lockPath.path)) }) {
        case .locked(let lock, _): held = lock
        case .unavailable(let reason): onNotice(.lockUnavailable(file: file, lock: lockPath.path, reason: reason))
        }
        defer { held?.release() }

        if FileManager.default.fileExists(atPath: blob.path) {
            do {
                try verifier.verify(blob)
                progress(file, verifier.size, verifier.size)
                return
            } catch .sizeMismatch, .checksumMismatch {
                // Damaged or half-written by a process that did not lock: replace it.
                do { try FileManager.default.removeItem(at: blob) } catch {
                    throw DownloadError.filesystem("cannot remove the damaged blob \(blob.path): \(error.localizedDescription)")
                }
            }
        }
        try await BlobTransfer(url: url, verifier: verifier, blob: blob, hub: hub).run(progress: progress)
    }

    /// Points `link` at `target`, leaving a link that already does alone (another process may
    /// be linking the same snapshot at the same moment).
    private static func link(_ link: URL, to target: String) throws {
        let manager = FileManager.default
        if (try? manager.destinationOfSymbolicLink(atPath: link.path)) == target { return }
        try? manager.removeItem(at: link)
        do {
            try manager.createSymbolicLink(atPath: link.path, withDestinationPath: target)
        } catch {
            if (try? manager.destinationOfSymbolicLink(atPath: link.path)) == target { return }
            throw DownloadError.filesystem("\(link.path): \(error.localizedDescription)")
        }
    }

    private static func isRegularFile(_ url: URL) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: url.path)[.type] as? FileAttributeType) == .typeRegular
    }
}
