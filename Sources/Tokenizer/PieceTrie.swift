import Foundation

/// A byte trie over vocabulary pieces, for the Unigram lattice and added-token matching.
///
/// Built breadth-first from the sorted pieces so that the children of every node are contiguous
/// and ordered by byte: a lookup is a short scan (or a binary search for wide nodes), and the
/// root, which every walk starts from, is a direct 256-entry table.
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
        let order = pieces.indices.sorted { a, b in
            let pa = pieces[a], pb = pieces[b]
            let common = min(pa.count, pb.count)
            let c = pa.withUnsafeBufferPointer { x in pb.withUnsafeBufferPointer { y in memcmp(x.baseAddress!, y.baseAddress!, common) } }
            if c != 0 { return c < 0 }
            if pa.count != pb.count { return pa.count < pb.count }
            return a < b
        }
        var firstChild: [Int32] = [0]
        var childCount: [UInt16] = [0]
        var labels: [UInt8] = [0]
        var pieceIDs: [Int32] = [-1]
        // Work items: a node and the range of `order` whose pieces pass through it at `depth`.
        var queue: [(node: Int, lower: Int, upper: Int, depth: Int)] = [(0, 0, order.count, 0)]
        var head = 0
        while head < queue.count {
            let (node, lower, upper, depth) = queue[head]
            head += 1
            var i = lower
            // Pieces that end here sort first; empty pieces never match anything.
            while i < upper && pieces[order[i]].count == depth {
                if depth > 0 { pieceIDs[node] = Int32(order[i]) }
                i += 1
            }
            firstChild[node] = Int32(labels.count)
            var children = 0
            while i < upper {
                let byte = pieces[order[i]][depth]
                var j = i + 1
                while j < upper && pieces[order[j]][depth] == byte { j += 1 }
                let child = labels.count
                labels.append(byte)
                firstChild.append(0)
                childCount.append(0)
                pieceIDs.append(-1)
                queue.append((child, i, j, depth + 1))
                children += 1
                i = j
            }
            childCount[node] = UInt16(children)
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
