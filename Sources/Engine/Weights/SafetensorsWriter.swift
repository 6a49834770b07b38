import Foundation

/// Writes `.safetensors` files (f32 tensors), streaming each tensor's data to disk.
public struct SafetensorsWriter {
    /// A tensor to write: its name, shape, and a closure that fills its values.
    public struct Entry {
        public var name: String
        public var shape: [Int]
        public var fill: (UnsafeMutableBufferPointer<Float>) -> Void

        public init(name: String, shape: [Int], fill: @escaping (UnsafeMutableBufferPointer<Float>) -> Void) {
            self.name = name
            self.shape = shape
            self.fill = fill
        }
    }

    /// Writes `entries` to `url` (replacing it), in the order given; `progress` gets the bytes
    /// written so far and the total after each tensor.
    public static func write(_ entries: [Entry], to url: URL, progress: (Int, Int) -> Void = { _, _ in }) throws {
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var offset = 0
        for entry in entries {
            let bytes = entry.shape.reduce(1, *) * 4
            header[entry.name] = ["dtype": "F32", "shape": entry.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var headerData = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
        while (8 + headerData.count) % 8 != 0 { headerData.append(0x20) }
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: url.path])
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        var length = UInt64(headerData.count).littleEndian
        try handle.write(contentsOf: Data(bytes: &length, count: 8))
        try handle.write(contentsOf: headerData)
        var written = 0
        for entry in entries {
            let count = entry.shape.reduce(1, *)
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBufferPointer { entry.fill($0) }
            try values.withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
            written += count * 4
            progress(written, offset)
        }
    }
}
