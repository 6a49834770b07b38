import Foundation
import ModelHub
import TestSupport
import Testing

/// Finding a model: a directory, or a hub id in a Hugging Face cache laid out like `huggingface_hub`'s.
@Suite struct ModelLocatorTests {
    let fixture = RepositoryFixtures.tinyModel
    static let neededFiles = ["config.json", "tokenizer.json", "model.safetensors", "sparse_linear.pt", "colbert_linear.pt"]

    /// A cache with `models--BAAI--bge-m3`: refs/main → a commit whose snapshot links to blobs.
    func makeCache() throws -> (URL, String) {
        let cache = ScratchDirectory.unusedPath("hub")
        let repository = cache.appendingPathComponent("models--BAAI--bge-m3")
        let commit = "0123456789abcdef0123456789abcdef01234567"
        let snapshot = repository.appendingPathComponent("snapshots/\(commit)")
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repository.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repository.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try commit.write(to: repository.appendingPathComponent("refs/main"), atomically: true, encoding: .utf8)
        for name in Self.neededFiles {
            let blob = repository.appendingPathComponent("blobs/\(name).blob")
            try FileManager.default.copyItem(at: fixture.appendingPathComponent(name), to: blob)
            try FileManager.default.createSymbolicLink(atPath: snapshot.appendingPathComponent(name).path, withDestinationPath: "../../blobs/\(name).blob")
        }
        return (cache, commit)
    }

    @Test func aDirectoryIsUsedAsItIs() throws {
        let locator = ModelLocator(cacheDirectory: URL(fileURLWithPath: "/nonexistent"))
        #expect(try locator.locate(fixture.path) == fixture)
    }

    @Test func aHubIdIsFoundInTheCacheByRevision() throws {
        let (cache, commit) = try makeCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let locator = ModelLocator(cacheDirectory: cache)
        let snapshot = try locator.locate("BAAI/bge-m3")
        #expect(snapshot.lastPathComponent == commit)
        #expect(FileManager.default.contents(atPath: snapshot.appendingPathComponent("config.json").path) != nil)
        #expect(try locator.locate("BAAI/bge-m3", revision: commit) == snapshot)
        #expect(throws: ModelLocator.LocateError.revisionNotCached(model: "BAAI/bge-m3", revision: "v2", cache: cache.path)) {
            try locator.locate("BAAI/bge-m3", revision: "v2")
        }
    }

    @Test func missingModelsAndBadIdsAreClearErrors() throws {
        let locator = ModelLocator(cacheDirectory: URL(fileURLWithPath: "/nonexistent-cache"))
        #expect(throws: ModelLocator.LocateError.notFound(model: "BAAI/bge-m3", cache: "/nonexistent-cache")) { try locator.locate("BAAI/bge-m3") }
        #expect(throws: ModelLocator.LocateError.invalidIdentifier("not-a-model")) { try locator.locate("not-a-model") }
        #expect(throws: ModelLocator.LocateError.invalidIdentifier("a/../b")) { try locator.locate("a/../b") }
        #expect(ModelLocator.LocateError.notFound(model: "x/y", cache: "/c").description.contains("--model DIR"))
    }

    /// A snapshot lacking files a model needs (an interrupted download at a pinned commit) is
    /// not returned: the error names each missing file, so that `serve` downloads again instead
    /// of loading a model that can never be ready. A dangling link or a directory in a file's
    /// place counts as missing; `pytorch_model.bin` stands in for `model.safetensors`.
    @Test func anIncompleteSnapshotNamesWhatIsMissing() throws {
        let (cache, commit) = try makeCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let locator = ModelLocator(cacheDirectory: cache)
        let snapshot = cache.appendingPathComponent("models--BAAI--bge-m3/snapshots/\(commit)")
        try FileManager.default.removeItem(at: snapshot.appendingPathComponent("model.safetensors"))
        try FileManager.default.removeItem(at: cache.appendingPathComponent("models--BAAI--bge-m3/blobs/colbert_linear.pt.blob"))  // the link dangles
        try FileManager.default.removeItem(at: snapshot.appendingPathComponent("tokenizer.json"))
        try FileManager.default.createDirectory(at: snapshot.appendingPathComponent("tokenizer.json"), withIntermediateDirectories: false)
        let expected = ModelLocator.LocateError.incompleteSnapshot(
            model: "BAAI/bge-m3", revision: "main",
            missing: ["tokenizer.json", "colbert_linear.pt", "model.safetensors or pytorch_model.bin"], path: snapshot.path)
        #expect(throws: expected) { try locator.locate("BAAI/bge-m3") }
        #expect(expected.description.contains("model.safetensors") && expected.description.contains("bgem3 download"))

        // Repaired, with pytorch_model.bin (a plain file, not a link) in place of model.safetensors.
        let blobs = cache.appendingPathComponent("models--BAAI--bge-m3/blobs")
        try FileManager.default.removeItem(at: snapshot.appendingPathComponent("tokenizer.json"))
        try FileManager.default.createSymbolicLink(atPath: snapshot.appendingPathComponent("tokenizer.json").path, withDestinationPath: "../../blobs/tokenizer.json.blob")
        try FileManager.default.copyItem(at: fixture.appendingPathComponent("colbert_linear.pt"), to: blobs.appendingPathComponent("colbert_linear.pt.blob"))
        try FileManager.default.copyItem(at: fixture.appendingPathComponent("pytorch_model.bin"), to: snapshot.appendingPathComponent("pytorch_model.bin"))
        #expect(try locator.locate("BAAI/bge-m3") == snapshot)
    }

    /// `refs/<revision>` is followed only if it holds a commit hash; a revision that could leave
    /// `refs/` is refused.
    @Test func referencesAndRevisionsThatCouldLeaveTheCacheAreRefused() throws {
        let (cache, _) = try makeCache()
        defer { try? FileManager.default.removeItem(at: cache) }
        let locator = ModelLocator(cacheDirectory: cache)
        let reference = cache.appendingPathComponent("models--BAAI--bge-m3/refs/main")
        for content in ["../../../../etc", "0123", "", String(repeating: "z", count: 40)] {
            try content.write(to: reference, atomically: true, encoding: .utf8)
            #expect(throws: ModelLocator.LocateError.invalidReference(model: "BAAI/bge-m3", revision: "main", path: reference.path), "\(content)") {
                try locator.locate("BAAI/bge-m3")
            }
        }
        for revision in ["../main", "refs/../../main", "/main", "", "a\\b"] {
            #expect(throws: ModelLocator.LocateError.self, "\(revision)") { try locator.locate("BAAI/bge-m3", revision: revision) }
            do {
                _ = try locator.locate("BAAI/bge-m3", revision: revision)
            } catch {
                guard case .invalidRevision(let named, _) = error else { Issue.record("\(revision): got \(error)"); continue }
                #expect(named == revision)
            }
        }
    }

    @Test func theCacheDirectoryFollowsTheEnvironment() {
        #expect(ModelLocator(environment: ["HF_HUB_CACHE": "/a"]).cacheDirectory.path == "/a")
        #expect(ModelLocator(environment: ["HF_HOME": "/b"]).cacheDirectory.path == "/b/hub")
        #expect(ModelLocator(environment: ["HOME": "/c"]).cacheDirectory.path == "/c/.cache/huggingface/hub")
    }
}
