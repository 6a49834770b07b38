import Engine
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Scheduling
import Server
import Synchronization
import TestSupport
import Tokenizer

/// An ``InferenceBackend`` that answers at once with outputs made from the token ids, and records
/// what it was asked: the routes' shapes are checked against these values, and a request refused
/// before inference is seen never to reach it.
final class FakeBackend: InferenceBackend, Sendable {
    let dimension: Int
    private let calls = Mutex<[[[Int32]]]>([])

    init(dimension: Int) {
        self.dimension = dimension
    }

    /// The sequences of every call so far, in order.
    var received: [[[Int32]]] { calls.withLock { $0 } }

    /// Dense: a unit vector whose first component grows with the sequence's length.
    func dense(_ sequence: [Int32]) -> [Float] {
        var vector = [Float](repeating: 1, count: dimension)
        vector[0] = Float(sequence.count)
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return vector.map { $0 / norm }
    }

    /// Sparse: each distinct id with weight id / 1000.
    func sparse(_ sequence: [Int32]) -> SparseEmbedding {
        let ids = Array(Set(sequence)).sorted()
        return SparseEmbedding(ids: ids, weights: ids.map { Float($0) / 1000 })
    }

    /// ColBERT: one row per token after `<s>`, row r filled with r.
    func colbert(_ sequence: [Int32]) -> MultiVector {
        let rows = max(0, sequence.count - 1)
        return MultiVector(count: rows, dimension: 4, values: (0..<rows).flatMap { [Float](repeating: Float($0), count: 4) })
    }

    func encode(_ sequences: [[Int32]], outputs: EmbeddingOutputs, deadline: ContinuousClock.Instant,
                isAbandoned: @escaping @Sendable () -> Bool) async throws -> InferenceResult {
        calls.withLock { $0.append(sequences) }
        let embeddings = sequences.map { sequence in
            SequenceEmbedding(dense: outputs.contains(.dense) ? dense(sequence) : nil,
                              sparse: outputs.contains(.sparse) ? sparse(sequence) : nil,
                              colbert: outputs.contains(.colbert) ? colbert(sequence) : nil)
        }
        return InferenceResult(embeddings: embeddings, queueSeconds: 0, inferenceSeconds: 0)
    }
}

/// The server's router over the tiny model's tokenizer and a ``FakeBackend``, tested in-process
/// with Hummingbird's `.router` framework (no sockets, no engine).
struct RouterFixture {
    static let tinyModel = RepositoryFixtures.tinyModel
    static let model: Result<BGEM3Model, any Error> = Result { try BGEM3Model(directory: tinyModel, threads: 1) }

    let backend: FakeBackend
    let application: Application<RouterResponder<ServerRequestContext>>
    let tokenizer: UnigramTokenizerView

    init(limits: ServerLimits = ServerLimits()) async throws {
        let model = try Self.model.get()
        let state = ModelState()
        let decision = PrecisionDecision(requested: .fixed(.fp32), running: .fp32, source: .notNeeded, measurements: [], note: nil)
        await state.finishLoading(model, scheduler: BatchScheduler(encoder: model, settings: SchedulerSettings(), gauge: nil), precision: decision)
        let admission = RequestAdmission(limits: .init(maxRequests: limits.queueCapacity, maxTokens: limits.queueTokens))
        admission.open(bodyBytes: 256 << 20, resultBytes: 256 << 20)
        backend = FakeBackend(dimension: model.dimension)
        let services = ServerServices(limits: limits, state: state, backend: backend, admission: admission)
        application = Application(router: EmbeddingServer.router(services: services, version: "test", logger: Logger(label: "test")))
        tokenizer = UnigramTokenizerView(model: model)
    }
}

/// The tiny model's own tokenisation, for expected values.
struct UnigramTokenizerView {
    let model: BGEM3Model

    func ids(_ text: String, maxLength: Int? = nil) throws -> [Int32] {
        try model.requireTokenizer().encode(text, options: .init(maxLength: maxLength)).ids
    }
}

extension TestClientProtocol {
    /// POSTs `json` and returns the status and the parsed body.
    func post(_ path: String, _ json: String, headers: HTTPFields = [:]) async throws -> (status: HTTPResponse.Status, body: Any, headers: HTTPFields) {
        var fields = headers
        fields[.contentType] = "application/json"
        return try await execute(uri: path, method: .post, headers: fields, body: ByteBuffer(string: json)) { response in
            let parsed = try JSONSerialization.jsonObject(with: Data(buffer: response.body), options: [.fragmentsAllowed])
            return (response.status, parsed, response.headers)
        }
    }
}
