// Which oneDNN 2.6 kernel runs attention's two products for one 128-row block of one head, and how
// fast, alone on the calling thread (as MatmulAttention runs them): the scores 128×64 · 64×512 and
// the context 128×512 · 512×64, at fp32, at s8·s8 / u8·s8, and with run-time output scales (a scale
// per key or per value column given at each call). The int8 attention kernel applies its scales in
// its own passes because the last row picks `gemm:jit` at about half the `brg` kernel's rate.
//
//   gcc -O2 -o /tmp/attention_products attention_products.c -ldnnl && OMP_NUM_THREADS=1 /tmp/attention_products
#include <oneapi/dnnl/dnnl.h>
#include "common.h"

static dnnl_memory_desc_t matrix(int rows, int columns, dnnl_data_type_t type, dnnl_format_tag_t tag) {
    dnnl_memory_desc_t result;
    dnnl_dims_t dims = {rows, columns};
    CHECK(dnnl_memory_desc_init_by_tag(&result, 2, dims, type, tag));
    return result;
}

static const char *name(dnnl_data_type_t type) { return type == dnnl_f32 ? "f32" : type == dnnl_u8 ? "u8" : "s8"; }

// One product m×k · k×n → f32; `runtime_scales` asks for n output scales given at each call.
static void product(dnnl_engine_t engine, dnnl_stream_t stream, int m, int k, int n, dnnl_data_type_t source_type,
                    dnnl_data_type_t weights_type, dnnl_format_tag_t weights_tag, int runtime_scales) {
    dnnl_memory_desc_t source = matrix(m, k, source_type, dnnl_ab), weights = matrix(k, n, weights_type, weights_tag);
    dnnl_memory_desc_t destination = matrix(m, n, dnnl_f32, dnnl_ab), scales_desc;
    dnnl_dims_t scale_dims = {n};
    CHECK(dnnl_memory_desc_init_by_tag(&scales_desc, 1, scale_dims, dnnl_f32, dnnl_a));
    dnnl_matmul_desc_t operation;
    CHECK(dnnl_matmul_desc_init(&operation, &source, &weights, NULL, &destination));
    dnnl_primitive_attr_t attributes;
    CHECK(dnnl_primitive_attr_create(&attributes));
    float fixed = 0.125f, runtime = DNNL_RUNTIME_F32_VAL;
    if (runtime_scales) CHECK(dnnl_primitive_attr_set_output_scales(attributes, 1, 2, &runtime));
    else CHECK(dnnl_primitive_attr_set_output_scales(attributes, 1, 0, &fixed));
    dnnl_primitive_desc_t descriptor;
    CHECK(dnnl_primitive_desc_create(&descriptor, &operation, attributes, engine, NULL));
    const char *implementation;
    CHECK(dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &implementation));
    dnnl_primitive_t primitive;
    CHECK(dnnl_primitive_create(&primitive, descriptor));
    void *a = aligned_alloc(64, (size_t)m * k * 4), *b = aligned_alloc(64, (size_t)k * n * 4), *c = aligned_alloc(64, (size_t)m * n * 4);
    float *scales = aligned_alloc(64, (size_t)n * 4);
    memset(a, 1, (size_t)m * k * 4);
    memset(b, 1, (size_t)k * n * 4);
    for (int i = 0; i < n; i++) scales[i] = 0.01f;
    dnnl_memory_t memories[4];
    CHECK(dnnl_memory_create(&memories[0], &source, engine, a));
    CHECK(dnnl_memory_create(&memories[1], &weights, engine, b));
    CHECK(dnnl_memory_create(&memories[2], &destination, engine, c));
    CHECK(dnnl_memory_create(&memories[3], &scales_desc, engine, scales));
    dnnl_exec_arg_t arguments[4] = {{DNNL_ARG_SRC, memories[0]}, {DNNL_ARG_WEIGHTS, memories[1]}, {DNNL_ARG_DST, memories[2]},
                                    {DNNL_ARG_ATTR_OUTPUT_SCALES, memories[3]}};
    double ms = median_ms(primitive, stream, arguments, runtime_scales ? 4 : 3, 512);
    printf("%4dx%4dx%4d %s·%s %-16s %-26s %.4f ms %6.1f GOP/s\n", m, k, n, name(source_type), name(weights_type),
           runtime_scales ? "run-time scales" : "fixed scale", implementation, ms, 2.0 * m * k * n / ms / 1e6);
    for (int i = 0; i < 4; i++) dnnl_memory_destroy(memories[i]);
    dnnl_primitive_destroy(primitive);
    dnnl_primitive_desc_destroy(descriptor);
    dnnl_primitive_attr_destroy(attributes);
    free(a); free(b); free(c); free(scales);
}

int main(int argc, char **argv) {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    start(argc, argv, &engine, &stream);
    // Scores: queries [row][d] · keys stored [key][d] (format ba); context: weights · values [key][d].
    product(engine, stream, 128, 64, 512, dnnl_f32, dnnl_f32, dnnl_ba, 0);
    product(engine, stream, 128, 64, 512, dnnl_s8, dnnl_s8, dnnl_ba, 0);
    product(engine, stream, 128, 64, 512, dnnl_s8, dnnl_s8, dnnl_ba, 1);
    product(engine, stream, 128, 512, 64, dnnl_f32, dnnl_f32, dnnl_ab, 0);
    product(engine, stream, 128, 512, 64, dnnl_u8, dnnl_s8, dnnl_ab, 0);
    product(engine, stream, 128, 512, 64, dnnl_u8, dnnl_s8, dnnl_ab, 1);
    return 0;
}
