import CEngineAVX512
import COneDNN
import Foundation

/// Self-attention through oneDNN's matrix products and softmax, which oneDNN compiles for the
/// CPU's widest instructions at run time (``AttentionKernel/forThisCPU(precision:headSize:)`` says
/// where): fp32 operands on AVX-512 CPUs, where ``BlockedAttention`` (8 lanes) uses half the vector
/// width; int8 operands at int8 where the CPU has VNNI (their quantisation and softmax are
/// ``AttentionQuantization``'s); bf16 operands for the reduced precisions where bf16 runs at twice
/// fp32's rate.
///
/// Work is split as in ``BlockedAttention``: (sequence, head) pairs spread over the workers, each
/// pair computed by one thread from start to end, so that the head's keys, values, scores and
/// probabilities stay in that core's L2. Per block of query rows: scores = Q·Kᵀ/√d (fp32 results),
/// −∞ over the padding keys, softmax (in place at fp32; to bf16 probabilities at bf16), context =
/// P·V. oneDNN's softmax replaced the engine's own 8-lane one, which was a third of the fp32
/// products' attention time (1×512 on an Emerald Rapids pair: 0.19 s with it, 0.13 s without any
/// softmax, 0.13-0.18 s with oneDNN's). Each primitive runs on the calling worker alone: inside an
/// OpenMP parallel region oneDNN executes a primitive on the calling thread.
///
/// An earlier version ran each product over all cores with every head at once: as fast when the
/// machine was quiet, and up to twice as slow as the fp32 kernel whenever a neighbour used the L3,
/// because the 1 MiB score block crossed between the cores.
///
/// Keys are padded with zero rows to a multiple of ``keyQuantum`` (their scores become −∞) and
/// query blocks to a multiple of ``rowQuantum``, so primitives exist per padded shape only.
/// Memory is linear in the sequence length: one head's panels and one block of scores per worker.
final class MatmulAttention: @unchecked Sendable {
    let heads: Int
    let headSize: Int
    /// Workers the scratch is sized for: a lane with more threads uses this many.
    let threads: Int
    /// The products' operand type.
    let operands: AttentionOperands
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

    /// One primitive with its own memory objects (data handles set before each call) and its own
    /// scratchpad buffer (see ``Scratchpad``), so that workers never share anything oneDNN writes.
    /// Its argument list is built once: a call sets two or three data handles and allocates nothing
    /// (a pass of 64 mixed texts makes some 200,000 of these calls).
    private final class Step {
        let primitive: dnnl_primitive_t
        let name: String
        /// The primitive's memory objects, in the order ``execute(_:_:_:stream:)`` takes their
        /// pointers, then the scratchpad's if it has one.
        private let list: UnsafeMutablePointer<dnnl_exec_arg_t>
        /// Arguments that take a pointer at each call (the scratchpad's is set once).
        private let arguments: Int
        /// Entries of ``list``: the arguments, and the scratchpad if there is one.
        private let entries: Int
        private let scratchpadStorage: UnsafeMutableRawPointer?

        /// Makes the primitive from `descriptor` and memory objects for `arguments`' descriptors.
        init(_ descriptor: dnnl_primitive_desc_t, name: String, arguments: [(argument: Int32, descriptor: dnnl_memory_desc_t)],
             engine: dnnl_engine_t) throws(OneDNNError) {
            var made: dnnl_primitive_t?
            try check(dnnl_primitive_create(&made, descriptor), "dnnl_primitive_create(attention \(name))")
            primitive = made!
            self.name = name
            self.arguments = arguments.count
            list = .allocate(capacity: arguments.count + 1)
            var filled = 0
            var scratchpad: (memory: dnnl_memory_t, bytes: Int)?
            do throws(OneDNNError) {
                for (argument, var md) in arguments {
                    var memory: dnnl_memory_t?
                    try check(dnnl_memory_create(&memory, &md, engine, nil), "dnnl_memory_create(attention \(name))")
                    (list + filled).initialize(to: dnnl_exec_arg_t(arg: argument, memory: memory))
                    filled += 1
                }
                scratchpad = try Scratchpad.memory(for: descriptor, engine: engine)
            } catch {
                for index in 0..<filled { dnnl_memory_destroy(list[index].memory) }
                list.deallocate()
                dnnl_primitive_destroy(primitive)
                throw error
            }
            if let (memory, bytes) = scratchpad {
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
                scratchpadStorage = buffer
                (list + filled).initialize(to: dnnl_exec_arg_t(arg: Int32(DNNL_ARG_SCRATCHPAD), memory: memory))
                entries = filled + 1
                try check(dnnl_memory_set_data_handle(memory, buffer), "dnnl_memory_set_data_handle(scratchpad)")
            } else {
                scratchpadStorage = nil
                entries = filled
            }
        }

