import Engine
import Foundation
import TestSupport
import Testing

/// CPU quota parsing for the default thread count, from cgroup v1 and v2 file contents.
@Suite struct CPUQuotaTests {
    @Test func cgroupV2() {
        #expect(CPUQuota.parseCPUMax("200000 100000\n") == 2)
        #expect(CPUQuota.parseCPUMax("150000 100000") == 1.5)
        #expect(CPUQuota.parseCPUMax("max 100000\n") == nil)
        #expect(CPUQuota.parseCPUMax("") == nil)
    }

    @Test func cgroupV1() {
        #expect(CPUQuota.parseCFS(quota: "-1\n", period: "100000\n") == nil)
        #expect(CPUQuota.parseCFS(quota: "50000\n", period: "100000\n") == 0.5)
        #expect(CPUQuota.parseCFS(quota: "400000", period: "100000") == 4)
    }

    @Test func filesOnDisk() throws {
        let scratch = try ScratchDirectory("cgroup")
        defer { scratch.remove() }
        let root = scratch.url
        try FileManager.default.createDirectory(at: root.appendingPathComponent("cpu"), withIntermediateDirectories: true)
        try "100000\n".write(to: root.appendingPathComponent("cpu/cpu.cfs_quota_us"), atomically: true, encoding: .utf8)
        try "100000\n".write(to: root.appendingPathComponent("cpu/cpu.cfs_period_us"), atomically: true, encoding: .utf8)
        #expect(CPUQuota.quotaCPUs(root: root.path) == 1)
        #expect(CPUQuota.available(root: root.path) == 1)
        try "max 100000\n".write(to: root.appendingPathComponent("cpu.max"), atomically: true, encoding: .utf8)
        #expect(CPUQuota.quotaCPUs(root: root.path) == nil)
        #expect(CPUQuota.available(root: root.path) == CPUQuota.onlineCPUs())
    }
}
