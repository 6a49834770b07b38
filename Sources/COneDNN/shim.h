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
// A software prefetch of the cache line at `address` (for reading, kept in every level): Swift has
// no spelling for it, and attention reads each head's slice of rows 12 KiB apart, a stride the
// hardware prefetchers do not follow across pages.
static inline void bgem3_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }
// The same for a line about to be written.
static inline void bgem3_prefetch_for_writing(const void *address) { __builtin_prefetch(address, 1, 3); }
// glibc's allocator controls, for handing freed workspace back to the system.
#include <malloc.h>
#endif
