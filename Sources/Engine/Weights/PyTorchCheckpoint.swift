import Foundation

/// The tensors of a PyTorch checkpoint written by `torch.save(state_dict)` (the zip format used
/// since PyTorch 1.6), such as `pytorch_model.bin`, `sparse_linear.pt` or `colbert_linear.pt`.
///
/// The checkpoint's pickle is interpreted, never executed: only the few globals that rebuild
/// tensors are accepted, and any other global or unknown opcode is refused with
/// ``WeightLoadError/forbiddenPickle(file:reason:)``. Every tensor is checked against its
/// storage entry when the file is opened, so a damaged file fails at load time.
///
/// Contiguous row-major tensors (all that `state_dict()` of ordinary modules produces) are served
/// straight from the memory map without a copy; a tensor with other strides is copied into a
/// contiguous buffer owned by its ``TensorView``.
public final class PyTorchCheckpoint: WeightFile {
    /// The file's path, for error messages.
    public let path: String
    /// Tensor names in the order the state dict stores them.
    public let tensorNames: [String]
    /// The archive's top folder including its slash, e.g. `pytorch_model/`.
    public let archivePrefix: String

    fileprivate let file: MappedFile
    private let tensors: [String: StoredTensor]

    /// Opens and validates a checkpoint.
    ///
    /// - Throws: ``WeightLoadError/unreadable(file:reason:)`` if the file cannot be opened,
    ///   ``WeightLoadError/malformed(file:reason:)`` if it is not a valid torch zip checkpoint
    ///   (truncated, lying headers, compressed entries, missing or too small storages),
    ///   ``WeightLoadError/forbiddenPickle(file:reason:)`` if its pickle asks for anything but
    ///   rebuilding tensors.
    public init(path: String) throws(WeightLoadError) {
        self.path = path
        file = try MappedFile(path: path)
        if Self.looksLikeLegacyPickle(file.bytes) {
            throw .malformed(file: path, reason: "this is the legacy (pre-1.6, non-zip) torch.save format, which is not supported; re-save it with a recent PyTorch")
        }
        let archive = try ZipArchive(file: file)
        archivePrefix = try Self.findPrefix(in: archive, path: path)
        try Self.checkByteOrder(in: archive, prefix: archivePrefix, path: path)

        guard let pickleEntry = archive.entry(named: archivePrefix + "data.pkl") else {
            throw .malformed(file: path, reason: "the archive has no `\(archivePrefix)data.pkl`")
        }
        let pickled = try PickleMachine.stateDict(pickle: try archive.data(of: pickleEntry), file: path, source: pickleEntry.name)
        var resolved: [String: StoredTensor] = [:]
        resolved.reserveCapacity(pickled.count)
        for (name, tensor) in pickled {
            resolved[name] = try StoredTensor(name: name, tensor, archive: archive, prefix: archivePrefix, path: path)
        }
        tensorNames = pickled.map(\.name)
        tensors = resolved
    }

    /// The tensor with this name: a slice of the map when it is contiguous, else a copy.
    ///
    /// - Throws: ``WeightLoadError/missingTensor(file:tensor:)`` if the state dict has no such entry.
    public func tensor(_ name: String) throws(WeightLoadError) -> TensorView {
        guard let stored = tensors[name] else { throw .missingTensor(file: path, tensor: name) }
        let storage = UnsafeRawBufferPointer(rebasing: file.bytes[stored.storageBytes])
        let elementSize = stored.dtype.size
        if stored.isContiguous {
            let start = stored.storageOffset * elementSize
            let bytes = UnsafeRawBufferPointer(rebasing: storage[start..<(start + stored.elementCount * elementSize)])
            return TensorView(name: name, dtype: stored.dtype, shape: stored.shape, bytes: bytes, owner: file)
        }
        let copy = ContiguousCopy(byteCount: stored.elementCount * elementSize)
        stored.gather(from: storage, into: copy.buffer)
        return TensorView(name: name, dtype: stored.dtype, shape: stored.shape, bytes: UnsafeRawBufferPointer(copy.buffer), owner: copy)
    }

    // MARK: - Archive layout

    /// torch.save's first bytes are a pickled magic number when it wrote the old format.
    private static func looksLikeLegacyPickle(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x80 && bytes[1] <= 5
    }

    /// The single top-level folder holding `data.pkl`; its name depends on the file torch.save
    /// was given (`pytorch_model/`, `archive/`, ...), so it is discovered rather than assumed.
    private static func findPrefix(in archive: ZipArchive, path: String) throws(WeightLoadError) -> String {
        let prefixes = archive.entries.compactMap { entry -> String? in
            let parts = entry.name.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[1] == "data.pkl", !parts[0].isEmpty else { return nil }
            return String(parts[0]) + "/"
        }
        guard let prefix = prefixes.first else {
            throw .malformed(file: path, reason: "the zip archive has no `<folder>/data.pkl`, so it is not a torch.save checkpoint")
        }
        guard prefixes.count == 1 else {
            throw .malformed(file: path, reason: "the zip archive has several data.pkl files (\(prefixes.joined(separator: ", ")))")
        }
        return prefix
    }

