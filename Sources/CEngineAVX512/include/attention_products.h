#ifndef BGEM3_ATTENTION_PRODUCTS_H
#define BGEM3_ATTENTION_PRODUCTS_H
#include <stdint.h>

// int8 attention's work for one head of 64 values, for CPUs with AVX-512 VNNI: the two products
// with `vpdpbusd`, and the passes around them 16 lanes wide. Why: oneDNN 2.6 spent about 12 µs of
// set-up on each of these small products (a 128-token head is 2 × 1M multiply-adds, some 2.5 µs
// of work), a 128-token pass makes 768 of them, and the engine's 8-lane passes around them took as
// long again. The sums are exact in int32, as oneDNN's, and the passes repeat the Swift loops'
// operations, so the floats are the same.
//
// `vpdpbusd` multiplies unsigned by signed bytes. The keys are packed as unsigned (each byte
// +128) and each score corrected by 128 × the sum of its query's bytes; the softmax's weights are
// unsigned already.

/// Whether this CPU runs the functions below (AVX-512 F/BW/VL with VNNI).
int bgem3_attention_products_supported(void);

/// `target = round(row / scale)` in −127...127 with `scale = max|row| / 127`, for a row of 64
/// floats; returns the scale (0 for a row of zeros, written as zeros). The same arithmetic as
/// the engine's 8-lane `AttentionQuantization.quantizeRow`, so the same bytes.
float bgem3_attention_quantize_row(const float *row, int8_t *target);

/// Packs `keys` (a multiple of 64) s8 rows of 64 bytes, `panel[key][64]`, for
/// `bgem3_attention_scores`: `packed[c][key][0..<4]` = bytes 4c..4c+3 of the key, each +128.
/// `packed`: 64 × `keys` bytes, 64-byte aligned.
void bgem3_attention_pack_keys(const int8_t *panel, int keys, uint8_t *packed);

/// `scores[r][j] = Σ_d queries[r][d] · key[j][d]` as floats, for `rows` query rows of 64 s8
/// values (`queries[r][64]`) and `keys` (a multiple of 64) packed keys; `scores` has `keys`
/// floats per row.
void bgem3_attention_scores(const int8_t *queries, int rows, const uint8_t *packedKeys, int keys, float *scores);

/// Packs `keys` (a multiple of 64) s8 rows of 64 values, `panel[i][64]`, for
/// `bgem3_attention_context`: each 4 rows' bytes interleaved per column. `packed`: 64 × `keys`
/// bytes, 64-byte aligned.
void bgem3_attention_pack_values(const int8_t *panel, int keys, int8_t *packed);

/// `output[r][n] = Σ_i weights[r][i] · values[i][n]` as floats, for `rows` rows of `keys` u8
/// weights (`weights[r][keys]`) and `keys` packed value rows; `output` has 64 floats per row.
void bgem3_attention_context(const uint8_t *weights, int rows, const int8_t *packedValues, int keys, float *output);

/// `AttentionQuantization.weights` 16 lanes wide, the same arithmetic operation for operation (so
/// the same bytes): one row of u8 softmax numerators from the integer scores in `raw` (scaled in
/// place by `rowScale · keyScales[j]`), in the values' key order; returns 1 / their sum.
/// `keys` a multiple of 64, `length` at most `keys`.
float bgem3_attention_weights(float *raw, int length, int keys, float rowScale, const float *keyScales, uint8_t *weights);

/// `target[c] = row[c] · factor · columnScales[c]` for 64 columns, as `AttentionQuantization.scaleRow`.
void bgem3_attention_scale_row(const float *row, float factor, const float *columnScales, float *target);

#endif
