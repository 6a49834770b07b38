// What the programs here share (both API versions' layer-product timings, and
// attention_products.c): BGE-M3's products (rows × inputs × outputs) at 16, 128, 512 and 2,048
// tokens (a packed batch), start-up, random operands and the timing. The calls here are the same
// in 2.x and 3.x; include it after <oneapi/dnnl/dnnl.h>.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) { fprintf(stderr, "%s: %d\n", #x, s_); exit(1); } } while (0)
static const int SHAPES[][3] = {
    {16, 1024, 3072}, {16, 1024, 4096}, {16, 4096, 1024},
    {128, 1024, 3072}, {128, 1024, 4096}, {128, 4096, 1024},
    {512, 1024, 3072}, {512, 1024, 4096}, {512, 4096, 1024},
    {2048, 1024, 3072}, {2048, 1024, 4096}, {2048, 4096, 1024},
};
#define SHAPE_COUNT ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static double seconds(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int ascending(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

// Median milliseconds of repeated runs after five warm-ups (fewer repeats for more rows).
static double median_ms(dnnl_primitive_t product, dnnl_stream_t stream, dnnl_exec_arg_t *args, int count, int rows) {
    enum { MOST = 400 };
    double times[MOST];
    int repeats = rows <= 16 ? 400 : rows <= 128 ? 100 : rows <= 512 ? 30 : 10;
    for (int r = 0; r < 5; r++) { dnnl_primitive_execute(product, stream, count, args); dnnl_stream_wait(stream); }
    for (int r = 0; r < repeats; r++) {
        double start = seconds();
        dnnl_primitive_execute(product, stream, count, args);
        dnnl_stream_wait(stream);
        times[r] = seconds() - start;
    }
    qsort(times, repeats, sizeof times[0], ascending);
    return times[repeats / 2] * 1e3;
}

// What a program is asked to do: time the int8 product (no argument), name the kernel for a
// per-row multiply (`rowscale`), or time the fp32 product the engine runs at fp32 (`f32`).
enum mode { PRODUCT_INT8, ROW_SCALE, PRODUCT_F32 };

// The CPU engine and a stream on it; returns what was asked for.
static enum mode start(int argc, char **argv, dnnl_engine_t *engine, dnnl_stream_t *stream) {
    CHECK(dnnl_engine_create(engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(stream, *engine, dnnl_stream_default_flags));
    if (argc > 1 && strcmp(argv[1], "rowscale") == 0) return ROW_SCALE;
    return argc > 1 && strcmp(argv[1], "f32") == 0 ? PRODUCT_F32 : PRODUCT_INT8;
}

// Random u8 activations (m × k) and s8 weights (n × k, Linear's layout).
static void random_operands(int m, int k, int n, unsigned char **a, signed char **w) {
    *a = aligned_alloc(64, (size_t)m * k);
    *w = aligned_alloc(64, (size_t)k * n);
    for (long j = 0; j < (long)m * k; j++) (*a)[j] = rand() & 255;
    for (long j = 0; j < (long)k * n; j++) (*w)[j] = (signed char)(rand() % 255 - 127);
}

// Random fp32 operands of the same shapes, in [-1, 1).
static void random_f32_operands(int m, int k, int n, float **a, float **w) {
    *a = aligned_alloc(64, 4L * m * k);
    *w = aligned_alloc(64, 4L * k * n);
    for (long j = 0; j < (long)m * k; j++) (*a)[j] = rand() / (RAND_MAX / 2.0f) - 1;
    for (long j = 0; j < (long)k * n; j++) (*w)[j] = rand() / (RAND_MAX / 2.0f) - 1;
}
