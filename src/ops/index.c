/* Joining and indexing.
 *   concat        y = [x_0, x_1, ...] along axis        dx_i += g's slice i
 *   stack         concat of unsqueezed inputs (composed, no backward of its own)
 *   index_select  y[.., k, ..] = x[.., idx[k], ..]       dx[.., idx[k], ..] += g[.., k, ..]
 *   gather        y[i] = x[i with axis := idx[i]]         dx[i with axis := idx[i]] += g[i]
 * Repeated indices accumulate, so their gradients add up. Indices are
 * checked before anything is written. */
#include "core/internal.h"

#include <stdio.h>

static nb_tensor *record(nb_ctx *ctx, nb__op_id op, nb_tensor *y, int n, nb_tensor *const *in,
                         const nb__attrs *at)
{
    if (nb__needs_grad(ctx, n, in)) {
        nb__node *nd = nb__record(ctx, op, y, n, in);
        if (!nd)
            return NULL;
        nd->a = *at;
    }
    return y;
}

/* A header over t's data restricted to [start, start + count) on axis. */
static nb_tensor narrow(const nb_tensor *t, int ax, int64_t start, int64_t count)
{
    nb_tensor v = *t;
    v.data = (char *)t->data + start * t->strides[ax] * (int64_t)nb__esize(t->dtype);
    v.shape[ax] = count;
    return v;
}

/* ---- concat / stack ---------------------------------------------------- */
nb_tensor *nb_concat(nb_ctx *ctx, int n, nb_tensor *const *ts, int axis)
{
    if (!ctx)
        return NULL;
    if (n < 1 || !ts) {
        nb__err(ctx, NB_ERR_ARG, "concat: needs at least one tensor (got %d)", n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!ts[i]) {
            if (ctx->err == NB_OK)
                nb__err(ctx, NB_ERR_NULL, "concat: input %d is NULL", i);
            return NULL;
        }
    const nb_tensor *t0 = ts[0];
    char b0[NB__SHAPE_BUF], b1[NB__SHAPE_BUF];
    int ax = nb__axis(axis, t0->ndim);
    if (ax < 0) {
        nb__err(ctx, NB_ERR_AXIS, "concat: axis %d out of range for %s", axis,
                nb_shape_str(t0, b0, sizeof b0));
        return NULL;
    }
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, t0->shape, sizeof shape);
    shape[ax] = 0;
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = ts[i];
        if (t->dtype != t0->dtype) {
            nb__err(ctx, NB_ERR_DTYPE, "concat: input %d is %s, input 0 is %s", i,
                    nb_dtype_name(t->dtype), nb_dtype_name(t0->dtype));
            return NULL;
        }
        bool ok = t->ndim == t0->ndim;
        for (int d = 0; ok && d < t0->ndim; d++)
            ok = d == ax || t->shape[d] == t0->shape[d];
        if (!ok) {
            nb__err(ctx, NB_ERR_SHAPE, "concat: input %d %s does not match input 0 %s off axis %d",
                    i, nb_shape_str(t, b1, sizeof b1), nb_shape_str(t0, b0, sizeof b0), ax);
            return NULL;
        }
        shape[ax] += t->shape[ax];
    }
    nb_tensor *y = nb__new_step(ctx, t0->dtype, t0->ndim, shape);
    if (!y)
        return NULL;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        nb_tensor v = narrow(y, ax, off, ts[i]->shape[ax]);
        nb__copy_strided(ctx, &v, ts[i]);
        off += ts[i]->shape[ax];
    }
    nb__attrs at;
    memset(&at, 0, sizeof at);
    at.axes[0] = ax;
    if (!nb__is_float(t0->dtype))
        return y;
    return record(ctx, NB__OP_CONCAT, y, n, ts, &at);
}

nb_status nb__concat_backward(nb_ctx *ctx, nb__node *nd)
{
    int ax = nd->a.axes[0];
    int64_t off = 0;
    for (int i = 0; i < nd->n_in; i++) {
        nb_tensor *x = nd->in[i], *dx;
        nb_status st = nb__grad_of(ctx, x, &dx);
        if (st != NB_OK)
            return st;
        if (dx) {
            nb_tensor g = narrow(nd->out->grad, ax, off, x->shape[ax]);
            st = nb__acc_grad(ctx, dx, &g, 1.0);
            if (st != NB_OK)
                return st;
        }
        off += x->shape[ax];
    }
    return NB_OK;
}

