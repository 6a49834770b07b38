// The same product on oneDNN 3.x (PyPI's onednn-cpu-gomp 2023.2.0 is oneDNN 3.2 on GNU OpenMP):
// 3.x passes the per-column weight scales at run time. With `f32` it times the fp32 product
// instead; with `rowscale` it asks for the per-row multiply and prints the implementation oneDNN
// picks for it.
#include <oneapi/dnnl/dnnl.h>
#include "common.h"

static dnnl_memory_desc_t describe(long rows, long columns, dnnl_data_type_t type, dnnl_format_tag_t tag) {
    dnnl_dims_t dims = {rows, columns};
    dnnl_memory_desc_t d;
    CHECK(dnnl_memory_desc_create_with_tag(&d, 2, dims, type, tag));
    return d;
}

int main(int argc, char **argv) {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    enum mode mode = start(argc, argv, &engine, &stream);
    int rowScale = mode == ROW_SCALE, fp32 = mode == PRODUCT_F32;
    dnnl_data_type_t activations = fp32 ? dnnl_f32 : dnnl_u8, weights = fp32 ? dnnl_f32 : dnnl_s8;
    for (int i = 0; i < SHAPE_COUNT; i++) {
        int m = SHAPES[i][0], k = SHAPES[i][1], n = SHAPES[i][2];
        dnnl_memory_desc_t src = describe(m, k, activations, dnnl_ab), plain = describe(k, n, weights, dnnl_ba);
        dnnl_memory_desc_t any = describe(k, n, weights, dnnl_format_tag_any), dst = describe(m, n, dnnl_f32, dnnl_ab);
        dnnl_primitive_attr_t attr; CHECK(dnnl_primitive_attr_create(&attr));
        if (!fp32) CHECK(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_WEIGHTS, 1 << 1));
        if (rowScale) {
            dnnl_post_ops_t ops; CHECK(dnnl_post_ops_create(&ops));
            CHECK(dnnl_post_ops_append_binary(ops, dnnl_binary_mul, describe(m, 1, dnnl_f32, dnnl_ab)));
            CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
        }
        dnnl_primitive_desc_t pd; CHECK(dnnl_matmul_primitive_desc_create(&pd, engine, src, any, NULL, dst, attr));
        const char *name; dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
        if (rowScale) { printf("3.x %dx%dx%d per-row multiply: %s\n", m, k, n, name); continue; }
        const_dnnl_memory_desc_t packed = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        void *a, *w;
        if (fp32) random_f32_operands(m, k, n, (float **)&a, (float **)&w);
        else random_operands(m, k, n, (unsigned char **)&a, (signed char **)&w);
        void *wPacked = aligned_alloc(64, dnnl_memory_desc_get_size(packed) + 64); float *c = aligned_alloc(64, 4L * m * n);
        float *scales = malloc(4 * n); for (int j = 0; j < n; j++) scales[j] = 0.01f;
        dnnl_dims_t scaleDims = {n};
        dnnl_memory_desc_t scaleDescriptor; CHECK(dnnl_memory_desc_create_with_tag(&scaleDescriptor, 1, scaleDims, dnnl_f32, dnnl_a));
        dnnl_memory_t mA, mW, mWPacked, mC, mScales;
        CHECK(dnnl_memory_create(&mA, src, engine, a)); CHECK(dnnl_memory_create(&mW, plain, engine, w));
        CHECK(dnnl_memory_create(&mWPacked, packed, engine, wPacked)); CHECK(dnnl_memory_create(&mC, dst, engine, c));
        CHECK(dnnl_memory_create(&mScales, scaleDescriptor, engine, scales));
        dnnl_primitive_desc_t rpd; CHECK(dnnl_reorder_primitive_desc_create(&rpd, plain, engine, packed, engine, NULL));
        dnnl_primitive_t reorder; CHECK(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t reorderArgs[2] = {{DNNL_ARG_FROM, mW}, {DNNL_ARG_TO, mWPacked}};
        CHECK(dnnl_primitive_execute(reorder, stream, 2, reorderArgs)); CHECK(dnnl_stream_wait(stream));
        dnnl_primitive_t product; CHECK(dnnl_primitive_create(&product, pd));
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mA}, {DNNL_ARG_WEIGHTS, mWPacked}, {DNNL_ARG_DST, mC},
                                   {DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, mScales}};
        printf("3.x %dx%dx%d %s %.4f\n", m, k, n, name, median_ms(product, stream, args, fp32 ? 3 : 4, m));
    }
    return 0;
}
