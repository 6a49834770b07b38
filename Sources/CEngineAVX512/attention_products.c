#include "attention_products.h"
#include "cpu_features.h"
#include <immintrin.h>

// The softmax and scaling below repeat the Swift loops' operations exactly: no contraction into
// FMAs other than those the Swift code asks for (`addingProduct`).
#pragma clang fp contract(off)

// Only these functions use AVX-512 VNNI: the binary is built for Haswell, and where
// `bgem3_attention_products_supported` is false nothing here is called.
#define VNNI "avx512f,avx512bw,avx512vl,avx512vnni"

// A tile is 4 rows × 64 columns (keys for the scores, values for the context): 16 accumulators,
// the 4 column vectors they share, and a broadcast.
enum { tileRows = 4, headSize = 64 };

int bgem3_attention_products_supported(void) {
    return bgem3_has_avx512() && __builtin_cpu_supports("avx512vnni");
}

__attribute__((target(VNNI))) float bgem3_attention_quantize_row(const float *row, int8_t *target) {
    __m512 v[4];
    __m512 largest = _mm512_setzero_ps();
    _Pragma("unroll") for (int i = 0; i < 4; i++) {
        v[i] = _mm512_loadu_ps(row + 16 * i);
        largest = _mm512_max_ps(largest, _mm512_abs_ps(v[i]));
    }
    float maximum = _mm512_reduce_max_ps(largest);
    if (!(maximum > 0)) {
        _mm512_storeu_si512(target, _mm512_setzero_si512());
        return 0;
    }
    // Rounded to nearest, ties to even, as the 8-lane loop's addition of 1.5 · 2²³.
    __m512 inverse = _mm512_set1_ps(127 / maximum);
    _Pragma("unroll") for (int i = 0; i < 4; i++)
        _mm_storeu_si128((__m128i *)(target + 16 * i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v[i], inverse))));
    return maximum / 127;
}

__attribute__((target(VNNI))) void bgem3_attention_pack_keys(const int8_t *panel, int keys, uint8_t *packed) {
    // Dword c of every key goes to row c of the packed panel: a scatter with a stride of one row.
    const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(keys));
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int key = 0; key < keys; key++) {
        __m512i row = _mm512_xor_si512(_mm512_loadu_si512(panel + (long)key * headSize), flip);
        _mm512_i32scatter_epi32(packed + 4L * key, rows, row, 4);
    }
}

// One tile of scores: `count` rows of `queries` against the 64 keys from `first`.
__attribute__((target(VNNI))) static inline __attribute__((always_inline)) void scoreTile(
    int count, const int8_t *queries, const uint8_t *packedKeys, int keys, int first, const __m512i *corrections, float *scores) {
    __m512i sums[tileRows][4];
    _Pragma("unroll") for (int r = 0; r < count; r++) {
        _Pragma("unroll") for (int j = 0; j < 4; j++) sums[r][j] = _mm512_setzero_si512();
    }
    for (int c = 0; c < headSize / 4; c++) {
        const uint8_t *at = packedKeys + 4L * ((long)c * keys + first);
        __m512i k0 = _mm512_load_si512(at), k1 = _mm512_load_si512(at + 64), k2 = _mm512_load_si512(at + 128),
                k3 = _mm512_load_si512(at + 192);
        _Pragma("unroll") for (int r = 0; r < count; r++) {
            __m512i four = _mm512_set1_epi32(*(const int32_t *)(queries + r * headSize + 4 * c));
            sums[r][0] = _mm512_dpbusd_epi32(sums[r][0], k0, four);
            sums[r][1] = _mm512_dpbusd_epi32(sums[r][1], k1, four);
            sums[r][2] = _mm512_dpbusd_epi32(sums[r][2], k2, four);
            sums[r][3] = _mm512_dpbusd_epi32(sums[r][3], k3, four);
        }
    }
    _Pragma("unroll") for (int r = 0; r < count; r++) {
        _Pragma("unroll") for (int j = 0; j < 4; j++)
            _mm512_storeu_ps(scores + (long)r * keys + first + 16 * j,
                             _mm512_cvtepi32_ps(_mm512_sub_epi32(sums[r][j], corrections[r])));
    }
}

