/* Matrix multiply glue: C = alpha op(A) op(B) + beta C, row-major, with
 * general element strides for A and B (one of each pair must be 1 for BLAS).
 * Large products go to OpenBLAS; tiny ones (below NB__GEMM_SMALL
 * multiply-adds) run a plain loop, because BLAS's call overhead dominates
 * there (measured in bench/).
 *
 * Threads: OpenBLAS is pinned to one thread and nabla splits a large product
 * over its own OpenMP threads. Why: OpenBLAS 0.3.21's threaded GEMM mallocs a
 * 512 KiB job buffer on every call (seen in test_alloc), and its pthread pool
 * spinning next to libgomp's is what makes PyTorch slow at 2 threads here;
 * with one owner of the threads, neither happens. */
#ifndef NB_GEMM_H
#define NB_GEMM_H

#include "core/internal.h"

#define NB__GEMM_SMALL 4096

typedef struct nb__mat {
    const void *p;
    int64_t rs, cs; /* element strides of rows and columns */
} nb__mat;

/* True when BLAS can read the rows x cols matrix with these strides. */
bool nb__mat_blas_ok(int64_t rows, int64_t cols, int64_t rs, int64_t cs);

/* C [m, n] (row stride ldc, column stride 1) = alpha A[m,k] B[k,n] + beta C,
 * split over nthreads by rows (or columns, when C is wide) of C. */
void nb__gemm(nb_dtype dt, int64_t m, int64_t n, int64_t k, double alpha, nb__mat A, nb__mat B,
              double beta, void *C, int64_t ldc, int nthreads);

/* Small float32 products (k <= NB__SGEMM_SMALL_K, B's rows contiguous) by
 * kernels/sgemm_small.c's AVX2 tiles, without BLAS's packing; false (and
 * nothing done) where that does not apply or the CPU lacks AVX2 and FMA. */
#define NB__SGEMM_SMALL_K 512
/* ... and at most this many multiply-adds: above it OpenBLAS's packing pays
 * (256^3: 73 against 60 GFLOP/s; 128 x 128 x 32: 44-60 against 62-65) */
#define NB__SGEMM_SMALL_MAX (1 << 21)
bool nb__sgemm_small(int64_t m, int64_t n, int64_t k, float alpha, nb__mat A, nb__mat B,
                     float beta, float *C, int64_t ldc);

#endif
