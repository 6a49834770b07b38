// BGE-M3's products (rows × inputs × outputs) at 16, 128 and 512 tokens, and the timing both
// API versions share.
#include <time.h>
static const int SHAPES[][3] = {
    {16, 1024, 3072}, {16, 1024, 4096}, {16, 4096, 1024},
    {128, 1024, 3072}, {128, 1024, 4096}, {128, 4096, 1024},
    {512, 1024, 3072}, {512, 1024, 4096}, {512, 4096, 1024},
};
#define SHAPE_COUNT ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static double seconds(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int ascending(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

// Median milliseconds of repeated runs after five warm-ups (fewer repeats for more rows).
static double median_ms(dnnl_primitive_t product, dnnl_stream_t stream, dnnl_exec_arg_t *args, int count, int rows) {
    enum { MOST = 400 };
    double times[MOST];
    int repeats = rows <= 16 ? 400 : rows <= 128 ? 100 : 30;
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