__attribute__((target(VNNI))) void bgem3_attention_scores(const int8_t *queries, int rows, const uint8_t *packedKeys, int keys,
                                                          float *scores) {
    const __m512i ones = _mm512_set1_epi8(1);
    for (int first = 0; first < rows; first += tileRows) {
        int count = rows - first < tileRows ? rows - first : tileRows;
        const int8_t *block = queries + (long)first * headSize;
        // 128 × Σ_d q[d]: what the keys' +128 added to each of the row's scores.
        __m512i corrections[tileRows];
        for (int r = 0; r < count; r++) {
            __m512i q = _mm512_loadu_si512(block + r * headSize);
            int sum = _mm512_reduce_add_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, q));
            corrections[r] = _mm512_set1_epi32(128 * sum);
        }
        float *out = scores + (long)first * keys;
        for (int key = 0; key < keys; key += 64) {
            switch (count) {
            case 4: scoreTile(4, block, packedKeys, keys, key, corrections, out); break;
            case 3: scoreTile(3, block, packedKeys, keys, key, corrections, out); break;
            case 2: scoreTile(2, block, packedKeys, keys, key, corrections, out); break;
            default: scoreTile(1, block, packedKeys, keys, key, corrections, out); break;
            }
        }
    }
}

__attribute__((target(VNNI))) void bgem3_attention_pack_values(const int8_t *panel, int keys, int8_t *packed) {
    // Rows 4c..4c+3 interleaved byte by byte, in two unpacking steps. Unpacking works within each
    // 128-bit lane, so packed vector k of a group holds, in lane L, columns 16L + 4k ..< 16L + 4k + 4;
    // `bgem3_attention_context` puts the columns back in order when it stores them.
    for (int c = 0; c < keys / 4; c++) {
        const int8_t *rows = panel + 4L * c * headSize;
        __m512i a0 = _mm512_loadu_si512(rows), a1 = _mm512_loadu_si512(rows + 64), a2 = _mm512_loadu_si512(rows + 128),
                a3 = _mm512_loadu_si512(rows + 192);
        __m512i low01 = _mm512_unpacklo_epi8(a0, a1), high01 = _mm512_unpackhi_epi8(a0, a1);
        __m512i low23 = _mm512_unpacklo_epi8(a2, a3), high23 = _mm512_unpackhi_epi8(a2, a3);
        int8_t *out = packed + 256L * c;
        _mm512_store_si512(out, _mm512_unpacklo_epi16(low01, low23));
        _mm512_store_si512(out + 64, _mm512_unpackhi_epi16(low01, low23));
        _mm512_store_si512(out + 128, _mm512_unpacklo_epi16(high01, high23));
        _mm512_store_si512(out + 192, _mm512_unpackhi_epi16(high01, high23));
    }
}

// One tile of context rows: `count` rows of weights from `weights`.
__attribute__((target(VNNI))) static inline __attribute__((always_inline)) void contextTile(
    int count, const uint8_t *weights, const int8_t *packedValues, int keys, float *output) {
    __m512i sums[tileRows][4];
    _Pragma("unroll") for (int r = 0; r < count; r++) {
        _Pragma("unroll") for (int j = 0; j < 4; j++) sums[r][j] = _mm512_setzero_si512();
    }
    for (int c = 0; c < keys / 4; c++) {
        const int8_t *at = packedValues + 256L * c;
        __m512i v0 = _mm512_load_si512(at), v1 = _mm512_load_si512(at + 64), v2 = _mm512_load_si512(at + 128),
                v3 = _mm512_load_si512(at + 192);
        _Pragma("unroll") for (int r = 0; r < count; r++) {
            __m512i four = _mm512_set1_epi32(*(const int32_t *)(weights + (long)r * keys + 4 * c));
            sums[r][0] = _mm512_dpbusd_epi32(sums[r][0], four, v0);
            sums[r][1] = _mm512_dpbusd_epi32(sums[r][1], four, v1);
            sums[r][2] = _mm512_dpbusd_epi32(sums[r][2], four, v2);
            sums[r][3] = _mm512_dpbusd_epi32(sums[r][3], four, v3);
        }
    }
    _Pragma("unroll") for (int r = 0; r < count; r++) {
        // Sum vector k holds columns 16L + 4k.. in lane L: a 4 × 4 transpose of 128-bit lanes.
        __m512i t0 = _mm512_shuffle_i32x4(sums[r][0], sums[r][1], 0x44), t1 = _mm512_shuffle_i32x4(sums[r][0], sums[r][1], 0xEE);
        __m512i t2 = _mm512_shuffle_i32x4(sums[r][2], sums[r][3], 0x44), t3 = _mm512_shuffle_i32x4(sums[r][2], sums[r][3], 0xEE);
        float *row = output + (long)r * headSize;
        _mm512_storeu_ps(row, _mm512_cvtepi32_ps(_mm512_shuffle_i32x4(t0, t2, 0x88)));
        _mm512_storeu_ps(row + 16, _mm512_cvtepi32_ps(_mm512_shuffle_i32x4(t0, t2, 0xDD)));
        _mm512_storeu_ps(row + 32, _mm512_cvtepi32_ps(_mm512_shuffle_i32x4(t1, t3, 0x88)));
        _mm512_storeu_ps(row + 48, _mm512_cvtepi32_ps(_mm512_shuffle_i32x4(t1, t3, 0xDD)));
    }
}

