import Foundation

/// The CPU model and the vector extensions that decide which kernels run, from `/proc/cpuinfo`.
enum CPUDescription {
    static var current: String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        var model = "unknown"
        var flags: Set<Substring> = []
        for line in info.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            if key == "model name" && model == "unknown" { model = parts[1].trimmingCharacters(in: .whitespaces) }
            if key == "flags" && flags.isEmpty { flags = Set(parts[1].split(separator: " ")) }
        }
        let interesting = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16"]
        let present = interesting.filter { flags.contains(Substring($0)) }
        return present.isEmpty ? model : "\(model) (\(present.joined(separator: " ")))"
    }
}