nb_tensor *nb_stack(nb_ctx *ctx, int n, nb_tensor *const *ts, int axis)
{
    if (!ctx)
        return NULL;
    if (n < 1 || !ts) {
        nb__err(ctx, NB_ERR_ARG, "stack: needs at least one tensor (got %d)", n);
        return NULL;
    }
    nb_tensor **u = nb__arena_alloc(ctx, sizeof(nb_tensor *) * (size_t)n);
    if (!u) {
        nb__arena_err(ctx, "stack", sizeof(nb_tensor *) * (size_t)n);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!ts[i]) {
            if (ctx->err == NB_OK)
                nb__err(ctx, NB_ERR_NULL, "stack: input %d is NULL", i);
            return NULL;
        }
        if (ts[i]->ndim != ts[0]->ndim) {
            char b0[NB__SHAPE_BUF], b1[NB__SHAPE_BUF];
            nb__err(ctx, NB_ERR_SHAPE, "stack: input %d %s and input 0 %s differ", i,
                    nb_shape_str(ts[i], b1, sizeof b1), nb_shape_str(ts[0], b0, sizeof b0));
            return NULL;
        }
        u[i] = nb_unsqueeze(ctx, ts[i], axis);
        if (!u[i])
            return NULL;
    }
    return nb_concat(ctx, n, u, axis);
}

/* ---- index checks ------------------------------------------------------ */
static int64_t idx_at(const nb_tensor *idx, const char *p)
{
    return idx->dtype == NB_I32 ? (int64_t) * (const int32_t *)p : *(const int64_t *)p;
}

static bool check_indices(nb_ctx *ctx, const char *op, const nb_tensor *idx, int64_t limit)
{
    if (idx->dtype != NB_I32 && idx->dtype != NB_I64) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: index must be i32 or i64, got %s", op,
                nb_dtype_name(idx->dtype));
        return false;
    }
    int64_t n = nb__numel(idx);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = idx_at(idx, nb__elem_ptr(idx, i));
        if (v < 0 || v >= limit) {
            nb__err(ctx, NB_ERR_INDEX, "%s: index %lld at position %lld is outside [0, %lld)", op,
                    (long long)v, (long long)i, (long long)limit);
            return false;
        }
    }
    return true;
}

/* ---- index_select ------------------------------------------------------ */
nb_tensor *nb_index_select(nb_ctx *ctx, nb_tensor *a, int axis, nb_tensor *index)
{
    if (!ctx || nb__null_in(ctx, "index_select", 2, a, index))
        return NULL;
    char b[NB__SHAPE_BUF];
    int ax = nb__axis(axis, a->ndim);
    if (ax < 0) {
        nb__err(ctx, NB_ERR_AXIS, "index_select: axis %d out of range for %s", axis,
                nb_shape_str(a, b, sizeof b));
        return NULL;
    }
    if (index->ndim != 1) {
        nb__err(ctx, NB_ERR_SHAPE, "index_select: index must be 1-D, got %s",
                nb_shape_str(index, b, sizeof b));
        return NULL;
    }
    if (!check_indices(ctx, "index_select", index, a->shape[ax]))
        return NULL;
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[ax] = index->shape[0];
    nb_tensor *y = nb__new_step(ctx, a->dtype, a->ndim, shape);
    if (!y)
        return NULL;
    for (int64_t k = 0; k < index->shape[0]; k++) {
        int64_t src = idx_at(index, nb__elem_ptr(index, k));
        nb_tensor dv = narrow(y, ax, k, 1), sv = narrow(a, ax, src, 1);
        nb__copy_strided(ctx, &dv, &sv);
    }
    nb__attrs at;
    memset(&at, 0, sizeof at);
    at.axes[0] = ax;
    nb_tensor *in[2] = {a, index};
    return record(ctx, NB__OP_INDEX_SELECT, y, 2, in, &at);
}

