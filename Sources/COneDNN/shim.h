#ifndef BGEM3_CONEDNN_SHIM_H
#define BGEM3_CONEDNN_SHIM_H
#include <dnnl.h>
// oneDNN from Debian runs on GNU OpenMP; the thread count is set through it.
void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);
// glibc's allocator controls, for handing freed workspace back to the system.
#include <malloc.h>
#endif
