#include "few_rows_products.h"
#include "cpu_features.h"
#include <immintrin.h>

// Only these functions use AVX-512: the rest of the binary is built for Haswell and runs on CPUs
// without it (Zen 3), where `bgem3_few_rows_supported` is false and nothing here is called.
#define AVX512 "avx512f,avx512bw,avx512vl"

// Rows per tile: 7 rows × 4 columns of 16 = 28 accumulators, the input broadcast and room to spare
// among 32 registers (the weights are read as memory operands).
enum { tileRows = 7, blockColumns = 64, groupBytes = 256 };
// How far ahead of the loop the weights are prefetched: 4 KiB was the best of 1, 2, 4 and 8 KiB
// on int8 at 16 rows (the hardware prefetchers alone streamed them at about two thirds the speed).
// Prefetching the next block into L2 while the later tiles compute was tried: no faster at int8,
// slower at fp32.
enum { prefetchBytes = 4096 };

int bgem3_few_rows_supported(bgem3_few_rows_kind kind) {
    switch (kind) {
    case bgem3_few_rows_int8: return bgem3_has_avx512() && __builtin_cpu_supports("avx512vnni");
    case bgem3_few_rows_fp32: return bgem3_has_avx512();
    }
    return 0;
}

// One tile, `count` rows × one 64-column block × all groups, for one kind: `SUM(acc, four, columns)`
// adds one group of one row (its 4 bytes broadcast in `four`) to the 16 columns' sums in `acc`;
// `FLOAT(acc)` turns a sum into floats.
#define DEFINE_TILE(name, features, sumType, ZERO, SUM, FLOAT)                                                            \
    __attribute__((target(features))) static inline __attribute__((always_inline)) void name(                            \
        int count, const uint8_t *input, long inputBytes, int groups, const uint8_t *block, const float *scales,       \
        const float *bias, float *output, int outputs) {                                                               \
        sumType sums[tileRows][4];                                                                                     \
        _Pragma("unroll") for (int r = 0; r < count; r++) {                                                            \
            _Pragma("unroll") for (int j = 0; j < 4; j++) sums[r][j] = ZERO;                                           \
        }                                                                                                              \
        for (int group = 0; group < groups; group++) {                                                                 \
            const uint8_t *columns = block + (long)group * groupBytes;                                                 \
            _Pragma("unroll") for (int line = 0; line < 4; line++)                                                     \
                _mm_prefetch((const char *)(columns + prefetchBytes + 64 * line), _MM_HINT_T0);                        \
            _Pragma("unroll") for (int r = 0; r < count; r++) {                                                        \
                __m512i four = _mm512_set1_epi32(*(const int32_t *)(input + r * inputBytes + group * 4));              \
                _Pragma("unroll") for (int j = 0; j < 4; j++) sums[r][j] = SUM(sums[r][j], four, columns + 64 * j);    \
            }                                                                                                          \
        }                                                                                                              \
        _Pragma("unroll") for (int j = 0; j < 4; j++) {                                                                \
            __m512 scale = scales ? _mm512_loadu_ps(scales + 16 * j) : _mm512_set1_ps(1);                               \
            __m512 offset = bias ? _mm512_loadu_ps(bias + 16 * j) : _mm512_setzero_ps();                               \
            _Pragma("unroll") for (int r = 0; r < count; r++) {                                                        \
                __m512 value = scales ? _mm512_mul_ps(FLOAT(sums[r][j]), scale) : FLOAT(sums[r][j]);                    \
                _mm512_storeu_ps(output + (long)r * outputs + 16 * j, bias ? _mm512_add_ps(value, offset) : value);    \
            }                                                                                                          \
        }                                                                                                              \
    }

#define INT8_SUM(acc, four, at) _mm512_dpbusd_epi32(acc, four, _mm512_load_si512(at))
#define FP32_SUM(acc, four, at) _mm512_fmadd_ps(_mm512_castsi512_ps(four), _mm512_load_ps((const float *)(at)), acc)
#define SAME(x) (x)

DEFINE_TILE(int8Tile, AVX512 ",avx512vnni", __m512i, _mm512_setzero_si512(), INT8_SUM, _mm512_cvtepi32_ps)
DEFINE_TILE(fp32Tile, AVX512, __m512, _mm512_setzero_ps(), FP32_SUM, SAME)

// A kind's tile with its row count a constant, so that the sums stay in registers.
#define DEFINE_TILE_OF_ROWS(name, tileName, features)                                                                    \
    __attribute__((target(features))) static void name(int count, const uint8_t *input, long inputBytes, int groups,   \
                                                       const uint8_t *block, const float *scales, const float *bias,    \
                                                       float *output, int outputs) {                                    \
        switch (count) {                                                                                               \
        case 1: tileName(1, input, inputBytes, groups, block, scales, bias, output, outputs); break;                   \
        case 2: tileName(2, input, inputBytes, groups, block, scales, bias, output, outputs); break;                   \
        case 3: tileName(3, input, inputBytes, groups, block, scales, bias, output, outputs); break;                   \
        case 4: tileName(4, input, inputBytes, groups, block, scales, bias, output, outputs); break;                   \
        case 5: tileName(5, input, inputBytes, groups, block, scales, bias, output, outputs); break;                   \
        case 6: tileName(6, input, inputBytes, groups, block, scales, bias, output, outputs); break;                   \
        default: tileName(7, input, inputBytes, groups, block, scales, bias, output, outputs); break;                  \
        }                                                                                                              \
    }

DEFINE_TILE_OF_ROWS(int8Tiles, int8Tile, AVX512 ",avx512vnni")
DEFINE_TILE_OF_ROWS(fp32Tiles, fp32Tile, AVX512)

void bgem3_few_rows_product(bgem3_few_rows_kind kind, int rows, int inputs, int outputs, const void *input,
                            const void *weights, const float *scales, const float *bias, float *output,
                            int firstBlock, int endBlock) {
    int inputsPerGroup = kind == bgem3_few_rows_int8 ? 4 : 1;
    int groups = inputs / inputsPerGroup;
    long inputBytes = (long)groups * 4;
    int tiles = (rows + tileRows - 1) / tileRows;
    for (int b = firstBlock; b < endBlock; b++) {
        const uint8_t *block = (const uint8_t *)weights + (long)b * groups * groupBytes;
        int column = b * blockColumns;
        // Tiles of balanced heights (16 rows: 6, 5, 5): the first reads the block from memory,
        // the others from L2.
        for (int t = 0, row = 0; t < tiles; t++) {
            int left = rows - row, count = (left + (tiles - t) - 1) / (tiles - t);
            const uint8_t *rowsInput = (const uint8_t *)input + row * inputBytes;
            float *rowsOutput = output + (long)row * outputs + column;
            const float *blockScales = scales ? scales + column : 0, *blockBias = bias ? bias + column : 0;
            switch (kind) {
            case bgem3_few_rows_int8: int8Tiles(count, rowsInput, inputBytes, groups, block, blockScales, blockBias, rowsOutput, outputs); break;
            case bgem3_few_rows_fp32: fp32Tiles(count, rowsInput, inputBytes, groups, block, blockScales, blockBias, rowsOutput, outputs); break;
            }
            row += count;
        }
    }
}
