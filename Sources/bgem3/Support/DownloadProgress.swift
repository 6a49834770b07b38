import Foundation

/// A progress bar per downloaded file, safe to update from the download's tasks.
final class DownloadProgress: @unchecked Sendable {
    private let lock = NSLock()
    private var bar: ProgressBar?
    private var file = ""

    func update(file: String, done: Int, total: Int) {
        lock.withLock {
            if file != self.file {
                bar?.finish()
                FileHandle.standardError.write(Data("download: \(file)\n".utf8))
                self.file = file
                bar = ProgressBar(total: max(total / 1_000_000, 1), unit: "MB")
            }
            bar?.update(min(done / 1_000_000, max(total / 1_000_000, 1)))
        }
    }

    func finish() {
        lock.withLock { bar?.finish() }
    }
}