__attribute__((target(VNNI))) void bgem3_attention_context(const uint8_t *weights, int rows, const int8_t *packedValues, int keys,
                                                           float *output) {
    for (int first = 0; first < rows; first += tileRows) {
        int count = rows - first < tileRows ? rows - first : tileRows;
        const uint8_t *block = weights + (long)first * keys;
        float *out = output + (long)first * headSize;
        switch (count) {
        case 4: contextTile(4, block, packedValues, keys, out); break;
        case 3: contextTile(3, block, packedValues, keys, out); break;
        case 2: contextTile(2, block, packedValues, keys, out); break;
        default: contextTile(1, block, packedValues, keys, out); break;
        }
    }
}

// round(255 · e^(x − shift)) for 16 scores, as `AttentionQuantization.exponentiated`: e^x = 2ⁿ·e^r
// with n = round(x·log₂e) by adding 1.5·2²³, a degree-4 polynomial, and the rounding by the same
// addition.
__attribute__((target(VNNI))) static inline __attribute__((always_inline)) __m512i weight16(__m512 scores, __m512 shift) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    const __m512i magicBits = _mm512_castps_si512(magic);
    __m512 x = _mm512_max_ps(_mm512_sub_ps(scores, shift), _mm512_set1_ps(-87));
    __m512 shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504f), magic);
    __m512 n = _mm512_sub_ps(shifted, magic);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.69314718f), x);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24), r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1));
    __m512i exponent = _mm512_slli_epi32(_mm512_sub_epi32(_mm512_castps_si512(shifted), magicBits), 23);
    __m512 power = _mm512_castsi512_ps(_mm512_add_epi32(exponent, _mm512_set1_epi32(127 << 23)));
    __m512 levels = _mm512_fmadd_ps(_mm512_set1_ps(255), _mm512_mul_ps(p, power), magic);
    return _mm512_sub_epi32(_mm512_castps_si512(levels), magicBits);
}

__attribute__((target(VNNI))) float bgem3_attention_weights(float *raw, int length, int keys, float rowScale, const float *keyScales,
                                                           uint8_t *weights) {
    const __m512 scale = _mm512_set1_ps(rowScale);
    const __m512 minusInfinity = _mm512_set1_ps(-__builtin_inff());
    // Scaled scores for the keys, −∞ from `length` to the end of its group of 32 keys.
    int groupEnd = (length + 31) & ~31;
    __m512 largest = minusInfinity;
    for (int i = 0; i < groupEnd; i += 16) {
        int left = length - i;
        __mmask16 live = left >= 16 ? 0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
        __m512 s = _mm512_mask_mul_ps(minusInfinity, live, _mm512_mul_ps(_mm512_maskz_loadu_ps(live, raw + i), scale),
                                      _mm512_maskz_loadu_ps(live, keyScales + i));
        _mm512_storeu_ps(raw + i, s);
        largest = _mm512_max_ps(largest, s);
    }
    const __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(largest));
    // 32 keys at a time into the values' order: byte k of dword j is key 8k + j of the group.
    __m512i sums = _mm512_setzero_si512();
    for (int i = 0; i < groupEnd; i += 32) {
        __m512i low = weight16(_mm512_loadu_ps(raw + i), shift), high = weight16(_mm512_loadu_ps(raw + i + 16), shift);
        sums = _mm512_add_epi32(sums, _mm512_add_epi32(low, high));
        __m512i halves = _mm512_or_si512(low, _mm512_slli_epi32(high, 16));  // keys j | 16 + j, and 8 + j | 24 + j
        __m256i packed = _mm256_or_si256(_mm512_castsi512_si256(halves), _mm256_slli_epi32(_mm512_extracti64x4_epi64(halves, 1), 8));
        _mm256_storeu_si256((__m256i *)(weights + i), packed);
    }
    for (int i = groupEnd; i < keys; i++) weights[i] = 0;
    return 1 / (float)_mm512_reduce_add_epi32(sums);
}

__attribute__((target(VNNI))) void bgem3_attention_scale_row(const float *row, float factor, const float *columnScales, float *target) {
    const __m512 broadcast = _mm512_set1_ps(factor);
    _Pragma("unroll") for (int i = 0; i < 64; i += 16)
        _mm512_storeu_ps(target + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(row + i), broadcast), _mm512_loadu_ps(columnScales + i)));
}
