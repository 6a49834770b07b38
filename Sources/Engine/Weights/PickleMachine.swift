/// A storage blob named by a checkpoint pickle's persistent id,
/// `('storage', torch.FloatStorage, key, location, numel)`.
struct PickledStorage: Sendable, Equatable {
    /// The entry `<prefix>/data/<key>` holding the bytes.
    let key: String
    let dtype: TensorDType
    /// Size of the storage in elements of `dtype`, as the pickle declares it.
    let elementCount: Int
}

/// The arguments of one `torch._utils._rebuild_tensor_v2` call: a strided view into a storage.
struct PickledTensor: Sendable, Equatable {
    let storage: PickledStorage
    /// Offset of the first element, in elements.
    let storageOffset: Int
    let shape: [Int]
    /// Per-dimension strides, in elements.
    let strides: [Int]
}

/// The only Python callables and classes a checkpoint pickle may name. Anything else is refused
/// when it is looked up, before it could be called.
enum PickleGlobal: Equatable {
    case orderedDict
    case rebuildTensor
    case rebuildTensorV2
    case rebuildParameter
    case storageType(TensorDType)

    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor"): self = .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch", "FloatStorage"): self = .storageType(.float32)
        case ("torch", "HalfStorage"): self = .storageType(.float16)
        case ("torch", "BFloat16Storage"): self = .storageType(.bfloat16)
        case ("torch", "DoubleStorage"): self = .storageType(.float64)
        case ("torch", "LongStorage"): self = .storageType(.int64)
        case ("torch", "IntStorage"): self = .storageType(.int32)
        case ("torch", "ShortStorage"): self = .storageType(.int16)
        case ("torch", "CharStorage"): self = .storageType(.int8)
        case ("torch", "ByteStorage"): self = .storageType(.uint8)
        case ("torch", "BoolStorage"): self = .storageType(.bool)
        default: return nil
        }
    }
}

/// A value on the pickle machine's stack. Containers are indices into the machine's arenas, so
/// that values stay flat: mutating a dict through any reference to it works as in Python, and
/// neither deep nesting nor reference cycles built by a hostile pickle can overflow the call
/// stack or leak when the machine is freed.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case tuple(Int)
    case list(Int)
    case dict(Int)
    case global(PickleGlobal)
    case storage(PickledStorage)
    case tensor(PickledTensor)

    var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "a bool"
        case .int: return "an int"
        case .float: return "a float"
        case .string: return "a string"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .dict: return "a dict"
        case .global: return "a global"
        case .storage: return "a storage"
        case .tensor: return "a tensor"
        }
    }
}

/// An insertion-ordered dict, as both `dict` and `OrderedDict` behave in Python 3.
struct PickleDictionary {
    /// The hashable key types a state dict can use; bool folds into int as in Python.
    enum Key: Hashable {
        case none
        case int(Int)
        case string(String)
    }

    private(set) var keys: [PickleValue] = []
    private(set) var values: [PickleValue] = []
    private var positions: [Key: Int] = [:]

    var count: Int { keys.count }

    /// Sets `key` to `value`; an existing key keeps its place, as in Python.
    /// Returns false when the key is of an unsupported type.
    mutating func set(_ key: PickleValue, _ value: PickleValue) -> Bool {
        let hashable: Key
        switch key {
        case .none: hashable = .none
        case .bool(let flag): hashable = .int(flag ? 1 : 0)
        case .int(let number): hashable = .int(number)
        case .string(let text): hashable = .string(text)
        default: return false
        }
        if let position = positions[hashable] {
            values[position] = value
        } else {
            positions[hashable] = keys.count
            keys.append(key)
            values.append(value)
        }
        return true
    }
}

/// A pickle interpreter that understands only what `torch.save(state_dict)` writes.
///
/// Nothing is executed: globals resolve against `PickleGlobal`'s allow-list and REDUCE is
/// interpreted here for those few callables. Unknown opcodes and globals are refused, and every
/// read, stack pop and memo lookup is checked so that a damaged or hostile pickle ends in a
/// `WeightLoadError` rather than a crash.
struct PickleMachine {
    /// Far above what a state dict needs (a few entries deep, a few thousand memo slots for a
    /// large model), low enough that a hostile pickle cannot exhaust memory through them.
    static let maximumStackDepth = 1 << 20
    static let maximumMarkDepth = 1 << 16
    static let maximumMemoSize = 1 << 22

