import Foundation

/// Writes a state dict of f32 tensors in PyTorch's `torch.save` format: an uncompressed zip with
/// `<name>/data.pkl` (a protocol-2 pickle of an `OrderedDict` of `_rebuild_tensor_v2` calls), one
/// storage file per tensor under `<name>/data/`, and `byteorder` and `version` records.
///
/// Used to write the BGE-M3 heads (`sparse_linear.pt`, `colbert_linear.pt`) of synthetic models.
public enum PyTorchWriter {
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Float])], to url: URL) throws {
        let archive = url.deletingPathExtension().lastPathComponent
        var pickle = Pickle()
        pickle.protocol2()
        pickle.global("collections", "OrderedDict")
        pickle.emptyTuple()
        pickle.reduce()
        pickle.mark()
        for (index, tensor) in tensors.enumerated() {
            pickle.unicode(tensor.name)
            pickle.global("torch._utils", "_rebuild_tensor_v2")
            pickle.mark()
            // Persistent id: ('storage', torch.FloatStorage, key, 'cpu', element count)
            pickle.mark()
            pickle.unicode("storage")
            pickle.global("torch", "FloatStorage")
            pickle.unicode(String(index))
            pickle.unicode("cpu")
            pickle.int(tensor.values.count)
            pickle.tuple()
            pickle.persistentID()
            pickle.int(0)
            pickle.mark()
            for dimension in tensor.shape { pickle.int(dimension) }
            pickle.tuple()
            pickle.mark()
            var stride = 1
            var strides: [Int] = []
            for dimension in tensor.shape.reversed() {
                strides.insert(stride, at: 0)
                stride *= dimension
            }
            for s in strides { pickle.int(s) }
            pickle.tuple()
            pickle.bool(false)
            pickle.global("collections", "OrderedDict")
            pickle.emptyTuple()
            pickle.reduce()
            pickle.tuple()
            pickle.reduce()
        }
        pickle.setItems()
        pickle.stop()

        var zip = StoredZipWriter()
        zip.add("\(archive)/data.pkl", pickle.bytes)
        zip.add("\(archive)/byteorder", Array("little".utf8))
        for (index, tensor) in tensors.enumerated() {
            zip.add("\(archive)/data/\(index)", tensor.values.withUnsafeBytes { Array($0) })
        }
        zip.add("\(archive)/version", Array("3\n".utf8))
        try Data(zip.finish()).write(to: url)
    }
}

/// The few pickle opcodes a state dict needs.
private struct Pickle {
    var bytes: [UInt8] = []

    mutating func protocol2() { bytes += [0x80, 2] }
    mutating func mark() { bytes.append(0x28) }
    mutating func stop() { bytes.append(0x2E) }
    mutating func tuple() { bytes.append(0x74) }
    mutating func emptyTuple() { bytes.append(0x29) }
    mutating func reduce() { bytes.append(0x52) }
    mutating func setItems() { bytes.append(0x75) }
    mutating func persistentID() { bytes.append(0x51) }
    mutating func bool(_ value: Bool) { bytes.append(value ? 0x88 : 0x89) }

    mutating func global(_ module: String, _ name: String) {
        bytes.append(0x63)
        bytes += Array(module.utf8) + [0x0A] + Array(name.utf8) + [0x0A]
    }

    mutating func unicode(_ string: String) {
        let utf8 = Array(string.utf8)
        bytes.append(0x58)
        bytes += littleEndian(UInt32(utf8.count))
        bytes += utf8
    }

    mutating func int(_ value: Int) {
        if value >= 0 && value < 256 {
            bytes += [0x4B, UInt8(value)]
        } else {
            bytes.append(0x4A)
            bytes += littleEndian(UInt32(bitPattern: Int32(value)))
        }
    }
}

private func littleEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF), UInt8((value >> 16) & 0xFF), UInt8(value >> 24)]
}

private func littleEndian(_ value: UInt16) -> [UInt8] {
    [UInt8(value & 0xFF), UInt8(value >> 8)]
}

/// An uncompressed ("stored") zip archive built in memory (small files only: the heads).
private struct StoredZipWriter {
    private var data: [UInt8] = []
    private var central: [UInt8] = []
    private var count: UInt16 = 0

    mutating func add(_ name: String, _ contents: [UInt8]) {
        let nameBytes = Array(name.utf8)
        let crc = CRC32.checksum(contents)
        let offset = UInt32(data.count)
        // PyTorch aligns storages to 64 bytes with an extra field; readers do not require it.
        data += littleEndian(UInt32(0x0403_4B50)) + littleEndian(UInt16(20)) + littleEndian(UInt16(0)) + littleEndian(UInt16(0))
        data += littleEndian(UInt16(0)) + littleEndian(UInt16(0)) + littleEndian(crc)
        data += littleEndian(UInt32(contents.count)) + littleEndian(UInt32(contents.count))
        data += littleEndian(UInt16(nameBytes.count)) + littleEndian(UInt16(0)) + nameBytes + contents
        central += littleEndian(UInt32(0x0201_4B50)) + littleEndian(UInt16(20)) + littleEndian(UInt16(20)) + littleEndian(UInt16(0))
        central += littleEndian(UInt16(0)) + littleEndian(UInt16(0)) + littleEndian(UInt16(0)) + littleEndian(crc)
        central += littleEndian(UInt32(contents.count)) + littleEndian(UInt32(contents.count)) + littleEndian(UInt16(nameBytes.count))
        central += littleEndian(UInt16(0)) + littleEndian(UInt16(0)) + littleEndian(UInt16(0)) + littleEndian(UInt16(0))
        central += littleEndian(UInt32(0)) + littleEndian(offset) + nameBytes
        count += 1
    }

    mutating func finish() -> [UInt8] {
        let centralOffset = UInt32(data.count)
        var out = data + central
        out += littleEndian(UInt32(0x0605_4B50)) + littleEndian(UInt16(0)) + littleEndian(UInt16(0))
        out += littleEndian(count) + littleEndian(count) + littleEndian(UInt32(central.count)) + littleEndian(centralOffset) + littleEndian(UInt16(0))
        return out
    }
}

/// CRC-32 (IEEE), as zip records it.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
