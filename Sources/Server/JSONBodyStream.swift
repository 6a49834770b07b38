import Foundation
import Hummingbird
import NIOCore

/// A JSON response body written as it is produced, in pieces of about ``flushBytes``.
///
/// Float JSON costs about 12 bytes a float: one 8192-token ColBERT output is ~100 MB of text, and
/// built as one string (then joined, then copied into a buffer) it would be held three or four
/// times over. Written in pieces, a response holds ~``flushBytes`` however large it is, and the
/// writer waits while the client is slow to read (the channel's back-pressure), so what a slow
/// client has not read yet is not piled up either.
struct JSONBodyStream {
    /// Bytes gathered before they are handed to the connection.
    static let flushBytes = 64 << 10

    private var writer: any ResponseBodyWriter
    private var buffer = ByteBuffer()

    init(_ writer: any ResponseBodyWriter) {
        self.writer = writer
        buffer.reserveCapacity(Self.flushBytes + 4096)
    }

    /// Appends JSON text as it is.
    mutating func write(_ text: String) async throws {
        buffer.writeString(text)
        try await flushIfFull()
    }

    /// Appends JSON text without handing anything to the connection: for many small pieces, with
    /// ``flushIfFull()`` now and then.
    mutating func append(_ text: String) {
        buffer.writeString(text)
    }

    /// Appends a whole number, without handing anything to the connection.
    mutating func append(_ value: Int) {
        // Digits into a small stack buffer, last first: no string is made for the number.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var magnitude = value.magnitude
            var start = 20
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 { buffer.writeInteger(UInt8(ascii: "-")) }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(digits)[start..<20]))
        }
    }

    /// Appends `text` as a JSON string (quoted, escaped), without handing anything to the connection.
    mutating func appendQuoted(_ text: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            buffer.writeString(text)
        } else {
            let quoted = JSONOutput.string(text)
            buffer.writeString(String(quoted.dropFirst().dropLast()))
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// `[f, f, …]`, each float in its shortest round-trip form (0 for a non-finite value, which
    /// JSON cannot carry).
    mutating func writeFloats(_ values: some Collection<Float>) async throws {
        buffer.writeInteger(UInt8(ascii: "["))
        var first = true
        for value in values {
            if !first { buffer.writeInteger(UInt8(ascii: ",")) }
            first = false
            if value.isFinite { buffer.writeString(value.description) } else { buffer.writeInteger(UInt8(ascii: "0")) }
            if buffer.readableBytes >= Self.flushBytes { try await flush() }
        }
        buffer.writeInteger(UInt8(ascii: "]"))
        try await flushIfFull()
    }

    /// The floats' little-endian bytes, base64-encoded, as one JSON string: float32 (OpenAI's
    /// `encoding_format: "base64"`, ColBERT's `base64_f32`) or float16 (`base64_f16`).
    mutating func writeBase64(_ values: some Collection<Float>, half: Bool) async throws {
        // Runs of floats whose bytes are a multiple of 3 (12 or 6 bytes per 3 floats) encode to
        // base64 without padding, so the pieces join into one valid string.
        let run = 3 * 1024
        var bytes = [UInt8]()
        bytes.reserveCapacity(run * 4)
        buffer.writeInteger(UInt8(ascii: "\""))
        var index = values.startIndex
        while index != values.endIndex {
            let end = values.index(index, offsetBy: run, limitedBy: values.endIndex) ?? values.endIndex
            bytes.removeAll(keepingCapacity: true)
            for value in values[index..<end] {
                if half {
                    withUnsafeBytes(of: Float16(value).bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
                } else {
                    withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
                }
            }
            buffer.writeString(Data(bytes).base64EncodedString())
            try await flushIfFull()
            index = end
        }
        buffer.writeInteger(UInt8(ascii: "\""))
        try await flushIfFull()
    }

    /// Writes what is gathered and ends the body.
    mutating func finish() async throws {
        try await flush()
        try await writer.finish(nil)
    }

    mutating func flushIfFull() async throws {
        if buffer.readableBytes >= Self.flushBytes { try await flush() }
    }

    private mutating func flush() async throws {
        guard buffer.readableBytes > 0 else { return }
        try await writer.write(buffer)
        buffer = ByteBuffer()
        buffer.reserveCapacity(Self.flushBytes + 4096)
    }
}
