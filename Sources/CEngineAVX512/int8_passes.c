#include "int8_passes.h"
#include "cpu_features.h"
#include <immintrin.h>

// The Swift loops multiply and add in two roundings (Swift does not fuse them); so do these, and
// fuse where the Swift code calls `addingProduct`.
#pragma clang fp contract(off)

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

int bgem3_int8_passes_supported(void) { return bgem3_has_avx512(); }

AVX512 void bgem3_int8_row_range(const float *row, int count, const uint16_t *kept, float *low, float *high) {
    // Four chains each way: one would wait out the instruction's latency at every step.
    __m512 low0 = _mm512_setzero_ps(), low1 = low0, low2 = low0, low3 = low0;
    __m512 high0 = low0, high1 = low0, high2 = low0, high3 = low0;
    int i = 0;
    if (kept) {
        for (; i < count; i += 16) {
            __mmask16 mask = kept[i / 16];
            __m512 v = _mm512_loadu_ps(row + i);
            low0 = _mm512_mask_min_ps(low0, mask, low0, v);
            high0 = _mm512_mask_max_ps(high0, mask, high0, v);
        }
    } else {
        for (; i + 64 <= count; i += 64) {
            __m512 a = _mm512_loadu_ps(row + i), b = _mm512_loadu_ps(row + i + 16);
            __m512 c = _mm512_loadu_ps(row + i + 32), d = _mm512_loadu_ps(row + i + 48);
            low0 = _mm512_min_ps(low0, a); high0 = _mm512_max_ps(high0, a);
            low1 = _mm512_min_ps(low1, b); high1 = _mm512_max_ps(high1, b);
            low2 = _mm512_min_ps(low2, c); high2 = _mm512_max_ps(high2, c);
            low3 = _mm512_min_ps(low3, d); high3 = _mm512_max_ps(high3, d);
        }
        for (; i < count; i += 16) {
            __m512 v = _mm512_loadu_ps(row + i);
            low0 = _mm512_min_ps(low0, v); high0 = _mm512_max_ps(high0, v);
        }
    }
    *low = _mm512_reduce_min_ps(_mm512_min_ps(_mm512_min_ps(low0, low1), _mm512_min_ps(low2, low3)));
    *high = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(high0, high1), _mm512_max_ps(high2, high3)));
}

AVX512 void bgem3_int8_quantize_row(const float *row, int count, float inverse, float shift, float maximum, uint8_t *target) {
    __m512 scale = _mm512_set1_ps(inverse), offset = _mm512_set1_ps(shift), top = _mm512_set1_ps(maximum);
    __m512 zero = _mm512_setzero_ps();
    for (int i = 0; i < count; i += 16) {
        __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(row + i), scale), offset);
        t = _mm512_min_ps(_mm512_max_ps(t, zero), top);
        // Converting rounds to nearest even (the default rounding mode), as the Swift code's
        // 1.5·2²³ addition does.
        _mm_storeu_si128((__m128i *)(target + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(t)));
    }
}

AVX512 void bgem3_int8_finish_row(float *y, int count, float scale, float offset, const float *sums, const float *bias,
                                  int outliers, const float *x, const float *weights) {
    __m512 scaleVector = _mm512_set1_ps(scale), offsetVector = _mm512_set1_ps(-offset);
    for (int i = 0; i < count; i += 16) {
        __m512 value = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(y + i), scaleVector),
                                     _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(sums + i), offsetVector), _mm512_loadu_ps(bias + i)));
        for (int o = 0; o < outliers; o++) {
            value = _mm512_fmadd_ps(_mm512_set1_ps(x[o]), _mm512_loadu_ps(weights + (long)o * count + i), value);
        }
        _mm512_storeu_ps(y + i, value);
    }
}
