import Foundation
import Scheduling
import TestSupport
import Testing

/// Memory limit detection from fixture files laid out like cgroup v1 and v2 mounts.
@Suite struct MemoryLimitTests {
    /// A scratch directory with the given files (relative path → contents); the caller removes it.
    func fixture(_ files: [String: String]) throws -> URL {
        let root = try ScratchDirectory("cgroup").url
        for (path, contents) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try contents.write(to: url, atomically: true, encoding: .utf8)
        }
        return root
    }

    let memInfo = "MemTotal:       24683212 kB\nMemFree:        1000 kB\n"

    func detect(_ root: URL, environment: [String: String] = [:]) throws -> MemoryLimit {
        try MemoryLimit.detect(environment: environment, root: root.appendingPathComponent("sys/fs/cgroup").path,
                               procSelfCgroup: root.appendingPathComponent("proc/self/cgroup").path,
                               memInfo: root.appendingPathComponent("proc/meminfo").path)
    }

    @Test func cgroupV2Limit() throws {
        let root = try fixture(["sys/fs/cgroup/memory.max": "3221225472\n", "proc/self/cgroup": "0::/\n", "proc/meminfo": memInfo])
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(try detect(root) == MemoryLimit(bytes: 3_221_225_472, source: .cgroupV2))
    }

    @Test func cgroupV2NestedGroupAndMax() throws {
        let root = try fixture([
            "sys/fs/cgroup/kubepods/pod1/memory.max": "2147483648\n", "sys/fs/cgroup/memory.max": "max\n",
            "proc/self/cgroup": "0::/kubepods/pod1\n", "proc/meminfo": memInfo,
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(try detect(root) == MemoryLimit(bytes: 2_147_483_648, source: .cgroupV2))
        let unlimited = try fixture(["sys/fs/cgroup/memory.max": "max\n", "proc/self/cgroup": "0::/\n", "proc/meminfo": memInfo])
        defer { try? FileManager.default.removeItem(at: unlimited) }
        #expect(try detect(unlimited) == MemoryLimit(bytes: 24_683_212 * 1024, source: .memInfo))
    }

    @Test func cgroupV1LimitAndUnlimitedSentinel() throws {
        let limited = try fixture([
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "4294967296\n",
            "proc/self/cgroup": "12:memory:/\n11:cpu,cpuacct:/\n", "proc/meminfo": memInfo,
        ])
        defer { try? FileManager.default.removeItem(at: limited) }
        #expect(try detect(limited) == MemoryLimit(bytes: 4_294_967_296, source: .cgroupV1))
        let unlimited = try fixture([
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "proc/self/cgroup": "12:memory:/\n", "proc/meminfo": memInfo,
        ])
        defer { try? FileManager.default.removeItem(at: unlimited) }
        #expect(try detect(unlimited) == MemoryLimit(bytes: 24_683_212 * 1024, source: .memInfo))
    }

    @Test func aLimitAboveTheMachineIsTheMachine() throws {
        let root = try fixture(["sys/fs/cgroup/memory.max": "\(1 << 40)\n", "proc/self/cgroup": "0::/\n", "proc/meminfo": memInfo])
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(try detect(root).bytes == 24_683_212 * 1024)
    }

    @Test func theOverrideWinsAndIsValidated() throws {
        let root = try fixture(["sys/fs/cgroup/memory.max": "3221225472\n", "proc/meminfo": memInfo])
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(try detect(root, environment: ["BGE_M3_MEMORY_LIMIT": "2Gi"]) == MemoryLimit(bytes: 2 << 30, source: .override))
        #expect(try detect(root, environment: ["BGE_M3_MEMORY_LIMIT": "1500MB"]).bytes == 1_500_000_000)
        #expect(throws: MemoryLimit.DetectionError.invalidOverride("lots")) { try detect(root, environment: ["BGE_M3_MEMORY_LIMIT": "lots"]) }
        #expect(throws: MemoryLimit.DetectionError.invalidOverride("0")) { try detect(root, environment: ["BGE_M3_MEMORY_LIMIT": "0"]) }
    }

    @Test func nothingToReadIsAClearError() throws {
        let root = try fixture([:])
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(throws: MemoryLimit.DetectionError.undetectable) { try detect(root) }
    }

    @Test func sizes() {
        #expect(MemoryLimit.parseSize("1024") == 1024)
        #expect(MemoryLimit.parseSize("3G") == 3 << 30)
        #expect(MemoryLimit.parseSize("3GB") == 3_000_000_000)
        #expect(MemoryLimit.parseSize("512 MiB") == 512 << 20)
        #expect(MemoryLimit.parseSize("1.5Gi") == 3 << 29)
        #expect(MemoryLimit.parseSize("12 parsecs") == nil)
        #expect(MemoryLimit.parseSize("-1") == nil)
    }

    @Test func thisMachineHasALimit() throws {
        let limit = try MemoryLimit.detect(environment: [:])
        #expect(limit.bytes > 0)
    }
}
