/// A span of the original text, in Unicode scalar positions.
public struct TextSpan: Hashable, Sendable {
    public var start: Int32
    public var end: Int32

    public init(start: Int32, end: Int32) {
        self.start = start
        self.end = end
    }
}

/// A piece of text as normalisation has made it, with every byte aligned to the span of the
/// original text it came from.
///
/// This mirrors Hugging Face's `NormalizedString`: alignments are kept per byte and every edit
/// follows the same rules, so the offsets reported for tokens equal the reference's, including its
/// quirks. Alignments here are absolute scalar positions in the whole original text, where the
/// reference keeps byte positions relative to each piece and converts at the end; the two agree
/// because every alignment falls on a character boundary.
struct NormalizedText {
    /// UTF-8 of the normalised text.
    var bytes: [UInt8]
    /// One span per byte of ``bytes``.
    var alignments: [TextSpan]
    /// Where this piece starts in the original text (the reference's `original_shift`).
    var origin: Int32

    /// The original text between two scalar positions, unchanged.
    init(utf8 bytes: ArraySlice<UInt8>, firstScalar: Int32) {
        self.bytes = Array(bytes)
        self.origin = firstScalar
        var alignments = [TextSpan]()
        alignments.reserveCapacity(bytes.count)
        var scalar = firstScalar
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let width = UTF8Width.of(leadByte: bytes[i])
            let span = TextSpan(start: scalar, end: scalar + 1)
            for _ in 0..<width { alignments.append(span) }
            i += width
            scalar += 1
        }
        self.alignments = alignments
    }

    init(bytes: [UInt8], alignments: [TextSpan], origin: Int32) {
        self.bytes = bytes
        self.alignments = alignments
        self.origin = origin
    }

    var isEmpty: Bool { bytes.isEmpty }

    /// The original span covered by the normalised bytes `range` (first byte's start, last byte's end).
    func originalSpan(of range: Range<Int>) -> TextSpan {
        TextSpan(start: alignments[range.lowerBound].start, end: alignments[range.upperBound - 1].end)
    }

    /// The bytes `range` as a piece of their own (the reference's `slice`).
    func slice(_ range: Range<Int>) -> NormalizedText {
        let origin = range.isEmpty ? self.origin : alignments[range.lowerBound].start
        return NormalizedText(bytes: Array(bytes[range]), alignments: Array(alignments[range]), origin: origin)
    }

    /// Rewrites the text one extended grapheme cluster at a time. `body` gets each cluster's bytes
    /// and writes what replaces it; it returns whether that differs from the cluster, and the
    /// text is only replaced when some cluster did.
    mutating func rewriteClusters(_ body: (UnsafeBufferPointer<UInt8>, inout AlignedTextWriter) -> Bool) {
        guard !bytes.isEmpty else { return }
        var writer = AlignedTextWriter(source: self)
        var modified = false
        bytes.withUnsafeBufferPointer { all in
            Graphemes.forEach(in: all) { cluster in
                if body(UnsafeBufferPointer(rebasing: all[cluster]), &writer) { modified = true }
            }
        }
        if modified { self = writer.finish() }
    }

    /// Byte ranges of the characters of the text.
    func forEachCharacter(_ body: (Range<Int>) -> Void) {
        var i = 0
        while i < bytes.count {
            let width = UTF8Width.of(leadByte: bytes[i])
            body(i..<(i + width))
            i += width
        }
    }
}

/// Width of a UTF-8 sequence from its lead byte (the text is known to be valid UTF-8).
enum UTF8Width {
    @inline(__always)
    static func of(leadByte byte: UInt8) -> Int {
        if byte < 0x80 { return 1 }
        if byte < 0xE0 { return 2 }
        if byte < 0xF0 { return 3 }
        return 4
    }

    /// Number of characters (Unicode scalars) in valid UTF-8.
    static func scalarCount<C: Collection>(_ bytes: C) -> Int where C.Element == UInt8 {
        var count = 0
        for byte in bytes where byte & 0xC0 != 0x80 { count += 1 }
        return count
    }
}

