#ifndef BGEM3_FEW_ROWS_PRODUCTS_H
#define BGEM3_FEW_ROWS_PRODUCTS_H
#include <stdint.h>

// Matrix products for a few rows, read straight from oneDNN's packed weights, for CPUs with
// AVX-512. Why they exist: at 16 rows a product reads each weight once and uses it 16 times, so it
// is bound by how fast the weights stream, and oneDNN 2.6's kernels stream them slower than this
// loop with a software prefetch (measured in docs/commands.md).
//
// oneDNN's AVX-512 layouts for int8 and fp32 share one shape: 64-column blocks one after another,
// each holding, for every group of inputs, 256 bytes = 64 columns × the group (4 u8×s8 inputs for
// int8, `BA16a64b4a`; 1 fp32, `BA16a64b`), and a row of the input gives 4 bytes per group. So one
// loop serves both, with `vpdpbusd` or `vfmadd231ps`. (bf16's `BA16a64b2a` fits too, but with
// `vdpbf16ps` the loop was no faster than oneDNN at 16 rows on Emerald Rapids.)

typedef enum {
    bgem3_few_rows_int8 = 0,
    bgem3_few_rows_fp32 = 1,
} bgem3_few_rows_kind;

/// Whether this CPU runs `bgem3_few_rows_product` of this kind: AVX-512 F/BW/VL, with VNNI for int8.
int bgem3_few_rows_supported(bgem3_few_rows_kind kind);

/// `output[m][n] = scales[n] · Σₖ input[m][k] · weights[k][n] + bias[n]` for rows `0..<rows`,
/// columns `64·firstBlock ..< 64·endBlock`. int8 sums are exact in int32, as oneDNN's.
///
/// - `input`: `rows × inputs` (u8 or fp32 by kind), row-major, 4-byte aligned rows.
/// - `weights`: `inputs × outputs` in oneDNN's layout for the kind (above), 64-byte aligned.
/// - `scales`, `bias`: `outputs` floats each, or NULL for none.
/// - `outputs` and `inputs` multiples of 64 (no padding); `output`: `rows × outputs` fp32, row-major.
void bgem3_few_rows_product(bgem3_few_rows_kind kind, int rows, int inputs, int outputs, const void *input,
                            const void *weights, const float *scales, const float *bias, float *output,
                            int firstBlock, int endBlock);

#endif
