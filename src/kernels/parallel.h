/* nabla owns the threads: every parallel loop goes through here (OpenMP),
 * and BLAS runs single-threaded inside it (see gemm.c). A loop too small
 * to share never enters a parallel region at all, because even a serial
 * OpenMP region costs libgomp an allocation per call. */
#ifndef NB_PARALLEL_H
#define NB_PARALLEL_H

#include <stdint.h>

typedef void (*nb__range_fn)(int64_t begin, int64_t end, void *arg);

/* Runs fn over [0, n) split into contiguous ranges, one per thread, when
 * n * cost (a rough count of operations) is worth it; else fn(0, n, arg). */
void nb__parallel_for(int nthreads, int64_t n, int64_t cost, nb__range_fn fn, void *arg);

#endif
