import Engine
import Scheduling

/// A request's embeddings while its response is written: each is taken out once, written, and
/// then freed, and the request's room in admission shrinks by what it held. A request whose
/// response is 0.4 GB of JSON thus releases its results as the client reads them, and the next
/// large request can be computed meanwhile.
///
/// Used by the one task that writes the response, one item after another.
final class ResultsBeingWritten: @unchecked Sendable {
    private var embeddings: [SequenceEmbedding?]
    private let itemBytes: [Int]
    private var remainingBytes: Int
    private let ticket: AdmissionTicket?

    init(_ embeddings: [SequenceEmbedding], itemBytes: [Int], reservedBytes: Int, ticket: AdmissionTicket?) {
        self.embeddings = embeddings
        self.itemBytes = itemBytes
        remainingBytes = reservedBytes
        self.ticket = ticket
    }

    /// Calls `write` with each input's position and embedding in order; after each call the
    /// embedding is gone and the request's room shrinks by what it held.
    func writeEach(_ write: (Int, SequenceEmbedding) async throws -> Void) async throws {
        for index in embeddings.indices {
            try await write(index, take(index))
            remainingBytes -= itemBytes[index]
            ticket?.shrinkResults(to: remainingBytes)
        }
    }

    private func take(_ index: Int) -> SequenceEmbedding {
        defer { embeddings[index] = nil }
        return embeddings[index] ?? SequenceEmbedding()
    }
}
