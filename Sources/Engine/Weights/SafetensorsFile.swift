import Foundation

/// A `.safetensors` checkpoint, memory-mapped: tensors are views into the map, never copies.
///
/// Layout: an 8-byte little-endian header length, a JSON header mapping each tensor name to its
/// `dtype`, `shape` and `data_offsets` (relative to the end of the header), then the data.
/// Every offset is checked against the file, so a truncated file or a header that lies is an
/// error naming the tensor, never an out-of-bounds read.
public struct SafetensorsFile: WeightFile {
    public let path: String
    public let tensorNames: [String]
    private let file: MappedFile
    private let entries: [String: Entry]

    private struct Entry {
        let dtype: TensorDType
        let shape: [Int]
        let range: Range<Int>
    }

    public init(path: String) throws(WeightLoadError) {
        let file = try MappedFile(path: path)
        self.file = file
        self.path = path
        let bytes = file.bytes
        guard bytes.count >= 8 else { throw .malformed(file: path, reason: "\(bytes.count) bytes is too short for a safetensors header") }
        let headerLength = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw .malformed(file: path, reason: "the header claims \(headerLength) bytes but the file has \(bytes.count - 8) after the length (truncated?)")
        }
        let dataStart = 8 + Int(headerLength)
        let header = Data(bytes[8..<dataStart])
        guard let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else {
            throw .malformed(file: path, reason: "the header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var names: [String] = []
        for (name, value) in object where name != "__metadata__" {
            guard let fields = value as? [String: Any], let dtypeName = fields["dtype"] as? String,
                  let shapeNumbers = fields["shape"] as? [NSNumber],
                  let offsetNumbers = fields["data_offsets"] as? [NSNumber], offsetNumbers.count == 2 else {
                throw .malformed(file: path, reason: "tensor `\(name)` lacks dtype, shape or data_offsets")
            }
            guard let dtype = Self.dtypes[dtypeName] else {
                throw .wrongType(tensor: name, expected: "a safetensors dtype bgem3 reads (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)", found: dtypeName)
            }
            guard let shape = Self.integers(shapeNumbers), let offsets = Self.integers(offsetNumbers) else {
                throw .malformed(file: path, reason: "tensor `\(name)` has a shape or data_offsets entry that is not an integer of at most 63 bits")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw .malformed(file: path, reason: "tensor `\(name)` has a negative dimension or reversed data_offsets")
            }
            // Every product and sum of header numbers is checked: a crafted header must be an
            // error naming the tensor, not an arithmetic trap.
            guard let count = shape.reduce(Optional(1), { product, dim in product.flatMap { Self.checked($0.multipliedReportingOverflow(by: dim)) } }),
                  let byteCount = Self.checked(count.multipliedReportingOverflow(by: dtype.size)) else {
                throw .malformed(file: path, reason: "tensor `\(name)`: shape \(shape) of \(dtypeName) needs more bytes than a file can hold")
            }
            guard offsets[1] - offsets[0] == byteCount else {
                throw .malformed(file: path, reason: "tensor `\(name)`: data_offsets span \(offsets[1] - offsets[0]) bytes but shape \(shape) of \(dtypeName) needs \(byteCount)")
            }
            guard let end = Self.checked(dataStart.addingReportingOverflow(offsets[1])), end <= bytes.count else {
                throw .malformed(file: path, reason: "tensor `\(name)` ends at byte \(dataStart) + \(offsets[1]) but the file has \(bytes.count) bytes (truncated?)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: (dataStart + offsets[0])..<(dataStart + offsets[1]))
            names.append(name)
        }
        self.entries = entries
        self.tensorNames = names.sorted()
    }

    public func releaseResidentPages() {
        file.releaseResidentPages()
    }

    public func tensor(_ name: String) throws(WeightLoadError) -> TensorView {
        guard let entry = entries[name] else { throw .missingTensor(file: path, tensor: name) }
        return TensorView(name: name, dtype: entry.dtype, shape: entry.shape,
                          bytes: UnsafeRawBufferPointer(rebasing: file.bytes[entry.range]), owner: file)
    }

    /// The value of an arithmetic operation, or nil if it overflowed.
    private static func checked(_ result: (partialValue: Int, overflow: Bool)) -> Int? {
        result.overflow ? nil : result.partialValue
    }

    /// The numbers as `Int`s, or nil if any is not an integer that fits: JSON numbers past
    /// `Int.max` or with a fraction arrive as unsigned or floating-point `NSNumber`s, whose
    /// `intValue` would silently wrap or trap; their decimal text does not parse as an `Int`.
    private static func integers(_ numbers: [NSNumber]) -> [Int]? {
        var result: [Int] = []
        result.reserveCapacity(numbers.count)
        for number in numbers {
            guard let value = Int(number.stringValue) else { return nil }
            result.append(value)
        }
        return result
    }

    private static let dtypes: [String: TensorDType] = [
        "F32": .float32, "F16": .float16, "BF16": .bfloat16, "F64": .float64,
        "I64": .int64, "I32": .int32, "I16": .int16, "I8": .int8, "U8": .uint8, "BOOL": .bool,
    ]
}
