import Engine

/// What this CPU runs, for `/info` and the start-up log: the precisions depend on it.
enum CPUCapabilities {
    static var json: String {
        let precisions = Precision.allCases.filter { $0.unsupportedReason == nil }.map { "\"\($0.rawValue)\"" }
        return "{\"isa\":\(JSONOutput.string(OneDNNRuntime.effectiveISA)),\"avx512_bf16\":\(Precision.bf16.unsupportedReason == nil),"
            + "\"vnni\":\(OneDNNRuntime.hasVNNI),\"precisions\":[\(precisions.joined(separator: ","))],"
            + "\"int8_levels\":\(JSONOutput.string(Int8Levels.forThisCPU.description))}"
    }
}
