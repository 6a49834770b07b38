import Foundation

/// How much memory this process may use, and where that number came from (SPEC §5): the
/// `BGE_M3_MEMORY_LIMIT` override, the cgroup v2 `memory.max`, the cgroup v1
/// `memory.limit_in_bytes`, or else the machine's `MemTotal`.
public struct MemoryLimit: Sendable, Equatable, CustomStringConvertible {
    public enum Source: String, Sendable {
        case override, cgroupV2 = "cgroup v2", cgroupV1 = "cgroup v1", memInfo = "/proc/meminfo"
    }

    public let bytes: Int
    public let source: Source

    public init(bytes: Int, source: Source) {
        self.bytes = bytes
        self.source = source
    }

    public var description: String { "\(bytes) bytes (\(source.rawValue))" }

    /// Why the limit could not be determined.
    public enum DetectionError: Error, Sendable, Equatable, CustomStringConvertible {
        case invalidOverride(String)
        case undetectable

        public var description: String {
            switch self {
            case .invalidOverride(let value):
                return "BGE_M3_MEMORY_LIMIT=\(value) is not a size; use bytes or a unit such as 3GiB, 3000MB, 3G"
            case .undetectable:
                return "no memory limit found (no cgroup limit and no /proc/meminfo); set BGE_M3_MEMORY_LIMIT"
            }
        }
    }

    /// Detects the limit. `root` is the cgroup mount and `procSelfCgroup` this process's cgroup
    /// membership; both are parameters so tests can use fixture files.
    public static func detect(environment: [String: String] = ProcessInfo.processInfo.environment,
                              root: String = "/sys/fs/cgroup", procSelfCgroup: String = "/proc/self/cgroup",
                              memInfo: String = "/proc/meminfo") throws(DetectionError) -> MemoryLimit {
        if let value = environment["BGE_M3_MEMORY_LIMIT"], !value.isEmpty {
            guard let bytes = parseSize(value), bytes > 0 else { throw .invalidOverride(value) }
            return MemoryLimit(bytes: bytes, source: .override)
        }
        let membership = (try? String(contentsOfFile: procSelfCgroup, encoding: .utf8)) ?? ""
        var machine: Int?
        if let text = try? String(contentsOfFile: memInfo, encoding: .utf8) { machine = parseMemInfo(text) }
        // cgroup v2: the unified hierarchy ("0::/path"); a limit of "max" means none at this level.
        for path in candidatePaths(root: root, relative: v2Path(membership), file: "memory.max") {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            if let bytes = parseCgroupV2(text) { return MemoryLimit(bytes: min(bytes, machine ?? bytes), source: .cgroupV2) }
            break
        }
        // cgroup v1: the memory controller ("N:memory:/path"); an unlimited group reports a huge sentinel.
        for path in candidatePaths(root: root + "/memory", relative: v1Path(membership), file: "memory.limit_in_bytes") {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            if let bytes = parseCgroupV1(text) { return MemoryLimit(bytes: min(bytes, machine ?? bytes), source: .cgroupV1) }
            break
        }
        guard let machine else { throw .undetectable }
        return MemoryLimit(bytes: machine, source: .memInfo)
    }

    /// cgroup v2 `memory.max`: a byte count, or `max` (no limit → nil).
    public static func parseCgroupV2(_ text: String) -> Int? {
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard value != "max", let bytes = Int(value), bytes > 0 else { return nil }
        return bytes
    }

    /// cgroup v1 `memory.limit_in_bytes`: a byte count; "unlimited" is a value near `Int64.max`
    /// rounded down to a page (9223372036854771712), treated as no limit (nil).
    public static func parseCgroupV1(_ text: String) -> Int? {
        guard let bytes = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes > 0, bytes < (1 << 62) else { return nil }
        return bytes
    }

    /// `MemTotal` from `/proc/meminfo`, in bytes.
    public static func parseMemInfo(_ text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kilobytes = Int(fields[1]) { return kilobytes * 1024 }
        }
        return nil
    }

    /// A size: plain bytes, or a number with a unit (`k`, `M`, `G`, `T`, with optional `i` and
    /// `B`; `KiB`/`K` are powers of 1024, `kB`/`MB`/`GB` of 1000, as Kubernetes writes `Gi` and `G`).
    public static func parseSize(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        guard let number = Double(digits), number >= 0 else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()
        let factor: Double
        switch unit {
        case "", "b": factor = 1
        case "k", "ki", "kib": factor = 1024
        case "kb": factor = 1000
        case "m", "mi", "mib": factor = 1_048_576
        case "mb": factor = 1e6
        case "g", "gi", "gib": factor = 1_073_741_824
        case "gb": factor = 1e9
        case "t", "ti", "tib": factor = 1_099_511_627_776
        case "tb": factor = 1e12
        default: return nil
        }
        let bytes = number * factor
        guard bytes < Double(Int.max) else { return nil }
        return Int(bytes)
    }

    private static func v2Path(_ membership: String) -> String? {
        membership.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
    }

    private static func v1Path(_ membership: String) -> String? {
        for line in membership.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count == 3, parts[1].split(separator: ",").contains("memory") { return String(parts[2]) }
        }
        return nil
    }

    /// The process's own group first (as mounted on the host), then the mount root (as inside a container).
    private static func candidatePaths(root: String, relative: String?, file: String) -> [String] {
        var paths: [String] = []
        if let relative, relative != "/" { paths.append(root + relative + "/" + file) }
        paths.append(root + "/" + file)
        return paths
    }
}
