/* Embedding lookup (torch.nn.functional.embedding).
 *   y[p, :] = W[ids[p], :]            W [num, dim], ids [...] -> y [..., dim]
 *   dW[ids[p], :] += g[p, :]          for every position p with ids[p] != padding_idx
 * Rows of W that no id names get no gradient (their dW stays 0); repeated ids
 * sum their rows of g; padding_idx >= 0 is looked up as is but its row gets
 * no gradient (-1: no padding). ids may be I32, I64 or U8 of any shape and
 * strides; all of them are checked before anything is written.
 * Saved: the ids converted once to a contiguous I64 step tensor [n].
 * Threads: the forward splits positions (disjoint output rows); the backward
 * splits the ROWS OF dW: each thread scans all ids in order and adds only
 * those in its range of rows, so no two threads write one row and each row's
 * sum is taken in position order whatever the thread count (deterministic). */
#include "core/internal.h"
#include "kernels/parallel.h"

#include <stdio.h>

typedef struct emb_job {
    const int64_t *ids;
    int64_t n, dim, padding;
    const char *w;       /* weight data (forward) */
    int64_t ws0, ws1;    /* weight strides in elements */
    char *y;             /* output (forward) or dW (backward), contiguous */
    const char *g;       /* upstream gradient, contiguous [n, dim] (backward) */
    size_t es;
    bool f64;
} emb_job;

static void fwd_range(int64_t b, int64_t e, void *arg)
{
    const emb_job *J = arg;
    size_t row = (size_t)J->dim * J->es;
    for (int64_t p = b; p < e; p++) {
        const char *src = J->w + J->ids[p] * J->ws0 * (int64_t)J->es;
        char *dst = J->y + p * (int64_t)row;
        if (J->ws1 == 1 || J->dim == 1) {
            memcpy(dst, src, row);
        } else if (J->f64) {
            for (int64_t j = 0; j < J->dim; j++)
                ((double *)dst)[j] = ((const double *)src)[j * J->ws1];
        } else {
            for (int64_t j = 0; j < J->dim; j++)
                ((float *)dst)[j] = ((const float *)src)[j * J->ws1];
        }
    }
}

/* rows [b, e) of dW */
static void bwd_range(int64_t b, int64_t e, void *arg)
{
    const emb_job *J = arg;
    for (int64_t p = 0; p < J->n; p++) {
        int64_t r = J->ids[p];
        if (r < b || r >= e || r == J->padding)
            continue;
        if (J->f64) {
            double *d = (double *)J->y + r * J->dim;
            const double *s = (const double *)J->g + p * J->dim;
            for (int64_t j = 0; j < J->dim; j++)
                d[j] += s[j];
        } else {
            float *d = (float *)J->y + r * J->dim;
            const float *s = (const float *)J->g + p * J->dim;
            for (int64_t j = 0; j < J->dim; j++)
                d[j] += s[j];
        }
    }
}

nb_tensor *nb_embedding_op(nb_ctx *ctx, nb_tensor *weight, nb_tensor *ids, int64_t padding_idx)
{
    if (!ctx || nb__null_in(ctx, "embedding", 2, weight, ids))
        return NULL;
    char b[NB__SHAPE_BUF];
    if (weight->ndim != 2) {
        nb__err(ctx, NB_ERR_SHAPE, "embedding: weight must be 2-D [num, dim], got %s",
                nb_shape_str(weight, b, sizeof b));
        return NULL;
    }
    if (!nb__is_float(weight->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "embedding: weight must be f32 or f64, got %s",
                nb_dtype_name(weight->dtype));
        return NULL;
    }
    if (!nb__is_int(ids->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "embedding: ids must be an integer tensor (i32, i64, u8), got %s",
                nb_dtype_name(ids->dtype));
        return NULL;
    }
    if (ids->ndim + 1 > NB_MAX_DIMS) {
        nb__err(ctx, NB_ERR_SHAPE, "embedding: ids %s have too many dims for [..., dim]",
                nb_shape_str(ids, b, sizeof b));
        return NULL;
    }
    int64_t num = weight->shape[0], dim = weight->shape[1];
    if (padding_idx < -1 || padding_idx >= num) {
        nb__err(ctx, NB_ERR_ARG, "embedding: padding_idx %lld is outside [-1, %lld)",
                (long long)padding_idx, (long long)num);
        return NULL;
    }
    int64_t n = nb__numel(ids);
    nb_tensor *id64 = nb__new_step(ctx, NB_I64, 1, &n);
    if (!id64)
        return NULL;
    int64_t *iv = id64->data;
    for (int64_t p = 0; p < n; p++) {
        const void *q = nb__elem_ptr(ids, p);
        int64_t v = ids->dtype == NB_I64   ? *(const int64_t *)q
                    : ids->dtype == NB_I32 ? (int64_t) * (const int32_t *)q
                                           : (int64_t) * (const uint8_t *)q;
        if (v < 0 || v >= num) {
            nb__err(ctx, NB_ERR_INDEX,
                    "embedding: id %lld at position %lld is outside [0, %lld) (weight %s)",
                    (long long)v, (long long)p, (long long)num, nb_shape_str(weight, b, sizeof b));
            return NULL;
        }
        iv[p] = v;
    }
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
    shape[ids->ndim] = dim;
    nb_tensor *y = nb__new_step(ctx, weight->dtype, ids->ndim + 1, shape);
    if (!y)
        return NULL;
    emb_job J = {.ids = iv, .n = n, .dim = dim, .padding = padding_idx, .w = weight->data,
                 .ws0 = weight->strides[0], .ws1 = weight->strides[1], .y = y->data,
                 .es = nb__esize(weight->dtype), .f64 = weight->dtype == NB_F64};
    if (n > 0 && dim > 0)
        nb__parallel_for(ctx->nthreads, n, dim, fwd_range, &J);
    nb_tensor *in[2] = {weight, ids};
    if (nb__needs_grad(ctx, 2, in)) {
        nb__node *nd = nb__record(ctx, NB__OP_EMBEDDING, y, 2, in);
        if (!nd)
            return NULL;
        nd->saved[0] = id64;
        nd->a.i[0] = padding_idx;
    }
    return y;
}

nb_status nb__embedding_backward(nb_ctx *ctx, nb__node *nd)
{
    nb_tensor *w = nd->in[0], *dw;
    nb_status st = nb__grad_of(ctx, w, &dw);
    if (st != NB_OK || !dw)
        return st;
    const nb_tensor *id64 = nd->saved[0];
    int64_t n = id64->shape[0], num = w->shape[0], dim = w->shape[1];
    if (n == 0 || dim == 0)
        return NB_OK;
    emb_job J = {.ids = id64->data, .n = n, .dim = dim, .padding = nd->a.i[0], .y = dw->data,
                 .g = nd->out->grad->data, .es = nb__esize(w->dtype), .f64 = w->dtype == NB_F64};
    /* per row of dW: a scan of the ids plus its share of the additions */
    nb__parallel_for(ctx->nthreads, num, n * dim / num + 1, bwd_range, &J);
    return NB_OK;
}
