/// One file inside a ZIP archive, as described by the central directory.
struct ZipEntry: Sendable, Equatable {
    /// The entry's path inside the archive, e.g. `pytorch_model/data/0`.
    let name: String
    /// 0 is STORED (no compression); anything else is refused when the data is read.
    let compressionMethod: UInt16
    let compressedSize: Int
    let uncompressedSize: Int
    /// Where the entry's local file header starts; its data follows that header.
    let localHeaderOffset: Int
    /// General purpose flags; bit 0 is encryption, bit 3 says the sizes follow the data.
    let flags: UInt16
}

/// A read-only view of a ZIP archive held in a memory map, enough to read `torch.save` files.
///
/// Only the central directory is parsed up front; entry data is handed out as slices of the map,
/// so a multi-gigabyte checkpoint is never copied. Every offset and size read from the file is
/// checked against the file's length, because a truncated download or a forged header must end
/// in an error rather than a read outside the map.
struct ZipArchive: Sendable {
    let file: MappedFile
    /// Entries in central directory order.
    let entries: [ZipEntry]
    private let indexByName: [String: Int]

    private var path: String { file.path }

    init(file: MappedFile) throws(WeightLoadError) {
        self.file = file
        let reader = ZipFieldReader(bytes: file.bytes, path: file.path)
        let directory = try Self.locateCentralDirectory(reader)
        entries = try Self.readCentralDirectory(directory, reader)
        var index: [String: Int] = [:]
        for (position, entry) in entries.enumerated() {
            // Two entries with one name would make "which one is the tensor" ambiguous.
            guard index.updateValue(position, forKey: entry.name) == nil else {
                throw .malformed(file: file.path, reason: "the zip archive has two entries named `\(entry.name)`")
            }
        }
        indexByName = index
    }

    /// The entry with this exact name, if the archive has one.
    func entry(named name: String) -> ZipEntry? {
        indexByName[name].map { entries[$0] }
    }

