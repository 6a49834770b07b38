import Foundation

/// Opens a checkpoint by its format: `.safetensors`, or PyTorch's zip (`.bin`, `.pt`, `.pth`).
public func openWeightFile(at url: URL) throws(WeightLoadError) -> any WeightFile {
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw .missingFile(path: url.path, purpose: "model weights")
    }
    if url.pathExtension == "safetensors" { return try SafetensorsFile(path: url.path) }
    return try PyTorchCheckpoint(path: url.path)
}
