/* Small float32 products without packing, for attention's blocks: C [m, n]
 * = alpha A B + beta C where B's rows are contiguous (B.cs == 1) and A has
 * any strides. Why: a causal 128-step attention block is 32 x 32 x 32 to
 * 32 x 128 x 32, and the benchmark GPT makes ~4,000 such products per step;
 * OpenBLAS packs both operands and runs its beta pass over C on every call,
 * which held these at 19-39 GFLOP/s against 70-78 for the model's large
 * products (measured per shape, 2026-12-01). Here B is read in place (16
 * columns, two AVX registers, per row p) and A's elements are broadcast from
 * where they lie, so a product costs its multiply-adds and nothing else.
 * Tiles of up to 6 x 16 keep 12 accumulators in registers (the two FMA pipes
 * times their latency need at least 8 independent chains). Each element of
 * C is the sum over p in order, one FMA per term: the same bits whatever
 * the tiling, though not the same bits as OpenBLAS. */
#include "kernels/gemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NB_NO_AVX2)
#include <immintrin.h>
#include <math.h>
#include <string.h>

enum { MR = 6, NR = 16 };

/* One tile: rows [0, MR_) of A (row i at a + i ars, element p at + p acs)
 * times B's 16 columns at b (row p at b + p brs) into c (row stride ldc).
 * Written out per row count: the compilers keep an array of accumulators
 * in memory unless every index is a literal. */
#define ACC(r) __m256 c0##r = _mm256_setzero_ps(), c1##r = _mm256_setzero_ps();
#define FMA(r)                                                                           \
    {                                                                                    \
        __m256 av = _mm256_broadcast_ss(a + r * ars);                                    \
        c0##r = _mm256_fmadd_ps(av, b0, c0##r);                                          \
        c1##r = _mm256_fmadd_ps(av, b1, c1##r);                                          \
    }
#define OUT(r)                                                                           \
    {                                                                                    \
        float *cr = c + r * ldc;                                                         \
        __m256 y0 = _mm256_mul_ps(al, c0##r), y1 = _mm256_mul_ps(al, c1##r);             \
        if (beta != 0) { /* beta 0 never reads C, which may hold anything */             \
            y0 = _mm256_fmadd_ps(be, _mm256_loadu_ps(cr), y0);                           \
            y1 = _mm256_fmadd_ps(be, _mm256_loadu_ps(cr + 8), y1);                       \
        }                                                                                \
        _mm256_storeu_ps(cr, y0);                                                        \
        _mm256_storeu_ps(cr + 8, y1);                                                    \
    }
#define TILE(NAME, EACH)                                                                 \
    __attribute__((target("avx2,fma"))) static void NAME(                                \
        int64_t k, const float *a, int64_t ars, int64_t acs, const float *b, int64_t brs, \
        float alpha, float beta, float *c, int64_t ldc)                                  \
    {                                                                                    \
        EACH(ACC)                                                                        \
        for (int64_t p = 0; p < k; p++, a += acs, b += brs) {                            \
            __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);                 \
            EACH(FMA)                                                                    \
        }                                                                                \
        __m256 al = _mm256_set1_ps(alpha), be = _mm256_set1_ps(beta);                    \
        EACH(OUT)                                                                        \
    }
#define R1(X) X(0)
#define R2(X) R1(X) X(1)
#define R3(X) R2(X) X(2)
#define R4(X) R3(X) X(3)
#define R5(X) R4(X) X(4)
#define R6(X) R5(X) X(5)
TILE(tile1, R1)
TILE(tile2, R2)
TILE(tile3, R3)
TILE(tile4, R4)
TILE(tile5, R5)
TILE(tile6, R6)

typedef void tile_fn(int64_t, const float *, int64_t, int64_t, const float *, int64_t, float, float,
                     float *, int64_t);
static tile_fn *const tiles[MR + 1] = {NULL, tile1, tile2, tile3, tile4, tile5, tile6};

__attribute__((target("avx2,fma"))) static void run(int64_t m, int64_t n, int64_t k, float alpha,
                                                    nb__mat A, nb__mat B, float beta, float *C,
                                                    int64_t ldc)
{
    const float *a = A.p, *b = B.p;
    /* the last partial column panel goes through a zero-padded copy of B's
     * columns and a scratch tile, since reading or writing 16 lanes there
     * would cross the matrices' ends */
    float bpad[NB__SGEMM_SMALL_K * NR], ct[MR * NR];
    int64_t j = 0;
    for (; j + NR <= n; j += NR)
        for (int64_t i = 0; i < m; i += MR) {
            int mr = m - i < MR ? (int)(m - i) : MR;
            tiles[mr](k, a + i * A.rs, A.rs, A.cs, b + j, B.rs, alpha, beta, C + i * ldc + j, ldc);
        }
    if (j == n)
        return;
    const int64_t nr = n - j;
    for (int64_t p = 0; p < k; p++) {
        memcpy(bpad + p * NR, b + p * B.rs + j, (size_t)nr * sizeof(float));
        memset(bpad + p * NR + nr, 0, (size_t)(NR - nr) * sizeof(float));
    }
    for (int64_t i = 0; i < m; i += MR) {
        int mr = m - i < MR ? (int)(m - i) : MR;
        tiles[mr](k, a + i * A.rs, A.rs, A.cs, bpad, NR, alpha, 0.0f, ct, NR);
        for (int r = 0; r < mr; r++) {
            float *c = C + (i + r) * ldc + j;
            for (int64_t q = 0; q < nr; q++)
                c[q] = beta == 0 ? ct[r * NR + q] : fmaf(beta, c[q], ct[r * NR + q]);
        }
    }
}

bool nb__sgemm_small(int64_t m, int64_t n, int64_t k, float alpha, nb__mat A, nb__mat B,
                     float beta, float *C, int64_t ldc)
{
    if (!(B.cs == 1 || n == 1) || k > NB__SGEMM_SMALL_K || !__builtin_cpu_supports("avx2") ||
        !__builtin_cpu_supports("fma"))
        return false;
    run(m, n, k, alpha, A, B, beta, C, ldc);
    return true;
}
#else
bool nb__sgemm_small(int64_t m, int64_t n, int64_t k, float alpha, nb__mat A, nb__mat B,
                     float beta, float *C, int64_t ldc)
{
    (void)m, (void)n, (void)k, (void)alpha, (void)A, (void)B, (void)beta, (void)C, (void)ldc;
    return false;
}
#endif
