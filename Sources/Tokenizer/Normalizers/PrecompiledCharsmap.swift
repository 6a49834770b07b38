import Foundation

/// SentencePiece's precompiled normalisation map: a darts-clone double-array trie over UTF-8 keys
/// whose values are offsets into a pool of NUL-terminated replacement strings.
///
/// Layout of the blob (after base64 decoding): a little-endian `u32` giving the trie's size in
/// bytes, the trie as little-endian `u32` units, then the replacement pool.
struct PrecompiledCharsmap: Sendable {
    private let units: [UInt32]
    private let pool: [UInt8]
    /// Replacement of each one-byte key (ASCII), looked up once at load: most text is ASCII.
    private let asciiReplacements: [Range<Int>?]

    init(blob: [UInt8]) throws(TokenizerLoadError) {
        guard blob.count >= 4 else {
            throw .invalidCharsmap("the blob is \(blob.count) bytes, too short to hold its header")
        }
        let trieBytes = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
        guard trieBytes % 4 == 0, trieBytes >= 4, 4 + trieBytes <= blob.count else {
            throw .invalidCharsmap("the header announces a \(trieBytes)-byte trie but the blob holds \(blob.count - 4) bytes after it")
        }
        var units = [UInt32](repeating: 0, count: trieBytes / 4)
        for i in 0..<units.count {
            let b = 4 + 4 * i
            units[i] = UInt32(blob[b]) | UInt32(blob[b + 1]) << 8 | UInt32(blob[b + 2]) << 16 | UInt32(blob[b + 3]) << 24
        }
        let pool = Array(blob[(4 + trieBytes)...])
        guard String(validating: pool, as: UTF8.self) != nil else {
            throw .invalidCharsmap("the replacement pool is not valid UTF-8")
        }
        self.units = units
        self.pool = pool
        var ascii = [Range<Int>?](repeating: nil, count: 128)
        for byte in 0..<128 where byte != 0 {
            ascii[byte] = try Self.lookup(units: units, pool: pool, key: CollectionOfOne(UInt8(byte)))
        }
        self.asciiReplacements = ascii
    }

    /// The replacement for `key`, as the reference's `transform` finds it: the value of the
    /// *shortest* key in the trie that is a prefix of `key`, even when it covers only part of it.
    @inline(__always)
    func replacement<C: Collection>(for key: C) -> Range<Int>? where C.Element == UInt8 {
        if key.count == 1, let byte = key.first, byte < 0x80 { return asciiReplacements[Int(byte)] }
        // Loading checks the header and the pool; a corrupt leaf met here means "no replacement",
        // never a crash.
        return (try? Self.lookup(units: units, pool: pool, key: key)) ?? nil
    }

    /// Bytes of a replacement found by ``replacement(for:)``.
    func withReplacement<R>(_ range: Range<Int>, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        pool.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[range])) }
    }

    private static func lookup<C: Collection>(units: [UInt32], pool: [UInt8], key: C) throws(TokenizerLoadError) -> Range<Int>?
    where C.Element == UInt8 {
        var node = 0
        guard !units.isEmpty else { return nil }
        node ^= offset(units[0])
        for byte in key {
            if byte == 0 { break }
            node ^= Int(byte)
            guard node < units.count else { return nil }
            let unit = units[node]
            if label(unit) != UInt32(byte) { return nil }
            node ^= offset(unit)
            if hasLeaf(unit) {
                guard node < units.count else { throw .invalidCharsmap("a trie leaf points outside the trie") }
                let start = Int(units[node] & 0x7FFF_FFFF)
                guard start <= pool.count else {
                    throw .invalidCharsmap("a replacement offset \(start) is outside the \(pool.count)-byte pool")
                }
                var end = start
                while end < pool.count && pool[end] != 0 { end += 1 }
                return start..<end
            }
        }
        return nil
    }

    @inline(__always) private static func hasLeaf(_ unit: UInt32) -> Bool { (unit >> 8) & 1 == 1 }
    @inline(__always) private static func label(_ unit: UInt32) -> UInt32 { unit & (0x8000_0000 | 0xFF) }
    @inline(__always) private static func offset(_ unit: UInt32) -> Int { Int((unit >> 10) << ((unit & (1 << 9)) >> 6)) }
}
