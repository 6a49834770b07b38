import Foundation

/// Element types found in checkpoints.
public enum TensorDType: String, Sendable, CaseIterable {
    case float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }
}

/// A tensor inside a loaded checkpoint: its element type, shape and contiguous row-major bytes.
///
/// The bytes usually point into a memory-mapped file (no copy); `owner` keeps that mapping, or a
/// copied buffer, alive for as long as the view exists.
public struct TensorView: @unchecked Sendable {
    public let name: String
    public let dtype: TensorDType
    public let shape: [Int]
    public let bytes: UnsafeRawBufferPointer
    public let owner: AnyObject

    public init(name: String, dtype: TensorDType, shape: [Int], bytes: UnsafeRawBufferPointer, owner: AnyObject) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
        self.owner = owner
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// The values as `Float`, converted from half and bfloat16 where needed.
    public func floats() throws(WeightLoadError) -> [Float] {
        let count = elementCount
        switch dtype {
        case .float32:
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 { _ = memcpy(buffer.baseAddress!, bytes.baseAddress!, count * 4) }
                initialized = count
            }
        case .float16:
            return (0..<count).map { Float(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
        case .bfloat16:
            return (0..<count).map { Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16) }
        default:
            throw .wrongType(tensor: name, expected: "a floating-point type", found: dtype.rawValue)
        }
    }
}

/// A checkpoint file holding named tensors.
public protocol WeightFile: Sendable {
    /// The file's path, for error messages.
    var path: String { get }
    /// Names of all tensors in the file.
    var tensorNames: [String] { get }
    /// The tensor with this name.
    func tensor(_ name: String) throws(WeightLoadError) -> TensorView
    /// Drops the file's pages from the resident set (see ``MappedFile/releaseResidentPages()``).
    func releaseResidentPages()
}
