import Foundation

/// An embedding table read row by row with `pread`, straight from the checkpoint file.
///
/// The word-embedding table is 1 GB and a batch needs a few thousand scattered rows. Read through
/// the memory map, each row faulted in a whole page-cache folio (1,000 random rows added 786 MB of
/// resident memory on this kernel, even with `MADV_RANDOM`); `pread` copies just the row, so the
/// table costs no resident memory and the page cache stays shared and reclaimable. Tables that
/// are not plain f32 in a file (half precision, or not memory-mapped) are converted into memory.
final class EmbeddingRows: @unchecked Sendable {
    let rows: Int
    let width: Int
    private let descriptor: Int32
    private let offset: Int
    private let inMemory: FloatBuffer?

    init(_ tensor: TensorView) throws(WeightLoadError) {
        guard tensor.shape.count == 2 else {
            throw .wrongShape(tensor: tensor.name, expected: [-1, -1], found: tensor.shape)
        }
        rows = tensor.shape[0]
        width = tensor.shape[1]
        if tensor.dtype == .float32, let file = tensor.owner as? MappedFile, let base = file.bytes.baseAddress,
           let start = tensor.bytes.baseAddress, start >= base {
            let descriptor = open(file.path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw .unreadable(file: file.path, reason: String(cString: strerror(errno))) }
            self.descriptor = descriptor
            self.offset = start - base
            self.inMemory = nil
        } else {
            self.descriptor = -1
            self.offset = 0
            self.inMemory = try FloatBuffer(copying: tensor)
        }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Copies `count` consecutive rows starting at `row` into `destination`.
    func read(row: Int, count: Int = 1, into destination: UnsafeMutablePointer<Float>) throws(EngineError) {
        precondition(row >= 0 && row + count <= rows, "embedding row out of range")
        let bytes = count * width * MemoryLayout<Float>.size
        if let inMemory {
            destination.update(from: inMemory.pointer + row * width, count: count * width)
            return
        }
        var done = 0
        while done < bytes {
            let n = pread(descriptor, UnsafeMutableRawPointer(destination) + done, bytes - done,
                          off_t(offset + row * width * MemoryLayout<Float>.size + done))
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                throw .kernel("reading embedding row \(row) from the weights file failed: \(n < 0 ? String(cString: strerror(errno)) : "end of file")")
            }
            done += n
        }
    }
}