        deinit {
            dnnl_primitive_destroy(primitive)
            for index in 0..<entries { dnnl_memory_destroy(list[index].memory) }
            list.deallocate()
            scratchpadStorage?.deallocate()
        }

        /// Runs the primitive on `stream` over `first`, `second` and (for a product) `third`, one
        /// per argument in the order they were given.
        func execute(_ first: UnsafeMutableRawPointer, _ second: UnsafeMutableRawPointer, _ third: UnsafeMutableRawPointer? = nil,
                     stream: dnnl_stream_t) throws(OneDNNError) {
            assert((third == nil ? 2 : 3) == arguments, "\(name) takes \(arguments) pointers")
            try check(dnnl_memory_set_data_handle(list[0].memory, first), "dnnl_memory_set_data_handle")
            try check(dnnl_memory_set_data_handle(list[1].memory, second), "dnnl_memory_set_data_handle")
            if let third { try check(dnnl_memory_set_data_handle(list[2].memory, third), "dnnl_memory_set_data_handle") }
            try check(dnnl_primitive_execute(primitive, stream, Int32(entries), list), "dnnl_primitive_execute(attention \(name))")
        }
    }

    /// The steps of one padded block shape, for one worker.
    private struct Products {
        /// scores = Q·Kᵀ/√d (source, weights, destination).
        let scores: Step
        /// probabilities = softmax(scores) over each row (source, destination); nil for int8
        /// operands, whose softmax is ``AttentionQuantization/weights(_:length:keys:rowScale:keyScales:into:)``.
        let softmax: Step?
        /// context = P·V (source, weights, destination).
        let context: Step
    }

    private struct ShapeKey: Hashable {
        let lane: Int
        let worker: Int
        let rows: Int
        let keys: Int
    }

    private let lock = NSLock()
    private var products: [ShapeKey: Products] = [:]

    /// Whether int8 operands run in ``AttentionProducts``' loops rather than oneDNN's products and
    /// ``AttentionQuantization``'s passes.
    let ownInt8Products: Bool

