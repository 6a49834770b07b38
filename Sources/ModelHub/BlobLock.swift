import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on one blob of the hub cache, held while the blob is downloaded, shared with
/// every other process using the cache.
///
/// It is the lock `huggingface_hub` takes for the same blob (`_hf_hub_download_to_cache_dir`: a
/// `filelock` on `<cache>/.locks/models--OWNER--NAME/<etag>.lock`, which is `flock(2)` on Linux and
/// macOS), so replicas of bgem3 on a shared volume and `huggingface_hub` exclude each other. `flock`
/// locks belong to an open file description, so two downloads in one process exclude each other
/// too. The lock goes away with the process, so a killed downloader never leaves a stale lock.
///
/// The lock file is never deleted: a process may have it open and be waiting on it, and deleting
/// it would let a third process lock a new file of the same name while the second gets the old one.
final class BlobLock {
    /// `<cache>/.locks/models--OWNER--NAME/<etag>.lock`.
    static func path(cache: URL, repositoryFolder: String, blob: String) -> URL {
        cache.appendingPathComponent(".locks").appendingPathComponent(repositoryFolder).appendingPathComponent("\(blob).lock")
    }

    /// How the attempt to lock ended.
    enum Outcome {
        case locked(BlobLock, waited: Bool)
        /// The filesystem cannot lock (no `flock` support, as on some network filesystems), or
        /// the lock file cannot be opened; the reason in words.
        case unavailable(String)
    }

    private var descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit { release() }

    /// Takes the lock at `path`, waiting as long as another holder keeps it.
    ///
    /// The wait polls a non-blocking `flock` every `pollInterval` with `Task.sleep` in between, so
    /// it never blocks a thread of the Swift concurrency pool (a blocking `flock` could hold one
    /// for the whole of another process's 2 GB download) and it ends when the task is cancelled.
    /// `whenBusy` runs once, when the first attempt finds the lock held.
    static func acquire(_ path: URL, pollInterval: Duration = .milliseconds(200), whenBusy: () -> Void) async throws -> Outcome {
        do {
            try FileManager.default.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            return .unavailable("cannot create \(path.deletingLastPathComponent().path): \(error.localizedDescription)")
        }
        // `huggingface_hub` creates the file with mode 0644, so a lock file made by another user
        // may only be readable; `flock` works on a read-only descriptor as well.
        var descriptor = open(path.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if descriptor < 0, errno == EACCES { descriptor = open(path.path, O_RDONLY | O_CLOEXEC) }
        guard descriptor >= 0 else { return .unavailable("cannot open it: \(String(cString: strerror(errno)))") }
        let lock = BlobLock(descriptor: descriptor)
        var waited = false
        while true {
            if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return .locked(lock, waited: waited) }
            let code = errno
            switch code {
            case EINTR:
                continue
            case EWOULDBLOCK:
                if !waited { whenBusy() }
                waited = true
                try await Task.sleep(for: pollInterval)  // throws on cancellation; deinit closes the file
            default:
                return .unavailable(String(cString: strerror(code)))
            }
        }
    }

    /// Unlocks (closing the descriptor releases the `flock`). Safe to call more than once.
    func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }
}
