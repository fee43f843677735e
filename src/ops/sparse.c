/* Sparse (CSR) matrix times dense matrix: the propagation step of a graph
 * convolution (Kipf & Welling), A_hat H.
 *   y[i, :] = sum_{p = rp[i]}^{rp[i+1]-1} v[p] x[c[p], :]
 *             A [M, K] as CSR (rp I64 [M+1], c I64 [nnz], v [nnz]), x [K, F] -> y [M, F]
 *   dx[k, :] += sum_{p: c[p] = k} v[p] g[row(p), :]          (dx = A^T g)
 *   dv[p]    += <g[row(p), :], x[c[p], :]>                  (only when v requires grad)
 * rp and c are integer constants (no gradient). A CSR made by nb_csr_from_coo
 * holds v in a buffer (a constant), so only x gets a gradient; v requiring
 * grad (learned edge weights) is supported and gradient-checked all the same.
 * Saved: nothing; the node keeps its four inputs, which must stay alive and
 * unchanged until the backward (true of an nb_csr's tensors while it lives).
 * Checks, before anything is written: dtypes (rp, c I64; v and x one float
 * dtype), ranks, rp[0] = 0, rp non-decreasing, rp[M] = nnz = len(v), every
 * column in [0, K), every value finite.
 * Threads: the forward splits rows of y. dx: the nonzeros are bucketed by
 * column once per backward (a stable counting sort into the arena, so each
 * bucket keeps nonzero order), then threads own disjoint rows of dx and each
 * row's sum runs in nonzero order whatever the thread count (deterministic).
 * dv splits rows of A (each nonzero written once by one thread).
 *
 * nb_csr_from_coo sorts (row, column, value) triplets by row then column,
 * sums duplicates in input order, and keeps the result in persistent tensors
 * (buffers) owned by the returned nb_csr. */
#include "core/internal.h"
#include "kernels/parallel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct spmm_job {
    const int64_t *rp, *c; /* row_ptr [M+1], columns [nnz] (contiguous) */
    const void *v;         /* values [nnz] (contiguous) */
    const char *x;         /* x data */
    int64_t xs0, xs1;      /* x strides in elements */
    int64_t F;
    void *y;               /* forward: y [M, F]; backward: dx [K, F] */
    const void *g;         /* upstream gradient [M, F] (backward) */
    void *dv;              /* value gradient [nnz] (backward) */
    const int64_t *bptr, *perm, *rowof; /* column buckets (backward dx) */
} spmm_job;