    private let bytes: UnsafeRawBufferPointer
    private let file: String
    /// The archive entry being read, for error messages.
    private let source: String
    private var position = 0
    /// Where the opcode being interpreted starts, for error messages.
    private var opcodeStart = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    private(set) var tuples: [[PickleValue]] = []
    private(set) var lists: [[PickleValue]] = []
    private(set) var dicts: [PickleDictionary] = []

    init(bytes: UnsafeRawBufferPointer, file: String, source: String) {
        self.bytes = bytes
        self.file = file
        self.source = source
    }

    /// Interprets the pickle up to STOP and returns the value it leaves.
    mutating func run() throws(WeightLoadError) -> PickleValue {
        while true {
            opcodeStart = position
            let byte = try readByte()
            guard let opcode = PickleOpcode(rawValue: byte) else {
                throw forbidden("opcode 0x\(String(byte, radix: 16, uppercase: false))\(printable(byte)) is not supported")
            }
            switch opcode {
            case .proto:
                let version = try readByte()
                guard version <= 5 else { throw malformed("pickle protocol \(version) is not supported") }
            case .frame: // framing only helps streaming readers; the whole pickle is in memory.
                let length = try readUInt64()
                guard length <= UInt64(bytes.count - position) else { throw malformed("a frame of \(length) bytes runs past the end") }
            case .stop:
                return try pop()
            case .mark:
                guard marks.count < Self.maximumMarkDepth else { throw malformed("MARKs nest deeper than \(Self.maximumMarkDepth)") }
                marks.append(stack.count)
            case .emptyDict:
                try push(newDict(PickleDictionary()))
            case .emptyList:
                try push(newList([]))
            case .emptyTuple:
                try push(newTuple([]))
            case .tuple:
                try push(newTuple(try popToMark()))
            case .tuple1, .tuple2, .tuple3:
                let count = Int(opcode.rawValue - PickleOpcode.tuple1.rawValue) + 1
                guard stack.count - (marks.last ?? 0) >= count else { throw malformed("stack underflow building a \(count)-tuple") }
                let items = Array(stack.suffix(count))
                stack.removeLast(count)
                try push(newTuple(items))
            case .binUnicode:
                try push(.string(try readString(length: Int(try readUInt32()))))
            case .shortBinUnicode:
                try push(.string(try readString(length: Int(try readByte()))))
            case .binUnicode8:
                try push(.string(try readString(length: try lengthFromUInt64(try readUInt64()))))
            case .binString: // Python 2 str, decoded as UTF-8 as torch.load does
                let length = Int(Int32(bitPattern: try readUInt32()))
                guard length >= 0 else { throw malformed("BINSTRING has negative length \(length)") }
                try push(.string(try readString(length: length)))
            case .shortBinString:
                try push(.string(try readString(length: Int(try readByte()))))
            case .binInt:
                try push(.int(Int(Int32(bitPattern: try readUInt32()))))
            case .binInt1:
                try push(.int(Int(try readByte())))
            case .binInt2:
                try push(.int(Int(try readUInt16())))
            case .long1:
                try push(.int(try readLong(length: Int(try readByte()))))
            case .none:
                try push(.none)
            case .newTrue:
                try push(.bool(true))
            case .newFalse:
                try push(.bool(false))
            case .binFloat: // big-endian unlike everything else
                try push(.float(Double(bitPattern: UInt64(bigEndian: try readRaw(UInt64.self)))))
            case .binPut:
                try memoize(try top(), at: Int(try readByte()))
            case .longBinPut:
                try memoize(try top(), at: Int(try readUInt32()))
            case .memoize:
                try memoize(try top(), at: memo.count)
            case .binGet:
                try push(try recall(Int(try readByte())))
            case .longBinGet:
                try push(try recall(Int(try readUInt32())))
            case .global:
                let module = try readLine()
                let name = try readLine()
                try push(.global(try resolve(module: module, name: name)))
            case .stackGlobal:
                let name = try pop()
                let module = try pop()
                guard case .string(let nameText) = name, case .string(let moduleText) = module else {
                    throw malformed("STACK_GLOBAL needs two strings, found \(module.kindName) and \(name.kindName)")
                }
                try push(.global(try resolve(module: moduleText, name: nameText)))
            case .binPersistentID:
                try push(try loadPersistent(try pop()))
            case .reduce:
                let arguments = try pop()
                let callable = try pop()
                try push(try reduce(callable, arguments))
            case .build:
                let state = try pop()
                try build(try top(), state: state)
            case .setItem:
                let value = try pop()
                let key = try pop()
                try setItems(on: try top(), [key, value])
            case .setItems:
                let items = try popToMark()
                try setItems(on: try top(), items)
            case .append:
                let value = try pop()
                try append(to: try top(), [value])
            case .appends:
                let items = try popToMark()
                try append(to: try top(), items)
            case .dict:
                let items = try popToMark()
                let dict = newDict(PickleDictionary())
                try setItems(on: dict, items)
                try push(dict)
            case .list:
                try push(newList(try popToMark()))
            }
        }
    }

