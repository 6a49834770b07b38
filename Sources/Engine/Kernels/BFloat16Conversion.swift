import COneDNN

/// fp32 → bf16 with round-to-nearest-even (inputs are finite), spread over the threads.
enum BFloat16Conversion {
    static func convert(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<UInt16>, count: Int, threads: Int) {
        let workers = count >= 1 << 16 ? max(1, threads) : 1
        let chunk = (count / workers + 15) & ~15
        let shared = Shared((source: source, target: target))
        runWorkers(workers) { worker in
            let (source, target) = shared.value
            let start = min(count, worker * chunk)
            let end = min(count, start + chunk)
            var i = start
            while i + 16 <= end {
                let bits = UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<UInt32>.self)
                let rounded = bits &+ (SIMD16<UInt32>(repeating: 0x7FFF) &+ ((bits &>> 16) & 1))
                UnsafeMutableRawPointer(target + i).storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: rounded &>> 16), as: SIMD16<UInt16>.self)
                i += 16
            }
            while i < end {
                let bits = source[i].bitPattern
                target[i] = UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
                i += 1
            }
        }
    }
}
