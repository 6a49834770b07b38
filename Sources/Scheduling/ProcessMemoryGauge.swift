import Engine

/// This process's memory from `/proc/self/status`; trimming hands freed memory back to the system.
public struct ProcessMemoryGauge: MemoryGauge {
    public init() {}

    public var residentBytes: Int? { ProcessMemory.residentBytes }
    public var peakResidentBytes: Int? { ProcessMemory.peakResidentBytes }
    public func resetPeak() -> Bool { ProcessMemory.resetPeak() }
    public func trim() { ProcessMemory.trimAllocator() }
}
