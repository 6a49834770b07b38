import Foundation

/// Read-only floats in memory of their own, converted to f32.
///
/// Weights are copied out of the checkpoint's memory map rather than read through it: a read
/// through the map makes a whole page-cache folio resident, so small tensors spread through a
/// 2.2 GB file would pin far more memory than they hold.
///
/// `pointer` is valid only while this value is alive: read through it from a stored property,
/// never from a temporary (Swift may release the temporary before the read); use ``array`` there.
struct FloatBuffer: @unchecked Sendable {
    let pointer: UnsafePointer<Float>
    let count: Int
    private let owner: AnyObject

    /// Copies the tensor, then drops its pages from the resident set, so that loading a 2.2 GB
    /// checkpoint never holds both the mapped and the copied weights (peak RSS while loading
    /// BGE-M3 went from 2.53 GB to 1.36 GB).
    init(copying tensor: TensorView) throws(WeightLoadError) {
        let copy = OwnedFloats(try tensor.floats())
        (tensor.owner as? MappedFile)?.releasePages(of: tensor.bytes)
        pointer = UnsafePointer(copy.pointer)
        count = copy.count
        owner = copy
    }

    /// The values as an array (the buffer is kept alive while they are copied).
    var array: [Float] {
        withExtendedLifetime(owner) { Array(UnsafeBufferPointer(start: pointer, count: count)) }
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
