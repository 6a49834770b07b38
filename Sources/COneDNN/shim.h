#ifndef BGEM3_CONEDNN_SHIM_H
#define BGEM3_CONEDNN_SHIM_H
#include <dnnl.h>
// oneDNN from Debian runs on GNU OpenMP; the thread count is set through it.
void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
// libgomp's entry point for a parallel region (what `#pragma omp parallel` compiles to): the
// engine's own kernels run on the same OpenMP threads as oneDNN's, not on a second pool.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned int flags);
// glibc's allocator controls, for handing freed workspace back to the system.
#include <malloc.h>
#endif
