import Engine
import Foundation
import Scheduling
import Synchronization
import TestSupport
import XCTest

/// The probe cache: fingerprints of model files and settings, and a JSON file per fingerprint that
/// must survive corrupt contents and concurrent writers.
final class ProbeCacheTests: XCTestCase {
    private var scratchDirectory: ScratchDirectory!
    private var scratch: URL { scratchDirectory.url }

    override func setUpWithError() throws {
        scratchDirectory = try ScratchDirectory("probe-cache")
    }

    override func tearDownWithError() throws {
        scratchDirectory.remove()
    }

    // MARK: - Helpers

    /// A model directory with a small config and a 200 KiB weight file (larger than both 64 KiB
    /// samples together), filled with a fixed pattern.
    private func makeModel(_ name: String = "model") throws -> URL {
        let directory = scratch.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(#"{"hidden_size": 1024, "num_hidden_layers": 24}"#.utf8).write(to: directory.appendingPathComponent("config.json"))
        let weights = Data((0..<200 * 1024).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try weights.write(to: directory.appendingPathComponent("model.safetensors"))
        return directory
    }

    private func fingerprint(_ model: URL, engineVersion: String = "1.0.0", precision: String = "fp32",
                             threads: Int = 4, maxSequenceLength: Int = 8192) throws -> ProbeFingerprint {
        try ProbeFingerprint.of(modelDirectory: model, engineVersion: engineVersion, precision: precision,
                                threads: threads, maxSequenceLength: maxSequenceLength)
    }

    /// Overwrites one byte in place, keeping the size.
    private func flipByte(in file: URL, at offset: Int) throws {
        var data = try Data(contentsOf: file)
        data[offset] ^= 0xFF
        try data.write(to: file)
    }

    private func sampleFingerprint(threads: Int = 4) -> ProbeFingerprint {
        ProbeFingerprint(modelFiles: [.init(name: "model.safetensors", size: 2_271_064_456, sampleSHA256: String(repeating: "ab", count: 32)),
                                      .init(name: "config.json", size: 687, sampleSHA256: String(repeating: "cd", count: 32))],
                         engineVersion: "1.0.0", precision: "fp32", threads: threads, maxSequenceLength: 8192)
    }

    private func sampleRecord(_ fingerprint: ProbeFingerprint, a: Double = 98_304.5, b: Double = 1_536.25) -> ProbeRecord {
        ProbeRecord(fingerprint: fingerprint, a: a, b: b,
                    samples: [ProbeSample(batch: 1, length: 512, measuredBytes: 52_000_000, engineBytes: 50_331_648),
                              ProbeSample(batch: 4, length: 2048, measuredBytes: 900_000_000, engineBytes: -1 + 880_000_001)])
    }

    private func reason(_ lookup: ProbeCache.Lookup, file: StaticString = #filePath, line: UInt = #line) -> String? {
        guard case .ignored(let reason) = lookup else {
            XCTFail("expected .ignored, got \(lookup)", file: file, line: line)
            return nil
        }
        XCTAssertFalse(reason.isEmpty, file: file, line: line)
        return reason
    }

    /// Puts `record` where `cache` looks for `fingerprint`, as a 64-bit name collision or a copied
    /// file would.
    private func plant(_ record: ProbeRecord, as fingerprint: ProbeFingerprint, in cache: ProbeCache) throws {
        let elsewhere = ProbeCache(directory: scratch.appendingPathComponent("elsewhere-\(UUID().uuidString)"))
        try elsewhere.store(record)
        try Data(contentsOf: elsewhere.fileURL(for: record.fingerprint)).write(to: cache.fileURL(for: fingerprint))
    }

    // MARK: - Fingerprint

    func testFingerprintIsStableAndIndependentOfTheModelsLocation() throws {
        let model = try makeModel()
        let first = try fingerprint(model)
        let second = try fingerprint(model)
        XCTAssertEqual(first, second)
        XCTAssertEqual(first.digest, second.digest)
        XCTAssertEqual(first.digest.count, 64)
        XCTAssertEqual(first.modelFiles.map(\.name), ["config.json", "model.safetensors"])
        XCTAssertEqual(first.modelFiles.last?.size, 200 * 1024)

        let copy = try makeModel("elsewhere/copy")
        XCTAssertEqual(try fingerprint(copy).digest, first.digest)
    }

    func testFingerprintChangesWhenAFilesBytesChangeAtTheSameSize() throws {
        let model = try makeModel()
        let weights = model.appendingPathComponent("model.safetensors")
        var seen = [try fingerprint(model).digest]

        try flipByte(in: weights, at: 10)  // in the first 64 KiB
        seen.append(try fingerprint(model).digest)
        try flipByte(in: weights, at: 200 * 1024 - 10)  // in the last 64 KiB
        seen.append(try fingerprint(model).digest)
        try flipByte(in: model.appendingPathComponent("config.json"), at: 20)  // a small file is hashed whole
        seen.append(try fingerprint(model).digest)

        XCTAssertEqual(Set(seen).count, seen.count, "every change must give a new digest")
        XCTAssertEqual(try fingerprint(model).modelFiles.last?.size, 200 * 1024)
    }

    func testFingerprintChangesWithEachSetting() throws {
        let model = try makeModel()
        let digests = [
            try fingerprint(model).digest,
            try fingerprint(model, engineVersion: "1.0.1").digest,
            try fingerprint(model, precision: "bf16").digest,
            try fingerprint(model, threads: 8).digest,
            try fingerprint(model, maxSequenceLength: 512).digest,
        ]
        XCTAssertEqual(Set(digests).count, digests.count)
    }

    /// Two builds of one version keep separate fits: the build is part of the key, and a record
    /// planted under another build's name is refused naming both builds.
    func testAnotherBuildOfTheSameVersionDoesNotShareAFit() throws {
        let cache = ProbeCache(directory: scratch)
        var old = sampleFingerprint()
        old.engineBuild = "gnu-" + String(repeating: "1", count: 40)
        var new = old
        new.engineBuild = "gnu-" + String(repeating: "2", count: 40)
        XCTAssertNotEqual(old.digest, new.digest)
        try cache.store(sampleRecord(old))
        XCTAssertEqual(cache.load(for: new), .miss)
        try plant(sampleRecord(old), as: new, in: cache)
        let reason = try XCTUnwrap(reason(cache.load(for: new)))
        XCTAssertTrue(reason.contains("engineBuild gnu-1111"), reason)
        XCTAssertTrue(reason.contains("≠ gnu-2222"), reason)
        // A fingerprint made without naming a build is this process's.
        XCTAssertEqual(sampleFingerprint().engineBuild, ExecutableBuild.identity)
        XCTAssertNotEqual(ExecutableBuild.identity, "unknown")
    }

    /// The note reader finds `NT_GNU_BUILD_ID` after other notes and rejects a truncated segment.
    func testBuildIDIsReadFromAnELFNoteSegment() {
        func note(name: String, type: UInt32, descriptor: [UInt8]) -> [UInt8] {
            func word(_ value: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(value).littleEndian, Array.init) }
            func padded(_ bytes: [UInt8]) -> [UInt8] { bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4) }
            let nameBytes = Array(name.utf8) + [0]
            return word(nameBytes.count) + word(descriptor.count) + word(Int(type)) + padded(nameBytes) + padded(descriptor)
        }
        let abiTag = note(name: "GNU", type: 1, descriptor: [0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
        let vendor = note(name: "Xen", type: 3, descriptor: [9, 9, 9])
        let buildID = note(name: "GNU", type: 3, descriptor: [0xde, 0xad, 0xbe, 0xef, 0x01])
        let segment = abiTag + vendor + buildID
        segment.withUnsafeBytes { XCTAssertEqual(ExecutableBuild.buildID(inNotes: $0), "deadbeef01") }
        (abiTag + vendor).withUnsafeBytes { XCTAssertNil(ExecutableBuild.buildID(inNotes: $0)) }
        Array(segment.dropLast(4)).withUnsafeBytes { XCTAssertNil(ExecutableBuild.buildID(inNotes: $0)) }
    }

    func testFingerprintIncludesOnlyTheKnownFilesThatExist() throws {
        let model = try makeModel()
        try Data("unrelated".utf8).write(to: model.appendingPathComponent("README.md"))
        let before = try fingerprint(model)
        XCTAssertEqual(before.modelFiles.map(\.name), ["config.json", "model.safetensors"])
        try Data("{}".utf8).write(to: model.appendingPathComponent("tokenizer.json"))
        let after = try fingerprint(model)
        XCTAssertEqual(after.modelFiles.map(\.name), ["config.json", "model.safetensors", "tokenizer.json"])
        XCTAssertNotEqual(after.digest, before.digest)
    }

    func testFingerprintOfAnUnreadableOrEmptyModelDirectoryThrows() throws {
        // A directory where a file is expected cannot be read, even by root (unlike a chmod 000 file).
        let model = try makeModel()
        let config = model.appendingPathComponent("config.json")
        try FileManager.default.removeItem(at: config)
        try FileManager.default.createDirectory(at: config, withIntermediateDirectories: false)
        XCTAssertThrowsError(try fingerprint(model)) { error in
            guard case .unreadable(let path, _)? = error as? ProbeCacheError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, config.path)
            XCTAssertTrue("\(error)".contains(config.path))
        }

        let empty = scratch.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: false)
        XCTAssertThrowsError(try fingerprint(empty)) { error in
            guard case .unreadable(let path, _)? = error as? ProbeCacheError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, empty.path)
        }
        XCTAssertThrowsError(try fingerprint(scratch.appendingPathComponent("absent")))
    }

    // MARK: - Load and store

    func testStoreThenLoadIsAHit() throws {
        let cache = ProbeCache(directory: scratch.appendingPathComponent("nested/cache"))  // created by store
        let fingerprint = sampleFingerprint()
        XCTAssertEqual(cache.load(for: fingerprint), .miss)
        let record = sampleRecord(fingerprint)
        try cache.store(record)
        XCTAssertEqual(cache.load(for: fingerprint), .hit(record))
        XCTAssertEqual(cache.fileURL(for: fingerprint).lastPathComponent, "probe-\(fingerprint.digest.prefix(16)).json")
        XCTAssertEqual(record.format, ProbeRecord.currentFormat)

        let replacement = sampleRecord(fingerprint, a: 1, b: 0)
        try cache.store(replacement)
        XCTAssertEqual(cache.load(for: fingerprint), .hit(replacement))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.directory.path), [cache.fileURL(for: fingerprint).lastPathComponent])
    }

    func testMissingFileAndMissingDirectoryAreMisses() {
        XCTAssertEqual(ProbeCache(directory: scratch).load(for: sampleFingerprint()), .miss)
        XCTAssertEqual(ProbeCache(directory: scratch.appendingPathComponent("absent")).load(for: sampleFingerprint()), .miss)
    }

    func testCorruptFilesAreIgnoredWithAReason() throws {
        let cache = ProbeCache(directory: scratch)
        let fingerprint = sampleFingerprint()
        let file = cache.fileURL(for: fingerprint)
        try cache.store(sampleRecord(fingerprint))
        let valid = try Data(contentsOf: file)
        // The valid record's text with its `a` (98304.5, written once) replaced.
        func withA(_ replacement: String) throws -> Data {
            let text = String(decoding: valid, as: UTF8.self)
            XCTAssertEqual(text.components(separatedBy: "98304.5").count, 2)
            return Data(text.replacingOccurrences(of: "98304.5", with: replacement).utf8)
        }
        func withFormat(_ format: Int) throws -> Data {
            var object = try XCTUnwrap(JSONSerialization.jsonObject(with: valid) as? [String: Any])
            object["format"] = format
            return try JSONSerialization.data(withJSONObject: object)
        }

        let cases: [(String, Data, String?)] = [
            ("garbage", Data([0xFF, 0x00, 0xFE, 0x7B, 0x22, 0x80, 0xC3]), "JSON"),
            ("truncated", valid.prefix(valid.count / 2), "JSON"),
            ("empty", Data(), "empty"),
            ("whitespace", Data("  \n".utf8), "JSON"),
            ("another object", Data(#"{"hello": 1}"#.utf8), "format"),
            ("an array", Data("[1, 2, 3]".utf8), "JSON object"),
            ("null", Data("null".utf8), nil),
            ("a string", Data(#""probe""#.utf8), "JSON object"),
            ("format only", Data("{\"format\": \(ProbeRecord.currentFormat)}".utf8), "missing"),
            ("format of the wrong type", Data(#"{"format": "1"}"#.utf8), "format has the wrong type"),
            ("negative a", try withA("-98304.5"), "a = -98304.5"),
            ("a as the string NaN", try withA(#""NaN""#), "a"),
            ("a as a bare NaN", try withA("NaN"), nil),
            ("a out of range", try withA("1e999"), nil),
            ("a as null", try withA("null"), "a"),
            ("another format", try withFormat(ProbeRecord.currentFormat + 1), "format \(ProbeRecord.currentFormat + 1)"),
            ("the format before the build was in the fingerprint", try withFormat(1), "format 1"),
        ]
        for (name, bytes, expected) in cases {
            try bytes.write(to: file)
            let lookup = cache.load(for: fingerprint)
            guard let reason = reason(lookup) else { XCTFail("case \(name)"); continue }
            if let expected { XCTAssertTrue(reason.contains(expected), "case \(name): \(reason)") }
        }

        // A directory or a FIFO at the file's path.
        try FileManager.default.removeItem(at: file)
        try FileManager.default.createDirectory(at: file, withIntermediateDirectories: false)
        XCTAssertNotNil(reason(cache.load(for: fingerprint)))
        try FileManager.default.removeItem(at: file)
        XCTAssertEqual(mkfifo(file.path, 0o600), 0)
        XCTAssertTrue(reason(cache.load(for: fingerprint))?.contains("regular file") ?? false)
    }

    /// A fit of zero cost per token would admit any batch, so a record with `a` ≤ 0 is not used
    /// (nor a negative `b`), whoever wrote it; the reason names the values.
    func testARecordWithZeroCostPerTokenIsIgnoredNamingTheValues() throws {
        let cache = ProbeCache(directory: scratch)
        let fingerprint = sampleFingerprint()
        let file = cache.fileURL(for: fingerprint)
        try cache.store(sampleRecord(fingerprint))
        let valid = String(decoding: try Data(contentsOf: file), as: UTF8.self)
        XCTAssertEqual(valid.components(separatedBy: "98304.5").count, 2)
        XCTAssertEqual(valid.components(separatedBy: "1536.25").count, 2)
        let cases: [(a: String, b: String, expected: String)] = [
            ("0", "0", "a = 0.0, b = 0.0"),
            ("0", "1536.25", "a = 0.0, b = 1536.25"),
            ("-0.0", "1536.25", "a = -0.0"),
            ("98304.5", "-1", "b = -1.0"),
        ]
        for (a, b, expected) in cases {
            try Data(valid.replacingOccurrences(of: "98304.5", with: a).replacingOccurrences(of: "1536.25", with: b).utf8).write(to: file)
            let reason = try XCTUnwrap(reason(cache.load(for: fingerprint)), "a = \(a), b = \(b)")
            XCTAssertTrue(reason.contains(expected) && reason.contains("> 0"), "a = \(a), b = \(b): \(reason)")
        }
        // The smallest positive cost per token and no attention cost are a real fit.
        try Data(valid.replacingOccurrences(of: "98304.5", with: "1").replacingOccurrences(of: "1536.25", with: "0").utf8).write(to: file)
        guard case .hit(let record) = cache.load(for: fingerprint) else { return XCTFail("a = 1, b = 0 must load") }
        XCTAssertEqual(record.a, 1)
        XCTAssertEqual(record.b, 0)
    }

    /// A writer that died between its write and its rename leaves a `.probe-*.tmp` file; the next
    /// `store` removes such files once they are old, and leaves alone a fresh one (another replica
    /// may be about to rename it) and anything not named like a temporary file.
    func testStoreRemovesStaleTemporaryFilesOnly() throws {
        let cache = ProbeCache(directory: scratch)
        let fingerprint = sampleFingerprint()
        let hourAgo = Date(timeIntervalSinceNow: -3600)
        func plant(_ name: String, modified: Date) throws {
            let url = scratch.appendingPathComponent(name)
            try Data("{\"format\": 1".utf8).write(to: url)
            try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: url.path)
        }
        let stale = [".probe-0123456789abcdef.4242.3F2504E0-4F89-11D3-9A0C-0305E82C3301.tmp", ".probe-fedcba9876543210.1.X.tmp"]
        let fresh = ".probe-0123456789abcdef.4243.0C7E7B1A-2B53-4D2B-8D8C-5A6A1C1E9E11.tmp"
        let unrelated = ["probe-0123456789abcdef.tmp", ".probe-0123456789abcdef.json", "notes.tmp", ".other.tmp"]
        for name in stale + unrelated { try plant(name, modified: hourAgo) }
        try plant(fresh, modified: Date(timeIntervalSinceNow: -60))
        // A directory with the pattern's name is not a file this cache wrote.
        let directoryLikeATemporary = ".probe-directory.tmp"
        try FileManager.default.createDirectory(at: scratch.appendingPathComponent(directoryLikeATemporary), withIntermediateDirectories: false)
        try FileManager.default.setAttributes([.modificationDate: hourAgo], ofItemAtPath: scratch.appendingPathComponent(directoryLikeATemporary).path)

        try cache.store(sampleRecord(fingerprint))

        let left = Set(try FileManager.default.contentsOfDirectory(atPath: scratch.path))
        XCTAssertEqual(left, Set([cache.fileURL(for: fingerprint).lastPathComponent, fresh, directoryLikeATemporary] + unrelated))
        guard case .hit = cache.load(for: fingerprint) else { return XCTFail("the stored record must load") }
    }

    func testARecordForAnotherFingerprintIsIgnoredNamingTheField() throws {
        let cache = ProbeCache(directory: scratch)
        let wanted = sampleFingerprint(threads: 4)
        let other = sampleFingerprint(threads: 2)
        try plant(sampleRecord(other), as: wanted, in: cache)
        let reason = try XCTUnwrap(reason(cache.load(for: wanted)))
        XCTAssertTrue(reason.contains("threads 2 ≠ 4"), reason)
        XCTAssertFalse(reason.contains("precision"), reason)

        var changedFile = wanted
        changedFile.modelFiles[1].sampleSHA256 = String(repeating: "ef", count: 32)
        changedFile.precision = "bf16"
        try plant(sampleRecord(changedFile), as: wanted, in: cache)
        let second = try XCTUnwrap(self.reason(cache.load(for: wanted)))
        XCTAssertTrue(second.contains("precision bf16 ≠ fp32"), second)
        XCTAssertTrue(second.contains("model.safetensors contents"), second)
    }

    func testConcurrentWritersNeverExposeAPartialFile() throws {
        let cache = ProbeCache(directory: scratch.appendingPathComponent("shared"))
        let fingerprint = sampleFingerprint()
        let writers = 8, recordsPerWriter = 20
        let state = SharedState()
        let group = DispatchGroup()

        // The reader runs on its own thread until every writer has finished, then reads once more.
        group.enter()
        Thread {
            while !state.writersDone.load(ordering: .acquiring) {
                state.note(cache.load(for: fingerprint))
            }
            state.note(cache.load(for: fingerprint))
            group.leave()
        }.start()

        let writersGroup = DispatchGroup()
        for writer in 0..<writers {
            group.enter()
            writersGroup.enter()
            Thread {
                for index in 0..<recordsPerWriter {
                    let record = ProbeRecord(fingerprint: fingerprint, a: Double(writer * 1000 + index + 1), b: Double(index) / 8,
                                             samples: [ProbeSample(batch: writer + 1, length: index + 1, measuredBytes: index, engineBytes: writer)])
                    do {
                        try cache.store(record)
                        state.written(record)
                    } catch {
                        state.failed("\(error)")
                    }
                }
                writersGroup.leave()
                group.leave()
            }.start()
        }
        XCTAssertEqual(writersGroup.wait(timeout: .now() + 120), .success)
        state.writersDone.store(true, ordering: .releasing)
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success)

        let outcome = state.snapshot()
        XCTAssertEqual(outcome.failures, [])
        XCTAssertEqual(outcome.ignored, [], "a reader saw a partial or foreign file")
        XCTAssertEqual(outcome.written.count, writers * recordsPerWriter)
        XCTAssertGreaterThan(outcome.hits, 0)
        guard case .hit(let final) = cache.load(for: fingerprint) else { return XCTFail("the final file must load") }
        XCTAssertTrue(outcome.written.contains(final))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.directory.path),
                       [cache.fileURL(for: fingerprint).lastPathComponent], "temporary files left behind")
    }

    func testStoringIntoAnUnwritableLocationThrowsNamingThePath() throws {
        let regularFile = scratch.appendingPathComponent("not-a-directory")
        try Data("x".utf8).write(to: regularFile)
        let cache = ProbeCache(directory: regularFile.appendingPathComponent("cache"))
        XCTAssertThrowsError(try cache.store(sampleRecord(sampleFingerprint()))) { error in
            guard case .unwritable(let path, let reason)? = error as? ProbeCacheError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, cache.directory.path)
            XCTAssertFalse(reason.isEmpty)
            XCTAssertTrue("\(error)".contains(cache.directory.path))
            XCTAssertTrue("\(error)".contains("BGE_M3_PROBE_CACHE_DIR"))
        }
        // The cache directory itself being a regular file.
        XCTAssertThrowsError(try ProbeCache(directory: regularFile).store(sampleRecord(sampleFingerprint())))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), ["not-a-directory"])
    }

    func testCoefficientsThatLoadWouldIgnoreAreNotStored() throws {
        let cache = ProbeCache(directory: scratch)
        for (a, b) in [(-1.0, 0.0), (Double.nan, 1.0), (1.0, .infinity), (0.0, 0.0), (0.0, 5.0), (1.0, -1.0)] {
            XCTAssertThrowsError(try cache.store(sampleRecord(sampleFingerprint(), a: a, b: b)))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), [])
    }
}

