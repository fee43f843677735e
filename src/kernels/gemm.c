#include "kernels/gemm.h"
#include "kernels/parallel.h"

#include <cblas.h>
#include <limits.h>

static bool layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool *trans, int64_t *ld)
{
    if (cols == 1)
        cs = 1;
    if (rows == 1)
        rs = cols > 1 ? cols : 1;
    if (cs == 1 && rs >= (cols > 1 ? cols : 1)) {
        *trans = false;
        *ld = rs > 1 ? rs : 1;
        return *ld <= INT_MAX;
    }
    if (rs == 1 && cs >= (rows > 1 ? rows : 1)) {
        *trans = true;
        *ld = cs > 1 ? cs : 1;
        return *ld <= INT_MAX;
    }
    return false;
}

bool nb__mat_blas_ok(int64_t rows, int64_t cols, int64_t rs, int64_t cs)
{
    bool t;
    int64_t ld;
    return rows <= INT_MAX && cols <= INT_MAX && layout(rows, cols, rs, cs, &t, &ld);
}

/* B row-major with long rows: i-p-j, an axpy of B's rows into C's row,
 * which vectorises; otherwise the plain i-j-p dot products, walking both
 * operands by pointer (no index arithmetic: these matrices are tiny). */
#define SMALL_GEMM(NAME, T)                                                              \
    static void NAME(int64_t m, int64_t n, int64_t k, T alpha, nb__mat A, nb__mat B,     \
                     T beta, T *C, int64_t ldc)                                          \
    {                                                                                    \
        const T *a = (const T *)A.p, *b = (const T *)B.p;                                \
        if (B.cs == 1 && n >= 8) {                                                       \
            for (int64_t i = 0; i < m; i++) {                                            \
                T *c = C + i * ldc;                                                      \
                for (int64_t j = 0; j < n; j++)                                          \
                    c[j] = beta == 0 ? (T)0 : beta * c[j];                               \
                for (int64_t p = 0; p < k; p++) {                                        \
                    const T av = alpha * a[i * A.rs + p * A.cs];                         \
                    const T *br = b + p * B.rs;                                          \
                    for (int64_t j = 0; j < n; j++)                                      \
                        c[j] += av * br[j * B.cs];                                       \
                }                                                                        \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        for (int64_t i = 0; i < m; i++) {                                                \
            T *c = C + i * ldc;                                                          \
            const T *ar = a + i * A.rs;                                                  \
            for (int64_t j = 0; j < n; j++) {                                            \
                const T *ap = ar, *bp = b + j * B.cs;                                    \
                T acc = 0;                                                               \
                for (int64_t p = 0; p < k; p++, ap += A.cs, bp += B.rs)                  \
                    acc += *ap * *bp;                                                    \
                c[j] = beta == 0 ? alpha * acc : alpha * acc + beta * c[j];              \
            }                                                                            \
        }                                                                                \
    }
SMALL_GEMM(small_f32, float)
SMALL_GEMM(small_f64, double)

static void gemm1(nb_dtype dt, int64_t m, int64_t n, int64_t k, double alpha, nb__mat A,
                  nb__mat B, double beta, void *C, int64_t ldc)
{
    if (m == 0 || n == 0)
        return;
    bool ta, tb;
    int64_t lda, ldb;
    bool blas = m * n * k > NB__GEMM_SMALL && layout(m, k, A.rs, A.cs, &ta, &lda) &&
                layout(k, n, B.rs, B.cs, &tb, &ldb) && ldc <= INT_MAX;
    if (!blas) {
        if (dt == NB_F32)
            small_f32(m, n, k, (float)alpha, A, B, (float)beta, (float *)C, ldc);
        else
            small_f64(m, n, k, alpha, A, B, beta, (double *)C, ldc);
        return;
    }
    if (dt == NB_F32 && m * n * k <= NB__SGEMM_SMALL_MAX &&
        nb__sgemm_small(m, n, k, (float)alpha, A, B, (float)beta, (float *)C, ldc))
        return;
    enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    if (dt == NB_F32)
        cblas_sgemm(CblasRowMajor, TA, TB, (int)m, (int)n, (int)k, (float)alpha, A.p, (int)lda,
                    B.p, (int)ldb, (float)beta, C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, TA, TB, (int)m, (int)n, (int)k, alpha, A.p, (int)lda, B.p,
                    (int)ldb, beta, C, (int)ldc);
}

/* Products below this many multiply-adds stay on one thread. */
#define NB__GEMM_PAR (1 << 18)

typedef struct {
    nb_dtype dt;
    int64_t m, n, k;
    double alpha, beta;
    nb__mat A, B;
    char *C;
    int64_t ldc;
    bool by_rows;
} gemm_job;

static void gemm_range(int64_t b, int64_t e, void *arg)
{
    const gemm_job *J = arg;
    size_t es = nb__esize(J->dt);
    nb__mat A = J->A, B = J->B;
    if (J->by_rows) {
        A.p = (const char *)A.p + b * A.rs * (int64_t)es;
        gemm1(J->dt, e - b, J->n, J->k, J->alpha, A, B, J->beta, J->C + b * J->ldc * (int64_t)es,
              J->ldc);
    } else {
        B.p = (const char *)B.p + b * B.cs * (int64_t)es;
        gemm1(J->dt, J->m, e - b, J->k, J->alpha, A, B, J->beta, J->C + b * (int64_t)es, J->ldc);
    }
}

void nb__gemm(nb_dtype dt, int64_t m, int64_t n, int64_t k, double alpha, nb__mat A, nb__mat B,
              double beta, void *C, int64_t ldc, int nthreads)
{
    if (nthreads <= 1 || m * n * k < NB__GEMM_PAR) {
        gemm1(dt, m, n, k, alpha, A, B, beta, C, ldc);
        return;
    }
    gemm_job J = {dt, m, n, k, alpha, beta, A, B, C, ldc, m >= n};
    nb__parallel_for(nthreads, J.by_rows ? m : n, 1 << 20, gemm_range, &J);
}
