/// A byte trie over vocabulary pieces, for the Unigram lattice and added-token matching.
///
/// Nodes are laid out breadth-first, so the children of every node are contiguous and ordered by
/// byte: a lookup is a short scan (or a binary search for wide nodes), and the root, which every
/// walk starts from, is a direct 256-entry table. Construction is a most-significant-byte radix
/// sort carried out level by level, linear in the total length of the pieces.
struct PieceTrie: Sendable {
    private let firstChild: [Int32]
    private let childCount: [UInt16]
    private let labels: [UInt8]
    /// Piece id ending at each node, or -1.
    private let pieceIDs: [Int32]
    private let rootChildren: [Int32]

    /// - Parameter pieces: the pieces' UTF-8; piece `i` has id `i`. When two pieces are equal the
    ///   later id wins, as in the reference's hash map.
    init(pieces: [[UInt8]]) {
        var storage = PieceStorage()
        for piece in pieces { storage.append(piece) }
        self.init(storage: storage)
    }

    init(storage: PieceStorage) {
        var firstChild: [Int32] = [0]
        var childCount: [UInt16] = [0]
        var labels: [UInt8] = [0]
        var pieceIDs: [Int32] = [-1]
        var order = [Int32](0..<Int32(storage.count))
        var scratch = [Int32](repeating: 0, count: order.count)
        // Work items: a node and the range of `order` whose pieces pass through it at `depth`.
        var queue: [(node: Int32, lower: Int32, upper: Int32, depth: Int32)] = [(0, 0, Int32(order.count), 0)]
        var head = 0
        storage.bytes.withUnsafeBufferPointer { bytes in
            storage.starts.withUnsafeBufferPointer { starts in
                // The byte of piece `p` at `depth`, or -1 where the piece ends there.
                func key(_ p: Int32, _ depth: Int) -> Int {
                    let start = Int(starts[Int(p)]), end = Int(starts[Int(p) + 1])
                    return start + depth < end ? Int(bytes[start + depth]) : -1
                }
                while head < queue.count {
                    let item = queue[head]
                    head += 1
                    let node = Int(item.node), lower = Int(item.lower), upper = Int(item.upper), depth = Int(item.depth)
                    Self.stableSort(&order, &scratch, lower..<upper) { key($0, depth) }
                    var i = lower
                    // Pieces that end here sort first (in id order, so the last one wins);
                    // empty pieces never match anything.
                    while i < upper && key(order[i], depth) < 0 {
                        if depth > 0 { pieceIDs[node] = order[i] }
                        i += 1
                    }
                    firstChild[node] = Int32(labels.count)
                    var children = 0
                    while i < upper {
                        let byte = key(order[i], depth)
                        var j = i + 1
                        while j < upper && key(order[j], depth) == byte { j += 1 }
                        labels.append(UInt8(byte))
                        firstChild.append(0)
                        childCount.append(0)
                        pieceIDs.append(-1)
                        queue.append((Int32(labels.count - 1), Int32(i), Int32(j), Int32(depth + 1)))
                        children += 1
                        i = j
                    }
                    childCount[node] = UInt16(children)
                }
            }
        }
        var rootChildren = [Int32](repeating: -1, count: 256)
        let first = Int(firstChild[0])
        for k in 0..<Int(childCount[0]) { rootChildren[Int(labels[first + k])] = Int32(first + k) }
        self.firstChild = firstChild
        self.childCount = childCount
        self.labels = labels
        self.pieceIDs = pieceIDs
        self.rootChildren = rootChildren
    }

    /// Stable sort of `order[range]` by a key in -1...255: insertion sort for short ranges,
    /// counting sort otherwise.
    private static func stableSort(_ order: inout [Int32], _ scratch: inout [Int32], _ range: Range<Int>, key: (Int32) -> Int) {
        if range.count <= 24 {
            var i = range.lowerBound + 1
            while i < range.upperBound {
                let value = order[i]
                let k = key(value)
                var j = i - 1
                while j >= range.lowerBound && key(order[j]) > k {
                    order[j + 1] = order[j]
                    j -= 1
                }
                order[j + 1] = value
                i += 1
            }
            return
        }
        var counts = [Int](repeating: 0, count: 258)
        for i in range { counts[key(order[i]) + 2] += 1 }
        for b in 1..<258 { counts[b] += counts[b - 1] }
        for i in range {
            let value = order[i]
            let slot = key(value) + 1
            scratch[range.lowerBound + counts[slot]] = value
            counts[slot] += 1
        }
        for i in range { order[i] = scratch[i] }
    }

    @inline(__always)
    private func child(of node: Int, byte: UInt8) -> Int {
        let first = Int(firstChild[node])
        let count = Int(childCount[node])
        if count <= 12 {
            for k in first..<(first + count) where labels[k] == byte { return k }
            return -1
        }
        var lo = first, hi = first + count
        while lo < hi {
            let mid = (lo + hi) >> 1
            let label = labels[mid]
            if label == byte { return mid }
            if label < byte { lo = mid + 1 } else { hi = mid }
        }
        return -1
    }

    /// Calls `body(end, id)` for every piece that starts at `start` in `bytes`, shortest first.
    @inline(__always)
    func forEachPiece(in bytes: UnsafeBufferPointer<UInt8>, from start: Int, _ body: (Int, Int32) -> Void) {
        guard start < bytes.count else { return }
        var node = Int(rootChildren[Int(bytes[start])])
        var end = start + 1
        while node >= 0 {
            let id = pieceIDs[node]
            if id >= 0 { body(end, id) }
            guard end < bytes.count else { return }
            node = child(of: node, byte: bytes[end])
            end += 1
        }
    }

    /// The id of the piece equal to `bytes`, if any.
    func pieceID(of bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        guard !bytes.isEmpty else { return nil }
        var node = Int(rootChildren[Int(bytes[0])])
        var i = 1
        while node >= 0 && i < bytes.count {
            node = child(of: node, byte: bytes[i])
            i += 1
        }
        guard node >= 0, pieceIDs[node] >= 0 else { return nil }
        return pieceIDs[node]
    }
}

/// Many short byte strings in one buffer: piece `i` is `bytes[starts[i]..<starts[i + 1]]`.
struct PieceStorage {
    var bytes: [UInt8] = []
    var starts: [Int32] = [0]

    var count: Int { starts.count - 1 }

    mutating func append<C: Collection>(_ piece: C) where C.Element == UInt8 {
        bytes.append(contentsOf: piece)
        starts.append(Int32(bytes.count))
    }
}
