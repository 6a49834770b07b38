// The engine's int8 product on oneDNN 2.x (Debian's libdnnl 2.6.3): u8 activations × s8 weights in
// the primitive's own layout → f32, per-column scales fixed at creation, timed on BGE-M3's shapes.
// With `f32` it times the fp32 product instead (f32 × f32 → f32, weights in the primitive's
// layout, as the engine runs fp32). With `rowscale` it asks for the per-row multiply a fused
// epilogue would need and prints the implementation oneDNN picks for it (a reference kernel
// means: not fused, not usable).
#include <oneapi/dnnl/dnnl.h>
#include "common.h"

static void describe(dnnl_memory_desc_t *d, long rows, long columns, dnnl_data_type_t type, dnnl_format_tag_t tag) {
    dnnl_dims_t dims = {rows, columns};
    CHECK(dnnl_memory_desc_init_by_tag(d, 2, dims, type, tag));
}

int main(int argc, char **argv) {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    enum mode mode = start(argc, argv, &engine, &stream);
    int rowScale = mode == ROW_SCALE, fp32 = mode == PRODUCT_F32;
    dnnl_data_type_t activations = fp32 ? dnnl_f32 : dnnl_u8, weights = fp32 ? dnnl_f32 : dnnl_s8;
    for (int i = 0; i < SHAPE_COUNT; i++) {
        int m = SHAPES[i][0], k = SHAPES[i][1], n = SHAPES[i][2];
        dnnl_memory_desc_t src, plain, any, dst, rows;
        describe(&src, m, k, activations, dnnl_ab); describe(&plain, k, n, weights, dnnl_ba);
        describe(&any, k, n, weights, dnnl_format_tag_any); describe(&dst, m, n, dnnl_f32, dnnl_ab);
        describe(&rows, m, 1, dnnl_f32, dnnl_ab);
        dnnl_primitive_attr_t attr; CHECK(dnnl_primitive_attr_create(&attr));
        float *scales = malloc(4 * n); for (int j = 0; j < n; j++) scales[j] = 0.01f;
        if (!fp32) CHECK(dnnl_primitive_attr_set_output_scales(attr, n, 1 << 1, scales));
        if (rowScale) {
            dnnl_post_ops_t ops; CHECK(dnnl_post_ops_create(&ops));
            CHECK(dnnl_post_ops_append_binary(ops, dnnl_binary_mul, &rows));
            CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
        }
        dnnl_matmul_desc_t op; CHECK(dnnl_matmul_desc_init(&op, &src, &any, NULL, &dst));
        dnnl_primitive_desc_t pd; CHECK(dnnl_primitive_desc_create(&pd, &op, attr, engine, NULL));
        const char *name; dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
        if (rowScale) { printf("2.x %dx%dx%d per-row multiply: %s\n", m, k, n, name); continue; }
        const dnnl_memory_desc_t *packed = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        void *a, *w;
        if (fp32) random_f32_operands(m, k, n, (float **)&a, (float **)&w);
        else random_operands(m, k, n, (unsigned char **)&a, (signed char **)&w);
        void *wPacked = aligned_alloc(64, dnnl_memory_desc_get_size(packed) + 64); float *c = aligned_alloc(64, 4L * m * n);
        dnnl_memory_t mA, mW, mWPacked, mC;
        CHECK(dnnl_memory_create(&mA, &src, engine, a)); CHECK(dnnl_memory_create(&mW, &plain, engine, w));
        CHECK(dnnl_memory_create(&mWPacked, packed, engine, wPacked)); CHECK(dnnl_memory_create(&mC, &dst, engine, c));
        dnnl_primitive_desc_t rpd; CHECK(dnnl_reorder_primitive_desc_create(&rpd, &plain, engine, packed, engine, NULL));
        dnnl_primitive_t reorder; CHECK(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t reorderArgs[2] = {{DNNL_ARG_FROM, mW}, {DNNL_ARG_TO, mWPacked}};
        CHECK(dnnl_primitive_execute(reorder, stream, 2, reorderArgs)); CHECK(dnnl_stream_wait(stream));
        dnnl_primitive_t product; CHECK(dnnl_primitive_create(&product, pd));
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, mA}, {DNNL_ARG_WEIGHTS, mWPacked}, {DNNL_ARG_DST, mC}};
        printf("2.x %dx%dx%d %s %.4f\n", m, k, n, name, median_ms(product, stream, args, 3, m));
    }
    return 0;
}
