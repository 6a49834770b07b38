import Foundation

/// Read-only floats that stay valid as long as this value exists: a view into a memory-mapped
/// checkpoint (no copy) or, for half-precision checkpoints, a converted copy.
struct FloatBuffer: @unchecked Sendable {
    let pointer: UnsafePointer<Float>
    let count: Int
    private let owner: AnyObject

    init(_ tensor: TensorView) throws(WeightLoadError) {
        if tensor.dtype == .float32, Int(bitPattern: tensor.bytes.baseAddress) % MemoryLayout<Float>.alignment == 0 {
            pointer = tensor.bytes.baseAddress!.assumingMemoryBound(to: Float.self)
            count = tensor.elementCount
            owner = tensor.owner
        } else {
            let copy = OwnedFloats(try tensor.floats())
            pointer = UnsafePointer(copy.pointer)
            count = copy.count
            owner = copy
        }
    }

    init(_ values: [Float]) {
        let copy = OwnedFloats(values)
        pointer = UnsafePointer(copy.pointer)
        count = copy.count
        owner = copy
    }
}

/// A heap copy of floats with a stable address.
final class OwnedFloats {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(_ values: [Float]) {
        count = values.count
        pointer = .allocate(capacity: max(count, 1))
        values.withUnsafeBufferPointer { if let base = $0.baseAddress { pointer.initialize(from: base, count: count) } }
    }

    deinit { pointer.deallocate() }
}
