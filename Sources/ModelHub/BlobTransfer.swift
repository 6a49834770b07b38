import AsyncHTTPClient
import Foundation

/// One file's download into `blobs/<etag>.incomplete`, resumed from what is there, verified, then
/// renamed to `blobs/<etag>`. The caller holds the blob's lock, so this process is the only writer.
///
/// A resumed request (`Range: bytes=N-`) is trusted only if the answer is a 206 with
/// `Content-Range: bytes N-(size-1)/size`: any other 206 (another start, another total, no
/// header) or a 416 means the partial file cannot be trusted to line up with the body, so it is
/// emptied and the file requested again from byte 0, in the same call. A 200 to a range request
/// also starts from byte 0. A 206 to a request without a range is an error.
///
/// The body may not run past the declared size: the transfer stops with
/// ``HubDownloader/DownloadError/bodyTooLong(file:expected:)`` and deletes the partial file,
/// so nothing longer than the file is ever on disk.
struct BlobTransfer {
    let url: URL
    let verifier: HubFileVerifier
    let blob: URL
    let hub: HubAPI

    private var file: String { verifier.file }
    private var size: Int { verifier.size }
    private var partial: URL { URL(fileURLWithPath: blob.path + ".incomplete") }

    func run(progress: HubDownloader.Progress) async throws {
        var have = HubFileVerifier.size(of: partial) ?? 0
        if have > size { try? FileManager.default.removeItem(at: partial); have = 0 }
        if !FileManager.default.fileExists(atPath: partial.path) {
            guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
                throw HubDownloader.DownloadError.filesystem("cannot create \(partial.path)")
            }
        }
        if have < size { try await receive(from: have, progress: progress) }
        do {
            try verifier.verify(partial)
        } catch {
            // Wrong bytes cannot be resumed from; a short file can.
            if case .checksumMismatch = error { try? FileManager.default.removeItem(at: partial) }
            throw error
        }
        guard rename(partial.path, blob.path) == 0 else {
            throw HubDownloader.DownloadError.filesystem("\(blob.path): cannot rename \(partial.lastPathComponent) to it: \(String(cString: strerror(errno)))")
        }
    }

    /// Appends the rest of the file to the partial file, which holds `start` bytes.
    private func receive(from start: Int, progress: HubDownloader.Progress) async throws {
        let handle: FileHandle
        do { handle = try FileHandle(forWritingTo: partial) } catch { throw filesystem(error, at: start) }
        defer { try? handle.close() }
        var have = start
        while true {
            var request = hub.request(url)
            if have > 0 { request.headers.add(name: "Range", value: "bytes=\(have)-") }
            let response: HTTPClientResponse
            do { response = try await hub.client.execute(request, timeout: HubAPI.responseHeadDeadline) } catch {
                throw HubDownloader.DownloadError.network("\(file) stopped at \(have) of \(size) bytes (\(hub.describe(error)))")
            }
            switch response.status.code {
            case 200:
                do { try handle.truncate(atOffset: 0) } catch { throw filesystem(error, at: have) }
                have = 0
            case 206 where have > 0 && Self.contentRange(response.headers.first(name: "Content-Range"), isFrom: have, size: size):
                do { try handle.seek(toOffset: UInt64(have)) } catch { throw filesystem(error, at: have) }
            case 206 where have > 0, 416 where have > 0:
                // Dropping this response cancels its request; ask again for the whole file.
                do { try handle.truncate(atOffset: 0) } catch { throw filesystem(error, at: have) }
                have = 0
                continue
            case 206:
                throw HubDownloader.DownloadError.invalidHubAnswer(
                    url: url.absoluteString, reason: "206 with Content-Range `\(response.headers.first(name: "Content-Range") ?? "none")` to a request for all of \(file)")
            default:
                throw HubDownloader.DownloadError.http(url: url.absoluteString, status: Int(response.status.code))
            }
            progress(file, have, size)
            do {
                for try await buffer in response.body {
                    guard buffer.readableBytes <= size - have else {
                        try? FileManager.default.removeItem(at: partial)
                        throw HubDownloader.DownloadError.bodyTooLong(file: file, expected: size)
                    }
                    do {
                        try handle.write(contentsOf: Data(buffer.readableBytesView))
                    } catch {
                        // A full disk or a lost mount: the file stays `.incomplete` (never used),
                        // and the next run resumes from what was written.
                        throw HubDownloader.DownloadError.filesystem("writing \(file) to \(partial.path) failed after \(have) of \(size) bytes (\(error.localizedDescription)); "
                                                                     + "free space there, or set BGE_M3_CACHE_DIR elsewhere, and run again to resume")
                    }
                    have += buffer.readableBytes
                    progress(file, have, size)
                }
            } catch let error as HubDownloader.DownloadError {
                throw error
            } catch {
                throw HubDownloader.DownloadError.network("\(file) stopped at \(have) of \(size) bytes (\(hub.describe(error)))")
            }
            // On disk before the rename makes it the blob, so a crash cannot leave a blob of zeros.
            do { try handle.synchronize() } catch { throw filesystem(error, at: have) }
            return
        }
    }

    /// `header` is `bytes <start>-<size - 1>/<size>`.
    static func contentRange(_ header: String?, isFrom start: Int, size: Int) -> Bool {
        guard let header else { return false }
        return header.trimmingCharacters(in: .whitespaces) == "bytes \(start)-\(size - 1)/\(size)"
    }

    private func filesystem(_ error: any Error, at have: Int) -> HubDownloader.DownloadError {
        .filesystem("\(partial.path) (\(file), \(have) of \(size) bytes): \(error.localizedDescription)")
    }
}
