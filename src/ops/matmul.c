/* matmul: y = a @ b over the last two dims, batch dims broadcast.
 *   a [..., m, k], b [..., k, n]  ->  y [..., m, n]
 *   da += g @ b^T      db += a^T @ g
 * Nothing is saved beyond the inputs. Transposed views go to BLAS as
 * transpose flags; other layouts are made contiguous first (a recorded op).
 * Where an input's batch dim is broadcast, its gradient's batch stride is 0
 * and the per-batch GEMMs accumulate (beta = 1) into the same slice. */
#include "core/internal.h"
#include "kernels/gemm.h"

#include <stdio.h>

typedef struct {
    int nbatch;                       /* batch dims of the output */
    int64_t bshape[NB_MAX_DIMS];
    int64_t sa[NB_MAX_DIMS], sb[NB_MAX_DIMS], sy[NB_MAX_DIMS]; /* batch strides (elements) */
    int64_t m, n, k;
} mm_plan;

static void plan_strides(const nb_tensor *t, int nbatch, const int64_t *bshape, int64_t *s)
{
    int tb = t->ndim - 2, off = nbatch - tb;
    for (int i = 0; i < nbatch; i++) {
        int j = i - off;
        s[i] = (j >= 0 && t->shape[j] == bshape[i]) ? t->strides[j] : 0;
    }
}

static nb__mat mat_of(const nb_tensor *t, int64_t off)
{
    nb__mat M;
    M.p = (const char *)t->data + off * (int64_t)nb__esize(t->dtype);
    M.rs = t->strides[t->ndim - 2];
    M.cs = t->strides[t->ndim - 1];
    return M;
}

static nb__mat mat_t(nb__mat M)
{
    int64_t r = M.rs;
    M.rs = M.cs;
    M.cs = r;
    return M;
}

/* Calls fn for every batch index with the element offsets of a, b and y. */
#define FOR_BATCH(P, OA, OB, OY, ...)                                                   \
    do {                                                                                 \
        int64_t idx_[NB_MAX_DIMS] = {0};                                                 \
        int64_t total_ = nb__prod((P)->nbatch, (P)->bshape);                            \
        for (int64_t t_ = 0; t_ < total_; t_++) {                                        \
            int64_t OA = 0, OB = 0, OY = 0;                                              \
            for (int d_ = 0; d_ < (P)->nbatch; d_++) {                                   \
                OA += idx_[d_] * (P)->sa[d_];                                            \
                OB += idx_[d_] * (P)->sb[d_];                                            \
                OY += idx_[d_] * (P)->sy[d_];                                            \
            }                                                                            \
            __VA_ARGS__;                                                                      \
            for (int d_ = (P)->nbatch - 1; d_ >= 0; d_--) {                              \
                if (++idx_[d_] < (P)->bshape[d_])                                        \
                    break;                                                               \
                idx_[d_] = 0;                                                            \
            }                                                                            \
        }                                                                                \
    } while (0)

static bool make_plan(nb_ctx *ctx, const nb_tensor *a, const nb_tensor *b, mm_plan *P,
                      int64_t *yshape, int *yndim)
{
    char sa[NB__SHAPE_BUF], sb[NB__SHAPE_BUF];
    if (a->shape[a->ndim - 1] != b->shape[b->ndim - 2]) {
        nb__err(ctx, NB_ERR_SHAPE, "matmul: inner dimensions differ: %s @ %s",
                nb_shape_str(a, sa, sizeof sa), nb_shape_str(b, sb, sizeof sb));
        return false;
    }
    int nb_ = nb__broadcast_shape(a->ndim - 2, a->shape, b->ndim - 2, b->shape, P->bshape);
    if (nb_ < 0) {
        nb__err(ctx, NB_ERR_SHAPE, "matmul: batch dimensions do not broadcast: %s @ %s",
                nb_shape_str(a, sa, sizeof sa), nb_shape_str(b, sb, sizeof sb));
        return false;
    }
    P->nbatch = nb_;
    P->m = a->shape[a->ndim - 2];
    P->k = a->shape[a->ndim - 1];
    P->n = b->shape[b->ndim - 1];
    for (int i = 0; i < nb_; i++)
        yshape[i] = P->bshape[i];
    yshape[nb_] = P->m;
    yshape[nb_ + 1] = P->n;
    *yndim = nb_ + 2;
    plan_strides(a, nb_, P->bshape, P->sa);
    plan_strides(b, nb_, P->bshape, P->sb);
    int64_t ys[NB_MAX_DIMS];
    nb__contig_strides(*yndim, yshape, ys);
    for (int i = 0; i < nb_; i++)
        P->sy[i] = ys[i];
    return true;
}

/* a's batch and row dims fold into one when b is a plain matrix and a's rows
 * are evenly spaced across the batch: one large GEMM instead of many. */
static bool foldable(const nb_tensor *a, const mm_plan *P, int b_ndim)
{
    if (b_ndim != 2 || P->nbatch == 0)
        return false;
    int64_t rs = a->strides[a->ndim - 2], expect = rs * P->m;
    for (int i = a->ndim - 3; i >= 0; i--) {
        if (a->shape[i] != 1 && a->strides[i] != expect)
            return false;
        expect *= a->shape[i];
    }
    return a->ndim - 2 == P->nbatch;
}

static nb_tensor *blas_ready(nb_ctx *ctx, nb_tensor *t)
{
    int64_t r = t->shape[t->ndim - 2], c = t->shape[t->ndim - 1];
    if (nb__mat_blas_ok(r, c, t->strides[t->ndim - 2], t->strides[t->ndim - 1]))
        return t;
    return nb_contiguous(ctx, t);
}