    /// Storages are raw bytes in the writer's byte order; only little-endian is read.
    private static func checkByteOrder(in archive: ZipArchive, prefix: String, path: String) throws(WeightLoadError) {
        guard let entry = archive.entry(named: prefix + "byteorder") else { return }
        let order = String(decoding: try archive.data(of: entry), as: UTF8.self)
        guard order.trimmingCharacters(in: .whitespacesAndNewlines) == "little" else {
            throw .malformed(file: path, reason: "the checkpoint's byte order is `\(order)`; only little-endian checkpoints are supported")
        }
    }
}

/// A tensor whose storage has been found and checked to hold every element it addresses.
private struct StoredTensor: Sendable {
    let dtype: TensorDType
    let shape: [Int]
    let strides: [Int]
    /// The storage entry's bytes within the file.
    let storageBytes: Range<Int>
    /// In elements.
    let storageOffset: Int
    let elementCount: Int
    let isContiguous: Bool

    init(name: String, _ tensor: PickledTensor, archive: ZipArchive, prefix: String, path: String) throws(WeightLoadError) {
        let storage = tensor.storage
        let entryName = prefix + "data/" + storage.key
        guard let entry = archive.entry(named: entryName) else {
            throw .malformed(file: path, reason: "tensor `\(name)` uses storage `\(storage.key)`, but the archive has no entry `\(entryName)`")
        }
        storageBytes = try archive.dataRange(of: entry)
        dtype = storage.dtype
        shape = tensor.shape
        strides = tensor.strides
        storageOffset = tensor.storageOffset

        func overflow() -> WeightLoadError {
            .malformed(file: path, reason: "tensor `\(name)` has a size, stride or offset too large to address (shape \(tensor.shape), stride \(tensor.strides), offset \(tensor.storageOffset))")
        }
        let (declaredBytes, declaredOverflow) = storage.elementCount.multipliedReportingOverflow(by: dtype.size)
        guard !declaredOverflow, declaredBytes <= storageBytes.count else {
            throw .malformed(file: path, reason: "storage `\(storage.key)` declares \(storage.elementCount) \(dtype.rawValue) elements, but entry `\(entryName)` holds only \(storageBytes.count) bytes")
        }

        var count = 1
        // The last element addressed is offset + Σ (size - 1) · stride; it must lie in the storage.
        var lastElement = tensor.storageOffset
        for (size, stride) in zip(tensor.shape, tensor.strides) {
            let (product, productOverflow) = count.multipliedReportingOverflow(by: size)
            guard !productOverflow else { throw overflow() }
            count = product
            if size > 0 {
                let (reach, reachOverflow) = (size - 1).multipliedReportingOverflow(by: stride)
                let (sum, sumOverflow) = lastElement.addingReportingOverflow(reach)
                guard !reachOverflow, !sumOverflow else { throw overflow() }
                lastElement = sum
            }
        }
        guard !count.multipliedReportingOverflow(by: dtype.size).overflow else { throw overflow() }
        elementCount = count
        if count > 0, lastElement >= storage.elementCount {
            throw .malformed(file: path, reason: "tensor `\(name)` (shape \(tensor.shape), stride \(tensor.strides), offset \(tensor.storageOffset)) reaches element \(lastElement), but storage `\(storage.key)` holds only \(storage.elementCount) elements")
        }
        if count == 0, tensor.storageOffset > storage.elementCount {
            throw .malformed(file: path, reason: "tensor `\(name)` starts at element \(tensor.storageOffset), past the end of storage `\(storage.key)` (\(storage.elementCount) elements)")
        }

        // Row-major contiguity; a dimension of size 1 can carry any stride without moving.
        var expected = 1
        var contiguous = true
        for (size, stride) in zip(tensor.shape, tensor.strides).reversed() where size != 1 {
            if stride != expected { contiguous = false }
            expected &*= size
        }
        isContiguous = contiguous || count == 0
        // A copy can outgrow its storage (stride 0 repeats elements); cap it so a forged shape
        // cannot demand terabytes.
        if !isContiguous, count * dtype.size > archive.file.bytes.count {
            throw .malformed(file: path, reason: "tensor `\(name)` is not contiguous and copying it would take \(count * dtype.size) bytes, more than the whole file")
        }
    }

    /// Copies a strided tensor into row-major order.
    func gather(from storage: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) {
        guard elementCount > 0, let target = destination.baseAddress, let source = storage.baseAddress else { return }
        let elementSize = dtype.size
        var index = [Int](repeating: 0, count: shape.count)
        var element = storageOffset
        for position in 0..<elementCount {
            (target + position * elementSize).copyMemory(from: source + element * elementSize, byteCount: elementSize)
            // Advance the multi-index like an odometer, last dimension fastest. Wrapping
            // arithmetic: the carry past the last element may overflow with a huge stride on a
            // size-1 dimension, but every element actually read was bounds-checked at load.
            var dimension = shape.count - 1
            while dimension >= 0 {
                index[dimension] += 1
                element &+= strides[dimension]
                if index[dimension] < shape[dimension] { break }
                element &-= strides[dimension] &* shape[dimension]
                index[dimension] = 0
                dimension -= 1
            }
        }
    }
}

/// The buffer behind a tensor that had to be copied to become contiguous.
private final class ContiguousCopy: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer

    init(byteCount: Int) {
        buffer = .allocate(byteCount: byteCount, alignment: 64)
    }

    deinit { buffer.deallocate() }
}

extension PyTorchCheckpoint {
    public func releaseResidentPages() {
        file.releaseResidentPages()
    }
}
