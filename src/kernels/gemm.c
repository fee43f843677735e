#include "kernels/gemm.h"

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

#define SMALL_GEMM(NAME, T)                                                              \
    static void NAME(int64_t m, int64_t n, int64_t k, T alpha, nb__mat A, nb__mat B,     \
                     T beta, T *C, int64_t ldc)                                          \
    {                                                                                    \
        const T *a = (const T *)A.p, *b = (const T *)B.p;                                \
        for (int64_t i = 0; i < m; i++) {                                                \
            T *c = C + i * ldc;                                                          \
            for (int64_t j = 0; j < n; j++) {                                            \
                T acc = 0;                                                               \
                for (int64_t p = 0; p < k; p++)                                          \
                    acc += a[i * A.rs + p * A.cs] * b[p * B.rs + j * B.cs];              \
                c[j] = beta == 0 ? alpha * acc : alpha * acc + beta * c[j];              \
            }                                                                            \
        }                                                                                \
    }
SMALL_GEMM(small_f32, float)
SMALL_GEMM(small_f64, double)

void nb__gemm(nb_dtype dt, int64_t m, int64_t n, int64_t k, double alpha, nb__mat A, nb__mat B,
              double beta, void *C, int64_t ldc)
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
    enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    if (dt == NB_F32)
        cblas_sgemm(CblasRowMajor, TA, TB, (int)m, (int)n, (int)k, (float)alpha, A.p, (int)lda,
                    B.p, (int)ldb, (float)beta, C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, TA, TB, (int)m, (int)n, (int)k, alpha, A.p, (int)lda, B.p,
                    (int)ldb, beta, C, (int)ldc);
}
