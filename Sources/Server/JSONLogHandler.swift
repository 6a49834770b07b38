import Foundation
import Logging

/// Writes each log record as one JSON object per line on standard error (`BGE_M3_LOG_FORMAT=json`).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private static let lock = NSLock()

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        var fields = [
            "\"time\":\(JSONOutput.string(ISO8601DateFormatter().string(from: Date())))",
            "\"level\":\(JSONOutput.string(level.rawValue))",
            "\"logger\":\(JSONOutput.string(label))",
            "\"message\":\(JSONOutput.string(message.description))",
        ]
        for (key, value) in metadata.merging(explicit ?? [:], uniquingKeysWith: { $1 }).sorted(by: { $0.key < $1.key }) {
            fields.append("\(JSONOutput.string(key)):\(JSONOutput.string(value.description))")
        }
        let line = "{" + fields.joined(separator: ",") + "}\n"
        Self.lock.withLock { FileHandle.standardError.write(Data(line.utf8)) }
    }
}