    /// The bytes of a STORED entry, as a slice of the map (valid while `file` is alive).
    func data(of entry: ZipEntry) throws(WeightLoadError) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[try dataRange(of: entry)])
    }

    /// Where a STORED entry's bytes lie in the file; checked to be inside it.
    func dataRange(of entry: ZipEntry) throws(WeightLoadError) -> Range<Int> {
        guard entry.flags & 0x1 == 0 else {
            throw .malformed(file: path, reason: "zip entry `\(entry.name)` is encrypted")
        }
        guard entry.compressionMethod == 0 else {
            throw .malformed(file: path, reason: "zip entry `\(entry.name)` is compressed (method \(entry.compressionMethod)); only stored entries are supported, as torch.save writes them")
        }
        guard entry.compressedSize == entry.uncompressedSize else {
            throw .malformed(file: path, reason: "zip entry `\(entry.name)` is stored but its compressed size \(entry.compressedSize) differs from its size \(entry.uncompressedSize)")
        }
        let reader = ZipFieldReader(bytes: file.bytes, path: path)
        let dataStart = try localDataOffset(of: entry, reader)
        try reader.requireRange(dataStart, entry.compressedSize, what: "the data of zip entry `\(entry.name)`")
        return dataStart..<(dataStart + entry.compressedSize)
    }

    // MARK: - Local headers

    /// Reads the local header to find where the data begins: its name and extra field may differ
    /// in length from the central directory's copy (torch pads the extra field to align data).
    private func localDataOffset(of entry: ZipEntry, _ reader: ZipFieldReader) throws(WeightLoadError) -> Int {
        let at = entry.localHeaderOffset
        let what = "the local header of zip entry `\(entry.name)`"
        try reader.requireRange(at, 30, what: what)
        guard try reader.u32(at) == 0x0403_4b50 else {
            throw .malformed(file: path, reason: "\(what) at byte \(at) has no local header signature")
        }
        let localFlags = try reader.u16(at + 6)
        let localCompressedSize = try reader.u32(at + 18)
        let localSize = try reader.u32(at + 22)
        let nameLength = Int(try reader.u16(at + 26))
        let extraLength = Int(try reader.u16(at + 28))
        try reader.requireRange(at + 30, nameLength + extraLength, what: what)
        let localName = String(decoding: UnsafeRawBufferPointer(rebasing: file.bytes[(at + 30)..<(at + 30 + nameLength)]), as: UTF8.self)
        guard localName == entry.name else {
            throw .malformed(file: path, reason: "\(what) names `\(localName)` instead")
        }
        // With bit 3 set the local sizes are zero and the real ones follow the data, so the
        // central directory is the only source; otherwise the two copies must agree.
        if localFlags & 0x8 == 0 {
            var compressed = UInt64(localCompressedSize)
            if localCompressedSize == 0xFFFF_FFFF || localSize == 0xFFFF_FFFF {
                // A local ZIP64 field always holds both sizes: uncompressed, then compressed.
                if let zip64 = try reader.zip64Field(extraStart: at + 30 + nameLength, extraLength: extraLength, what: what) {
                    try reader.requireRange(zip64.start, 16, within: zip64.end, what: "the ZIP64 field of \(what)")
                    compressed = try reader.u64(zip64.start + 8)
                }
            }
            guard compressed == UInt64(entry.compressedSize) else {
                throw .malformed(file: path, reason: "\(what) gives size \(compressed) but the central directory gives \(entry.compressedSize)")
            }
        }
        return at + 30 + nameLength + extraLength
    }

    // MARK: - End of central directory

    private struct CentralDirectory {
        var offset: Int
        var size: Int
        var entryCount: Int
    }

    /// Finds the End Of Central Directory record by scanning backwards (it is followed by a
    /// comment of up to 64 KiB), then prefers the ZIP64 record when a locator precedes it.
    private static func locateCentralDirectory(_ reader: ZipFieldReader) throws(WeightLoadError) -> CentralDirectory {
        let count = reader.count
        guard count >= 22 else {
            throw .malformed(file: reader.path, reason: "\(count) bytes is too short for a zip archive")
        }
        var eocd: Int?
        var candidate = count - 22
        let lowest = max(0, count - 22 - 0xFFFF)
        while candidate >= lowest {
            // The comment length must reach exactly to the end of the file; this rejects the
            // signature bytes appearing by chance inside a comment.
            if try reader.u32(candidate) == 0x0605_4b50, candidate + 22 + Int(try reader.u16(candidate + 20)) == count {
                eocd = candidate
                break
            }
            candidate -= 1
        }
        guard let eocd else {
            throw .malformed(file: reader.path, reason: "no zip end of central directory record (the file is truncated or not a zip archive)")
        }
        let diskNumber = try reader.u16(eocd + 4)
        let directoryDisk = try reader.u16(eocd + 6)
        var directory = CentralDirectory(
            offset: Int(try reader.u32(eocd + 16)),
            size: Int(try reader.u32(eocd + 12)),
            entryCount: Int(try reader.u16(eocd + 10)))
        if let zip64 = try zip64Directory(endRecord: eocd, reader) {
            // Fields too small for their value hold the 0xFF.. sentinel; any other value must
            // repeat the ZIP64 record, or one of the two is lying.
            let agree = (directory.offset == 0xFFFF_FFFF || directory.offset == zip64.offset)
                && (directory.size == 0xFFFF_FFFF || directory.size == zip64.size)
                && (directory.entryCount == 0xFFFF || directory.entryCount == zip64.entryCount)
            guard agree else {
                throw .malformed(file: reader.path, reason: "the zip end of central directory record and its ZIP64 record disagree")
            }
            directory = zip64
        } else if diskNumber != 0 || directoryDisk != 0 {
            throw .malformed(file: reader.path, reason: "multi-disk zip archives are not supported")
        }
        try reader.requireRange(directory.offset, directory.size, within: eocd, what: "the zip central directory (offset \(directory.offset), \(directory.size) bytes)")
        // Each central header is at least 46 bytes; a larger count is a lie, and checking it
        // here keeps a forged count from driving a huge allocation.
        guard directory.entryCount <= directory.size / 46 else {
            throw .malformed(file: reader.path, reason: "the zip central directory claims \(directory.entryCount) entries in \(directory.size) bytes")
        }
        return directory
    }

    /// The ZIP64 end of central directory record, if a ZIP64 locator sits just before the
    /// classic record.
    private static func zip64Directory(endRecord eocd: Int, _ reader: ZipFieldReader) throws(WeightLoadError) -> CentralDirectory? {
        let locator = eocd - 20
        guard locator >= 0, try reader.u32(locator) == 0x0706_4b50 else { return nil }
        let recordOffset = try reader.int(try reader.u64(locator + 8), what: "the ZIP64 end of central directory offset")
        try reader.requireRange(recordOffset, 56, within: locator, what: "the ZIP64 end of central directory record")
        guard try reader.u32(recordOffset) == 0x0606_4b50 else {
            throw .malformed(file: reader.path, reason: "the ZIP64 locator points at byte \(recordOffset), which holds no ZIP64 end of central directory record")
        }
        guard try reader.u32(recordOffset + 16) == 0, try reader.u32(recordOffset + 20) == 0 else {
            throw .malformed(file: reader.path, reason: "multi-disk zip archives are not supported")
        }
        return CentralDirectory(
            offset: try reader.int(try reader.u64(recordOffset + 48), what: "the ZIP64 central directory offset"),
            size: try reader.int(try reader.u64(recordOffset + 40), what: "the ZIP64 central directory size"),
            entryCount: try reader.int(try reader.u64(recordOffset + 32), what: "the ZIP64 entry count"))
    }

    // MARK: - Central directory

    private static func readCentralDirectory(_ directory: CentralDirectory, _ reader: ZipFieldReader) throws(WeightLoadError) -> [ZipEntry] {
        var entries: [ZipEntry] = []
        entries.reserveCapacity(directory.entryCount)
        let end = directory.offset + directory.size
        var at = directory.offset
        for number in 0..<directory.entryCount {
            let what = "zip central directory entry \(number)"
            try reader.requireRange(at, 46, within: end, what: what)
            guard try reader.u32(at) == 0x0201_4b50 else {
                throw .malformed(file: reader.path, reason: "\(what) at byte \(at) has no central header signature (the central directory offset is wrong)")
            }
            let flags = try reader.u16(at + 8)
            let method = try reader.u16(at + 10)
            let compressed32 = try reader.u32(at + 20)
            let size32 = try reader.u32(at + 24)
            let nameLength = Int(try reader.u16(at + 28))
            let extraLength = Int(try reader.u16(at + 30))
            let commentLength = Int(try reader.u16(at + 32))
            let disk16 = try reader.u16(at + 34)
            let offset32 = try reader.u32(at + 42)
            try reader.requireRange(at + 46, nameLength + extraLength + commentLength, within: end, what: what)
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: reader.bytes[(at + 46)..<(at + 46 + nameLength)]), as: UTF8.self)

            var size = UInt64(size32)
            var compressed = UInt64(compressed32)
            var offset = UInt64(offset32)
            if size32 == 0xFFFF_FFFF || compressed32 == 0xFFFF_FFFF || offset32 == 0xFFFF_FFFF || disk16 == 0xFFFF {
                // The ZIP64 field lists only the values whose classic field is saturated, in
                // this fixed order.
                guard let zip64 = try reader.zip64Field(extraStart: at + 46 + nameLength, extraLength: extraLength, what: "zip entry `\(name)`") else {
                    throw .malformed(file: reader.path, reason: "zip entry `\(name)` needs a ZIP64 extra field but has none")
                }
                var cursor = zip64.start
                func next() throws(WeightLoadError) -> UInt64 {
                    try reader.requireRange(cursor, 8, within: zip64.end, what: "the ZIP64 extra field of zip entry `\(name)`")
                    defer { cursor += 8 }
                    return try reader.u64(cursor)
                }
                if size32 == 0xFFFF_FFFF { size = try next() }
                if compressed32 == 0xFFFF_FFFF { compressed = try next() }
                if offset32 == 0xFFFF_FFFF { offset = try next() }
            } else if disk16 != 0 {
                throw .malformed(file: reader.path, reason: "zip entry `\(name)` is on another disk")
            }
            entries.append(ZipEntry(
                name: name,
                compressionMethod: method,
                compressedSize: try reader.int(compressed, what: "the compressed size of zip entry `\(name)`"),
                uncompressedSize: try reader.int(size, what: "the size of zip entry `\(name)`"),
                localHeaderOffset: try reader.int(offset, what: "the local header offset of zip entry `\(name)`"),
                flags: flags))
            at += 46 + nameLength + extraLength + commentLength
        }
        return entries
    }
}

