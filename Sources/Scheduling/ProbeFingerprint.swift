import Crypto
import Foundation

/// What a cached probe result depends on: the model's files, the engine's version and build, and the settings
/// that change how much workspace a batch needs. Two servers with equal fingerprints would measure
/// the same costs, so one may reuse the other's probe; anything else must probe again.
public struct ProbeFingerprint: Sendable, Equatable, Codable {
    /// One model file: name (last path component), byte size, and SHA-256 (hex) of its first and
    /// last 64 KiB (the whole file if it is at most 128 KiB).
    ///
    /// Sampling rather than hashing everything keeps start-up cheap on a 2 GB weight file, and is
    /// still enough to tell different weights apart: a re-export or another checkpoint changes
    /// the header or the tail, and usually the size too.
    public struct FileIdentity: Sendable, Equatable, Codable {
        public var name: String
        public var size: Int
        public var sampleSHA256: String

        public init(name: String, size: Int, sampleSHA256: String) {
            self.name = name
            self.size = size
            self.sampleSHA256 = sampleSHA256
        }
    }

    /// Sorted by name, so that the order files were found in does not change the fingerprint.
    public var modelFiles: [FileIdentity]
    public var engineVersion: String
    /// The running executable's build (``ExecutableBuild/identity``): builds of one version
    /// differ in their kernels and workspace, so they must not share a fit.
    public var engineBuild: String
    public var precision: String
    public var threads: Int
    public var maxSequenceLength: Int

    /// SHA-256 (hex) of a canonical encoding of all the fields above: JSON with sorted keys, so
    /// the same fields give the same digest in every process that shares the cache.
    public var digest: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Strings, integers and arrays of them always encode; the fallback only keeps this total.
        let canonical = (try? encoder.encode(self)) ?? Data(String(describing: self).utf8)
        return Self.hex(SHA256.hash(data: canonical))
    }

    /// Sorts `modelFiles` by name.
    public init(modelFiles: [FileIdentity], engineVersion: String, engineBuild: String = ExecutableBuild.identity, precision: String,
                threads: Int, maxSequenceLength: Int) {
        self.modelFiles = modelFiles.sorted { $0.name < $1.name }
        self.engineVersion = engineVersion
        self.engineBuild = engineBuild
        self.precision = precision
        self.threads = threads
        self.maxSequenceLength = maxSequenceLength
    }

    /// The model files a probe depends on; whichever of them a model directory has are fingerprinted.
    static let modelFileNames = [
        "config.json", "tokenizer.json", "model.safetensors", "pytorch_model.bin", "sparse_linear.pt", "colbert_linear.pt",
    ]

    /// Bytes hashed at each end of a model file.
    static let sampleBytes = 64 * 1024

    /// Fingerprints the model in `modelDirectory` (symbolic links, as in the Hugging Face cache,
    /// are followed) together with the settings.
    ///
    /// Throws `.unreadable` if a model file exists but cannot be read, rather than leaving it out:
    /// a fingerprint without it would match a different model. Throws too if the directory has
    /// none of the files, since that fingerprint would match every such directory.
    public static func of(modelDirectory: URL, engineVersion: String, precision: String, threads: Int,
                          maxSequenceLength: Int) throws(ProbeCacheError) -> ProbeFingerprint {
        var files: [FileIdentity] = []
        for name in modelFileNames {
            let path = modelDirectory.appendingPathComponent(name).path
            var status = stat()
            if stat(path, &status) != 0 {
                let code = errno
                if code == ENOENT { continue }
                throw .unreadable(path: path, reason: String(cString: strerror(code)))
            }
            files.append(try identity(of: path, name: name))
        }
        guard !files.isEmpty else {
            throw .unreadable(path: modelDirectory.path,
                              reason: "no model files in it (looked for \(modelFileNames.joined(separator: ", ")))")
        }
        return ProbeFingerprint(modelFiles: files, engineVersion: engineVersion, precision: precision,
                                threads: threads, maxSequenceLength: maxSequenceLength)
    }

    /// The identity of one file, read through a single descriptor so that size and samples agree.
    static func identity(of path: String, name: String) throws(ProbeCacheError) -> FileIdentity {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .unreadable(path: path, reason: "not a regular file") }
        let size = Int(status.st_size)
        var hasher = SHA256()
        if size <= 2 * sampleBytes {
            try hasher.update(data: readExactly(descriptor, offset: 0, count: size, path: path))
        } else {
            try hasher.update(data: readExactly(descriptor, offset: 0, count: sampleBytes, path: path))
            try hasher.update(data: readExactly(descriptor, offset: size - sampleBytes, count: sampleBytes, path: path))
        }
        return FileIdentity(name: name, size: size, sampleSHA256: hex(hasher.finalize()))
    }

    /// `count` bytes at `offset`; a short read means the file shrank while being fingerprinted.
    private static func readExactly(_ descriptor: Int32, offset: Int, count: Int, path: String) throws(ProbeCacheError) -> Data {
        var data = Data(count: count)
        var done = 0
        while done < count {
            let n = data.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return pread(descriptor, base + done, count - done, off_t(offset + done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            guard n > 0 else { throw .unreadable(path: path, reason: "the file changed while it was being read") }
            done += n
        }
        return data
    }

    /// Lower-case hex, as `sha256sum` prints it.
    static func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
