import Foundation

/// How many CPUs this process may use: the container's CPU quota (cgroup v2 `cpu.max`, or v1
/// `cpu.cfs_quota_us` / `cpu.cfs_period_us`), capped by the CPUs it may run on.
public enum CPUQuota {
    /// Whole CPUs available, at least 1.
    public static func available(root: String = "/sys/fs/cgroup") -> Int {
        let online = onlineCPUs()
        guard let quota = quotaCPUs(root: root) else { return online }
        return max(1, min(online, Int(quota.rounded(.up))))
    }

    /// The quota in CPUs, or nil when there is none.
    public static func quotaCPUs(root: String = "/sys/fs/cgroup") -> Double? {
        if let v2 = try? String(contentsOfFile: root + "/cpu.max", encoding: .utf8) {
            return parseCPUMax(v2)
        }
        for v1 in [root + "/cpu", root + "/cpu,cpuacct", root + "/cpuacct,cpu"] {
            if let quota = try? String(contentsOfFile: v1 + "/cpu.cfs_quota_us", encoding: .utf8),
               let period = try? String(contentsOfFile: v1 + "/cpu.cfs_period_us", encoding: .utf8) {
                return parseCFS(quota: quota, period: period)
            }
        }
        return nil
    }

    /// cgroup v2 `cpu.max`: `"<quota> <period>"`, or `"max <period>"` for no limit.
    public static func parseCPUMax(_ text: String) -> Double? {
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count >= 1, fields[0] != "max", let quota = Double(fields[0]), quota > 0 else { return nil }
        let period = fields.count >= 2 ? Double(fields[1]) ?? 100_000 : 100_000
        return period > 0 ? quota / period : nil
    }

    /// cgroup v1: a quota of -1 means no limit.
    public static func parseCFS(quota: String, period: String) -> Double? {
        guard let q = Double(quota.trimmingCharacters(in: .whitespacesAndNewlines)), q > 0,
              let p = Double(period.trimmingCharacters(in: .whitespacesAndNewlines)), p > 0 else { return nil }
        return q / p
    }

    /// CPUs the system lets this process run on.
    public static func onlineCPUs() -> Int {
        max(1, ProcessInfo.processInfo.activeProcessorCount)
    }
}