/// Bounds-checked little-endian reads from the map; every failure names the file.
private struct ZipFieldReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var count: Int { bytes.count }

    /// Throws unless `[start, start + length)` lies inside `[0, limit)` (the file by default).
    func requireRange(_ start: Int, _ length: Int, within limit: Int? = nil, what: String) throws(WeightLoadError) {
        let limit = limit ?? bytes.count
        let (end, overflow) = start.addingReportingOverflow(length)
        guard start >= 0, length >= 0, !overflow, end <= limit, limit <= bytes.count else {
            throw .malformed(file: path, reason: "\(what) runs past the end of its region (bytes \(start)..<\(start &+ length), limit \(limit); the file is truncated or a header is wrong)")
        }
    }

    func u16(_ at: Int) throws(WeightLoadError) -> UInt16 {
        try requireRange(at, 2, what: "a zip header field")
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))
    }

    func u32(_ at: Int) throws(WeightLoadError) -> UInt32 {
        try requireRange(at, 4, what: "a zip header field")
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }

    func u64(_ at: Int) throws(WeightLoadError) -> UInt64 {
        try requireRange(at, 8, what: "a zip header field")
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }

    /// A 64-bit size or offset as an `Int`; values beyond the file cannot be valid anyway.
    func int(_ value: UInt64, what: String) throws(WeightLoadError) -> Int {
        guard value <= UInt64(bytes.count) else {
            throw .malformed(file: path, reason: "\(what) is \(value), larger than the whole file (\(bytes.count) bytes)")
        }
        return Int(value)
    }

    /// The data range of the ZIP64 extended information field (header id 1) in an extra field.
    func zip64Field(extraStart: Int, extraLength: Int, what: String) throws(WeightLoadError) -> (start: Int, end: Int)? {
        let end = extraStart + extraLength
        var at = extraStart
        while at + 4 <= end {
            let id = try u16(at)
            let length = Int(try u16(at + 2))
            try requireRange(at + 4, length, within: end, what: "an extra field of \(what)")
            if id == 0x0001 { return (at + 4, at + 4 + length) }
            at += 4 + length
        }
        return nil
    }
}
