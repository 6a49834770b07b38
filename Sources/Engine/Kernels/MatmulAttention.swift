import COneDNN
import Foundation

/// Self-attention through oneDNN's bf16 matrix products, for the reduced precisions on CPUs with
/// AVX512-BF16 (twice the multiply-add rate of fp32 there).
///
/// Work is split as in ``BlockedAttention``: (sequence, head) pairs spread over the workers, each
/// pair computed by one thread from start to end, so that the head's keys, values, scores and
/// probabilities stay in that core's L2. Per block of query rows: scores = Q·Kᵀ/√d (bf16 operands,
/// fp32 results), softmax in fp32 over the real keys, probabilities to bf16, context = P·V. Each
/// product runs on the calling worker alone: inside an OpenMP parallel region oneDNN executes a
/// primitive on the calling thread.
///
/// An earlier version ran each product over all cores with every head at once: as fast when the
/// machine was quiet, and up to twice as slow as the fp32 kernel whenever a neighbour used the L3,
/// because the 1 MiB score block crossed between the cores.
///
/// Keys are padded with zero rows to a multiple of ``keyQuantum`` (the softmax ignores them) and
/// query blocks to a multiple of ``rowQuantum``, so primitives exist per padded shape only.
/// Memory is linear in the sequence length: one head's panels and one block of scores per worker.
final class MatmulAttention: @unchecked Sendable {
    let heads: Int
    let headSize: Int
    /// Workers the scratch is sized for: a lane with more threads uses this many.
    let threads: Int
    private let runtime: OneDNNRuntime

    static let keyQuantum = 64
    static let rowQuantum = 16
    /// Longer sequences stay with ``BlockedAttention``: one head's keys and values would outgrow L2.
    static let longest = 2048
    /// Shorter ones too: their products are too small to pay for the oneDNN calls. (From 16 tokens
    /// on, the mixed workload of 64 sequences of 16-512 tokens ran as fast as from 96 on.)
    static let shortest = 32
    /// Scores of one block of query rows: a quarter of Zen 4's 1 MiB L2, leaving room for the
    /// head's keys and values and the probabilities.
    static let scoreBytes = 256 << 10

    /// Whether this CPU runs the bf16 products (otherwise ``BlockedAttention`` does all the work).
    static var isAvailable: Bool { Precision.bf16.unsupportedReason == nil }

    /// The two products of one padded block shape, for one worker: their own memory objects,
    /// whose data handles are set before each call, and their own scratchpad buffers (see
    /// ``Scratchpad``), so that workers never share anything oneDNN writes.
    private final class Products {
        let scores: dnnl_primitive_t
        let context: dnnl_primitive_t
        /// Source, weights and destination of the scores product, then of the context product.
        let memories: [dnnl_memory_t]
        /// For each product, its scratchpad memory (handle set once, to `scratchpadStorage`), if it needs one.
        let scratchpads: [dnnl_memory_t?]
        private let scratchpadStorage: [UnsafeMutableRawPointer]
        init(scores: dnnl_primitive_t, context: dnnl_primitive_t, memories: [dnnl_memory_t],
             scratchpads: [(memory: dnnl_memory_t, bytes: Int)?]) throws(OneDNNError) {
            self.scores = scores
            self.context = context
            self.memories = memories
            var storage: [UnsafeMutableRawPointer] = []
            for scratchpad in scratchpads.compactMap({ $0 }) {
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: scratchpad.bytes, alignment: 64)
                storage.append(buffer)
                try check(dnnl_memory_set_data_handle(scratchpad.memory, buffer), "dnnl_memory_set_data_handle(scratchpad)")
            }
            self.scratchpads = scratchpads.map { $0?.memory }
            self.scratchpadStorage = storage
        }
        deinit {
            dnnl_primitive_destroy(scores)
            dnnl_primitive_destroy(context)
            for memory in memories { dnnl_memory_destroy(memory) }
            for memory in scratchpads.compactMap({ $0 }) { dnnl_memory_destroy(memory) }
            for buffer in scratchpadStorage { buffer.deallocate() }
        }

