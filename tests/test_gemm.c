/* The GEMM glue (src/kernels/gemm.c) and the small float32 kernel
 * (src/kernels/sgemm_small.c) against a double-precision reference: every
 * row count 1..13 (the kernel's tiles are 6 rows: full, partial and several
 * of each), column counts around its 16-wide panels (1, 15, 16, 17, 33),
 * depths 1..129, A plain and transposed, padded leading dimensions, alpha,
 * beta 0 (C holding NaN must be overwritten, not read), 1 and 0.5, and
 * elements outside the m x n window of C left untouched. The same cases go
 * through nb__gemm, which routes them to the kernel, to OpenBLAS or to the
 * plain loop by size, so every route is held to the same bound. */
#include "core/internal.h"
#include "kernels/gemm.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static uint32_t lcg = 12345;
static float frand(void)
{
    lcg = lcg * 1664525u + 1013904223u;
    return (float)((lcg >> 8) & 0xffff) / 32768.0f - 1.0f;
}

enum { LD_PAD = 3 };

/* C = alpha op(A) B + beta C through `small` (the kernel itself) or
 * nb__gemm, checked element by element: each product term is exact in double
 * and float32 sums of k terms of size <= 1 err by at most ~k 2^-24 each */
static int run_case(bool small, int64_t m, int64_t n, int64_t k, bool ta, float alpha, float beta)
{
    const int64_t lda = (ta ? m : k) + LD_PAD, ldb = n + LD_PAD, ldc = n + LD_PAD;
    const int64_t arows = ta ? k : m;
    float *A = malloc(sizeof(float) * (size_t)(arows * lda));
    float *B = malloc(sizeof(float) * (size_t)(k * ldb));
    float *C = malloc(sizeof(float) * (size_t)(m * ldc));
    float *C0 = malloc(sizeof(float) * (size_t)(m * ldc));
    assert_non_null(A);
    assert_non_null(B);
    assert_non_null(C);
    assert_non_null(C0);
    for (int64_t i = 0; i < arows * lda; i++)
        A[i] = frand();
    for (int64_t i = 0; i < k * ldb; i++)
        B[i] = frand();
    for (int64_t i = 0; i < m * ldc; i++)
        C[i] = C0[i] = beta == 0 ? NAN : frand();
    nb__mat Am = ta ? (nb__mat){A, 1, lda} : (nb__mat){A, lda, 1}, Bm = {B, ldb, 1};
    if (small) {
        if (!nb__sgemm_small(m, n, k, alpha, Am, Bm, beta, C, ldc)) {
            free(A), free(B), free(C), free(C0);
            return 0; /* no AVX2 + FMA here: nothing to check */
        }
    } else {
        nb__gemm(NB_F32, m, n, k, alpha, Am, Bm, beta, C, ldc, 1);
    }
    int bad = 0;
    for (int64_t i = 0; i < m && !bad; i++)
        for (int64_t j = 0; j < ldc && !bad; j++) {
            float got = C[i * ldc + j];
            if (j >= n) { /* padding: untouched, bit for bit (NaN included) */
                if (memcmp(&got, &C0[i * ldc + j], sizeof got) != 0) {
                    print_error("%s m=%lld n=%lld k=%lld ta=%d beta=%g: C[%lld][%lld] beyond n "
                                "changed\n", small ? "small" : "gemm", (long long)m,
                                (long long)n, (long long)k, ta, beta, (long long)i, (long long)j);
                    bad = 1;
                }
                continue;
            }
            double ref = 0;
            for (int64_t p = 0; p < k; p++)
                ref += (double)(ta ? A[p * lda + i] : A[i * lda + p]) * B[p * ldb + j];
            ref = alpha * ref + (beta == 0 ? 0.0 : (double)beta * C0[i * ldc + j]);
            double tol = 4e-7 * (double)(k + 2);
            if (!(fabs(got - ref) <= tol)) {
                print_error("%s m=%lld n=%lld k=%lld ta=%d alpha=%g beta=%g: C[%lld][%lld] = %.9g, "
                            "reference %.9g\n", small ? "small" : "gemm", (long long)m,
                            (long long)n, (long long)k, ta, alpha, beta, (long long)i,
                            (long long)j, got, ref);
                bad = 1;
            }
        }
    free(A), free(B), free(C), free(C0);
    return bad;
}

static void sweep(bool small)
{
    static const int64_t ns[] = {1, 15, 16, 17, 33}, ks[] = {1, 7, 32, 129};
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    int bad = 0;
    for (int64_t m = 1; m <= 13; m++)
        for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++)
                for (int ta = 0; ta < 2; ta++)
                    for (size_t ib = 0; ib < sizeof betas / sizeof betas[0]; ib++)
                        bad += run_case(small, m, ns[in], ks[ik], ta, ib == 2 ? -0.75f : 1.0f,
                                        betas[ib]);
    assert_int_equal(bad, 0);
}

static void test_small_kernel(void **state)
{
    (void)state;
    sweep(true);
}

static void test_gemm_routes(void **state)
{
    (void)state;
    sweep(false);
    /* the attention benchmark's block shapes, through nb__gemm */
    int bad = 0;
    bad += run_case(false, 32, 128, 32, false, 0.1767767f, 0.0f);
    bad += run_case(false, 128, 32, 32, true, 1.0f, 1.0f);
    bad += run_case(false, 32, 32, 128, false, 0.1767767f, 1.0f);
    /* above the kernel's size limit: OpenBLAS */
    bad += run_case(false, 160, 144, 130, false, 1.0f, 0.5f);
    assert_int_equal(bad, 0);
}

/* B with strided columns is not the kernel's: it declines, leaving C alone */
static void test_small_declines(void **state)
{
    (void)state;
    float A[4] = {1, 2, 3, 4}, B[4] = {1, 0, 0, 1}, C[4] = {9, 9, 9, 9};
    nb__mat Am = {A, 2, 1}, Bt = {B, 1, 2};
    assert_false(nb__sgemm_small(2, 2, 2, 1.0f, Am, Bt, 0.0f, C, 2));
    for (int i = 0; i < 4; i++)
        assert_true(C[i] == 9);
    nb__mat Bk = {B, 2, 1};
    assert_false(nb__sgemm_small(2, 2, NB__SGEMM_SMALL_K + 1, 1.0f, Am, Bk, 0.0f, C, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_kernel),
        cmocka_unit_test(test_gemm_routes),
        cmocka_unit_test(test_small_declines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