/// What the threads of the concurrency test saw.
private final class SharedState: Sendable {
    struct Outcome {
        var hits = 0
        var misses = 0
        var ignored: [String] = []
        var failures: [String] = []
        var written: [ProbeRecord] = []
    }

    let writersDone = Atomic<Bool>(false)
    private let outcome = Mutex(Outcome())

    func note(_ lookup: ProbeCache.Lookup) {
        outcome.withLock {
            switch lookup {
            case .hit: $0.hits += 1
            case .miss: $0.misses += 1
            case .ignored(let reason): $0.ignored.append(reason)
            }
        }
    }

    func written(_ record: ProbeRecord) { outcome.withLock { $0.written.append(record) } }
    func failed(_ error: String) { outcome.withLock { $0.failures.append(error) } }
    func snapshot() -> Outcome { outcome.withLock { $0 } }

}

extension ProbeCacheTests {
    // MARK: - Precision check records

    func testPrecisionRecordsAreKeptPerCPUArithmeticAndAFigureWithNothingToMeasureSurvives() throws {
        let cache = ProbeCache(directory: scratch)
        let fingerprint = sampleFingerprint()
        let figures = PrecisionFigures(precision: "int8", passes: false, denseCosineMin: 0.98, denseCosineMean: 0.99, top10OverlapDense: 0.8,
                                       top10OverlapLexical: .nan, top10OverlapColbert: 0.9, top10OverlapHybrid: 0.85,
                                       failure: "top-10 overlap by dense 0.8 < 0.85", seconds: 1.5)
        try cache.storePrecisionRecord(PrecisionRecord(fingerprint: fingerprint, arithmetic: "avx2; int8 u8 0...255 × s8 ±63", measurements: [figures]))

        let (record, reason) = cache.loadPrecisionRecord(fingerprint: fingerprint, arithmetic: "avx2; int8 u8 0...255 × s8 ±63")
        XCTAssertNil(reason)
        let loaded = try XCTUnwrap(record?.figures(for: .int8))
        XCTAssertEqual(loaded.denseCosineMin, 0.98)
        XCTAssertEqual(loaded.failure, figures.failure)
        XCTAssertFalse(loaded.passes)
        XCTAssertTrue(loaded.top10OverlapLexical.isNaN, "a model without lexical pairs has no lexical overlap: kept as such")
        XCTAssertNil(record?.figures(for: .bf16))

        // Another CPU's arithmetic (VNNI rounds differently) or another model: nothing cached.
        let other = cache.loadPrecisionRecord(fingerprint: fingerprint, arithmetic: "avx512_core_vnni; int8 u8 0...255 × s8 ±127")
        XCTAssertNil(other.record)
        XCTAssertNil(other.reason)
        XCTAssertNil(cache.loadPrecisionRecord(fingerprint: sampleFingerprint(threads: 8), arithmetic: "avx2; int8 u8 0...255 × s8 ±63").record)

        // A damaged file is ignored with a reason, never trusted.
        let file = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: scratch.path).first { $0.hasPrefix("precision-") })
        try Data("{\"format\": 1, \"measurements\": [".utf8).write(to: scratch.appendingPathComponent(file))
        let damaged = cache.loadPrecisionRecord(fingerprint: fingerprint, arithmetic: "avx2; int8 u8 0...255 × s8 ±63")
        XCTAssertNil(damaged.record)
        XCTAssertTrue(damaged.reason?.contains("not valid JSON") == true, damaged.reason ?? "")
    }
}
