import ArgumentParser
import Foundation
import ModelHub

struct DownloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Download a model from the Hugging Face hub into its cache (resumable, verified).",
        discussion: """
            Fetches config.json, tokenizer.json, model.safetensors (or pytorch_model.bin), the two \
            heads and the token maps over the hub's HTTP API (HF_ENDPOINT, HF_TOKEN) into the \
            Hugging Face cache layout (HF_HUB_CACHE, or HF_HOME/hub, or ~/.cache/huggingface/hub), \
            where huggingface_hub and `bgem3 serve --model OWNER/NAME` find it. An interrupted \
            download resumes; LFS files are verified by size and sha256 (a mismatch deletes the \
            partial file and says so); each file is moved into place only when complete.
            """)

    @Argument(help: "The hub id.") var repository: String = "BAAI/bge-m3"
    @Option(name: .long, help: "Branch, tag or commit (BGE_M3_REVISION, default main).") var revision: String?
    @Option(name: .long, help: ArgumentHelp("Hub cache directory (BGE_M3_CACHE_DIR; default from HF_HUB_CACHE / HF_HOME).", valueName: "dir")) var cacheDir: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let snapshot = try await Self.fetch(repository, revision: revision ?? environment["BGE_M3_REVISION"] ?? "main",
                                            cacheDirectory: cacheDir ?? environment["BGE_M3_CACHE_DIR"], environment: environment)
        print(snapshot.path)
    }

    /// Downloads with a progress bar; errors become messages that say what to do.
    static func fetch(_ repository: String, revision: String, cacheDirectory: String?, environment: [String: String]) async throws -> URL {
        let defaults = HubDownloader(environment: environment)
        let downloader = HubDownloader(endpoint: defaults.endpoint, token: defaults.token,
                                       cacheDirectory: cacheDirectory.map { URL(fileURLWithPath: $0) } ?? defaults.cacheDirectory)
        let progress = DownloadProgress()
        do {
            let snapshot = try await downloader.download(repository, revision: revision, progress: { file, done, total in
                progress.update(file: file, done: done, total: total)
            }, onNotice: { notice in
                // Another replica (or huggingface_hub) downloading the same file is worth saying:
                // without it a waiting start looks like a hang.
                FileHandle.standardError.write(Data("download: \(notice)\n".utf8))
            })
            progress.finish()
            return snapshot
        } catch {
            progress.finish()
            throw CommandFailure("\(error)")
        }
    }
}
