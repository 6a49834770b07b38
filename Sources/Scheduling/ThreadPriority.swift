#if canImport(Glibc)
import Glibc
#endif

/// Per-thread scheduling priority.
enum ThreadPriority {
    /// Raises the calling thread's nice value by `increment` (lowering its priority); threads it
    /// creates afterwards inherit it. Lowering priority needs no privilege; a failure is ignored.
    static func lowerCurrent(by increment: Int32) {
        #if os(Linux)
        guard increment > 0 else { return }
        // On Linux the nice value belongs to the thread, and `who` 0 means the calling thread.
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        errno = 0
        let current = getpriority(which, 0)
        guard errno == 0 else { return }
        _ = setpriority(which, 0, min(19, current + increment))
        #endif
    }
}