    // MARK: - Calls

    private func resolve(module: String, name: String) throws(WeightLoadError) -> PickleGlobal {
        guard let global = PickleGlobal(module: module, name: name) else {
            throw forbidden("global `\(module).\(name)` is not allowed")
        }
        return global
    }

    /// Interprets a persistent id; torch.save uses them only to point at storage entries.
    private func loadPersistent(_ id: PickleValue) throws(WeightLoadError) -> PickleValue {
        guard case .tuple(let index) = id else { throw malformed("a persistent id is \(id.kindName), expected a tuple") }
        let fields = tuples[index]
        guard fields.count == 5, case .string("storage") = fields[0] else {
            throw forbidden("only ('storage', type, key, location, size) persistent ids are supported")
        }
        guard case .global(.storageType(let dtype)) = fields[1] else {
            throw malformed("a storage persistent id names \(fields[1].kindName) instead of a storage type")
        }
        guard case .string(let key) = fields[2] else { throw malformed("a storage key is \(fields[2].kindName), expected a string") }
        guard case .int(let count) = fields[4], count >= 0 else { throw malformed("storage `\(key)` has no valid element count") }
        return .storage(PickledStorage(key: key, dtype: dtype, elementCount: count))
    }

    /// "Calls" an allow-listed global by interpreting its known semantics.
    private mutating func reduce(_ callable: PickleValue, _ arguments: PickleValue) throws(WeightLoadError) -> PickleValue {
        guard case .global(let global) = callable else { throw malformed("REDUCE on \(callable.kindName), which is not callable") }
        guard case .tuple(let index) = arguments else { throw malformed("REDUCE arguments are \(arguments.kindName), expected a tuple") }
        let arguments = tuples[index]
        switch global {
        case .orderedDict:
            guard arguments.isEmpty else { throw forbidden("OrderedDict with initial items is not supported") }
            return newDict(PickleDictionary())
        case .rebuildTensorV2:
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]);
            // gradients and hooks mean nothing for inference.
            guard arguments.count == 6 || arguments.count == 7 else {
                throw malformed("_rebuild_tensor_v2 takes 6 or 7 arguments, got \(arguments.count)")
            }
            return .tensor(try tensor(arguments))
        case .rebuildTensor:
            guard arguments.count == 4 else { throw malformed("_rebuild_tensor takes 4 arguments, got \(arguments.count)") }
            return .tensor(try tensor(arguments))
        case .rebuildParameter:
            // (data, requires_grad, backward_hooks): a Parameter is its tensor for our purposes.
            guard arguments.count == 3, case .tensor = arguments[0] else {
                throw malformed("_rebuild_parameter needs (tensor, requires_grad, hooks)")
            }
            return arguments[0]
        case .storageType:
            throw forbidden("constructing a storage type directly is not supported")
        }
    }

    private func tensor(_ arguments: [PickleValue]) throws(WeightLoadError) -> PickledTensor {
        guard case .storage(let storage) = arguments[0] else { throw malformed("a tensor's storage is \(arguments[0].kindName)") }
        guard case .int(let offset) = arguments[1], offset >= 0 else { throw malformed("tensor in storage `\(storage.key)` has an invalid storage offset") }
        let shape = try integers(arguments[2], what: "size of a tensor in storage `\(storage.key)`")
        let strides = try integers(arguments[3], what: "stride of a tensor in storage `\(storage.key)`")
        guard shape.count == strides.count else {
            throw malformed("tensor in storage `\(storage.key)` has \(shape.count) sizes but \(strides.count) strides")
        }
        return PickledTensor(storage: storage, storageOffset: offset, shape: shape, strides: strides)
    }

    /// A tuple of non-negative ints, as `torch.Size` and strides are pickled.
    private func integers(_ value: PickleValue, what: String) throws(WeightLoadError) -> [Int] {
        guard case .tuple(let index) = value else { throw malformed("the \(what) is \(value.kindName), expected a tuple") }
        var result: [Int] = []
        for item in tuples[index] {
            guard case .int(let number) = item, number >= 0 else { throw malformed("the \(what) holds \(item.kindName) that is not a non-negative int") }
            result.append(number)
        }
        return result
    }

    /// BUILD would call `__setstate__`; the only state we accept is OrderedDict's `_metadata`,
    /// which we drop because loading never needs it.
    private func build(_ target: PickleValue, state: PickleValue) throws(WeightLoadError) {
        guard case .dict = target else { throw forbidden("BUILD on \(target.kindName) is not supported") }
    }

    private mutating func setItems(on target: PickleValue, _ items: [PickleValue]) throws(WeightLoadError) {
        guard case .dict(let index) = target else { throw malformed("setting items on \(target.kindName), expected a dict") }
        guard items.count % 2 == 0 else { throw malformed("SETITEMS with an odd number of stack items") }
        for pair in stride(from: 0, to: items.count, by: 2) {
            guard dicts[index].set(items[pair], items[pair + 1]) else {
                throw malformed("a dict key is \(items[pair].kindName); only strings, ints and None are supported")
            }
        }
    }

    private mutating func append(to target: PickleValue, _ items: [PickleValue]) throws(WeightLoadError) {
        guard case .list(let index) = target else { throw malformed("appending to \(target.kindName), expected a list") }
        lists[index].append(contentsOf: items)
    }

    // MARK: - Stack, memo and arenas

    private mutating func push(_ value: PickleValue) throws(WeightLoadError) {
        guard stack.count < Self.maximumStackDepth else { throw malformed("the stack grows beyond \(Self.maximumStackDepth) items") }
        stack.append(value)
    }

    private mutating func pop() throws(WeightLoadError) -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.popLast() else { throw malformed("stack underflow") }
        return value
    }

    private func top() throws(WeightLoadError) -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.last else { throw malformed("stack underflow") }
        return value
    }

    private mutating func popToMark() throws(WeightLoadError) -> [PickleValue] {
        guard let mark = marks.popLast() else { throw malformed("no MARK on the stack") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private mutating func memoize(_ value: PickleValue, at index: Int) throws(WeightLoadError) {
        guard memo[index] != nil || memo.count < Self.maximumMemoSize else { throw malformed("the memo grows beyond \(Self.maximumMemoSize) entries") }
        memo[index] = value
    }

    private func recall(_ index: Int) throws(WeightLoadError) -> PickleValue {
        guard let value = memo[index] else { throw malformed("memo entry \(index) is read before it is written") }
        return value
    }

    private mutating func newTuple(_ items: [PickleValue]) -> PickleValue {
        tuples.append(items)
        return .tuple(tuples.count - 1)
    }

    private mutating func newList(_ items: [PickleValue]) -> PickleValue {
        lists.append(items)
        return .list(lists.count - 1)
    }

    private mutating func newDict(_ dict: PickleDictionary) -> PickleValue {
        dicts.append(dict)
        return .dict(dicts.count - 1)
    }

    // MARK: - Reading the byte stream

    private mutating func take(_ count: Int) throws(WeightLoadError) -> Int {
        guard count >= 0, count <= bytes.count - position else {
            throw malformed("the pickle ends in the middle of an opcode (needs \(count) more bytes, \(bytes.count - position) left)")
        }
        defer { position += count }
        return position
    }

    private mutating func readByte() throws(WeightLoadError) -> UInt8 {
        bytes[try take(1)]
    }

    private mutating func readRaw<T: FixedWidthInteger & BitwiseCopyable>(_ type: T.Type) throws(WeightLoadError) -> T {
        bytes.loadUnaligned(fromByteOffset: try take(MemoryLayout<T>.size), as: T.self)
    }

    private mutating func readUInt16() throws(WeightLoadError) -> UInt16 { UInt16(littleEndian: try readRaw(UInt16.self)) }
    private mutating func readUInt32() throws(WeightLoadError) -> UInt32 { UInt32(littleEndian: try readRaw(UInt32.self)) }
    private mutating func readUInt64() throws(WeightLoadError) -> UInt64 { UInt64(littleEndian: try readRaw(UInt64.self)) }

    private func lengthFromUInt64(_ length: UInt64) throws(WeightLoadError) -> Int {
        guard length <= UInt64(bytes.count) else { throw malformed("a length of \(length) bytes is longer than the pickle") }
        return Int(length)
    }

    private mutating func readString(length: Int) throws(WeightLoadError) -> String {
        let start = try take(length)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)])
        guard let text = String(validating: slice, as: UTF8.self) else { throw malformed("a string is not valid UTF-8") }
        return text
    }

    /// A newline-terminated line, as GLOBAL writes its module and name.
    private mutating func readLine() throws(WeightLoadError) -> String {
        let start = position
        guard let newline = bytes[start...].firstIndex(of: 0x0A) else { throw malformed("GLOBAL has no terminating newline") }
        let text = try readString(length: newline - start)
        position += 1
        return text
    }

    /// LONG1's little-endian two's-complement integer; tensor sizes never need more than 64 bits.
    private mutating func readLong(length: Int) throws(WeightLoadError) -> Int {
        guard length <= 8 else { throw malformed("an integer of \(length) bytes is too large") }
        let start = try take(length)
        var value: UInt64 = 0
        for byte in (0..<length).reversed() { value = value << 8 | UInt64(bytes[start + byte]) }
        if length > 0, length < 8, bytes[start + length - 1] & 0x80 != 0 {
            value |= ~0 << UInt64(length * 8)
        }
        return Int(Int64(bitPattern: value))
    }

    // MARK: - Errors

    private func malformed(_ reason: String) -> WeightLoadError {
        let opcode = opcodeStart < bytes.count ? bytes[opcodeStart] : 0
        return .malformed(file: file, reason: "pickle `\(source)` at byte \(opcodeStart) (opcode 0x\(String(opcode, radix: 16))\(printable(opcode))): \(reason)")
    }

    private func forbidden(_ reason: String) -> WeightLoadError {
        .forbiddenPickle(file: file, reason: "pickle `\(source)` at byte \(opcodeStart): \(reason)")
    }

    private func printable(_ opcode: UInt8) -> String {
        (0x21...0x7E).contains(opcode) ? " ('\(Character(Unicode.Scalar(opcode)))')" : ""
    }
}

extension PickleMachine {
    /// Runs a `torch.save(state_dict)` pickle and returns its tensors in the dict's order.
    static func stateDict(pickle: UnsafeRawBufferPointer, file: String, source: String) throws(WeightLoadError) -> [(name: String, tensor: PickledTensor)] {
        var machine = PickleMachine(bytes: pickle, file: file, source: source)
        let result = try machine.run()
        guard case .dict(let index) = result else {
            throw .malformed(file: file, reason: "pickle `\(source)` holds \(result.kindName), expected a state dict")
        }
        let dict = machine.dicts[index]
        var tensors: [(name: String, tensor: PickledTensor)] = []
        tensors.reserveCapacity(dict.count)
        for (key, value) in zip(dict.keys, dict.values) {
            guard case .string(let name) = key else {
                throw .malformed(file: file, reason: "pickle `\(source)`: a state dict key is \(key.kindName), expected a string")
            }
            guard case .tensor(let tensor) = value else {
                throw .malformed(file: file, reason: "pickle `\(source)`: state dict entry `\(name)` is \(value.kindName), not a tensor")
            }
            tensors.append((name, tensor))
        }
        return tensors
    }
}
