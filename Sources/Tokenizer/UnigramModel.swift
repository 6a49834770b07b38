/// A token found by a model inside one pre-tokenised word: its id and its byte range in the word.
struct WordToken {
    var id: Int32
    var range: Range<Int>
}

/// The Unigram language model (`"type": "Unigram"`): the segmentation of highest total piece
/// log-probability, found by Viterbi over the lattice of vocabulary pieces.
///
/// Follows the reference (`encode_optimized`): a character with no single-character piece gets an
/// unknown node scored `min_score - 10`; ties keep the earliest candidate; consecutive unknown
/// pieces fuse into one token, whose id is then looked up again as a whole.
struct UnigramModel: Sendable {
    let pieces: [String]
    let scores: [Double]
    let unknownID: Int32
    let byteFallbackIDs: [Int32]?
    private let trie: PieceTrie
    private let unknownScore: Double

    static let unknownPenalty = 10.0

    init(pieces: [String], scores: [Double], unknownID: Int32, byteFallback: Bool) {
        self.pieces = pieces
        self.scores = scores
        self.unknownID = unknownID
        var storage = PieceStorage()
        storage.bytes.reserveCapacity(pieces.count * 8)
        storage.starts.reserveCapacity(pieces.count + 1)
        for piece in pieces { storage.append(piece.utf8) }
        self.trie = PieceTrie(storage: storage)
        self.unknownScore = (scores.min() ?? 0) - Self.unknownPenalty
        if byteFallback {
            let trie = self.trie
            self.byteFallbackIDs = (0..<256).map { byte in
                let name = "<0x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2) + ">"
                return Array(name.utf8).withUnsafeBufferPointer { trie.pieceID(of: $0) ?? -1 }
            }
        } else {
            self.byteFallbackIDs = nil
        }
    }

    /// The id of the piece spelled `piece`, if the vocabulary has it.
    func pieceID(of piece: String) -> Int32? {
        Array(piece.utf8).withUnsafeBufferPointer { trie.pieceID(of: $0) }
    }

    /// Appends the tokens of `word` (valid UTF-8) to `output`.
    func tokenize(_ word: UnsafeBufferPointer<UInt8>, lattice: inout UnigramLattice, into output: inout [WordToken]) {
        let size = word.count
        guard size > 0 else { return }
        lattice.reset(size: size)
        lattice.withBuffers { best, starts, ids in
            var position = 0
            while position < size {
                let scoreHere = best[position]
                let characterWidth = UTF8Width.of(leadByte: word[position])
                var hasSingleCharacter = false
                trie.forEachPiece(in: word, from: position) { end, id in
                    let candidate = scores[Int(id)] + scoreHere
                    if starts[end] < 0 || candidate > best[end] {
                        best[end] = candidate
                        starts[end] = Int32(position)
                        ids[end] = id
                    }
                    if end - position == characterWidth { hasSingleCharacter = true }
                }
                if !hasSingleCharacter {
                    let end = position + characterWidth
                    let candidate = unknownScore + scoreHere
                    if starts[end] < 0 || candidate > best[end] {
                        best[end] = candidate
                        starts[end] = Int32(position)
                        ids[end] = unknownID
                    }
                }
                position += characterWidth
            }
            // Walk back from the end, fusing runs of unknown pieces.
            let firstOutput = output.count
            var end = size
            var fusedEnd = -1
            while end > 0 {
                let start = Int(starts[end])
                let id = ids[end]
                if id == unknownID {
                    if fusedEnd < 0 { fusedEnd = end }
                } else {
                    if fusedEnd >= 0 {
                        appendUnknown(word, end..<fusedEnd, to: &output)
                        fusedEnd = -1
                    }
                    output.append(WordToken(id: id, range: start..<end))
                }
                end = start
            }
            if fusedEnd >= 0 { appendUnknown(word, 0..<fusedEnd, to: &output) }
            output[firstOutput...].reverse()
        }
    }

    /// A run of unknown characters becomes the piece it spells if there is one, else byte-fallback
    /// pieces (when the model has them for every byte), else one unknown token. Appended in
    /// reverse order, like the rest of the backtrace.
    private func appendUnknown(_ word: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, to output: inout [WordToken]) {
        if let id = trie.pieceID(of: UnsafeBufferPointer(rebasing: word[range])) {
            output.append(WordToken(id: id, range: range))
            return
        }
        if let fallback = byteFallbackIDs, range.allSatisfy({ fallback[Int(word[$0])] >= 0 }) {
            // Every byte token carries the span of the whole run, as in the reference.
            for i in range.reversed() { output.append(WordToken(id: fallback[Int(word[i])], range: range)) }
            return
        }
        output.append(WordToken(id: unknownID, range: range))
    }
}

/// Scratch space for the Viterbi lattice, reused across the words of one text.
struct UnigramLattice {
    private var best: [Double] = []
    private var starts: [Int32] = []
    private var ids: [Int32] = []

    mutating func reset(size: Int) {
        if best.count < size + 1 {
            let capacity = max(size + 1, best.count * 2, 64)
            best = [Double](repeating: 0, count: capacity)
            starts = [Int32](repeating: -1, count: capacity)
            ids = [Int32](repeating: 0, count: capacity)
        }
        for i in 0...size {
            best[i] = 0
            starts[i] = -1
        }
        starts[0] = 0
    }

    mutating func withBuffers<R>(_ body: (UnsafeMutableBufferPointer<Double>, UnsafeMutableBufferPointer<Int32>, UnsafeMutableBufferPointer<Int32>) -> R) -> R {
        best.withUnsafeMutableBufferPointer { b in
            starts.withUnsafeMutableBufferPointer { s in
                ids.withUnsafeMutableBufferPointer { i in body(b, s, i) }
            }
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
