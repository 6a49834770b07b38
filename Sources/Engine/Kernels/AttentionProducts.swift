import CEngineAVX512
import Foundation

/// int8 attention's work per head in the engine's own AVX-512 loops
/// (`Sources/CEngineAVX512/attention_products.c`): the two products (scores = Q·Kᵀ, context =
/// weights·V) with `vpdpbusd` rather than oneDNN's primitives, and the query and key quantisation,
/// the softmax to u8 weights and the context's scaling 16 lanes wide rather than
/// ``AttentionQuantization``'s 8. The same exact int32 sums and the same operations, so the same
/// floats.
///
/// Why: a 128-token pass makes 768 of these products, each some 2.5 µs of work, and oneDNN 2.6
/// took about 15 µs per call (set-up, its `brg` kernel's blocking for large shapes, a stream wait);
/// the passes around them took as long again.
enum AttentionProducts {
    /// Whether the loops run on this CPU (AVX-512 with VNNI). The test hook
    /// `BGE_M3_TEST_ATTENTION_PRODUCTS=off` keeps oneDNN's primitives, for A/B runs.
    static let available = bgem3_attention_products_supported() != 0
        && ProcessInfo.processInfo.environment["BGE_M3_TEST_ATTENTION_PRODUCTS"] != "off"

    /// Whether heads of `headSize` values run in the loops (they are written for 64, BGE-M3's).
    static func run(headSize: Int) -> Bool { available && headSize == 64 }
}
