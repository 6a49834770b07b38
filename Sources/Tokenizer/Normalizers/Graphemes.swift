/// Extended grapheme clusters of UTF-8 text, as byte ranges.
enum Graphemes {
    /// Calls `body` with the byte range of each cluster, in order.
    ///
    /// Pure ASCII needs no tables: every pair of ASCII characters is a boundary except CR LF.
    /// Anything else goes through Swift's `Character` segmentation (Unicode's rules, UAX #29).
    static func forEach(in bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Void) {
        var isASCII = true
        for byte in bytes where byte >= 0x80 {
            isASCII = false
            break
        }
        if isASCII {
            var i = 0
            while i < bytes.count {
                if bytes[i] == 0x0D, i + 1 < bytes.count, bytes[i + 1] == 0x0A {
                    body(i..<(i + 2))
                    i += 2
                } else {
                    body(i..<(i + 1))
                    i += 1
                }
            }
            return
        }
        let string = String(decoding: bytes, as: UTF8.self)
        var start = 0
        for character in string {
            let end = start + character.utf8.count
            body(start..<end)
            start = end
        }
    }
}
