import Foundation

/// A one-line progress bar on standard error, drawn only when standard error is a terminal.
struct ProgressBar {
    /// nil when the total is not known (input from a pipe): the bar shows counts and rate only.
    let total: Int?
    let unit: String
    private let enabled: Bool
    private let start = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0

    init(total: Int?, unit: String) {
        self.total = total
        self.unit = unit
        self.enabled = isatty(STDERR_FILENO) != 0
    }

    mutating func update(_ done: Int, detail: String = "") {
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard done == total || now - lastDraw > 100_000_000 else { return }
        lastDraw = now
        let elapsed = Double(now - start) / 1e9
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let line: String
        if let total {
            let fraction = total > 0 ? Double(done) / Double(total) : 1
            let width = 30
            let filled = Int(fraction * Double(width))
            let remaining = rate > 0 ? Double(total - done) / rate : 0
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            line = String(format: "\r%@ %3.0f%% %d/%d %@, %.1f/s, %@ left %@", bar, fraction * 100, done, total, unit, rate,
                          Self.duration(remaining), detail)
        } else {
            line = String(format: "\r%d %@, %.1f/s, %@ %@", done, unit, rate, Self.duration(elapsed), detail)
        }
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }

    private static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}
