#ifndef BGEM3_VNNI_PRODUCTS_H
#define BGEM3_VNNI_PRODUCTS_H
#include <stdint.h>

// An int8 matrix product for a few rows, read straight from oneDNN's packed weights, for CPUs
// with AVX512-VNNI. Why it exists: at 16 rows oneDNN 2.6's brgemm streams the weights at
// 12-15 GB/s on an Emerald Rapids vCPU pair, this loop (with a software prefetch 4 KiB ahead)
// at 15-20 GB/s; at 32 rows they are level. See docs/commands.md.

/// Whether this CPU runs `bgem3_vnni_product` (AVX-512 F/BW/VL and VNNI).
int bgem3_vnni_products_supported(void);

/// `output[m][n] = scales[n] · Σₖ input[m][k] · weights[k][n]` for rows `0..<rows`, columns
/// `64·firstBlock ..< 64·endBlock`, the integer sum exact in int32 (as oneDNN's `vpdpbusd`).
///
/// - `input`: `rows × inputs` u8, row-major.
/// - `weights`: `inputs × outputs` s8 in oneDNN's `BA16a64b4a` layout: 64-column blocks one
///   after another, each `inputs × 64` with groups of 4 inputs interleaved per column.
/// - `outputs` and `inputs` multiples of 64; `output`: `rows × outputs` fp32, row-major.
void bgem3_vnni_product(int rows, int inputs, int outputs, const uint8_t *input, const int8_t *weights,
                        const float *scales, float *output, int firstBlock, int endBlock);

#endif