/// Rewrites a ``NormalizedText`` character by character, the way the reference's
/// `NormalizedString::transform` does.
///
/// Each new character comes with a `change`: `0` replaces the next source character and takes its
/// alignment; `1` is inserted and takes the alignment of the source byte just before the read
/// position; `-n` replaces the next source character and also consumes the `n` after it. The last
/// character stays pending until the next one arrives, because the Precompiled normaliser adjusts
/// the change of the previous character when a replacement shrinks the text.
struct AlignedTextWriter {
    private let source: NormalizedText
    private var readOffset: Int
    private var bytes: [UInt8] = []
    private var alignments: [TextSpan] = []
    private var pendingCount = 0
    private var pendingChange = 0
    private var pendingBytes: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)

    /// - Parameter skippingCharacters: source characters dropped before the first new character
    ///   (the reference's `initial_offset`).
    init(source: NormalizedText, skippingCharacters: Int = 0) {
        self.source = source
        self.readOffset = 0
        bytes.reserveCapacity(source.bytes.count + 8)
        alignments.reserveCapacity(source.bytes.count + 8)
        for _ in 0..<skippingCharacters where readOffset < source.bytes.count {
            readOffset += UTF8Width.of(leadByte: source.bytes[readOffset])
        }
    }

    /// Whether any character has been written (the reference's `transformations.last_mut()`).
    var hasCharacters: Bool { pendingCount > 0 }

    /// Queues one character, given as its UTF-8 bytes.
    mutating func write<C: Collection>(character utf8: C, change: Int) where C.Element == UInt8 {
        flushPending()
        var it = utf8.makeIterator()
        pendingCount = utf8.count
        pendingBytes.0 = it.next() ?? 0
        pendingBytes.1 = it.next() ?? 0
        pendingBytes.2 = it.next() ?? 0
        pendingBytes.3 = it.next() ?? 0
        pendingChange = change
    }

    /// Writes each character of `utf8` with change 0, except the last `inserted` ones, which get 1.
    mutating func write(characters utf8: UnsafeBufferPointer<UInt8>, inserted: Int) {
        let total = UTF8Width.scalarCount(utf8)
        var index = 0
        var i = 0
        while i < utf8.count {
            let width = UTF8Width.of(leadByte: utf8[i])
            write(character: UnsafeBufferPointer(rebasing: utf8[i..<(i + width)]), change: index >= total - inserted ? 1 : 0)
            i += width
            index += 1
        }
    }

    /// Writes `newBytes` in place of `oldCount` source characters, as the reference's Precompiled
    /// `replace` does: characters beyond the old count are inserted; when there are fewer, the
    /// difference is charged to the last written character (possibly an earlier one).
    mutating func write(replacement newBytes: UnsafeBufferPointer<UInt8>, replacingCharacters oldCount: Int) {
        let difference = UTF8Width.scalarCount(newBytes) - oldCount
        write(characters: newBytes, inserted: max(difference, 0))
        if difference < 0 { adjustLastChange(by: difference) }
    }

    /// Adds `delta` to the change of the last written character.
    mutating func adjustLastChange(by delta: Int) {
        if pendingCount > 0 { pendingChange += delta }
    }

    private mutating func flushPending() {
        guard pendingCount > 0 else { return }
        let alignment: TextSpan
        if pendingChange > 0 {
            alignment = readOffset < 1 ? TextSpan(start: source.origin, end: source.origin) : source.alignments[readOffset - 1]
        } else {
            // The reference would index past the end here; no input has been seen to reach it.
            alignment = readOffset < source.alignments.count
                ? source.alignments[readOffset]
                : (source.alignments.last ?? TextSpan(start: source.origin, end: source.origin))
            var consume = 1 - pendingChange
            while consume > 0 && readOffset < source.bytes.count {
                readOffset += UTF8Width.of(leadByte: source.bytes[readOffset])
                consume -= 1
            }
        }
        bytes.append(pendingBytes.0)
        if pendingCount > 1 { bytes.append(pendingBytes.1) }
        if pendingCount > 2 { bytes.append(pendingBytes.2) }
        if pendingCount > 3 { bytes.append(pendingBytes.3) }
        for _ in 0..<pendingCount { alignments.append(alignment) }
        pendingCount = 0
    }

    /// The rewritten text.
    mutating func finish() -> NormalizedText {
        flushPending()
        return NormalizedText(bytes: bytes, alignments: alignments, origin: source.origin)
    }
}
