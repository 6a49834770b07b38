import Crypto
import Foundation

/// Which build of the engine is running, for keys of what it measured about itself.
///
/// The version number alone does not tell builds apart: every commit between two releases is
/// "0.1.0", and a change to the kernels or the workspace layout changes what a probe measures. So
/// cached probe fits and precision figures are keyed by the build itself:
/// - the GNU build ID of the running executable (`bgem3` is linked with `--build-id`, a SHA-1 of
///   the linked output that the linker writes into a note), read from its program headers: a few
///   KiB at start;
/// - without one (another linker, or a test runner), the SHA-256 of the executable file, read
///   once (0.7 s for the 96 MB release binary);
/// - "unknown" if neither can be read; builds then share records, as before the identity existed.
public enum ExecutableBuild {
    /// `gnu-<hex>`, `sha256-<hex>` or `unknown`, computed once per process.
    public static let identity: String = {
        if let id = gnuBuildID() { return "gnu-\(id)" }
        if let digest = fileDigest(path: "/proc/self/exe") { return "sha256-\(digest)" }
        return "unknown"
    }()

    /// The hex build ID in the `NT_GNU_BUILD_ID` note of an ELF64 little-endian file, if it has
    /// one: the program headers' `PT_NOTE` segments, read from the file (a few KiB).
    public static func gnuBuildID(ofFile path: String = "/proc/self/exe") -> String? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        func read(_ offset: Int, _ count: Int) -> [UInt8]? {
            guard count > 0, count <= 1 << 20, (try? file.seek(toOffset: UInt64(offset))) != nil,
                  let data = try? file.read(upToCount: count), data.count == count else { return nil }
            return Array(data)
        }
        func integer(_ bytes: [UInt8], _ at: Int, _ size: Int) -> Int {
            (0..<size).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) }
        }
        // ELF magic, 64-bit class, little-endian.
        guard let header = read(0, 64), header[0..<4] == [0x7f, 0x45, 0x4c, 0x46], header[4] == 2, header[5] == 1 else { return nil }
        let tableOffset = integer(header, 32, 8)
        let entrySize = integer(header, 54, 2)
        let entries = integer(header, 56, 2)
        guard entrySize >= 56, let table = read(tableOffset, entrySize * entries) else { return nil }
        for entry in 0..<entries {
            let at = entry * entrySize
            guard integer(table, at, 4) == 4 /* PT_NOTE */ else { continue }
            guard let notes = read(integer(table, at + 8, 8), integer(table, at + 32, 8)) else { continue }
            if let id = notes.withUnsafeBytes({ buildID(inNotes: $0) }) { return id }
        }
        return nil
    }

    /// The hex descriptor of the first `NT_GNU_BUILD_ID` note (type 3, owner "GNU") in an ELF
    /// note segment: entries of `namesz`, `descsz`, `type` (4 bytes each), then the name and the
    /// descriptor, each padded to 4 bytes.
    public static func buildID(inNotes notes: UnsafeRawBufferPointer) -> String? {
        func aligned(_ value: Int) -> Int { (value + 3) & ~3 }
        var offset = 0
        while offset + 12 <= notes.count {
            let nameSize = Int(notes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let descriptorSize = Int(notes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
            let type = notes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            let name = offset + 12
            let descriptor = name + aligned(nameSize)
            guard descriptor + descriptorSize <= notes.count else { return nil }
            if type == 3, nameSize == 4, Array(notes[name..<name + 4]) == Array("GNU\0".utf8), descriptorSize > 0 {
                return ProbeFingerprint.hex(notes[descriptor..<descriptor + descriptorSize])
            }
            offset = descriptor + aligned(descriptorSize)
        }
        return nil
    }

    /// SHA-256 (hex) of a whole file, read in 1 MiB pieces; nil if it cannot be read.
    static func fileDigest(path: String) -> String? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        var hasher = SHA256()
        do {
            while let piece = try file.read(upToCount: 1 << 20), !piece.isEmpty { hasher.update(data: piece) }
        } catch {
            return nil
        }
        return ProbeFingerprint.hex(hasher.finalize())
    }
}
