/// Writes a zip archive of entries whose bytes are stored as given, in memory (checkpoint heads and
/// test archives: small files), in classic or ZIP64 form.
///
/// `torch.save` writes stored (uncompressed) entries; ``ZipArchive`` reads only those.
public enum ZipWriter {
    public struct Entry: Sendable {
        public var name: String
        public var data: [UInt8]
        /// The compression method recorded for the entry (0: stored). The bytes are written as given,
        /// so for any other method they must already be in its form.
        public var method: UInt16

        public init(name: String, data: [UInt8], method: UInt16 = 0) {
            self.name = name
            self.data = data
            self.method = method
        }
    }

    private enum Signature {
        static let localHeader: UInt32 = 0x0403_4B50
        static let centralHeader: UInt32 = 0x0201_4B50
        static let zip64EndRecord: UInt32 = 0x0606_4B50
        static let zip64Locator: UInt32 = 0x0706_4B50
        static let endRecord: UInt32 = 0x0605_4B50
    }

    /// Made by Unix, zip 3.0; names are UTF-8 (general purpose bit 11).
    private static let madeBy: UInt16 = 0x031E
    private static let utf8Names: UInt16 = 0x0800
    /// The ZIP64 extended information extra field.
    private static let zip64ExtraTag: UInt16 = 1

    /// - Parameters:
    ///   - zip64: sizes and offsets in ZIP64 extra fields and ZIP64 end records, with the classic
    ///     fields saturated, as writers do for archives over 4 GiB.
    ///   - comment: the archive comment after the end record.
    public static func archive(_ entries: [Entry], zip64: Bool = false, comment: [UInt8] = []) -> [UInt8] {
        func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { LittleEndian.bytes(value) }
        var out: [UInt8] = []
        var central: [UInt8] = []
        let needed: UInt16 = zip64 ? 45 : 20
        for entry in entries {
            let name = Array(entry.name.utf8)
            let crc = CRC32.checksum(entry.data)
            let offset = out.count
            let size = UInt32(entry.data.count)
            let classicSize = zip64 ? UInt32.max : size
            let localExtra = zip64 ? le(zip64ExtraTag) + le(UInt16(16)) + le(UInt64(size)) + le(UInt64(size)) : []
            out += le(Signature.localHeader) + le(needed) + le(utf8Names) + le(entry.method)
            out += le(UInt32(0)) + le(crc) + le(classicSize) + le(classicSize)
            out += le(UInt16(name.count)) + le(UInt16(localExtra.count)) + name + localExtra
            out += entry.data

            let centralExtra = zip64 ? le(zip64ExtraTag) + le(UInt16(24)) + le(UInt64(size)) + le(UInt64(size)) + le(UInt64(offset)) : []
            central += le(Signature.centralHeader) + le(madeBy) + le(needed) + le(utf8Names) + le(entry.method)
            central += le(UInt32(0)) + le(crc) + le(classicSize) + le(classicSize)
            central += le(UInt16(name.count)) + le(UInt16(centralExtra.count)) + le(UInt16(0))
            central += le(UInt16(0)) + le(UInt16(0)) + le(UInt32(0))
            central += le(zip64 ? UInt32.max : UInt32(offset)) + name + centralExtra
        }
        let centralOffset = out.count
        out += central
        let count = entries.count
        if zip64 {
            let recordOffset = out.count
            out += le(Signature.zip64EndRecord) + le(UInt64(44)) + le(madeBy) + le(needed)
            out += le(UInt32(0)) + le(UInt32(0)) + le(UInt64(count)) + le(UInt64(count))
            out += le(UInt64(central.count)) + le(UInt64(centralOffset))
            out += le(Signature.zip64Locator) + le(UInt32(0)) + le(UInt64(recordOffset)) + le(UInt32(1))
        }
        out += le(Signature.endRecord) + le(UInt16(0)) + le(UInt16(0))
        out += le(zip64 ? UInt16.max : UInt16(count)) + le(zip64 ? UInt16.max : UInt16(count))
        out += le(zip64 ? UInt32.max : UInt32(central.count)) + le(zip64 ? UInt32.max : UInt32(centralOffset))
        out += le(UInt16(comment.count)) + comment
        return out
    }
}
