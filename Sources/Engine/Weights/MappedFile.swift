import Foundation

/// A read-only memory map of a whole file, unmapped when the last reference goes away.
///
/// Weights are read through maps so that a 2.2 GB checkpoint is not copied: pages are shared
/// with the page cache and only the ones touched become resident.
public final class MappedFile: @unchecked Sendable {
    /// The path the file was opened from, for error messages.
    public let path: String
    /// The mapped bytes; valid for the lifetime of this object.
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws(WeightLoadError) {
        self.path = path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        let size = Int(status.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
            throw .unreadable(file: path, reason: "cannot map the file: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    /// Drops the pages read so far from this process's resident set; they are read again (from
    /// the page cache) if touched later. Called once the weights have been copied into packed
    /// buffers, so that resident memory counts each weight once.
    ///
    /// Later reads are embedding rows at random: the map is also marked random-access, so a
    /// fault maps the page it needs and not a whole read-around window (without it, 1,000 random
    /// rows of the 1 GB word-embedding table added 786 MB of resident pages).
    public func releaseResidentPages() {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), bytes.count, MADV_DONTNEED)
        _ = madvise(UnsafeMutableRawPointer(mutating: base), bytes.count, MADV_RANDOM)
    }

    /// Drops the pages under `range` (widened to whole pages) from the resident set, as
    /// ``releaseResidentPages()`` does for the whole file.
    public func releasePages(of range: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, let start = range.baseAddress, range.count > 0,
              start >= base, start + range.count <= base + bytes.count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (start - base) / page * page
        let end = min(bytes.count, ((start - base) + range.count + page - 1) / page * page)
        _ = madvise(UnsafeMutableRawPointer(mutating: base + first), end - first, MADV_DONTNEED)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
