import Foundation

/// One measured shape, as stored. Kept beside the fitted coefficients so that a cached probe can
/// be checked, or refitted, without running it again.
public struct ProbeSample: Sendable, Equatable, Codable {
    public var batch: Int
    public var length: Int
    /// How much the process's resident set grew: what the memory limit actually sees, allocator
    /// overhead included. May be negative if memory was returned to the system meanwhile.
    public var measuredBytes: Int
    /// The engine's own workspace accounting: exact, but blind to what the allocator adds.
    public var engineBytes: Int

    public init(batch: Int, length: Int, measuredBytes: Int, engineBytes: Int) {
        self.batch = batch
        self.length = length
        self.measuredBytes = measuredBytes
        self.engineBytes = engineBytes
    }
}

/// A probe result as stored on disk: the fit workspace = a·B·S + b·B·S² for a batch of B
/// sequences of S tokens, and what it was measured for.
public struct ProbeRecord: Sendable, Equatable, Codable {
    /// Raised whenever the meaning or layout of a record changes, so that an older or newer build
    /// sharing the cache ignores the file and probes again instead of misreading it.
    /// Format 2: the fingerprint carries the engine build.
    public static let currentFormat = 2

    public var format: Int
    /// What the result depends on; a record is only used for an equal fingerprint.
    public var fingerprint: ProbeFingerprint
    /// Bytes per token.
    public var a: Double
    /// Bytes per token², the attention scores' share.
    public var b: Double
    public var samples: [ProbeSample]
    /// When the probe ran (ISO 8601), for people reading the file.
    public var created: String

    public init(fingerprint: ProbeFingerprint, a: Double, b: Double, samples: [ProbeSample],
                created: String = Date().ISO8601Format()) {
        self.format = Self.currentFormat
        self.fingerprint = fingerprint
        self.a = a
        self.b = b
        self.samples = samples
        self.created = created
    }
}

/// Why the model could not be fingerprinted, or a probe result not cached.
public enum ProbeCacheError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "cannot read \(path) to fingerprint the model (\(reason)); check that the model directory is complete and readable by this user"
        case .unwritable(let path, let reason):
            return "cannot write the probe cache in \(path) (\(reason)); set BGE_M3_PROBE_CACHE_DIR to a writable directory"
        }
    }
}

