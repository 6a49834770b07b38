#include "vnni_products.h"
#include <immintrin.h>

// Only these functions use AVX-512: the rest of the binary is built for Haswell and runs on CPUs
// without it (Zen 3), where `bgem3_vnni_products_supported` is false and nothing here is called.
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// Rows per tile: 7 rows × 4 columns of 16 = 28 accumulators, the A broadcast and room to spare
// among 32 registers (the weights are read as memory operands).
enum { tileRows = 7, blockColumns = 64, groupBytes = 256 };
// How far ahead of the loop the weights are prefetched: 4 KiB was the best of 1, 2, 4 and 8 KiB
// at 16 rows (the hardware prefetchers alone stream them at about two thirds of the speed).
enum { prefetchBytes = 4096 };

int bgem3_vnni_products_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512vnni");
}

// One tile: `tileRowCount` rows × one 64-column block, all `inputs`.
VNNI static inline __attribute__((always_inline)) void tile(int tileRowCount, const uint8_t *input, int inputs, const int8_t *block,
                                                           const float *scales, float *output, int outputs) {
    __m512i sums[tileRows][4];
    _Pragma("unroll") for (int r = 0; r < tileRowCount; r++) {
        _Pragma("unroll") for (int j = 0; j < 4; j++) sums[r][j] = _mm512_setzero_si512();
    }
    for (int group = 0; group < inputs / 4; group++) {
        const int8_t *columns = block + (long)group * groupBytes;
        _Pragma("unroll") for (int line = 0; line < 4; line++) _mm_prefetch((const char *)(columns + prefetchBytes + 64 * line), _MM_HINT_T0);
        _Pragma("unroll") for (int r = 0; r < tileRowCount; r++) {
            __m512i four = _mm512_set1_epi32(*(const int32_t *)(input + (long)r * inputs + group * 4));
            _Pragma("unroll") for (int j = 0; j < 4; j++) {
                sums[r][j] = _mm512_dpbusd_epi32(sums[r][j], four, _mm512_load_si512(columns + 64 * j));
            }
        }
    }
    _Pragma("unroll") for (int j = 0; j < 4; j++) {
        __m512 scale = _mm512_loadu_ps(scales + 16 * j);
        _Pragma("unroll") for (int r = 0; r < tileRowCount; r++) {
            _mm512_storeu_ps(output + (long)r * outputs + 16 * j, _mm512_mul_ps(_mm512_cvtepi32_ps(sums[r][j]), scale));
        }
    }
}

// `tile` with its row count a constant, so that the accumulators stay in registers.
VNNI static void tileOfRows(int tileRowCount, const uint8_t *input, int inputs, const int8_t *block, const float *scales,
                            float *output, int outputs) {
    switch (tileRowCount) {
    case 1: tile(1, input, inputs, block, scales, output, outputs); break;
    case 2: tile(2, input, inputs, block, scales, output, outputs); break;
    case 3: tile(3, input, inputs, block, scales, output, outputs); break;
    case 4: tile(4, input, inputs, block, scales, output, outputs); break;
    case 5: tile(5, input, inputs, block, scales, output, outputs); break;
    case 6: tile(6, input, inputs, block, scales, output, outputs); break;
    default: tile(7, input, inputs, block, scales, output, outputs); break;
    }
}

VNNI void bgem3_vnni_product(int rows, int inputs, int outputs, const uint8_t *input, const int8_t *weights,
                             const float *scales, float *output, int firstBlock, int endBlock) {
    int tiles = (rows + tileRows - 1) / tileRows;
    for (int b = firstBlock; b < endBlock; b++) {
        const int8_t *block = weights + (long)b * inputs * blockColumns;
        int column = b * blockColumns;
        // Tiles of balanced heights (16 rows: 6, 5, 5): the first reads the block from memory,
        // the others from L2.
        for (int t = 0, row = 0; t < tiles; t++) {
            int left = rows - row, count = (left + (tiles - t) - 1) / (tiles - t);
            tileOfRows(count, input + (long)row * inputs, inputs, block, scales + column, output + (long)row * outputs + column, outputs);
            row += count;
        }
    }
}