nb_status nb__index_select_backward(nb_ctx *ctx, nb__node *nd)
{
    nb_tensor *a = nd->in[0], *index = nd->in[1], *da;
    nb_status st = nb__grad_of(ctx, a, &da);
    if (st != NB_OK || !da)
        return st;
    int ax = nd->a.axes[0];
    for (int64_t k = 0; k < index->shape[0]; k++) {
        int64_t dst = idx_at(index, nb__elem_ptr(index, k));
        nb_tensor dv = narrow(da, ax, dst, 1), gv = narrow(nd->out->grad, ax, k, 1);
        st = nb__acc_grad(ctx, &dv, &gv, 1.0);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

/* ---- gather ------------------------------------------------------------ */
/* Visits every element of idx; calls body with the byte offsets of the
 * matching element of x (axis replaced by the index) and of y (contiguous). */
#define GATHER_LOOP(IDX, X, AX, OX, IY, ...)                                             \
    do {                                                                                 \
        int64_t c_[NB_MAX_DIMS] = {0}, n_ = nb__numel(IDX);                               \
        size_t es_ = nb__esize((X)->dtype);                                          \
        for (int64_t IY = 0; IY < n_; IY++) {                                            \
            int64_t OX = 0;                                                              \
            for (int d_ = 0; d_ < (IDX)->ndim; d_++) {                                   \
                int64_t v_ = d_ == (AX) ? idx_at(IDX, nb__elem_ptr(IDX, IY)) : c_[d_];   \
                OX += v_ * (X)->strides[d_];                                             \
            }                                                                            \
            OX *= (int64_t)es_;                                                          \
            __VA_ARGS__;                                                                 \
            for (int d_ = (IDX)->ndim - 1; d_ >= 0; d_--) {                              \
                if (++c_[d_] < (IDX)->shape[d_])                                         \
                    break;                                                               \
                c_[d_] = 0;                                                              \
            }                                                                            \
        }                                                                                \
    } while (0)

nb_tensor *nb_gather(nb_ctx *ctx, nb_tensor *a, int axis, nb_tensor *index)
{
    if (!ctx || nb__null_in(ctx, "gather", 2, a, index))
        return NULL;
    char b1[NB__SHAPE_BUF], b2[NB__SHAPE_BUF];
    int ax = nb__axis(axis, a->ndim);
    if (ax < 0) {
        nb__err(ctx, NB_ERR_AXIS, "gather: axis %d out of range for %s", axis,
                nb_shape_str(a, b1, sizeof b1));
        return NULL;
    }
    bool ok = index->ndim == a->ndim;
    for (int d = 0; ok && d < a->ndim; d++)
        ok = d == ax || index->shape[d] <= a->shape[d];
    if (!ok) {
        nb__err(ctx, NB_ERR_SHAPE,
                "gather: index %s must have the input's rank and fit in %s off axis %d",
                nb_shape_str(index, b2, sizeof b2), nb_shape_str(a, b1, sizeof b1), ax);
        return NULL;
    }
    if (!check_indices(ctx, "gather", index, a->shape[ax]))
        return NULL;
    nb_tensor *y = nb__new_step(ctx, a->dtype, index->ndim, index->shape);
    if (!y)
        return NULL;
    size_t es = nb__esize(a->dtype);
    GATHER_LOOP(index, a, ax, ox, iy,
                memcpy((char *)y->data + iy * (int64_t)es, (const char *)a->data + ox, es));
    nb__attrs at;
    memset(&at, 0, sizeof at);
    at.axes[0] = ax;
    nb_tensor *in[2] = {a, index};
    return record(ctx, NB__OP_GATHER, y, 2, in, &at);
}

nb_status nb__gather_backward(nb_ctx *ctx, nb__node *nd)
{
    nb_tensor *a = nd->in[0], *index = nd->in[1], *da;
    nb_status st = nb__grad_of(ctx, a, &da);
    if (st != NB_OK || !da)
        return st;
    const nb_tensor *g = nd->out->grad;
    int ax = nd->a.axes[0];
    if (a->dtype == NB_F32)
        GATHER_LOOP(index, da, ax, ox, iy,
                    *(float *)((char *)da->data + ox) += ((const float *)g->data)[iy]);
    else
        GATHER_LOOP(index, da, ax, ox, iy,
                    *(double *)((char *)da->data + ox) += ((const double *)g->data)[iy]);
    return NB_OK;
}