/// The on-disk cache of probe results: one JSON file per fingerprint in a directory.
///
/// The directory may be on a filesystem shared by replicas, so several processes may write the
/// same file at once: every write replaces the whole file with a single `rename(2)`, and a reader
/// that finds anything it cannot trust treats it as absent rather than failing start-up.
public struct ProbeCache: Sendable {
    /// Where fits are cached unless told otherwise: `BGE_M3_PROBE_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/bgem3`, else `~/.cache/bgem3`; nil without any of them.
    public static func defaultDirectory(environment: [String: String]) -> URL? {
        if let directory = environment["BGE_M3_PROBE_CACHE_DIR"], !directory.isEmpty { return URL(fileURLWithPath: directory) }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return URL(fileURLWithPath: xdg).appendingPathComponent("bgem3") }
        if let home = environment["HOME"], !home.isEmpty { return URL(fileURLWithPath: home).appendingPathComponent(".cache/bgem3") }
        return nil
    }

    public let directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    /// `probe-<first 16 hex chars of the digest>.json`: 64 bits keep names short and collisions
    /// unlikely, and `load` checks the whole fingerprint anyway.
    public func fileURL(for fingerprint: ProbeFingerprint) -> URL {
        directory.appendingPathComponent("probe-\(fingerprint.digest.prefix(16)).json")
    }

    /// What `load` found.
    public enum Lookup: Sendable, Equatable {
        case hit(ProbeRecord)
        /// No file: probe, then store.
        case miss
        /// A file that cannot be used, and why: log the reason as a warning, probe again, and
        /// store (which replaces the file).
        case ignored(reason: String)
    }

    /// Largest file read; a real record is a few kilobytes, so anything bigger is not one.
    static let maximumRecordBytes = 1 << 20

    /// The cached result for `fingerprint`.
    ///
    /// Never throws and never traps, whatever the file holds: a bad cache must cost a probe, not
    /// the server's start-up. `.ignored` covers a file that cannot be read, is not valid JSON, is
    /// of another format, was measured for a different fingerprint (the reason names the fields
    /// that differ, cached value first), or has coefficients no probe can yield: `a` must be
    /// finite and > 0 (every token costs some workspace; a zero fit would admit any batch) and
    /// `b` finite and ≥ 0.
    public func load(for fingerprint: ProbeFingerprint) -> Lookup {
        let path = fileURL(for: fingerprint).path
        let data: Data
        switch Self.readSmallFile(path) {
        case .missing: return .miss
        case .failed(let reason): return .ignored(reason: "\(path): \(reason)")
        case .read(let bytes): data = bytes
        }
        guard !data.isEmpty else { return .ignored(reason: "\(path) is empty") }

        // The format first, so that a record from another build is reported as such and not as a
        // shape this build cannot decode.
        let decoder = JSONDecoder()
        let header: FormatHeader
        do {
            header = try decoder.decode(FormatHeader.self, from: data)
        } catch {
            return .ignored(reason: "\(path) is \(Self.explain(error))")
        }
        guard header.format == ProbeRecord.currentFormat else {
            return .ignored(reason: "\(path) is of format \(header.format); this build reads format \(ProbeRecord.currentFormat)")
        }
        let record: ProbeRecord
        do {
            record = try decoder.decode(ProbeRecord.self, from: data)
        } catch {
            return .ignored(reason: "\(path) is \(Self.explain(error))")
        }

        guard record.fingerprint == fingerprint else {
            let differences = Self.differences(cached: record.fingerprint, current: fingerprint)
            return .ignored(reason: "\(path) was probed for a different setup (cached ≠ current): \(differences.joined(separator: ", "))")
        }
        guard Self.areUsable(a: record.a, b: record.b) else {
            return .ignored(reason: "\(path) has a = \(record.a), b = \(record.b); \(Self.coefficientRule)")
        }
        return .hit(record)
    }

    /// Stores `record` under its fingerprint, replacing any earlier file.
    ///
    /// Readers, in this process or another, see either the old file or the new one, whole: the
    /// record goes to a uniquely named temporary file in the same directory (a rename is only
    /// atomic within one filesystem), is flushed to disk with `fsync`, and then renamed over the
    /// final name. Concurrent writers each rename their own complete file, so the last one wins.
    /// The temporary file is removed if any step fails. Temporary files of writers that died
    /// between their write and their rename are removed here once they are 10 minutes old (by
    /// modification time), so a write in progress elsewhere is never disturbed.
    ///
    /// Throws `.unwritable` naming the directory and the reason, also when the coefficients are
    /// ones `load` would ignore (`a` not finite and > 0, `b` not finite and ≥ 0).
    public func store(_ record: ProbeRecord) throws(ProbeCacheError) {
        let directoryPath = directory.path
        guard Self.areUsable(a: record.a, b: record.b) else {
            throw .unwritable(path: directoryPath,
                              reason: "refusing to store a = \(record.a), b = \(record.b): \(Self.coefficientRule)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data: Data
        do {
            data = try encoder.encode(record)
        } catch {
            throw .unwritable(path: directoryPath, reason: "cannot encode the record: \(error)")
        }
        data.append(UInt8(ascii: "\n"))

        try write(data, named: fileURL(for: record.fingerprint).lastPathComponent)
    }

    /// Writes `data` as `name` in the directory, whole or not at all (see ``store(_:)``).
    func write(_ data: Data, named name: String) throws(ProbeCacheError) {
        let directoryPath = directory.path
        if let code = Self.makeDirectory(directoryPath) {
            throw .unwritable(path: directoryPath, reason: "cannot create the directory: \(Self.text(code))")
        }
        let stem = name.hasSuffix(".json") ? String(name.dropLast(5)) : name
        let temporary = directory.appendingPathComponent(".\(stem.hasPrefix("probe-") ? stem : "probe-" + stem).\(getpid()).\(UUID().uuidString).tmp").path
        let final = directory.appendingPathComponent(name).path

        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(0o666))
        guard descriptor >= 0 else {
            throw .unwritable(path: directoryPath, reason: "cannot create a temporary file: \(Self.text(errno))")
        }
        if let failure = Self.writeAndSync(descriptor, data) {
            close(descriptor)
            unlink(temporary)
            throw .unwritable(path: directoryPath, reason: failure)
        }
        if close(descriptor) != 0 {
            let code = errno
            unlink(temporary)
            throw .unwritable(path: directoryPath, reason: "cannot close the temporary file: \(Self.text(code))")
        }
        if rename(temporary, final) != 0 {
            let code = errno
            unlink(temporary)
            throw .unwritable(path: directoryPath, reason: "cannot rename the temporary file to \(final): \(Self.text(code))")
        }
        Self.syncDirectory(directoryPath)
        removeStaleTemporaries()
    }

    /// How old (by modification time) a temporary file must be before ``store(_:)`` removes it
    /// as left behind. A write takes milliseconds, so a file this old belongs to a process that
    /// died between writing and renaming; one being written right now, by this or another
    /// replica, is far younger and left alone.
    static let staleTemporaryAge: TimeInterval = 10 * 60

    /// Removes `.probe-*.tmp` files (the names ``store(_:)`` writes before its rename) last
    /// modified `staleTemporaryAge` or more before `now`. Best effort: a file that another
    /// process removed first, or that cannot be removed, is skipped. Nothing else in the directory
    /// is touched. Returns the names removed.
    @discardableResult
    func removeStaleTemporaries(now: Date = Date()) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix(".probe-") && name.hasSuffix(".tmp") {
            let path = directory.appendingPathComponent(name).path
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                  attributes[.type] as? FileAttributeType == .typeRegular,
                  let modified = attributes[.modificationDate] as? Date else { continue }
            if now.timeIntervalSince(modified) >= Self.staleTemporaryAge, unlink(path) == 0 {
                removed.append(name)
            }
        }
        return removed
    }

    // MARK: - Reading

    enum FileRead {
        case missing
        case failed(String)
        case read(Data)
    }

    /// The whole file, if it is a regular file of at most `maximumRecordBytes`.
    static func readSmallFile(_ path: String) -> FileRead {
        // Non-blocking, so that a FIFO someone left at the path cannot hang start-up.
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            let code = errno
            return code == ENOENT ? .missing : .failed("cannot open it: \(text(code))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return .failed("cannot stat it: \(text(errno))") }
        guard status.st_mode & S_IFMT == S_IFREG else { return .failed("not a regular file") }
        guard status.st_size <= maximumRecordBytes else {
            return .failed("\(status.st_size) bytes is too large for a probe record")
        }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while data.count <= maximumRecordBytes {
            let n = chunk.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return read(descriptor, base, buffer.count)
            }
            if n < 0 {
                if errno == EINTR { continue }
                return .failed("cannot read it: \(text(errno))")
            }
            if n == 0 { return .read(data) }
            data.append(contentsOf: chunk[0..<n])
        }
        return .failed("it grew past \(maximumRecordBytes) bytes while being read")
    }

    private struct FormatHeader: Decodable {
        var format: Int
    }

    /// Why `JSONDecoder` rejected a file, in words for a log line (completing "<path> is …").
    static func explain(_ error: any Error) -> String {
        func field(_ path: [any CodingKey]) -> String {
            path.isEmpty ? "the top level" : path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        guard let error = error as? DecodingError else { return "not readable as a probe record: \(error)" }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return "not valid JSON"
        case .dataCorrupted(let context):
            return "not a probe record: \(field(context.codingPath)) is invalid"
        case .keyNotFound(let key, let context):
            return "not a probe record: \(field(context.codingPath + [key])) is missing"
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return "not a probe record: not a JSON object"
        case .typeMismatch(_, let context):
            return "not a probe record: \(field(context.codingPath)) has the wrong type"
        case .valueNotFound(_, let context):
            return "not a probe record: \(field(context.codingPath)) is null"
        @unknown default:
            return "not a probe record: \(error)"
        }
    }

    /// Each field that differs, as "name cached ≠ current".
    static func differences(cached: ProbeFingerprint, current: ProbeFingerprint) -> [String] {
        var differences: [String] = []
        if cached.engineVersion != current.engineVersion {
            differences.append("engineVersion \(cached.engineVersion) ≠ \(current.engineVersion)")
        }
        if cached.engineBuild != current.engineBuild {
            differences.append("engineBuild \(cached.engineBuild.prefix(24)) ≠ \(current.engineBuild.prefix(24))")
        }
        if cached.precision != current.precision { differences.append("precision \(cached.precision) ≠ \(current.precision)") }
        if cached.threads != current.threads { differences.append("threads \(cached.threads) ≠ \(current.threads)") }
        if cached.maxSequenceLength != current.maxSequenceLength {
            differences.append("maxSequenceLength \(cached.maxSequenceLength) ≠ \(current.maxSequenceLength)")
        }
        let cachedNames = cached.modelFiles.map(\.name)
        let currentNames = current.modelFiles.map(\.name)
        if cachedNames != currentNames {
            differences.append("model files \(cachedNames.joined(separator: " ")) ≠ \(currentNames.joined(separator: " "))")
        } else {
            for (old, new) in zip(cached.modelFiles, current.modelFiles) where old != new {
                if old.size != new.size {
                    differences.append("\(old.name) size \(old.size) ≠ \(new.size)")
                } else {
                    differences.append("\(old.name) contents \(old.sampleSHA256.prefix(12)) ≠ \(new.sampleSHA256.prefix(12))")
                }
            }
        }
        return differences.isEmpty ? ["fingerprint"] : differences
    }

    /// Coefficients a probe can yield: some workspace per token (`a` > 0), and attention scores
    /// that cost nothing or more (`b` ≥ 0), both finite.
    private static func areUsable(a: Double, b: Double) -> Bool {
        a.isFinite && a > 0 && b.isFinite && b >= 0
    }

    private static let coefficientRule = "a must be finite and > 0, b finite and ≥ 0"

    // MARK: - Writing

    /// Creates `path` and any missing parents; nil on success (also when it already exists), else
    /// the errno. Another process creating it at the same time is not an error.
    private static func makeDirectory(_ path: String) -> Int32? {
        if mkdir(path, 0o777) == 0 { return nil }
        var code = errno
        if code == ENOENT {
            let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
            if parent != path, let failure = makeDirectory(parent) { return failure }
            if mkdir(path, 0o777) == 0 { return nil }
            code = errno
        }
        if code == EEXIST {
            var status = stat()
            return stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR ? nil : ENOTDIR
        }
        return code
    }

    /// Writes all of `data` and flushes it to disk; nil on success, else what failed.
    private static func writeAndSync(_ descriptor: Int32, _ data: Data) -> String? {
        var offset = 0
        while offset < data.count {
            let n = data.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Glibc.write(descriptor, base + offset, buffer.count - offset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                return "cannot write the temporary file: \(text(errno))"
            }
            guard n > 0 else { return "cannot write the temporary file: no progress" }
            offset += n
        }
        return fsync(descriptor) == 0 ? nil : "cannot flush the temporary file: \(text(errno))"
    }

    /// Makes the rename itself durable. Best effort: the file is already complete, and some
    /// filesystems cannot sync a directory.
    private static func syncDirectory(_ path: String) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }

    private static func text(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
