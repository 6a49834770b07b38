import Foundation

/// Writes state dicts in PyTorch's `torch.save` format: a zip of stored entries holding
/// `<archive>/data.pkl` (an `OrderedDict` of `_rebuild_tensor_v2` calls, with the `_metadata`
/// attribute `torch.save` adds), one storage per key under `<archive>/data/`, and the
/// `.format_version`, `byteorder` and `version` records.
///
/// `bgem3 synth` writes the BGE-M3 heads (`sparse_linear.pt`, `colbert_linear.pt`) with
/// ``write(_:to:)``; the loader's tests build hostile checkpoints from ``statePickle(_:protocol:)``
/// and ``archive(pickle:storages:byteOrder:zip64:comment:)``.
public enum PyTorchWriter {
    /// One entry of a state dict: a strided view into a storage.
    public struct TensorRecord: Sendable {
        public var name: String
        /// The storage's entry under `data/`.
        public var storageKey: String
        /// The `torch` storage class, such as `FloatStorage`.
        public var storageType: String
        public var storageElements: Int
        /// Offset of the first element in the storage, in elements.
        public var offset: Int
        public var shape: [Int]
        public var strides: [Int]
        /// Wrapped in `torch._utils._rebuild_parameter`, as pickling an `nn.Parameter` does.
        public var parameter: Bool

        public init(name: String, storageKey: String, storageType: String = "FloatStorage", storageElements: Int,
                    offset: Int = 0, shape: [Int], strides: [Int], parameter: Bool = false) {
            self.name = name
            self.storageKey = storageKey
            self.storageType = storageType
            self.storageElements = storageElements
            self.offset = offset
            self.shape = shape
            self.strides = strides
            self.parameter = parameter
        }

        /// A row-major tensor filling its own storage.
        public static func contiguous(_ name: String, storageKey: String, shape: [Int]) -> TensorRecord {
            var strides = [Int](repeating: 1, count: shape.count)
            for dimension in shape.indices.dropLast().reversed() { strides[dimension] = strides[dimension + 1] * shape[dimension + 1] }
            return TensorRecord(name: name, storageKey: storageKey, storageElements: shape.reduce(1, *), shape: shape, strides: strides)
        }
    }

    /// Writes f32 tensors, each in its own storage, as `torch.save(state_dict, url)` would.
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Float])], to url: URL) throws {
        let records = tensors.enumerated().map { index, tensor in
            TensorRecord.contiguous(tensor.name, storageKey: String(index), shape: tensor.shape)
        }
        var storages: [String: [UInt8]] = [:]
        for (index, tensor) in tensors.enumerated() {
            storages[String(index)] = tensor.values.withUnsafeBytes { Array($0) }
        }
        let archive = archive(pickle: statePickle(records, protocol: 2), storages: storages,
                              name: url.deletingPathExtension().lastPathComponent)
        try Data(archive).write(to: url)
    }

    /// The pickle `torch.save` writes for a state dict at this protocol.
    public static func statePickle(_ tensors: [TensorRecord], protocol version: UInt8 = 2) -> [UInt8] {
        var pickle = PickleWriter(protocol: version)
        pickle.global("collections", "OrderedDict")
        let orderedDict = pickle.memoize()
        pickle.op(.emptyTuple, .reduce)
        pickle.memoize()
        if !tensors.isEmpty { pickle.op(.mark) }
        for tensor in tensors {
            pickle.text(tensor.name)
            pickle.memoize()
            if tensor.parameter { pickle.global("torch._utils", "_rebuild_parameter") }
            pickle.global("torch._utils", "_rebuild_tensor_v2")
            // The arguments, starting with the persistent id ('storage', type, key, 'cpu', numel).
            pickle.op(.mark, .mark)
            pickle.text("storage")
            pickle.global("torch", tensor.storageType)
            pickle.text(tensor.storageKey)
            pickle.text("cpu")
            pickle.int(tensor.storageElements)
            pickle.op(.tuple, .binPersistentID)
            pickle.int(tensor.offset)
            pickle.tuple(tensor.shape)
            pickle.tuple(tensor.strides)
            pickle.bool(false) // requires_grad
            pickle.get(orderedDict) // backward hooks: OrderedDict()
            pickle.op(.emptyTuple, .reduce, .tuple, .reduce)
            if tensor.parameter {
                pickle.bool(false) // requires_grad
                pickle.get(orderedDict)
                pickle.op(.emptyTuple, .reduce, .tuple3, .reduce)
            }
        }
        if !tensors.isEmpty { pickle.op(.setItems) }
        // state_dict._metadata = OrderedDict(), set through BUILD with a state dict.
        pickle.op(.emptyDict)
        pickle.text("_metadata")
        pickle.get(orderedDict)
        pickle.op(.emptyTuple, .reduce, .setItem, .build, .stop)
        return pickle.framed()
    }

    /// The archive around a pickle, laid out as `torch.save` lays it out.
    /// - Parameter name: the archive's folder (`torch.save` uses the file's stem).
    public static func archive(pickle: [UInt8], storages: [String: [UInt8]] = [:], byteOrder: String = "little",
                               zip64: Bool = false, comment: [UInt8] = [], name: String = "archive") -> [UInt8] {
        var entries: [ZipWriter.Entry] = [
            .init(name: "\(name)/data.pkl", data: pickle),
            .init(name: "\(name)/.format_version", data: Array("1".utf8)),
            .init(name: "\(name)/byteorder", data: Array(byteOrder.utf8)),
        ]
        for key in storages.keys.sorted() {
            entries.append(.init(name: "\(name)/data/\(key)", data: storages[key] ?? []))
        }
        entries.append(.init(name: "\(name)/version", data: Array("3\n".utf8)))
        return ZipWriter.archive(entries, zip64: zip64, comment: comment)
    }
}
