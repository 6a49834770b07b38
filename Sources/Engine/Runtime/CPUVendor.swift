import Foundation

/// Who made this CPU, from `/proc/cpuinfo`'s `vendor_id`: where the instruction sets alike run
/// at different rates (bf16 products, ``Precision/bf16IsFasterThanFP32``).
public enum CPUVendor: Sendable, Equatable {
    case amd
    case intel
    case other

    public static let current: CPUVendor = {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("vendor_id") }) else { return .other }
        if line.hasSuffix("AuthenticAMD") { return .amd }
        if line.hasSuffix("GenuineIntel") { return .intel }
        return .other
    }()
}