/* Kernels for one float type T. Accumulation in T, in nonzero order. */
#define SPMM_KERNELS(T, S)                                                                  \
    static void fwd_##S(int64_t b, int64_t e, void *arg)                                     \
    {                                                                                       \
        const spmm_job *J = arg;                                                            \
        const T *v = J->v, *x = (const T *)J->x;                                            \
        for (int64_t i = b; i < e; i++) {                                                   \
            T *y = (T *)J->y + i * J->F;                                                    \
            for (int64_t f = 0; f < J->F; f++)                                              \
                y[f] = 0;                                                                   \
            for (int64_t p = J->rp[i]; p < J->rp[i + 1]; p++) {                             \
                const T a = v[p], *xr = x + J->c[p] * J->xs0;                               \
                if (J->xs1 == 1)                                                            \
                    for (int64_t f = 0; f < J->F; f++)                                      \
                        y[f] += a * xr[f];                                                  \
                else                                                                        \
                    for (int64_t f = 0; f < J->F; f++)                                      \
                        y[f] += a * xr[f * J->xs1];                                         \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* rows [b, e) of dx */                                                                 \
    static void bwd_x_##S(int64_t b, int64_t e, void *arg)                                   \
    {                                                                                       \
        const spmm_job *J = arg;                                                            \
        const T *v = J->v, *g = J->g;                                                       \
        for (int64_t k = b; k < e; k++) {                                                   \
            T *d = (T *)J->y + k * J->F;                                                    \
            for (int64_t q = J->bptr[k]; q < J->bptr[k + 1]; q++) {                         \
                const int64_t p = J->perm[q];                                               \
                const T a = v[p], *gr = g + J->rowof[p] * J->F;                             \
                for (int64_t f = 0; f < J->F; f++)                                          \
                    d[f] += a * gr[f];                                                      \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* the nonzeros of rows [b, e) of A */                                                  \
    static void bwd_v_##S(int64_t b, int64_t e, void *arg)                                   \
    {                                                                                       \
        const spmm_job *J = arg;                                                            \
        const T *x = (const T *)J->x, *g = J->g;                                            \
        T *dv = J->dv;                                                                      \
        for (int64_t i = b; i < e; i++) {                                                   \
            const T *gr = g + i * J->F;                                                     \
            for (int64_t p = J->rp[i]; p < J->rp[i + 1]; p++) {                             \
                const T *xr = x + J->c[p] * J->xs0;                                         \
                double s = 0;                                                               \
                for (int64_t f = 0; f < J->F; f++)                                          \
                    s += (double)gr[f] * (double)xr[f * J->xs1];                            \
                dv[p] += (T)s;                                                              \
            }                                                                               \
        }                                                                                   \
    }

SPMM_KERNELS(float, f32)
SPMM_KERNELS(double, f64)

/* t itself when contiguous, else a contiguous step copy (NULL + error). */
static nb_tensor *contig(nb_ctx *ctx, nb_tensor *t)
{
    if (t->ndim != 1 || t->shape[0] <= 1 || t->strides[0] == 1)
        return t;
    nb_tensor *c = nb__new_step(ctx, t->dtype, 1, t->shape);
    if (c)
        nb__copy_strided(ctx, c, t);
    return c;
}

/* Validates the CSR against x (K = x's rows); records the error. */
static bool check_csr(nb_ctx *ctx, const int64_t *rp, int64_t M, const int64_t *c, const void *v,
                      bool f64, int64_t nnz, const nb_tensor *x)
{
    char b[NB__SHAPE_BUF];
    if (rp[0] != 0) {
        nb__err(ctx, NB_ERR_INDEX, "spmm: row_ptr[0] is %lld, must be 0", (long long)rp[0]);
        return false;
    }
    for (int64_t i = 0; i < M; i++)
        if (rp[i + 1] < rp[i]) {
            nb__err(ctx, NB_ERR_INDEX,
                    "spmm: row_ptr[%lld] = %lld is less than row_ptr[%lld] = %lld "
                    "(row_ptr must not decrease)",
                    (long long)(i + 1), (long long)rp[i + 1], (long long)i, (long long)rp[i]);
            return false;
        }
    if (rp[M] != nnz) {
        nb__err(ctx, NB_ERR_SHAPE, "spmm: row_ptr[%lld] = %lld but col and values have %lld entries",
                (long long)M, (long long)rp[M], (long long)nnz);
        return false;
    }
    const int64_t K = x->shape[0];
    for (int64_t i = 0; i < M; i++)
        for (int64_t p = rp[i]; p < rp[i + 1]; p++) {
            if (c[p] < 0 || c[p] >= K) {
                nb__err(ctx, NB_ERR_INDEX,
                        "spmm: column %lld at position %lld (row %lld) is outside [0, %lld) (x %s)",
                        (long long)c[p], (long long)p, (long long)i, (long long)K,
                        nb_shape_str(x, b, sizeof b));
                return false;
            }
            double a = f64 ? ((const double *)v)[p] : (double)((const float *)v)[p];
            if (!isfinite(a)) {
                nb__err(ctx, NB_ERR_NUMERIC,
                        "spmm: value %g at position %lld (row %lld, column %lld) is not finite", a,
                        (long long)p, (long long)i, (long long)c[p]);
                return false;
            }
        }
    return true;
}

nb_tensor *nb_spmm_csr(nb_ctx *ctx, nb_tensor *row_ptr, nb_tensor *col, nb_tensor *val, nb_tensor *x)
{
    if (!ctx || nb__null_in(ctx, "spmm", 4, row_ptr, col, val, x))
        return NULL;
    char b1[NB__SHAPE_BUF], b2[NB__SHAPE_BUF], b3[NB__SHAPE_BUF];
    if (row_ptr->dtype != NB_I64 || col->dtype != NB_I64) {
        nb__err(ctx, NB_ERR_DTYPE, "spmm: row_ptr and col must be i64, got %s and %s",
                nb_dtype_name(row_ptr->dtype), nb_dtype_name(col->dtype));
        return NULL;
    }
    if (x->dtype != NB_F32 && x->dtype != NB_F64) {
        nb__err(ctx, NB_ERR_DTYPE, "spmm: x must be f32 or f64, got %s", nb_dtype_name(x->dtype));
        return NULL;
    }
    if (val->dtype != x->dtype) {
        nb__err(ctx, NB_ERR_DTYPE, "spmm: values are %s but x is %s", nb_dtype_name(val->dtype),
                nb_dtype_name(x->dtype));
        return NULL;
    }
    if (x->ndim != 2) {
        nb__err(ctx, NB_ERR_SHAPE, "spmm: x %s must be 2-D [K, F]", nb_shape_str(x, b1, sizeof b1));
        return NULL;
    }
    if (row_ptr->ndim != 1 || row_ptr->shape[0] < 1 || col->ndim != 1 || val->ndim != 1 ||
        col->shape[0] != val->shape[0]) {
        nb__err(ctx, NB_ERR_SHAPE,
                "spmm: row_ptr %s, col %s, values %s should be [M+1], [nnz], [nnz]",
                nb_shape_str(row_ptr, b1, sizeof b1), nb_shape_str(col, b2, sizeof b2),
                nb_shape_str(val, b3, sizeof b3));
        return NULL;
    }
    const int64_t M = row_ptr->shape[0] - 1, nnz = col->shape[0], F = x->shape[1];
    nb_tensor *rp = contig(ctx, row_ptr), *c = contig(ctx, col), *v = contig(ctx, val);
    if (!rp || !c || !v)
        return NULL;
    if (!check_csr(ctx, rp->data, M, c->data, v->data, x->dtype == NB_F64, nnz, x))
        return NULL;
    nb_tensor *y = nb__new_step(ctx, x->dtype, 2, (const int64_t[]){M, F});
    if (!y)
        return NULL;
    spmm_job J = {.rp = rp->data, .c = c->data, .v = v->data, .x = x->data, .xs0 = x->strides[0],
                  .xs1 = x->strides[1], .F = F, .y = y->data};
    if (M > 0 && F > 0)
        nb__parallel_for(ctx->nthreads, M, (nnz / M + 1) * F, x->dtype == NB_F64 ? fwd_f64 : fwd_f32,
                         &J);
    nb_tensor *in[4] = {row_ptr, col, val, x};
    if (nb__needs_grad(ctx, 4, in) && !nb__record(ctx, NB__OP_SPMM, y, 4, in))
        return NULL;
    return y;
}

nb_status nb__spmm_backward(nb_ctx *ctx, nb__node *nd)
{
    nb_tensor *x = nd->in[3], *dx, *dv;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st == NB_OK)
        st = nb__grad_of(ctx, nd->in[2], &dv);
    if (st != NB_OK)
        return st;
    nb_tensor *rp = contig(ctx, nd->in[0]), *c = contig(ctx, nd->in[1]), *v = contig(ctx, nd->in[2]);
    if (!rp || !c || !v)
        return nb_last_status(ctx);
    const int64_t M = rp->shape[0] - 1, nnz = c->shape[0], K = x->shape[0], F = x->shape[1];
    if (M == 0 || F == 0 || nnz == 0)
        return NB_OK;
    const bool f64 = x->dtype == NB_F64;
    spmm_job J = {.rp = rp->data, .c = c->data, .v = v->data, .x = x->data, .xs0 = x->strides[0],
                  .xs1 = x->strides[1], .F = F, .g = nd->out->grad->data};
    if (dv) {
        J.dv = dv->data;
        nb__parallel_for(ctx->nthreads, M, (nnz / M + 1) * F, f64 ? bwd_v_f64 : bwd_v_f32, &J);
    }
    if (!dx)
        return NB_OK;
    /* bucket the nonzeros by column: bptr [K+1], perm [nnz] (stable), rowof [nnz] */
    int64_t *bptr = nb__arena_alloc(ctx, sizeof(int64_t) * (size_t)(K + 1 + 2 * nnz));
    if (!bptr)
        return nb__arena_err(ctx, "spmm backward", sizeof(int64_t) * (size_t)(K + 1 + 2 * nnz));
    int64_t *perm = bptr + K + 1, *rowof = perm + nnz;
    const int64_t *rpd = rp->data, *cd = c->data;
    memset(bptr, 0, sizeof(int64_t) * (size_t)(K + 1));
    for (int64_t i = 0; i < M; i++)
        for (int64_t p = rpd[i]; p < rpd[i + 1]; p++) {
            rowof[p] = i;
            bptr[cd[p] + 1]++;
        }
    for (int64_t k = 0; k < K; k++)
        bptr[k + 1] += bptr[k];
    /* fill the buckets in nonzero order with a running cursor per column */
    int64_t *cur = nb__arena_alloc(ctx, sizeof(int64_t) * (size_t)(K > 0 ? K : 1));
    if (!cur)
        return nb__arena_err(ctx, "spmm backward", sizeof(int64_t) * (size_t)K);
    memcpy(cur, bptr, sizeof(int64_t) * (size_t)K);
    for (int64_t p = 0; p < nnz; p++)
        perm[cur[cd[p]]++] = p;
    J.y = dx->data;
    J.bptr = bptr;
    J.perm = perm;
    J.rowof = rowof;
    nb__parallel_for(ctx->nthreads, K, (nnz / (K > 0 ? K : 1) + 1) * F, f64 ? bwd_x_f64 : bwd_x_f32,
                     &J);
    return NB_OK;
}

/* ---- nb_csr ---------------------------------------------------------------- */
typedef struct coo_ent {
    int64_t col, pos; /* pos: index in the caller's arrays (ties keep input order) */
} coo_ent;

static int cmp_ent(const void *a, const void *b)
{
    const coo_ent *x = a, *y = b;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

nb_csr *nb_csr_from_coo(nb_ctx *ctx, nb_dtype dt, int64_t rows, int64_t cols, int64_t nnz,
                        const int64_t *row, const int64_t *col, const double *val)
{
    if (!ctx)
        return NULL;
    if (dt != NB_F32 && dt != NB_F64) {
        nb__err(ctx, NB_ERR_DTYPE, "csr_from_coo: dtype must be f32 or f64, got %s",
                nb_dtype_name(dt));
        return NULL;
    }
    const int64_t big = INT64_MAX / 64;
    if (rows < 0 || cols < 0 || nnz < 0 || rows >= big || cols >= big || nnz >= big) {
        nb__err(ctx, NB_ERR_ARG, "csr_from_coo: sizes must be in [0, 2^57): rows %lld, cols %lld, "
                "nnz %lld", (long long)rows, (long long)cols, (long long)nnz);
        return NULL;
    }
    if (nnz > 0 && (!row || !col)) {
        nb__err(ctx, NB_ERR_NULL, "csr_from_coo: row and col must not be NULL when nnz > 0");
        return NULL;
    }
    for (int64_t p = 0; p < nnz; p++) {
        if (row[p] < 0 || row[p] >= rows) {
            nb__err(ctx, NB_ERR_INDEX, "csr_from_coo: row index %lld at position %lld is outside "
                    "[0, %lld)", (long long)row[p], (long long)p, (long long)rows);
            return NULL;
        }
        if (col[p] < 0 || col[p] >= cols) {
            nb__err(ctx, NB_ERR_INDEX, "csr_from_coo: column index %lld at position %lld is "
                    "outside [0, %lld)", (long long)col[p], (long long)p, (long long)cols);
            return NULL;
        }
        if (val && !isfinite(val[p])) {
            nb__err(ctx, NB_ERR_NUMERIC, "csr_from_coo: value %g at position %lld is not finite",
                    val[p], (long long)p);
            return NULL;
        }
    }
    /* scratch: rp [rows+1], ent [nnz], merged columns and values [nnz] */
    size_t bytes = sizeof(int64_t) * (size_t)(rows + 1) + sizeof(coo_ent) * (size_t)nnz +
                   (sizeof(int64_t) + sizeof(double)) * (size_t)nnz + 16;
    int64_t *rp = nb__heap_alloc(ctx, bytes);
    nb_csr *a = nb__heap_alloc(ctx, sizeof *a);
    if (!rp || !a) {
        nb__heap_free(ctx, rp);
        nb__heap_free(ctx, a);
        nb__err(ctx, NB_ERR_NOMEM, "csr_from_coo: cannot allocate %zu bytes", bytes);
        return NULL;
    }
    coo_ent *ent = (coo_ent *)(rp + rows + 1);
    int64_t *mc = (int64_t *)(ent + nnz);
    double *mv = (double *)(mc + nnz);
    /* stable counting sort by row, then each row by (column, position) */
    memset(rp, 0, sizeof(int64_t) * (size_t)(rows + 1));
    for (int64_t p = 0; p < nnz; p++)
        rp[row[p] + 1]++;
    for (int64_t i = 0; i < rows; i++)
        rp[i + 1] += rp[i];
    for (int64_t p = 0; p < nnz; p++) { /* rp[r] runs as the cursor, then shifts back */
        ent[rp[row[p]]++] = (coo_ent){col[p], p};
    }
    for (int64_t i = rows; i > 0; i--)
        rp[i] = rp[i - 1];
    rp[0] = 0;
    /* merge duplicates (summed in input order) and rebuild rp over the merged list */
    int64_t m = 0;
    for (int64_t i = 0; i < rows; i++) {
        int64_t b = rp[i], e = rp[i + 1];
        if (e - b > 1)
            qsort(ent + b, (size_t)(e - b), sizeof(coo_ent), cmp_ent);
        rp[i] = m;
        for (int64_t q = b; q < e; q++) {
            double x = val ? val[ent[q].pos] : 1.0;
            if (q > b && ent[q].col == ent[q - 1].col) {
                mv[m - 1] += x;
            } else {
                mc[m] = ent[q].col;
                mv[m++] = x;
            }
        }
    }
    rp[rows] = m;
    a->rows = rows;
    a->cols = cols;
    a->nnz = m;
    a->row_ptr = nb_buffer(ctx, NB_I64, 1, (const int64_t[]){rows + 1});
    a->col = nb_buffer(ctx, NB_I64, 1, &m);
    a->val = nb_buffer(ctx, dt, 1, &m);
    if (!a->row_ptr || !a->col || !a->val) {
        nb_csr_free(ctx, a);
        nb__heap_free(ctx, rp);
        return NULL;
    }
    memcpy(a->row_ptr->data, rp, sizeof(int64_t) * (size_t)(rows + 1));
    if (m > 0)
        memcpy(a->col->data, mc, sizeof(int64_t) * (size_t)m);
    for (int64_t p = 0; p < m; p++) {
        if (dt == NB_F64)
            ((double *)a->val->data)[p] = mv[p];
        else
            ((float *)a->val->data)[p] = (float)mv[p];
    }
    nb__heap_free(ctx, rp);
    return a;
}

void nb_csr_free(nb_ctx *ctx, nb_csr *a)
{
    if (!ctx || !a)
        return;
    nb_tensor_free(ctx, a->row_ptr);
    nb_tensor_free(ctx, a->col);
    nb_tensor_free(ctx, a->val);
    nb__heap_free(ctx, a);
}

nb_tensor *nb_spmm(nb_ctx *ctx, const nb_csr *a, nb_tensor *x)
{
    if (!ctx || nb__null_in(ctx, "spmm", 2, a, x))
        return NULL;
    char b[NB__SHAPE_BUF];
    if (x->ndim != 2 || x->shape[0] != a->cols) {
        nb__err(ctx, NB_ERR_SHAPE, "spmm: A [%lld,%lld] @ x %s: x should be [%lld, F]",
                (long long)a->rows, (long long)a->cols, nb_shape_str(x, b, sizeof b),
                (long long)a->cols);
        return NULL;
    }
    return nb_spmm_csr(ctx, a->row_ptr, a->col, a->val, x);
}