    /// - Parameter ownInt8Products: int8 operands in ``AttentionProducts``' loops; nil: wherever
    ///   they run (``AttentionProducts/run(headSize:)``). Tests compare the two paths.
    init(heads: Int, headSize: Int, threads: Int, operands: AttentionOperands, runtime: OneDNNRuntime, ownInt8Products: Bool? = nil) {
        self.heads = heads
        self.headSize = headSize
        self.threads = max(1, threads)
        self.operands = operands
        self.runtime = runtime
        let available = AttentionProducts.run(headSize: headSize)
        self.ownInt8Products = operands == .int8 && available && (ownInt8Products ?? true)
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
        /// int8 operands' scales (fp32): per key, per value column, per query row; and per row the
        /// inverse sum of its softmax weights.
        let keyScales: Int, valueScales: Int, queryScales: Int, rowInverses: Int
        /// int8 operands' keys and values packed for ``AttentionProducts``.
        let packedKeys: Int, packedValues: Int
        let bytes: Int

        init(keys: Int, headSize d: Int, operands: AttentionOperands) {
            self.keys = keys
            rows = MatmulAttention.rowsPerBlock(keys: keys)
            var cursor = 0
            func take(_ bytes: Int) -> Int {
                defer { cursor = (cursor + bytes + 63) & ~63 }
                return cursor
            }
            let e = operands.bytes
            keyPanel = take(e * keys * d)           // [key][d]
            valuePanel = take(e * keys * d)         // [key][d]
            queries = take(e * rows * d)            // [row][d]
            scores = take(4 * rows * keys)          // fp32 [row][key]
            // fp32 probabilities are the scores, made so in place.
            probabilities = operands == .f32 ? scores : take(e * rows * keys)
            output = take(4 * rows * d)             // fp32 [row][d]
            let scaled = operands == .int8
            keyScales = take(scaled ? 4 * keys : 0)
            valueScales = take(scaled ? 4 * d : 0)
            queryScales = take(scaled ? 4 * rows : 0)
            rowInverses = take(scaled ? 4 * rows : 0)
            packedKeys = take(scaled ? keys * d : 0)
            packedValues = take(scaled ? keys * d : 0)
            bytes = cursor
        }
    }

    /// Bytes of one worker's part: the largest layout of any padded length up to `longest`, and
    /// room to align its start.
    private static func bytesPerWorker(longest: Int, headSize: Int, operands: AttentionOperands) -> Int {
        let most = padded(min(longest, Self.longest), to: keyQuantum)
        return 64 + stride(from: keyQuantum, through: most, by: keyQuantum)
            .map { Layout(keys: $0, headSize: headSize, operands: operands).bytes }.max()!
    }