        /// Runs product `index` (0: scores = Q·Kᵀ, 1: context = P·V) on `stream` over these operands.
        func execute(_ index: Int, source: UnsafeMutableRawPointer, weights: UnsafeMutableRawPointer,
                     destination: UnsafeMutableRawPointer, stream: dnnl_stream_t) throws(OneDNNError) {
            let operands = [(DNNL_ARG_SRC, source), (DNNL_ARG_WEIGHTS, weights), (DNNL_ARG_DST, destination)]
            var arguments: [dnnl_exec_arg_t] = []
            for (slot, (argument, pointer)) in operands.enumerated() {
                let memory = memories[3 * index + slot]
                try check(dnnl_memory_set_data_handle(memory, pointer), "dnnl_memory_set_data_handle")
                arguments.append(dnnl_exec_arg_t(arg: Int32(argument), memory: memory))
            }
            if let scratchpad = scratchpads[index] { arguments.append(dnnl_exec_arg_t(arg: Int32(DNNL_ARG_SCRATCHPAD), memory: scratchpad)) }
            try check(dnnl_primitive_execute(index == 0 ? scores : context, stream, Int32(arguments.count), &arguments),
                      "dnnl_primitive_execute(attention \(index == 0 ? "scores" : "context"))")
        }
    }

    private struct ShapeKey: Hashable {
        let lane: Int
        let worker: Int
        let rows: Int
        let keys: Int
    }

    private let lock = NSLock()
    private var products: [ShapeKey: Products] = [:]

    init(heads: Int, headSize: Int, threads: Int, runtime: OneDNNRuntime) {
        self.heads = heads
        self.headSize = headSize
        self.threads = max(1, threads)
        self.runtime = runtime
    }

    private static func padded(_ count: Int, to quantum: Int) -> Int { (count + quantum - 1) / quantum * quantum }

    /// Query rows per block for `keys` padded keys: as many as keep the scores within ``scoreBytes``.
    private static func rowsPerBlock(keys: Int) -> Int {
        min(128, max(rowQuantum, scoreBytes / (4 * keys) / rowQuantum * rowQuantum))
    }

    /// Whether a sequence of this length runs here.
    static func takes(length: Int) -> Bool { (shortest...longest).contains(length) }

    /// Where one (sequence, head) pair's parts lie in its worker's scratch, as byte offsets from a
    /// 64-byte aligned start. One definition for the sizing and the use: a sizing of its own once
    /// assumed the longest sequence needs the most, which rows per block (fewer for more keys)
    /// make untrue (576 keys need less than 512), and a shorter sequence wrote past its worker's part.
    private struct Layout {
        let keys: Int
        let rows: Int
        let keyPanel: Int, valuePanel: Int, queries: Int, scores: Int, probabilities: Int, output: Int
        let bytes: Int

        init(keys: Int, headSize d: Int) {
            self.keys = keys
            rows = MatmulAttention.rowsPerBlock(keys: keys)
            var cursor = 0
            func take(_ bytes: Int) -> Int {
                defer { cursor = (cursor + bytes + 63) & ~63 }
                return cursor
            }
            keyPanel = take(2 * keys * d)           // bf16 [key][d]
            valuePanel = take(2 * keys * d)         // bf16 [key][d]
            queries = take(2 * rows * d)            // bf16 [row][d]
            scores = take(4 * rows * keys)          // fp32 [row][key]
            probabilities = take(2 * rows * keys)   // bf16 [row][key]
            output = take(4 * rows * d)             // fp32 [row][d]
            bytes = cursor
        }
    }

    /// Bytes of one worker's part: the largest layout of any padded length up to `longest`, and
    /// room to align its start.
    private static func bytesPerWorker(longest: Int, headSize: Int) -> Int {
        let most = padded(min(longest, Self.longest), to: keyQuantum)
        return 64 + stride(from: keyQuantum, through: most, by: keyQuantum).map { Layout(keys: $0, headSize: headSize).bytes }.max()!
    }

    /// Scratch bytes for sequences up to `longest` tokens (those over ``longest`` are not run here).
    static func scratchBytes(longest: Int, heads: Int, headSize: Int, threads: Int) -> Int {
        longest < shortest ? 0 : max(1, threads) * bytesPerWorker(longest: longest, headSize: headSize)
    }

    /// One (sequence, head) pair.
    private struct Item {
        let start: Int
        let length: Int
        let head: Int
    }

    /// `context[token, head·headSize ..< (head+1)·headSize]` for every token of every sequence,
    /// each of ``shortest``...``longest`` tokens.
    /// - Parameters:
    ///   - scratch: at least ``scratchBytes(longest:heads:headSize:threads:)`` bytes.
    ///   - checkpoint: called between rounds of about ``BlockedAttention/roundWork`` row·key
    ///     products per worker, outside any parallel region.
    func run(qkv: UnsafePointer<Float>, context: UnsafeMutablePointer<Float>, sequences: [(start: Int, length: Int)],
             scratch: UnsafeMutableRawPointer, lane: ComputeLane, checkpoint: (() -> Void)?) throws(OneDNNError) {
        let longest = sequences.map(\.length).max() ?? 0
        guard longest > 0 else { return }
        precondition(sequences.allSatisfy { Self.takes(length: $0.length) })
        var items: [Item] = []
        for sequence in sequences {
            for head in 0..<heads { items.append(Item(start: sequence.start, length: sequence.length, head: head)) }
        }
        items.sort { $0.length > $1.length }
        let workItems = items
        let workers = min(threads, lane.threads, items.count)
        let perWorker = Self.bytesPerWorker(longest: longest, headSize: headSize)
        let budget = checkpoint == nil ? Int.max : BlockedAttention.roundWork
        var next = [Int](0..<workers)
        var failures = [OneDNNError?](repeating: nil, count: workers)
        // Each worker's stream, taken here, outside the parallel region.
        let streams = try (0..<workers).map { worker throws(OneDNNError) in try lane.stream(worker, engine: runtime.engine) }
        let shared = Shared((qkv: qkv, context: context, scratch: scratch, streams: streams))
        let attention = self
        lane.enter()
        while true {
            next.withUnsafeMutableBufferPointer { next in
                failures.withUnsafeMutableBufferPointer { failures in
                    let state = Shared((next: next, failures: failures))
                    runWorkers(workers) { worker in
                        let (qkv, context, scratch, streams) = shared.value
                        let (next, failures) = state.value
                        var done = 0
                        while next[worker] < workItems.count && done < budget && failures[worker] == nil {
                            let item = workItems[next[worker]]
                            do throws(OneDNNError) {
                                try attention.attend(item, worker: worker, lane: lane, stream: streams[worker], qkv: qkv, context: context, scratch: scratch + worker * perWorker)
                            } catch {
                                failures[worker] = error
                            }
                            done += item.length * item.length
                            next[worker] += workers
                        }
                    }
                }
            }
            if let failure = failures.lazy.compactMap({ $0 }).first { throw failure }
            if next.allSatisfy({ $0 >= items.count }) { break }
            checkpoint?()
        }
    }

    /// One head of one sequence, on the calling worker.
    private func attend(_ item: Item, worker: Int, lane: ComputeLane, stream: dnnl_stream_t, qkv: UnsafePointer<Float>, context: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutableRawPointer) throws(OneDNNError) {
        let hidden = heads * headSize
        let d = headSize
        let stride = 3 * hidden
        let layout = Layout(keys: Self.padded(item.length, to: Self.keyQuantum), headSize: d)
        let keys = layout.keys
        let blockRows = layout.rows
        let base = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: scratch) + 63) & ~63)!
        let keyPanel = (base + layout.keyPanel).bindMemory(to: UInt16.self, capacity: keys * d)
        let valuePanel = (base + layout.valuePanel).bindMemory(to: UInt16.self, capacity: keys * d)
        let queries = (base + layout.queries).bindMemory(to: UInt16.self, capacity: blockRows * d)
        let scores = (base + layout.scores).bindMemory(to: Float.self, capacity: blockRows * keys)
        let probabilities = (base + layout.probabilities).bindMemory(to: UInt16.self, capacity: blockRows * keys)
        let output = (base + layout.output).bindMemory(to: Float.self, capacity: blockRows * d)

        for j in 0..<keys {
            if j < item.length {
                let row = qkv + (item.start + j) * stride + item.head * d
                BFloat16Conversion.convert(row + hidden, into: keyPanel + j * d, count: d, threads: 1)
                BFloat16Conversion.convert(row + 2 * hidden, into: valuePanel + j * d, count: d, threads: 1)
            } else {
                (keyPanel + j * d).update(repeating: 0, count: d)
                (valuePanel + j * d).update(repeating: 0, count: d)
            }
        }
        var first = 0
        while first < item.length {
            let rows = min(blockRows, item.length - first)
            let paddedRows = Self.padded(rows, to: Self.rowQuantum)
            for r in 0..<paddedRows {
                if r < rows {
                    BFloat16Conversion.convert(qkv + (item.start + first + r) * stride + item.head * d, into: queries + r * d, count: d, threads: 1)
                } else {
                    (queries + r * d).update(repeating: 0, count: d)
                }
            }
            let products = try self.products(lane: lane, worker: worker, rows: paddedRows, keys: keys)
            try products.execute(0, source: queries, weights: keyPanel, destination: scores, stream: stream)
            for r in 0..<paddedRows {
                let row = scores + r * keys
                let target = probabilities + r * keys
                if r < rows {
                    VectorMath.softmax(row, count: item.length)
                    BFloat16Conversion.convert(row, into: target, count: item.length, threads: 1)
                    (target + item.length).update(repeating: 0, count: keys - item.length)
                } else {
                    target.update(repeating: 0, count: keys)
                }
            }
            try products.execute(1, source: probabilities, weights: valuePanel, destination: output, stream: stream)
            try check(dnnl_stream_wait(stream), "dnnl_stream_wait")
            for r in 0..<rows {
                (context + (item.start + first + r) * hidden + item.head * d).update(from: output + r * d, count: d)
            }
            first += rows
        }
    }

    /// The products for one worker and padded block shape, made on first use.
    private func products(lane: ComputeLane, worker: Int, rows: Int, keys: Int) throws(OneDNNError) -> Products {
        let key = ShapeKey(lane: lane.id, worker: worker, rows: rows, keys: keys)
        if let found = lock.withLock({ products[key] }) { return found }
        func descriptor(_ dims: [Int], _ type: dnnl_data_type_t, _ tag: dnnl_format_tag_t) throws(OneDNNError) -> dnnl_memory_desc_t {
            var result = dnnl_memory_desc_t()
            try check(dnnl_memory_desc_init_by_tag(&result, 2, dims.map { dnnl_dim_t($0) }, type, tag), "dnnl_memory_desc_init_by_tag")
            return result
        }
        var q = try descriptor([rows, headSize], dnnl_bf16, dnnl_ab)
        var k = try descriptor([headSize, keys], dnnl_bf16, dnnl_ba)   // [key][d] in memory
        var s = try descriptor([rows, keys], dnnl_f32, dnnl_ab)
        var p = try descriptor([rows, keys], dnnl_bf16, dnnl_ab)
        var v = try descriptor([keys, headSize], dnnl_bf16, dnnl_ab)
        var c = try descriptor([rows, headSize], dnnl_f32, dnnl_ab)
        var attributes: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attributes), "dnnl_primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(attributes) }
        var scale = 1 / Float(headSize).squareRoot()
        try check(dnnl_primitive_attr_set_output_scales(attributes, 1, 0, &scale), "dnnl_primitive_attr_set_output_scales")
        try Scratchpad.request(on: attributes!)
        var plainAttributes: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&plainAttributes), "dnnl_primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(plainAttributes) }
        try Scratchpad.request(on: plainAttributes!)
        func primitive(_ source: inout dnnl_memory_desc_t, _ weights: inout dnnl_memory_desc_t, _ destination: inout dnnl_memory_desc_t,
                       _ attributes: dnnl_primitive_attr_t?) throws(OneDNNError) -> (dnnl_primitive_t, (memory: dnnl_memory_t, bytes: Int)?) {
            var operation = dnnl_matmul_desc_t()
            try check(dnnl_matmul_desc_init(&operation, &source, &weights, nil, &destination), "dnnl_matmul_desc_init(attention)")
            var descriptor: dnnl_primitive_desc_t?
            try check(dnnl_primitive_desc_create(&descriptor, &operation, attributes, runtime.engine, nil), "dnnl_primitive_desc_create(attention)")
            defer { dnnl_primitive_desc_destroy(descriptor) }
            var result: dnnl_primitive_t?
            try check(dnnl_primitive_create(&result, descriptor), "dnnl_primitive_create(attention)")
            return (result!, try Scratchpad.memory(for: descriptor!, engine: runtime.engine))
        }
        let (scores, scoresScratchpad) = try primitive(&q, &k, &s, attributes)
        let (context, contextScratchpad) = try primitive(&p, &v, &c, plainAttributes)
        var memories: [dnnl_memory_t] = []
        for var descriptor in [q, k, s, p, v, c] {
            var memory: dnnl_memory_t?
            try check(dnnl_memory_create(&memory, &descriptor, runtime.engine, nil), "dnnl_memory_create(attention)")
            memories.append(memory!)
        }
        let made = try Products(scores: scores, context: context, memories: memories, scratchpads: [scoresScratchpad, contextScratchpad])
        lock.withLock { products[key] = made }
        return made
    }
}
