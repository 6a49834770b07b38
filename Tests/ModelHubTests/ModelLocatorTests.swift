import Foundation
import ModelHub
import Testing

/// Finding a model: a directory, or a hub id in a Hugging Face cache laid out like `huggingface_hub`'s.
@Suite struct ModelLocatorTests {
    let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tiny-bge-m3")

    /// A cache with `models--BAAI--bge-m3`: refs/main → a commit whose snapshot links to blobs.
    func makeCache() throws -> (URL, String) {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("bgem3-hub-\(UUID().uuidString)")
        let repository = cache.appendingPathComponent("models--BAAI--bge-m3")
        let commit = "0123456789abcdef0123456789abcdef01234567"
        let snapshot = repository.appendingPathComponent("snapshots/\(commit)")
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repository.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repository.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try commit.write(to: repository.appendingPathComponent("refs/main"), atomically: true, encoding: .utf8)
        for name in ["config.json", "tokenizer.json"] {
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

    @Test func theCacheDirectoryFollowsTheEnvironment() {
        #expect(ModelLocator(environment: ["HF_HUB_CACHE": "/a"]).cacheDirectory.path == "/a")
        #expect(ModelLocator(environment: ["HF_HOME": "/b"]).cacheDirectory.path == "/b/hub")
        #expect(ModelLocator(environment: ["HOME": "/c"]).cacheDirectory.path == "/c/.cache/huggingface/hub")
    }
}