    /// Scratch bytes for sequences up to `longest` tokens (those over ``longest`` are not run here).
    static func scratchBytes(longest: Int, heads: Int, headSize: Int, threads: Int, operands: AttentionOperands) -> Int {
        longest < shortest ? 0 : max(1, threads) * bytesPerWorker(longest: longest, headSize: headSize, operands: operands)
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
        let perWorker = Self.bytesPerWorker(longest: longest, headSize: headSize, operands: operands)
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

    /// Tokens ahead of the panel pass that ``prefetch(token:of:qkv:context:)`` fetches.
    static let prefetchDistance = 8

    /// Fetches token `token`'s query, key and value slices of the item's head, and its context
    /// slice, into the cache (nothing past the sequence's end).
    ///
    /// The slices lie 4 KiB apart and tokens 12 KiB apart, a stride the hardware prefetchers do
    /// not follow across pages, so every slice the panel pass read was a wait on memory. Fetched
    /// with the keys a few tokens ahead, the queries and values are in L2 when their passes come
    /// (64 mixed texts, one run each: int8 attention 4.50 -> 3.84 s, the quantisers' share of the
    /// pass 8.3% -> 6.5% in perf; fp32 attention 5.19/5.26 -> 4.89/4.96 s, two alternated runs).
    @inline(__always)
    private func prefetch(token: Int, of item: Item, qkv: UnsafePointer<Float>, context: UnsafeMutablePointer<Float>) {
        guard token < item.length else { return }
        let hidden = heads * headSize
        let row = qkv + (item.start + token) * 3 * hidden + item.head * headSize
        let out = context + (item.start + token) * hidden + item.head * headSize
        for line in Swift.stride(from: 0, to: headSize, by: 16) {
            bgem3_prefetch(row + line)
            bgem3_prefetch(row + hidden + line)
            bgem3_prefetch(row + 2 * hidden + line)
            bgem3_prefetch_for_writing(out + line)
        }
    }

    /// One head of one sequence, on the calling worker.
    private func attend(_ item: Item, worker: Int, lane: ComputeLane, stream: dnnl_stream_t, qkv: UnsafePointer<Float>, context: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutableRawPointer) throws(OneDNNError) {
        let hidden = heads * headSize
        let d = headSize
        let stride = 3 * hidden
        let layout = Layout(keys: Self.padded(item.length, to: Self.keyQuantum), headSize: d, operands: operands)
        let keys = layout.keys
        let blockRows = layout.rows
        let e = operands.bytes
        let base = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: scratch) + 63) & ~63)!
        if operands == .int8 {
            return try attendInt8(item, layout: layout, base: base, worker: worker, lane: lane, stream: stream, qkv: qkv, context: context)
        }
        let keyPanel = base + layout.keyPanel
        let valuePanel = base + layout.valuePanel
        let queries = base + layout.queries
        let scores = (base + layout.scores).bindMemory(to: Float.self, capacity: blockRows * keys)
        let probabilities = base + layout.probabilities
        let output = (base + layout.output).bindMemory(to: Float.self, capacity: blockRows * d)

        for j in 0..<keys {
            if j < item.length {
                prefetch(token: j + Self.prefetchDistance, of: item, qkv: qkv, context: context)
                let row = qkv + (item.start + j) * stride + item.head * d
                operands.store(row + hidden, into: keyPanel + j * d * e, count: d)
                operands.store(row + 2 * hidden, into: valuePanel + j * d * e, count: d)
            } else {
                (keyPanel + j * d * e).initializeMemory(as: UInt8.self, repeating: 0, count: d * e)
                (valuePanel + j * d * e).initializeMemory(as: UInt8.self, repeating: 0, count: d * e)
            }
        }
        var first = 0
        while first < item.length {
            let rows = min(blockRows, item.length - first)
            let paddedRows = Self.padded(rows, to: Self.rowQuantum)
            for r in 0..<paddedRows {
                if r < rows {
                    operands.store(qkv + (item.start + first + r) * stride + item.head * d, into: queries + r * d * e, count: d)
                } else {
                    (queries + r * d * e).initializeMemory(as: UInt8.self, repeating: 0, count: d * e)
                }
            }
            let products = try self.products(lane: lane, worker: worker, rows: paddedRows, keys: keys)
            try products.scores.execute(queries, keyPanel, UnsafeMutableRawPointer(scores), stream: stream)
            // Padding keys take no probability: −∞ before the softmax (whose exp gives exactly 0).
            if keys > item.length {
                for r in 0..<paddedRows { (scores + r * keys + item.length).update(repeating: -.infinity, count: keys - item.length) }
            }
            try products.softmax!.execute(UnsafeMutableRawPointer(scores), probabilities, stream: stream)
            try products.context.execute(probabilities, valuePanel, UnsafeMutableRawPointer(output), stream: stream)
            try check(dnnl_stream_wait(stream), "dnnl_stream_wait")
            for r in 0..<rows {
                (context + (item.start + first + r) * hidden + item.head * d).update(from: output + r * d, count: d)
            }
            first += rows
        }
    }

    /// ``attend(_:worker:lane:stream:qkv:context:scratch:)`` with int8 operands: keys quantised per
    /// key and values per column once per head, queries per row in each block; the scales meet the
    /// integer scores in the softmax and the integer context in its copy to `context`.
    private func attendInt8(_ item: Item, layout: Layout, base: UnsafeMutableRawPointer, worker: Int, lane: ComputeLane, stream: dnnl_stream_t,
                            qkv: UnsafePointer<Float>, context: UnsafeMutablePointer<Float>) throws(OneDNNError) {
        let hidden = heads * headSize
        let d = headSize
        let stride = 3 * hidden
        let keys = layout.keys
        let blockRows = layout.rows
        let keyPanel = (base + layout.keyPanel).bindMemory(to: Int8.self, capacity: keys * d)
        let valuePanel = (base + layout.valuePanel).bindMemory(to: Int8.self, capacity: keys * d)
        let queries = (base + layout.queries).bindMemory(to: Int8.self, capacity: blockRows * d)
        let scores = (base + layout.scores).bindMemory(to: Float.self, capacity: blockRows * keys)
        let weights = (base + layout.probabilities).bindMemory(to: UInt8.self, capacity: blockRows * keys)
        let output = (base + layout.output).bindMemory(to: Float.self, capacity: blockRows * d)
        let keyScales = (base + layout.keyScales).bindMemory(to: Float.self, capacity: keys)
        let valueScales = (base + layout.valueScales).bindMemory(to: Float.self, capacity: d)
        let queryScales = (base + layout.queryScales).bindMemory(to: Float.self, capacity: blockRows)
        let rowInverses = (base + layout.rowInverses).bindMemory(to: Float.self, capacity: blockRows)
        let head = qkv + item.start * stride + item.head * d
        // 1/√d goes with the keys' scales, so that the softmax multiplies once per score.
        let temperature = 1 / Float(d).squareRoot()
        for j in 0..<item.length {
            prefetch(token: j + Self.prefetchDistance, of: item, qkv: qkv, context: context)
            keyScales[j] = temperature * (ownInt8Products ? bgem3_attention_quantize_row(head + j * stride + hidden, keyPanel + j * d)
                : AttentionQuantization.quantizeRow(head + j * stride + hidden, count: d, into: keyPanel + j * d))
        }
        // The values' rows are in the weights' order, which interleaves a group of 32 keys: the
        // padding keys' rows are zeroed from the last group's start, before the values are written.
        let lastGroup = item.length & ~31
        (valuePanel + lastGroup * d).initialize(repeating: 0, count: (keys - lastGroup) * d)
        AttentionQuantization.quantizeColumns(head + 2 * hidden, stride: stride, rows: item.length, count: d, into: valuePanel, scales: valueScales)
        if keys > item.length {
            (keyPanel + item.length * d).initialize(repeating: 0, count: (keys - item.length) * d)
            (keyScales + item.length).initialize(repeating: 0, count: keys - item.length)
        }
        // With ``AttentionProducts``' loops: keys and values packed once per head, then every step
        // in the loops; otherwise oneDNN's products on row blocks padded to its shapes, and the
        // Swift passes. The steps are the same, so the floats are too.
        let packedKeys = (base + layout.packedKeys).bindMemory(to: UInt8.self, capacity: keys * d)
        let packedValues = (base + layout.packedValues).bindMemory(to: Int8.self, capacity: keys * d)
        if ownInt8Products {
            bgem3_attention_pack_keys(keyPanel, Int32(keys), packedKeys)
            bgem3_attention_pack_values(valuePanel, Int32(keys), packedValues)
        }
        var first = 0
        while first < item.length {
            let rows = min(blockRows, item.length - first)
            let paddedRows = ownInt8Products ? rows : Self.padded(rows, to: Self.rowQuantum)
            for r in 0..<rows {
                let row = head + (first + r) * stride
                queryScales[r] = ownInt8Products ? bgem3_attention_quantize_row(row, queries + r * d)
                    : AttentionQuantization.quantizeRow(row, count: d, into: queries + r * d)
            }
            if paddedRows > rows { (queries + rows * d).initialize(repeating: 0, count: (paddedRows - rows) * d) }
            let products = ownInt8Products ? nil : try self.products(lane: lane, worker: worker, rows: paddedRows, keys: keys)
            if let products {
                try products.scores.execute(queries, keyPanel, UnsafeMutableRawPointer(scores), stream: stream)
                try check(dnnl_stream_wait(stream), "dnnl_stream_wait")
            } else {
                bgem3_attention_scores(queries, Int32(rows), packedKeys, Int32(keys), scores)
            }
            for r in 0..<rows {
                rowInverses[r] = ownInt8Products
                    ? bgem3_attention_weights(scores + r * keys, Int32(item.length), Int32(keys), queryScales[r], keyScales, weights + r * keys)
                    : AttentionQuantization.weights(scores + r * keys, length: item.length, keys: keys, rowScale: queryScales[r],
                                                    keyScales: keyScales, into: weights + r * keys)
            }
            if paddedRows > rows { (weights + rows * keys).initialize(repeating: 0, count: (paddedRows - rows) * keys) }
            if let products {
                try products.context.execute(weights, valuePanel, UnsafeMutableRawPointer(output), stream: stream)
                try check(dnnl_stream_wait(stream), "dnnl_stream_wait")
            } else {
                bgem3_attention_context(weights, Int32(rows), packedValues, Int32(keys), output)
            }
            for r in 0..<rows {
                let target = context + (item.start + first + r) * hidden + item.head * d
                if ownInt8Products {
                    bgem3_attention_scale_row(output + r * d, rowInverses[r], valueScales, target)
                } else {
                    AttentionQuantization.scaleRow(output + r * d, by: rowInverses[r], columnScales: valueScales, count: d, into: target)
                }
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
        let type = operands.dataType
        let q = try descriptor([rows, headSize], type, dnnl_ab)
        let k = try descriptor([headSize, keys], type, dnnl_ba)   // [key][d] in memory
        let s = try descriptor([rows, keys], dnnl_f32, dnnl_ab)
        let p = try descriptor([rows, keys], operands.probabilityType, dnnl_ab)
        let v = try descriptor([keys, headSize], type, dnnl_ab)
        let c = try descriptor([rows, headSize], dnnl_f32, dnnl_ab)
        var attributes: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attributes), "dnnl_primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(attributes) }
        // int8 scores are scaled in the softmax (see AttentionQuantization for why not here).
        var scale = operands == .int8 ? 1 : 1 / Float(headSize).squareRoot()
        try check(dnnl_primitive_attr_set_output_scales(attributes, 1, 0, &scale), "dnnl_primitive_attr_set_output_scales")
        try Scratchpad.request(on: attributes!)
        var plainAttributes: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&plainAttributes), "dnnl_primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(plainAttributes) }
        try Scratchpad.request(on: plainAttributes!)
        let engine = runtime.engine
        func product(_ name: String, _ source: dnnl_memory_desc_t, _ weights: dnnl_memory_desc_t, _ destination: dnnl_memory_desc_t,
                     _ attributes: dnnl_primitive_attr_t?) throws(OneDNNError) -> Step {
            var (source, weights, destination) = (source, weights, destination)
            var operation = dnnl_matmul_desc_t()
            try check(dnnl_matmul_desc_init(&operation, &source, &weights, nil, &destination), "dnnl_matmul_desc_init(attention \(name))")
            var descriptor: dnnl_primitive_desc_t?
            try check(dnnl_primitive_desc_create(&descriptor, &operation, attributes, engine, nil), "dnnl_primitive_desc_create(attention \(name))")
            defer { dnnl_primitive_desc_destroy(descriptor) }
            return try Step(descriptor!, name: name, arguments: [(Int32(DNNL_ARG_SRC), source), (Int32(DNNL_ARG_WEIGHTS), weights),
                                                                 (Int32(DNNL_ARG_DST), destination)], engine: engine)
        }
        func softmax() throws(OneDNNError) -> Step {
            var (source, destination) = (s, p)
            var operation = dnnl_softmax_v2_desc_t()
            try check(dnnl_softmax_v2_forward_desc_init(&operation, dnnl_forward_inference, dnnl_softmax_accurate, &source, &destination, 1),
                      "dnnl_softmax_v2_forward_desc_init(attention)")
            var descriptor: dnnl_primitive_desc_t?
            try check(dnnl_primitive_desc_create(&descriptor, &operation, plainAttributes, engine, nil), "dnnl_primitive_desc_create(attention softmax)")
            defer { dnnl_primitive_desc_destroy(descriptor) }
            return try Step(descriptor!, name: "softmax", arguments: [(Int32(DNNL_ARG_SRC), source), (Int32(DNNL_ARG_DST), destination)], engine: engine)
        }
        let made = Products(scores: try product("scores", q, k, s, attributes), softmax: operands == .int8 ? nil : try softmax(),
                            context: try product("context", p, v, c, plainAttributes))
        lock.withLock { products[key] = made }
        return made
    }
}