nb_tensor *nb_matmul(nb_ctx *ctx, nb_tensor *a, nb_tensor *b)
{
    if (!ctx || nb__null_in(ctx, "matmul", 2, a, b))
        return NULL;
    if (!nb__is_float(a->dtype) || a->dtype != b->dtype) {
        nb__err(ctx, NB_ERR_DTYPE, "matmul: needs two float tensors of one dtype, got %s and %s",
                nb_dtype_name(a->dtype), nb_dtype_name(b->dtype));
        return NULL;
    }
    if (a->ndim == 0 || b->ndim == 0) {
        nb__err(ctx, NB_ERR_SHAPE, "matmul: operands must have at least one dimension (got %d and %d)",
                a->ndim, b->ndim);
        return NULL;
    }
    /* vectors as in torch.matmul: [k] @ [.., k, n] and [.., m, k] @ [k] */
    if (a->ndim == 1 || b->ndim == 1) {
        bool va = a->ndim == 1, vb = b->ndim == 1;
        nb_tensor *a2 = va ? nb_unsqueeze(ctx, a, 0) : a;
        nb_tensor *b2 = vb ? nb_unsqueeze(ctx, b, 1) : b;
        nb_tensor *y = nb_matmul(ctx, a2, b2);
        if (y && vb)
            y = nb_squeeze(ctx, y, -1);
        if (y && va)
            y = nb_squeeze(ctx, y, -2);
        return y;
    }
    mm_plan P;
    int64_t yshape[NB_MAX_DIMS];
    int yndim;
    if (!make_plan(ctx, a, b, &P, yshape, &yndim))
        return NULL;
    a = blas_ready(ctx, a);
    b = blas_ready(ctx, b);
    if (!a || !b)
        return NULL;
    plan_strides(a, P.nbatch, P.bshape, P.sa);
    plan_strides(b, P.nbatch, P.bshape, P.sb);
    nb_tensor *y = nb__new_step(ctx, a->dtype, yndim, yshape);
    if (!y)
        return NULL;
    if (foldable(a, &P, b->ndim)) {
        int64_t M = nb__prod(P.nbatch, P.bshape) * P.m;
        nb__gemm(a->dtype, M, P.n, P.k, 1.0, mat_of(a, 0), mat_of(b, 0), 0.0, y->data, P.n,
                 ctx->nthreads);
    } else {
        size_t es = nb__esize(a->dtype);
        FOR_BATCH(&P, oa, ob, oy,
                  nb__gemm(a->dtype, P.m, P.n, P.k, 1.0, mat_of(a, oa), mat_of(b, ob), 0.0,
                           (char *)y->data + oy * (int64_t)es, P.n, ctx->nthreads));
    }
    nb_tensor *in[2] = {a, b};
    if (nb__needs_grad(ctx, 2, in) && !nb__record(ctx, NB__OP_MATMUL, y, 2, in))
        return NULL;
    return y;
}

nb_status nb__matmul_backward(nb_ctx *ctx, nb__node *node)
{
    nb_tensor *a = node->in[0], *b = node->in[1], *y = node->out, *g = y->grad;
    nb_tensor *da, *db;
    nb_status st = nb__grad_of(ctx, a, &da);
    if (st == NB_OK)
        st = nb__grad_of(ctx, b, &db);
    if (st != NB_OK)
        return st;
    mm_plan P;
    int64_t yshape[NB_MAX_DIMS];
    int yndim;
    make_plan(ctx, a, b, &P, yshape, &yndim);
    nb_dtype dt = y->dtype;
    size_t es = nb__esize(dt);
    if (foldable(a, &P, b->ndim)) {
        int64_t M = nb__prod(P.nbatch, P.bshape) * P.m;
        nb__mat G = {g->data, P.n, 1};
        if (da) /* da is contiguous, so its rows fold the same way */
            nb__gemm(dt, M, P.k, P.n, 1.0, G, mat_t(mat_of(b, 0)), 1.0, da->data, P.k,
                     ctx->nthreads);
        if (db) {
            nb__mat At = mat_t(mat_of(a, 0)); /* [k, M] */
            nb__gemm(dt, P.k, P.n, M, 1.0, At, G, 1.0, db->data, P.n, ctx->nthreads);
        }
        return NB_OK;
    }
    mm_plan Pa = P, Pb = P;
    if (da)
        plan_strides(da, P.nbatch, P.bshape, Pa.sa);
    if (db)
        plan_strides(db, P.nbatch, P.bshape, Pb.sb);
    FOR_BATCH(&P, oa, ob, oy, {
        nb__mat G = {(const char *)g->data + oy * (int64_t)es, P.n, 1};
        if (da) {
            int64_t od = 0, rem = t_;
            for (int d = P.nbatch - 1; d >= 0; d--) {
                od += (rem % P.bshape[d]) * Pa.sa[d];
                rem /= P.bshape[d];
            }
            nb__gemm(dt, P.m, P.k, P.n, 1.0, G, mat_t(mat_of(b, ob)), 1.0,
                     (char *)da->data + od * (int64_t)es, P.k, ctx->nthreads);
        }
        if (db) {
            int64_t od = 0, rem = t_;
            for (int d = P.nbatch - 1; d >= 0; d--) {
                od += (rem % P.bshape[d]) * Pb.sb[d];
                rem /= P.bshape[d];
            }
            nb__gemm(dt, P.k, P.n, P.m, 1.0, mat_t(mat_of(a, oa)), G, 1.0,
                     (char *)db->data + od * (int64_t)es, P.n, ctx->nthreads);
        }
    });
    return NB_OK;
}
