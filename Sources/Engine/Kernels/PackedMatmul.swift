import COneDNN
import Foundation

/// `y = x · Wᵀ + b` (optionally followed by GELU) for one weight matrix, through oneDNN's matmul
/// primitive with the weights laid out once, at load. What differs by precision (the operands'
/// types, converting or quantising inputs, int8's epilogue) is in ``ProductOperands``.
///
/// The layout is the primitive's own choice (`format_tag_any`) where that gives a packed
/// (blocked) format, as on AVX-512 CPUs; where oneDNN has no packed format (AVX2 here), the
/// weights stay in `Linear`'s own N×K layout (`ba`), measured at 122-133 GFLOP/s against 67-77
/// for K×N. Primitives depend on the row count M, so they are cached per M. A product of a few
/// rows runs in the engine's own loop on the same weights where the CPU allows
/// (``FewRowsProduct``).
final class PackedMatmul: @unchecked Sendable {
    let inputSize: Int
    let outputSize: Int
    let gelu: Bool
    /// The operands and their precision's state; outputs are fp32 either way.
    let operands: ProductOperands
    var precision: Precision { operands.precision }
    private let runtime: OneDNNRuntime
    private let weightsDescriptor: dnnl_memory_desc_t
    private let weights: dnnl_memory_t
    private let weightStorage: UnsafeMutableRawPointer
    private let bias: dnnl_memory_t
    private let biasStorage: UnsafeMutablePointer<Float>
    private let attributes: dnnl_primitive_attr_t
    /// Products of a few rows, where the engine's own loop runs them (see ``FewRowsProduct``).
    let fewRows: FewRowsProduct?
    /// The implementation oneDNN picked (for logs and `bench`).
    let implementation: String

