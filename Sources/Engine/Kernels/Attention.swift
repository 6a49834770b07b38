import COneDNN

/// Multi-head self-attention over unpadded sequences, computed in blocks of query rows so that
/// memory grows linearly with sequence length: no `heads × S × S` tensor exists, only one
/// `block × S` score block per thread.
///
/// Input is the fused projection `qkv` (`tokens × 3·hidden`: queries, keys, values side by side);
/// each sequence attends only to itself, so no padding or mask is needed.
struct BlockedAttention {
    let heads: Int
    let headSize: Int
    /// Query rows per score block.
    let blockRows: Int
    let threads: Int

    var hidden: Int { heads * headSize }

    /// Bytes of score blocks for sequences up to `longest` tokens.
    func scratchBytes(longest: Int) -> Int {
        threads * min(blockRows, longest) * longest * MemoryLayout<Float>.size
    }

    /// `context[token, head·headSize ..< (head+1)·headSize]` for every token of every sequence.
    /// - Parameters:
    ///   - sequences: start row and length of each sequence in `qkv` and `context`.
    ///   - scratch: at least ``scratchBytes(longest:)`` bytes.
    func run(qkv: UnsafePointer<Float>, context: UnsafeMutablePointer<Float>, sequences: [(start: Int, length: Int)],
             scratch: UnsafeMutableRawPointer) {
        let stride = 3 * hidden
        let longest = sequences.map(\.length).max() ?? 0
        guard longest > 0 else { return }
        let perThread = min(blockRows, longest) * longest
        let scores = scratch.bindMemory(to: Float.self, capacity: perThread * threads)
        // Work items: (sequence, head, first query row); spread over threads, each with its own
        // score block and single-threaded GEMMs (two levels of threads would oversubscribe).
        var items: [(sequence: Int, head: Int, row: Int)] = []
        for (index, sequence) in sequences.enumerated() {
            for head in 0..<heads {
                var row = 0
                while row < sequence.length {
                    items.append((index, head, row))
                    row += blockRows
                }
            }
        }
        let scale = 1 / Float(headSize).squareRoot()
        let workers = min(threads, items.count)
        let shared = Shared((qkv: qkv, context: context, scores: scores))
        let workItems = items
        let (blockRows, headSize, hidden) = (self.blockRows, self.headSize, self.hidden)
        runWorkers(workers) { worker in
            let (qkv, context, scores) = shared.value
            let previousThreads = omp_get_max_threads()
            omp_set_num_threads(1)
            defer { omp_set_num_threads(previousThreads) }
            let block = scores + worker * perThread
            var index = worker
            while index < workItems.count {
                let item = workItems[index]
                index += workers
                let sequence = sequences[item.sequence]
                let rows = min(blockRows, sequence.length - item.row)
                let length = sequence.length
                let queries = qkv + (sequence.start + item.row) * stride + item.head * headSize
                let keys = qkv + sequence.start * stride + hidden + item.head * headSize
                let values = qkv + sequence.start * stride + 2 * hidden + item.head * headSize
                // scores = scale · Q Kᵀ
                sgemm(transposeA: false, transposeB: true, m: rows, n: length, k: headSize, alpha: scale,
                      a: queries, lda: stride, b: keys, ldb: stride, beta: 0, c: block, ldc: length)
                for r in 0..<rows { VectorMath.softmax(block + r * length, count: length) }
                // context = P V
                let output = context + (sequence.start + item.row) * hidden + item.head * headSize
                sgemm(transposeA: false, transposeB: false, m: rows, n: headSize, k: length, alpha: 1,
                      a: block, lda: length, b: values, ldb: stride, beta: 0, c: output, ldc: hidden)
            }
        }
    }
}
