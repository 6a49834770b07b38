/// Why model weights could not be loaded. Every case names the file and, where there is one, the tensor.
public enum WeightLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    /// The file is not in the format its name promises, or is damaged (truncated, offsets that lie).
    case malformed(file: String, reason: String)
    /// A PyTorch pickle asks for something other than rebuilding tensors; nothing is executed.
    case forbiddenPickle(file: String, reason: String)
    case missingTensor(file: String, tensor: String)
    case wrongShape(tensor: String, expected: [Int], found: [Int])
    case wrongType(tensor: String, expected: String, found: String)
    /// `config.json` is missing, malformed, or disagrees with the weights.
    case invalidConfig(file: String, reason: String)
    /// A required model file is absent.
    case missingFile(path: String, purpose: String)
    /// The precision asked for does not run on this CPU; the reason names the missing feature.
    case unsupportedPrecision(String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "cannot read \(file): \(reason)"
        case .malformed(let file, let reason): return "\(file) is malformed: \(reason)"
        case .forbiddenPickle(let file, let reason): return "\(file) was refused: \(reason) (only tensor-rebuilding pickles are loaded; nothing is executed)"
        case .missingTensor(let file, let tensor): return "\(file) has no tensor `\(tensor)`"
        case .wrongShape(let tensor, let expected, let found): return "tensor `\(tensor)` has shape \(found), expected \(expected)"
        case .wrongType(let tensor, let expected, let found): return "tensor `\(tensor)` has type \(found), expected \(expected)"
        case .invalidConfig(let file, let reason): return "\(file): \(reason)"
        case .missingFile(let path, let purpose): return "missing \(path) (\(purpose))"
        case .unsupportedPrecision(let reason): return reason
        }
    }
}
