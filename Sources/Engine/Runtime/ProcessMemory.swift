import COneDNN
import Foundation

/// This process's memory as the kernel accounts it (`/proc/self/status`).
public enum ProcessMemory {
    /// Resident set size now, in bytes.
    public static var residentBytes: Int? { statusField("VmRSS") }

    /// Highest resident set size since start or since ``resetPeak()``, in bytes.
    public static var peakResidentBytes: Int? { statusField("VmHWM") }

    /// Starts a new high-water mark (writes 5 to `/proc/self/clear_refs`); false when not permitted.
    @discardableResult
    public static func resetPeak() -> Bool {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        return (try? handle.write(contentsOf: Data("5".utf8))) != nil
    }

    /// Hands freed heap memory back to the system (glibc `malloc_trim`).
    public static func trimAllocator() {
        _ = malloc_trim(0)
    }

    /// Makes allocations of 1 MiB and more always come from (and return to) the system. glibc
    /// otherwise raises its mmap threshold up to 32 MiB after the first large free, and workspace
    /// buffers below that then stay in the heap after a batch: the resident set would not come down.
    public static func configureAllocator() {
        _ = mallopt(M_MMAP_THRESHOLD, 1 << 20)
    }

    private static func statusField(_ name: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
            return kilobytes * 1024
        }
        return nil
    }
}
