import Engine
import Foundation
import Scheduling

/// The operations routes' answers as Codable values (`/health`, `/info`, `/v1/models`): small,
/// whole, encoded by `JSONEncoder`. The embedding routes stream theirs by hand instead
/// (``JSONBodyStream``): a ColBERT answer is hundreds of MB of floats, written as it is computed.

/// `/health`.
struct HealthResponse: Encodable {
    struct Workers: Encodable { let live: Int; let total: Int }
    struct Probe: Encodable {
        let status: String
        var a: Double? = nil
        var b: Double? = nil
        var fallback: String? = nil
    }
    struct Memory: Encodable {
        let limit_bytes: Int
        let limit_source: String
        let resident_at_start_bytes: Int
        let budget_bytes: Int
        let request_bytes: Int
        let rss_bytes: Int
        let workspace_bytes: Int
    }
    struct Admission: Encodable {
        let requests: Int
        let tokens: Int
        let waiting: Int
        let body_bytes: Int
        let body_capacity_bytes: Int
        let result_bytes: Int
        let result_capacity_bytes: Int
    }

    let status: String
    let stage: String
    let workers: Workers
    let probe: Probe
    let memory: Memory?
    let admission: Admission
    let queue_depth: Int?
    let oom_splits: Int?
}

/// `/v1/models` (OpenAI's list).
struct ModelList: Encodable {
    struct Model: Encodable {
        let id: String
        var object = "model"
        let created: Int
        var owned_by = "bgem3"
    }
    var object = "list"
    let data: [Model]
}

/// `/info`: ours, and Text Embeddings Inference's keys, which its integrations read (Dify,
/// RAGFlow, Milvus).
struct InfoResponse: Encodable {
    struct CPU: Encodable {
        let isa: String
        let avx512_bf16: Bool
        let vnni: Bool
        let precisions: [String]
        let int8_levels: String

        static var current: CPU {
            CPU(isa: OneDNNRuntime.effectiveISA, avx512_bf16: Precision.bf16.unsupportedReason == nil, vnni: OneDNNRuntime.hasVNNI,
                precisions: Precision.allCases.filter { $0.unsupportedReason == nil }.map(\.rawValue), int8_levels: Int8Levels.forThisCPU.description)
        }
    }
    struct ModelType: Encodable {
        struct Embedding: Encodable { var pooling = "cls" }
        var embedding = Embedding()
    }

    let model: String
    let model_path: String
    let dimensions: Int
    let max_length: Int
    let engine: String
    let precision: String
    let cpu: CPU
    let threads: Int
    /// Batches computed at once (`BGE_M3_WORKERS`).
    let workers: Int
    let threads_per_worker: Int
    let version: String
    /// Which build of `version` runs (``ExecutableBuild/identity``), the key of its cached probe fits.
    let build: String
    let max_batch: Int
    let model_id: String
    let model_sha: String?
    let model_dtype: String
    var model_type = ModelType()
    let max_input_length: Int
    let max_client_batch_size: Int
    let max_batch_tokens: Int
    let max_concurrent_requests: Int
    let tokenization_workers: Int
    let precision_check: PrecisionCheckInfo?

    /// TEI's `model_dtype` names.
    static func dataType(_ precision: Precision) -> String {
        switch precision {
        case .fp32: return "float32"
        case .bf16: return "bfloat16"
        case .int8: return "int8"
        }
    }

    // Encoded explicitly so that `model_sha` is written as null (TEI's clients read the key).
    private enum Keys: String, CodingKey {
        case model, model_path, dimensions, max_length, engine, precision, cpu, threads, workers, threads_per_worker, version, build, max_batch, model_id, model_sha, model_dtype,
             model_type, max_input_length, max_client_batch_size, max_batch_tokens, max_concurrent_requests, tokenization_workers, precision_check
    }

    func encode(to encoder: any Swift.Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(model, forKey: .model)
        try c.encode(model_path, forKey: .model_path)
        try c.encode(dimensions, forKey: .dimensions)
        try c.encode(max_length, forKey: .max_length)
        try c.encode(engine, forKey: .engine)
        try c.encode(precision, forKey: .precision)
        try c.encode(cpu, forKey: .cpu)
        try c.encode(threads, forKey: .threads)
        try c.encode(workers, forKey: .workers)
        try c.encode(threads_per_worker, forKey: .threads_per_worker)
        try c.encode(version, forKey: .version)
        try c.encode(build, forKey: .build)
        try c.encode(max_batch, forKey: .max_batch)
        try c.encode(model_id, forKey: .model_id)
        try c.encode(model_sha, forKey: .model_sha)
        try c.encode(model_dtype, forKey: .model_dtype)
        try c.encode(model_type, forKey: .model_type)
        try c.encode(max_input_length, forKey: .max_input_length)
        try c.encode(max_client_batch_size, forKey: .max_client_batch_size)
        try c.encode(max_batch_tokens, forKey: .max_batch_tokens)
        try c.encode(max_concurrent_requests, forKey: .max_concurrent_requests)
        try c.encode(tokenization_workers, forKey: .tokenization_workers)
        try c.encodeIfPresent(precision_check, forKey: .precision_check)
    }
}

/// `/info`'s `precision_check`: what was asked, what runs, how it was decided, and the figures.
struct PrecisionCheckInfo: Encodable {
    struct Figures: Encodable {
        let precision: String
        let passes_gates: Bool
        let dense_cosine_min: Float?
        let dense_cosine_mean: Float?
        let top10_overlap: Float?
        let top10_overlap_lexical: Float?
        let top10_overlap_colbert: Float?
        let top10_overlap_hybrid: Float?
        let gate_failures: String?
        let seconds: Double

        init(_ figures: PrecisionFigures) {
            // A figure with nothing to measure (NaN) is null in JSON.
            func finite(_ value: Float) -> Float? { value.isFinite ? value : nil }
            precision = figures.precision
            passes_gates = figures.passes
            dense_cosine_min = finite(figures.denseCosineMin)
            dense_cosine_mean = finite(figures.denseCosineMean)
            top10_overlap = finite(figures.top10OverlapDense)
            top10_overlap_lexical = finite(figures.top10OverlapLexical)
            top10_overlap_colbert = finite(figures.top10OverlapColbert)
            top10_overlap_hybrid = finite(figures.top10OverlapHybrid)
            gate_failures = figures.failure
            seconds = figures.seconds
        }
    }

    let requested: String
    let running: String
    let decided: String
    let measurements: [Figures]
    let note: String?

    init(_ decision: PrecisionDecision) {
        requested = decision.requested.description
        running = decision.running.rawValue
        decided = decision.source.rawValue
        measurements = decision.measurements.map(Figures.init)
        note = decision.note
    }
}