    /// - Parameters:
    ///   - weight: `outputSize × inputSize` row-major (PyTorch `Linear.weight`).
    ///   - bias: `outputSize` values.
    ///   - outlierColumns: int8 only: input columns computed apart in fp32 (see ``OutlierColumns``).
    init(weight: UnsafePointer<Float>, bias biasValues: UnsafePointer<Float>, outputSize: Int, inputSize: Int,
         gelu: Bool, precision: Precision = .fp32, outlierColumns: [Int] = [], runtime: OneDNNRuntime) throws(OneDNNError) {
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.gelu = gelu
        self.runtime = runtime
        // int8: quantise per output channel; the primitive applies those scales (fixed now, as its
        // fast kernel requires), the per-row activation scales, bias and GELU follow it.
        let quantized: QuantizedWeights?
        switch precision {
        case .fp32: operands = .fp32; quantized = nil
        case .bf16: operands = .bf16; quantized = nil
        case .int8:
            let made = Int8Operands.make(weight, outputs: outputSize, inputs: inputSize, outlierColumns: outlierColumns)
            operands = .int8(made.operands)
            quantized = made.weights
        }

        var attributes: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attributes), "dnnl_primitive_attr_create")
        try Scratchpad.request(on: attributes!)
        if gelu && operands.primitiveFinishes {
            var postOps: dnnl_post_ops_t?
            try check(dnnl_post_ops_create(&postOps), "dnnl_post_ops_create")
            try check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_gelu_erf, 0, 0), "dnnl_post_ops_append_eltwise")
            try check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "dnnl_primitive_attr_set_post_ops")
            dnnl_post_ops_destroy(postOps)
        }
        if let quantized {
            try check(dnnl_primitive_attr_set_output_scales(attributes, dnnl_dim_t(outputSize), 1 << 1, quantized.scales),
                      "dnnl_primitive_attr_set_output_scales")
        }
        self.attributes = attributes!

        // Ask the primitive which weight layout it wants, for a typical row count.
        let weightType = precision.weightDataType
        // The weights as given: fp32 N×K, or s8 N×K once quantised.
        let plain = try matrixDescriptor(rows: inputSize, columns: outputSize, tag: dnnl_ba, type: quantized == nil ? dnnl_f32 : dnnl_s8)
        var any = try matrixDescriptor(rows: inputSize, columns: outputSize, tag: dnnl_format_tag_any, type: weightType)
        let probe = try Self.primitiveDescriptor(rows: 256, weights: &any, inputSize: inputSize, outputSize: outputSize,
                                                 precision: precision, addsBias: operands.primitiveFinishes, attributes: attributes!, runtime: runtime)
        defer { dnnl_primitive_desc_destroy(probe) }
        var chosen = dnnl_primitive_desc_query_md(probe, dnnl_query_weights_md, 0)!.pointee
        let name = Self.implementationName(probe)
        // A plain K×N choice is slower than N×K on AVX2; keep N×K unless the layout is blocked.
        let plainCopy = plain
        let blocked = chosen.format_kind == dnnl_blocked && chosen.format_desc.blocking.inner_nblks > 0
        if !blocked { chosen = try matrixDescriptor(rows: inputSize, columns: outputSize, tag: dnnl_ba, type: weightType) }
        // A reorder lays out (and, for bf16, converts) the weights unless they already are in the
        // chosen layout: fp32 or quantised s8, N×K.
        let packed = blocked || operands.convertsWeights
        self.weightsDescriptor = chosen
        self.implementation = name
        self.fewRows = FewRowsProduct(precision: precision, layout: chosen, scales: quantized?.scales, inputSize: inputSize, outputSize: outputSize)

        let byteCount = dnnl_memory_desc_get_size(&chosen)
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 64), alignment: 64)
        self.weightStorage = storage
        var weightsMemory: dnnl_memory_t?
        try check(dnnl_memory_create(&weightsMemory, &chosen, runtime.engine, storage), "dnnl_memory_create(weights)")
        self.weights = weightsMemory!
        func place(_ data: UnsafeRawPointer, byteCount: Int) throws(OneDNNError) {
            if packed {
                try Self.reorder(UnsafeMutableRawPointer(mutating: data), plainCopy, into: weightsMemory!, chosen, runtime: runtime)
            } else {
                storage.copyMemory(from: data, byteCount: byteCount)
            }
        }
        if let quantized {
            var failure: OneDNNError?
            quantized.values.withUnsafeBytes { bytes in
                do throws(OneDNNError) { try place(bytes.baseAddress!, byteCount: bytes.count) } catch { failure = error }
            }
            if let failure { throw failure }
        } else {
            try place(weight, byteCount: outputSize * inputSize * 4)
        }

        biasStorage = UnsafeMutablePointer<Float>.allocate(capacity: outputSize)
        biasStorage.initialize(from: biasValues, count: outputSize)
        var biasDescriptor = try matrixDescriptor(rows: 1, columns: outputSize, tag: dnnl_ab)
        var biasMemory: dnnl_memory_t?
        try check(dnnl_memory_create(&biasMemory, &biasDescriptor, runtime.engine, biasStorage), "dnnl_memory_create(bias)")
        self.bias = biasMemory!
    }

    /// Lays out (and converts) plain weights into the primitive's format.
    private static func reorder(_ data: UnsafeMutableRawPointer, _ plain: dnnl_memory_desc_t, into target: dnnl_memory_t,
                                _ chosen: dnnl_memory_desc_t, runtime: OneDNNRuntime) throws(OneDNNError) {
        var plain = plain
        var chosen = chosen
        var source: dnnl_memory_t?
        try check(dnnl_memory_create(&source, &plain, runtime.engine, data), "dnnl_memory_create(plain weights)")
        defer { dnnl_memory_destroy(source) }
        var reorderDescriptor: dnnl_primitive_desc_t?
        try check(dnnl_reorder_primitive_desc_create(&reorderDescriptor, &plain, runtime.engine, &chosen, runtime.engine, nil),
                  "dnnl_reorder_primitive_desc_create")
        defer { dnnl_primitive_desc_destroy(reorderDescriptor) }
        var reorder: dnnl_primitive_t?
        try check(dnnl_primitive_create(&reorder, reorderDescriptor), "dnnl_primitive_create(reorder)")
        defer { dnnl_primitive_destroy(reorder) }
        var args = [dnnl_exec_arg_t(arg: Int32(DNNL_ARG_FROM), memory: source), dnnl_exec_arg_t(arg: Int32(DNNL_ARG_TO), memory: target)]
        try check(dnnl_primitive_execute(reorder, runtime.stream, 2, &args), "dnnl_primitive_execute(reorder)")
        try check(dnnl_stream_wait(runtime.stream), "dnnl_stream_wait")
    }

    deinit {
        for entry in cache.values { entry.destroy() }
        dnnl_memory_destroy(weights)
        dnnl_memory_destroy(bias)
        dnnl_primitive_attr_destroy(attributes)
        weightStorage.deallocate()
        biasStorage.deallocate()
    }

    /// Bytes of weights this layer keeps resident.
    var residentBytes: Int {
        var descriptor = weightsDescriptor
        return dnnl_memory_desc_get_size(&descriptor) + outputSize * 4 + operands.residentBytes
    }

    /// A primitive and its source/destination memories for one row count.
    private final class Instance {
        let primitive: dnnl_primitive_t
        let source: dnnl_memory_t
        let destination: dnnl_memory_t
        /// GELU in place on the output, where the primitive does not apply it (int8: it follows the
        /// epilogue; the few-rows loop).
        let activation: dnnl_primitive_t?
        /// The product's and the activation's scratchpads (see ``Scratchpad``), if they need one.
        let scratchpad: (memory: dnnl_memory_t, bytes: Int)?
        let activationScratchpad: (memory: dnnl_memory_t, bytes: Int)?
        var lastUse: UInt64 = 0
        init(primitive: dnnl_primitive_t, source: dnnl_memory_t, destination: dnnl_memory_t, activation: dnnl_primitive_t?,
             scratchpad: (memory: dnnl_memory_t, bytes: Int)?, activationScratchpad: (memory: dnnl_memory_t, bytes: Int)?) {
            self.primitive = primitive
            self.source = source
            self.destination = destination
            self.activation = activation
            self.scratchpad = scratchpad
            self.activationScratchpad = activationScratchpad
        }
        func destroy() {
            dnnl_primitive_destroy(primitive)
            if let activation { dnnl_primitive_destroy(activation) }
            dnnl_memory_destroy(source)
            dnnl_memory_destroy(destination)
            if let scratchpad { dnnl_memory_destroy(scratchpad.memory) }
            if let activationScratchpad { dnnl_memory_destroy(activationScratchpad.memory) }
        }
    }

    /// Primitives by lane and row count: a primitive's thread count is fixed when it is made, and
    /// its memory objects' data handles are set at each call, so each lane has its own.
    private var cache: [InstanceKey: Instance] = [:]
    private struct InstanceKey: Hashable {
        let lane: Int
        let rows: Int
    }
    /// Time spent in ``run(rows:input:output:lane:)`` by stage since the last ``takeProfile()``.
    private let clock = StageClock()
    private var uses: UInt64 = 0
    /// Guards ``cache`` and ``uses``; held only to find or make an instance.
    private let cacheLock = NSLock()
    /// Row counts kept per lane: a batch's last block has a row count of its own.
    private static let cacheLimit = 48

    /// Computes `rows` rows on `lane`: `output[rows × outputSize] = input[rows × inputSize] · Wᵀ + b`.
    /// `fewRowsLoop: false` runs oneDNN's primitive where the engine's own loop would (for the test
    /// that compares the two).
    func run(rows: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, lane: ComputeLane,
             fewRowsLoop: Bool = true) throws(OneDNNError) {
        guard rows > 0 else { return }
        var lap = StageClock.now()
        let buffer = lane.conversionBuffer
        buffer.lock.lock()
        defer { buffer.lock.unlock() }
        lane.enter()
        let instance = try self.instance(rows: rows, lane: lane)
        let source = operands.prepare(input, rows: rows, columns: inputSize, buffer: buffer, threads: lane.threads)
        lap = clock.lap(.productInputs, since: lap)
        let stream = try lane.stream(0, engine: runtime.engine)
        // The activation below runs on the destination either way.
        try check(dnnl_memory_set_data_handle(instance.destination, output), "dnnl_memory_set_data_handle")
        let loop = fewRowsLoop ? fewRows.flatMap { $0.takes(rows: rows) ? $0 : nil } : nil
        if let loop {
            loop.run(rows: rows, input: source, weights: weightStorage, bias: operands.primitiveFinishes ? biasStorage : nil,
                     output: output, threads: lane.threads)
        } else {
            try check(dnnl_memory_set_data_handle(instance.source, source), "dnnl_memory_set_data_handle")
            var args = [
                dnnl_exec_arg_t(arg: Int32(DNNL_ARG_SRC_0), memory: instance.source),
                dnnl_exec_arg_t(arg: Int32(DNNL_ARG_WEIGHTS_0), memory: weights),
                dnnl_exec_arg_t(arg: Int32(DNNL_ARG_DST_0), memory: instance.destination),
            ]
            if operands.primitiveFinishes { args.append(dnnl_exec_arg_t(arg: Int32(DNNL_ARG_BIAS), memory: bias)) }
            if let scratchpad = instance.scratchpad {
                try check(dnnl_memory_set_data_handle(scratchpad.memory, lane.scratchpadBuffer.reserve(bytes: scratchpad.bytes)), "dnnl_memory_set_data_handle")
                args.append(dnnl_exec_arg_t(arg: Int32(DNNL_ARG_SCRATCHPAD), memory: scratchpad.memory))
            }
            try check(dnnl_primitive_execute(instance.primitive, stream, Int32(args.count), &args), "dnnl_primitive_execute(matmul)")
            try check(dnnl_stream_wait(stream), "dnnl_stream_wait")
        }
        lap = clock.lap(.products, since: lap)
        operands.finish(output, rows: rows, columns: outputSize, input: input, inputColumns: inputSize, buffer: buffer,
                        bias: biasStorage, threads: lane.threads)
        lap = clock.lap(.productOutputs, since: lap)
        // GELU follows here where the primitive did not apply it: at int8, and after the loop.
        if let activation = instance.activation, !operands.primitiveFinishes || loop != nil {
            var activationArgs = [dnnl_exec_arg_t(arg: Int32(DNNL_ARG_SRC), memory: instance.destination),
                                  dnnl_exec_arg_t(arg: Int32(DNNL_ARG_DST), memory: instance.destination)]
            if let scratchpad = instance.activationScratchpad {
                try check(dnnl_memory_set_data_handle(scratchpad.memory, lane.scratchpadBuffer.reserve(bytes: scratchpad.bytes)), "dnnl_memory_set_data_handle")
                activationArgs.append(dnnl_exec_arg_t(arg: Int32(DNNL_ARG_SCRATCHPAD), memory: scratchpad.memory))
            }
            try check(dnnl_primitive_execute(activation, stream, Int32(activationArgs.count), &activationArgs), "dnnl_primitive_execute(gelu)")
            try check(dnnl_stream_wait(stream), "dnnl_stream_wait")
            clock.lap(.gelu, since: lap)
        }
    }

    /// Time spent by stage since the last call, and restarts the count.
    func takeProfile() -> PassProfile {
        clock.take()
    }

    /// The lane's primitive for `rows` rows, made on first use (with the lane's team size, set by
    /// the caller). Only the lane's own least recently used instance is ever evicted: another
    /// lane's may be running.
    private func instance(rows: Int, lane: ComputeLane) throws(OneDNNError) -> Instance {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        uses += 1
        let key = InstanceKey(lane: lane.id, rows: rows)
        if let found = cache[key] {
            found.lastUse = uses
            return found
        }
        let owned = cache.filter { $0.key.lane == lane.id }
        if owned.count >= Self.cacheLimit, let oldest = owned.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            oldest.value.destroy()
            cache[oldest.key] = nil
        }
        var descriptor = weightsDescriptor
        let primitiveDescriptor = try Self.primitiveDescriptor(rows: rows, weights: &descriptor, inputSize: inputSize,
                                                               outputSize: outputSize, precision: precision, addsBias: operands.primitiveFinishes,
                                                               attributes: attributes, runtime: runtime)
        defer { dnnl_primitive_desc_destroy(primitiveDescriptor) }
        var primitive: dnnl_primitive_t?
        try check(dnnl_primitive_create(&primitive, primitiveDescriptor), "dnnl_primitive_create(matmul)")
        let scratchpad = try Scratchpad.memory(for: primitiveDescriptor, engine: runtime.engine)
        var sourceDescriptor = try matrixDescriptor(rows: rows, columns: inputSize, tag: dnnl_ab, type: precision.dataType)
        var destinationDescriptor = try matrixDescriptor(rows: rows, columns: outputSize, tag: dnnl_ab)
        var source: dnnl_memory_t?
        var destination: dnnl_memory_t?
        try check(dnnl_memory_create(&source, &sourceDescriptor, runtime.engine, nil), "dnnl_memory_create(src)")
        try check(dnnl_memory_create(&destination, &destinationDescriptor, runtime.engine, nil), "dnnl_memory_create(dst)")
        var activation: dnnl_primitive_t?
        var activationScratchpad: (memory: dnnl_memory_t, bytes: Int)?
        if gelu && (!operands.primitiveFinishes || fewRows?.takes(rows: rows) == true) {
            var operation = dnnl_eltwise_desc_t()
            try check(dnnl_eltwise_forward_desc_init(&operation, dnnl_forward_inference, dnnl_eltwise_gelu_erf, &destinationDescriptor, 0, 0),
                      "dnnl_eltwise_forward_desc_init")
            var activationAttributes: dnnl_primitive_attr_t?
            try check(dnnl_primitive_attr_create(&activationAttributes), "dnnl_primitive_attr_create")
            defer { dnnl_primitive_attr_destroy(activationAttributes) }
            try Scratchpad.request(on: activationAttributes!)
            var descriptor: dnnl_primitive_desc_t?
            try check(dnnl_primitive_desc_create(&descriptor, &operation, activationAttributes, runtime.engine, nil), "dnnl_primitive_desc_create(gelu)")
            defer { dnnl_primitive_desc_destroy(descriptor) }
            try check(dnnl_primitive_create(&activation, descriptor), "dnnl_primitive_create(gelu)")
            activationScratchpad = try Scratchpad.memory(for: descriptor!, engine: runtime.engine)
        }
        let instance = Instance(primitive: primitive!, source: source!, destination: destination!, activation: activation,
                                scratchpad: scratchpad, activationScratchpad: activationScratchpad)
        instance.lastUse = uses
        cache[key] = instance
        return instance
    }

    private static func primitiveDescriptor(rows: Int, weights: inout dnnl_memory_desc_t, inputSize: Int, outputSize: Int, precision: Precision,
                                            addsBias: Bool, attributes: dnnl_primitive_attr_t, runtime: OneDNNRuntime) throws(OneDNNError) -> dnnl_primitive_desc_t {
        var source = try matrixDescriptor(rows: rows, columns: inputSize, tag: dnnl_ab, type: precision.dataType)
        var bias = try matrixDescriptor(rows: 1, columns: outputSize, tag: dnnl_ab)
        var destination = try matrixDescriptor(rows: rows, columns: outputSize, tag: dnnl_ab)
        var operation = dnnl_matmul_desc_t()
        // int8 adds the bias after the per-row scales (``Int8Operands/finish``).
        if addsBias {
            try check(dnnl_matmul_desc_init(&operation, &source, &weights, &bias, &destination), "dnnl_matmul_desc_init")
        } else {
            try check(dnnl_matmul_desc_init(&operation, &source, &weights, nil, &destination), "dnnl_matmul_desc_init")
        }
        var descriptor: dnnl_primitive_desc_t?
        try check(dnnl_primitive_desc_create(&descriptor, &operation, attributes, runtime.engine, nil), "dnnl_primitive_desc_create(matmul)")
        return descriptor!
    }

    private static func implementationName(_ descriptor: dnnl_primitive_desc_t) -> String {
        var name: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &name) == dnnl_success, let name else { return "unknown" }
        return String(cString: name)
    }
}

/// A growable buffer for converted (bf16) or quantised (u8) inputs, one per lane, shared by the
/// layers; ``PackedMatmul/run(rows:input:output:lane:)`` holds its lock from conversion to the end
/// of the product.
final class ConversionBuffer: @unchecked Sendable {
    let lock = NSLock()
    private var storage: UnsafeMutableRawPointer?
    private var capacity = 0

    /// At least `bytes` bytes, 64-byte aligned; call with ``lock`` held.
    func reserve(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > capacity {
            storage?.deallocate()
            storage = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            capacity = bytes
        }
        return storage!
    }
}
