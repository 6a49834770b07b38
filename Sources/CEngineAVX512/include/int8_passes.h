#ifndef BGEM3_INT8_PASSES_H
#define BGEM3_INT8_PASSES_H
#include <stdint.h>

// int8's passes around the matrix product, 16 lanes wide, for CPUs with AVX-512 (the Swift code
// beside them is 8 lanes wide: the binary is built for Haswell). They compute what the Swift
// loops compute, operation for operation, so either gives the same bytes and floats.

/// Whether this CPU runs the functions below (AVX-512 F/BW/VL).
int bgem3_int8_passes_supported(void);

/// The smallest and largest of `row[0..<count]` and zero, over the columns whose bit is set in
/// `kept` (bit `c % 16` of `kept[c / 16]`; NULL keeps all). `count` a multiple of 16.
void bgem3_int8_row_range(const float *row, int count, const uint16_t *kept, float *low, float *high);

/// `target[i] = clamp(round(row[i] · inverse + shift), 0, maximum)` (round to nearest even), for
/// `count` values, a multiple of 16.
void bgem3_int8_quantize_row(const float *row, int count, float inverse, float shift, float maximum, uint8_t *target);

/// int8's epilogue for one row, in place: `y[n] = y[n] · scale + (sums[n] · −offset + bias[n])`,
/// then `y[n] += x[o] · weights[o][n]` for each of the `outliers` columns computed apart.
/// `count` a multiple of 16.
void bgem3_int8_finish_row(float *y, int count, float scale, float offset, const float *sums, const float *bias,
                           int outliers, const float *x, const float *weights);

#endif
