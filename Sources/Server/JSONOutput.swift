import Foundation

/// Compact JSON text for responses and output lines, written by hand: vectors of thousands of floats are the
/// bulk of every response, and `JSONEncoder` would box each one.
public enum JSONOutput {
    public static func string(_ value: String) -> String {
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// `[f, f, …]` with each float's shortest round-trip form.
    public static func floats<C: Collection>(_ values: C) -> String where C.Element == Float {
        var out = "["
        out.reserveCapacity(values.count * 12)
        var first = true
        for value in values {
            if !first { out += "," }
            first = false
            out += number(value)
        }
        return out + "]"
    }

    /// One float in its shortest round-trip form; 0 for a non-finite value, which JSON cannot carry.
    public static func number(_ value: Float) -> String {
        value.isFinite ? "\(value)" : "0"
    }

    public static func integers<C: Collection>(_ values: C) -> String where C.Element: BinaryInteger {
        "[" + values.map { String($0) }.joined(separator: ",") + "]"
    }

    /// Little-endian float32 bytes, base64-encoded (OpenAI's `encoding_format: "base64"`).
    public static func base64Float32<C: Collection>(_ values: C) -> String where C.Element == Float {
        var bytes = [UInt8]()
        bytes.reserveCapacity(values.count * 4)
        for value in values {
            let bits = value.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { bytes.append(contentsOf: $0) }
        }
        return "\"" + Data(bytes).base64EncodedString() + "\""
    }

    /// Little-endian float16 bytes, base64-encoded (ColBERT's `base64_f16`).
    public static func base64Float16<C: Collection>(_ values: C) -> String where C.Element == Float {
        var bytes = [UInt8]()
        bytes.reserveCapacity(values.count * 2)
        for value in values {
            let bits = Float16(value).bitPattern.littleEndian
            withUnsafeBytes(of: bits) { bytes.append(contentsOf: $0) }
        }
        return "\"" + Data(bytes).base64EncodedString() + "\""
    }
}
