/// Emits pickle opcodes the way Python's pickler does for the protocol asked for: `GLOBAL` and
/// `BINPUT` up to protocol 3, `STACK_GLOBAL`, `MEMOIZE`, short strings and a `FRAME` from 4.
///
/// ``PyTorchWriter`` writes state dicts with it; the loader's tests build hostile pickles with it.
public struct PickleWriter: Sendable {
    public let version: UInt8
    /// The pickle so far, without the frame of protocol 4 and later (see ``framed()``).
    public private(set) var bytes: [UInt8]
    private var memoCount = 0

    public init(protocol version: UInt8) {
        self.version = version
        bytes = [PickleOpcode.proto.rawValue, version]
    }

    public mutating func op(_ opcodes: PickleOpcode...) {
        bytes += opcodes.map(\.rawValue)
    }

    public mutating func text(_ value: String) {
        let utf8 = Array(value.utf8)
        if version >= 4, utf8.count < 256 {
            op(.shortBinUnicode)
            bytes.append(UInt8(utf8.count))
        } else {
            op(.binUnicode)
            bytes += LittleEndian.bytes(UInt32(utf8.count))
        }
        bytes += utf8
    }

    public mutating func int(_ value: Int) {
        switch value {
        case 0..<256:
            op(.binInt1)
            bytes.append(UInt8(value))
        case 256..<65536:
            op(.binInt2)
            bytes += LittleEndian.bytes(UInt16(value))
        case Int(Int32.min)...Int(Int32.max):
            op(.binInt)
            bytes += LittleEndian.bytes(Int32(value))
        default:
            op(.long1)
            bytes.append(8)
            bytes += LittleEndian.bytes(Int64(value))
        }
    }

    public mutating func bool(_ value: Bool) {
        op(value ? .newTrue : .newFalse)
    }

    public mutating func global(_ module: String, _ name: String) {
        if version >= 4 {
            text(module)
            memoize()
            text(name)
            memoize()
            op(.stackGlobal)
        } else {
            op(.global)
            bytes += Array("\(module)\n\(name)\n".utf8)
        }
    }

    /// Stores the top of the stack in the memo and returns its index.
    @discardableResult
    public mutating func memoize() -> Int {
        if version >= 4 {
            op(.memoize)
        } else if memoCount < 256 {
            op(.binPut)
            bytes.append(UInt8(memoCount))
        } else {
            op(.longBinPut)
            bytes += LittleEndian.bytes(UInt32(memoCount))
        }
        memoCount += 1
        return memoCount - 1
    }

    /// Pushes memo entry `index`.
    public mutating func get(_ index: Int) {
        if index < 256 {
            op(.binGet)
            bytes.append(UInt8(index))
        } else {
            op(.longBinGet)
            bytes += LittleEndian.bytes(UInt32(index))
        }
    }

    /// A tuple of integers, as the pickler writes a shape or strides.
    public mutating func tuple(_ values: [Int]) {
        switch values.count {
        case 0:
            op(.emptyTuple)
        case 1:
            values.forEach { int($0) }
            op(.tuple1)
        case 2:
            values.forEach { int($0) }
            op(.tuple2)
        case 3:
            values.forEach { int($0) }
            op(.tuple3)
        default:
            op(.mark)
            values.forEach { int($0) }
            op(.tuple)
        }
    }

    /// The finished pickle: protocol 4 and later wrap the body in one `FRAME`.
    public func framed() -> [UInt8] {
        guard version >= 4 else { return bytes }
        let body = Array(bytes.dropFirst(2))
        return [PickleOpcode.proto.rawValue, version, PickleOpcode.frame.rawValue] + LittleEndian.bytes(UInt64(body.count)) + body
    }
}

/// Little-endian encodings of integers, as pickles and zip records store them.
enum LittleEndian {
    static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}
