import COneDNN
import Foundation

/// `y = x · Wᵀ + b` (optionally followed by GELU) for one weight matrix, through oneDNN's matmul
/// primitive with the weights laid out once, at load.
///
/// The layout is the primitive's own choice (`format_tag_any`) where that gives a packed
/// (blocked) format, as on AVX-512 CPUs; where oneDNN has no packed format (AVX2 here), the
/// weights stay in `Linear`'s own N×K layout (`ba`), measured at 122-133 GFLOP/s against 67-77
/// for K×N. Primitives depend on the row count M, so they are cached per M.
final class PackedMatmul: @unchecked Sendable {
    let inputSize: Int
    let outputSize: Int
    let gelu: Bool
    /// The operands' format; outputs are fp32 either way.
    let precision: Precision
    private let runtime: OneDNNRuntime
    private let weightsDescriptor: dnnl_memory_desc_t
    private let weights: dnnl_memory_t
    private let weightStorage: UnsafeMutableRawPointer
    private let bias: dnnl_memory_t
    private let biasStorage: UnsafeMutablePointer<Float>
    private let attributes: dnnl_primitive_attr_t
    /// The implementation oneDNN picked (for logs and `bench`).
    let implementation: String

    /// - Parameters:
    ///   - weight: `outputSize × inputSize` row-major (PyTorch `Linear.weight`).
    ///   - bias: `outputSize` values.
    init(weight: UnsafePointer<Float>, bias biasValues: UnsafePointer<Float>, outputSize: Int, inputSize: Int,
         gelu: Bool, precision: Precision = .fp32, runtime: OneDNNRuntime) throws(OneDNNError) {
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.gelu = gelu
        self.precision = precision
        self.runtime = runtime

        var attributes: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attributes), "dnnl_primitive_attr_create")
        if gelu {
            var postOps: dnnl_post_ops_t?
            try check(dnnl_post_ops_create(&postOps), "dnnl_post_ops_create")
            try check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_gelu_erf, 0, 0), "dnnl_post_ops_append_eltwise")
            try check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "dnnl_primitive_attr_set_post_ops")
            dnnl_post_ops_destroy(postOps)
        }
        self.attributes = attributes!

        // Ask the primitive which weight layout it wants, for a typical row count.
        let plain = try matrixDescriptor(rows: inputSize, columns: outputSize, tag: dnnl_ba)
        var any = try matrixDescriptor(rows: inputSize, columns: outputSize, tag: dnnl_format_tag_any, type: precision.dataType)
        let probe = try Self.primitiveDescriptor(rows: 256, weights: &any, inputSize: inputSize, outputSize: outputSize,
                                                 precision: precision, attributes: attributes!, runtime: runtime)
        defer { dnnl_primitive_desc_destroy(probe) }
        var chosen = dnnl_primitive_desc_query_md(probe, dnnl_query_weights_md, 0)!.pointee
        let name = Self.implementationName(probe)
        // A plain K×N choice is slower than N×K on AVX2; keep N×K unless the layout is blocked.
        var plainCopy = plain
        let blocked = chosen.format_kind == dnnl_blocked && chosen.format_desc.blocking.inner_nblks > 0
        if !blocked { chosen = try matrixDescriptor(rows: inputSize, columns: outputSize, tag: dnnl_ba, type: precision.dataType) }
        // A reorder lays out (and converts) the weights unless they are already fp32 N×K.
        let packed = blocked || precision != .fp32
        self.weightsDescriptor = chosen
        self.implementation = name

        let byteCount = dnnl_memory_desc_get_size(&chosen)
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 64), alignment: 64)
        self.weightStorage = storage
        var weightsMemory: dnnl_memory_t?
        try check(dnnl_memory_create(&weightsMemory, &chosen, runtime.engine, storage), "dnnl_memory_create(weights)")
        self.weights = weightsMemory!
        if packed {
            var source: dnnl_memory_t?
            try check(dnnl_memory_create(&source, &plainCopy, runtime.engine, UnsafeMutableRawPointer(mutating: weight)), "dnnl_memory_create(plain weights)")
            defer { dnnl_memory_destroy(source) }
            var reorderDescriptor: dnnl_primitive_desc_t?
            try check(dnnl_reorder_primitive_desc_create(&reorderDescriptor, &plainCopy, runtime.engine, &chosen, runtime.engine, nil),
                      "dnnl_reorder_primitive_desc_create")
            defer { dnnl_primitive_desc_destroy(reorderDescriptor) }
            var reorder: dnnl_primitive_t?
            try check(dnnl_primitive_create(&reorder, reorderDescriptor), "dnnl_primitive_create(reorder)")
            defer { dnnl_primitive_destroy(reorder) }
            var args = [dnnl_exec_arg_t(arg: Int32(DNNL_ARG_FROM), memory: source), dnnl_exec_arg_t(arg: Int32(DNNL_ARG_TO), memory: weightsMemory)]
            try check(dnnl_primitive_execute(reorder, runtime.stream, 2, &args), "dnnl_primitive_execute(reorder)")
            try check(dnnl_stream_wait(runtime.stream), "dnnl_stream_wait")
        } else {
            storage.copyMemory(from: weight, byteCount: outputSize * inputSize * 4)
        }

        biasStorage = UnsafeMutablePointer<Float>.allocate(capacity: outputSize)
        biasStorage.initialize(from: biasValues, count: outputSize)
        var biasDescriptor = try matrixDescriptor(rows: 1, columns: outputSize, tag: dnnl_ab)
        var biasMemory: dnnl_memory_t?
        try check(dnnl_memory_create(&biasMemory, &biasDescriptor, runtime.engine, biasStorage), "dnnl_memory_create(bias)")
        self.bias = biasMemory!
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
        return dnnl_memory_desc_get_size(&descriptor) + outputSize * 4
    }

    /// A primitive and its source/destination memories for one row count.
    private final class Instance {
        let primitive: dnnl_primitive_t
        let source: dnnl_memory_t
        let destination: dnnl_memory_t
        var lastUse: UInt64 = 0
        init(primitive: dnnl_primitive_t, source: dnnl_memory_t, destination: dnnl_memory_t) {
            self.primitive = primitive
            self.source = source
            self.destination = destination
        }
        func destroy() {
            dnnl_primitive_destroy(primitive)
            dnnl_memory_destroy(source)
            dnnl_memory_destroy(destination)
        }
    }

    private var cache: [Int: Instance] = [:]
    /// Time spent in ``run(rows:input:output:)`` since the last ``takeElapsed()``.
    private var elapsedNanoseconds: UInt64 = 0
    private var uses: UInt64 = 0
    private let cacheLock = NSLock()
    private static let cacheLimit = 48
    /// bf16 copies of inputs: one buffer for all layers (calls never overlap within a pass; a
    /// lock keeps passes of different models apart).
    private static let conversionBuffer = ConversionBuffer()

    /// Computes `rows` rows: `output[rows × outputSize] = input[rows × inputSize] · Wᵀ + b`.
    func run(rows: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) throws(OneDNNError) {
        guard rows > 0 else { return }
        cacheLock.lock()
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            elapsedNanoseconds += DispatchTime.now().uptimeNanoseconds - start
            cacheLock.unlock()
        }
        if precision == .bf16 { Self.conversionBuffer.lock.lock() }
        defer { if precision == .bf16 { Self.conversionBuffer.lock.unlock() } }
        // The OpenMP thread count is per calling thread; set it for whichever thread calls.
        omp_set_num_threads(Int32(runtime.threads))
        let instance = try self.instance(rows: rows)
        try check(dnnl_memory_set_data_handle(instance.source, UnsafeMutableRawPointer(mutating: input)), "dnnl_memory_set_data_handle")
        try check(dnnl_memory_set_data_handle(instance.destination, output), "dnnl_memory_set_data_handle")
        var args = [
            dnnl_exec_arg_t(arg: Int32(DNNL_ARG_SRC_0), memory: instance.source),
            dnnl_exec_arg_t(arg: Int32(DNNL_ARG_WEIGHTS_0), memory: weights),
            dnnl_exec_arg_t(arg: Int32(DNNL_ARG_BIAS), memory: bias),
            dnnl_exec_arg_t(arg: Int32(DNNL_ARG_DST_0), memory: instance.destination),
        ]
        if precision == .bf16 {
            // The primitive reads bf16 rows: convert this call's input into the shared buffer.
            let count = rows * inputSize
            let converted = Self.conversionBuffer.reserve(count)
            BFloat16Conversion.convert(input, into: converted, count: count, threads: runtime.threads)
            try check(dnnl_memory_set_data_handle(instance.source, converted), "dnnl_memory_set_data_handle")
        }
        try check(dnnl_primitive_execute(instance.primitive, runtime.stream, Int32(args.count), &args), "dnnl_primitive_execute(matmul)")
        try check(dnnl_stream_wait(runtime.stream), "dnnl_stream_wait")
    }

    /// Seconds spent computing since the last call, and restarts the count.
    func takeElapsed() -> Double {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        let seconds = Double(elapsedNanoseconds) / 1e9
        elapsedNanoseconds = 0
        return seconds
    }

    private func instance(rows: Int) throws(OneDNNError) -> Instance {
        uses += 1
        if let found = cache[rows] {
            found.lastUse = uses
            return found
        }
        if cache.count >= Self.cacheLimit, let oldest = cache.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            oldest.value.destroy()
            cache[oldest.key] = nil
        }
        var descriptor = weightsDescriptor
        let primitiveDescriptor = try Self.primitiveDescriptor(rows: rows, weights: &descriptor, inputSize: inputSize,
                                                               outputSize: outputSize, precision: precision, attributes: attributes, runtime: runtime)
        defer { dnnl_primitive_desc_destroy(primitiveDescriptor) }
        var primitive: dnnl_primitive_t?
        try check(dnnl_primitive_create(&primitive, primitiveDescriptor), "dnnl_primitive_create(matmul)")
        var sourceDescriptor = try matrixDescriptor(rows: rows, columns: inputSize, tag: dnnl_ab, type: precision.dataType)
        var destinationDescriptor = try matrixDescriptor(rows: rows, columns: outputSize, tag: dnnl_ab)
        var source: dnnl_memory_t?
        var destination: dnnl_memory_t?
        try check(dnnl_memory_create(&source, &sourceDescriptor, runtime.engine, nil), "dnnl_memory_create(src)")
        try check(dnnl_memory_create(&destination, &destinationDescriptor, runtime.engine, nil), "dnnl_memory_create(dst)")
        let instance = Instance(primitive: primitive!, source: source!, destination: destination!)
        instance.lastUse = uses
        cache[rows] = instance
        return instance
    }

    private static func primitiveDescriptor(rows: Int, weights: inout dnnl_memory_desc_t, inputSize: Int, outputSize: Int, precision: Precision,
                                            attributes: dnnl_primitive_attr_t, runtime: OneDNNRuntime) throws(OneDNNError) -> dnnl_primitive_desc_t {
        var source = try matrixDescriptor(rows: rows, columns: inputSize, tag: dnnl_ab, type: precision.dataType)
        var bias = try matrixDescriptor(rows: 1, columns: outputSize, tag: dnnl_ab)
        var destination = try matrixDescriptor(rows: rows, columns: outputSize, tag: dnnl_ab)
        var operation = dnnl_matmul_desc_t()
        try check(dnnl_matmul_desc_init(&operation, &source, &weights, &bias, &destination), "dnnl_matmul_desc_init")
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

/// A growable bf16 buffer shared by the layers; ``PackedMatmul/run(rows:input:output:)`` holds its
/// lock from conversion to the end of the product.
final class ConversionBuffer: @unchecked Sendable {
    let lock = NSLock()
    private var storage: UnsafeMutablePointer<UInt16>?
    private var capacity = 0

    /// At least `count` elements; call with ``lock`` held.
    func reserve(_ count: Int) -> UnsafeMutablePointer<UInt16> {
        if count > capacity {
            storage?.deallocate()
            storage = UnsafeMutablePointer<UInt16>.allocate(capacity: count)
            capacity = count
        }
        return storage!
    }
}
