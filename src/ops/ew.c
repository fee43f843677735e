/* Drivers of the elementwise framework (see ew.h). */
#include "ops/ew.h"

#include <stdio.h>

bool nb__check_float(nb_ctx *ctx, const char *op, const nb_tensor *a, const nb_tensor *b)
{
    if (!nb__is_float(a->dtype) || (b && !nb__is_float(b->dtype))) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: needs float tensors, got %s%s%s", op,
                nb_dtype_name(a->dtype), b ? " and " : "", b ? nb_dtype_name(b->dtype) : "");
        return false;
    }
    if (b && a->dtype != b->dtype) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: dtypes differ: %s vs %s (convert with nb_cast)", op,
                nb_dtype_name(a->dtype), nb_dtype_name(b->dtype));
        return false;
    }
    return true;
}

int nb__broadcast_or_err(nb_ctx *ctx, const char *op, const nb_tensor *a, const nb_tensor *b,
                         int64_t *shape)
{
    int nd = nb__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, shape);
    if (nd < 0) {
        char sa[NB__SHAPE_BUF], sb[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_SHAPE, "%s: shapes do not broadcast: %s and %s", op,
                nb_shape_str(a, sa, sizeof sa), nb_shape_str(b, sb, sizeof sb));
    }
    return nd;
}

nb_tensor *nb__unary(nb_ctx *ctx, const nb__ew_def *d, nb_tensor *a, const nb__attrs *at)
{
    const char *name = nb__ops[d->op].name;
    if (!ctx || nb__null_in(ctx, name, 1, a) || !nb__check_float(ctx, name, a, NULL))
        return NULL;
    nb_tensor *y = nb__new_step(ctx, a->dtype, a->ndim, a->shape);
    if (!y)
        return NULL;
    nb__attrs none;
    if (!at) {
        memset(&none, 0, sizeof none);
        at = &none;
    }
    if (nb__flat(a, a->ndim, a->shape)) {
        int64_t es = (int64_t)nb__esize(a->dtype), esz[2] = {es, es};
        void *p[2] = {y->data, a->data};
        nb__run_flat(d->fwd[NB__DTI(a->dtype)], at, nb__numel(y), 2, p, esz, ctx->nthreads);
    } else {
        nb__iter it;
        nb__iter_init(&it, y->ndim, y->shape);
        nb__iter_add_t(&it, y);
        nb__iter_add_t(&it, a);
        nb__iter_run(&it, d->fwd[NB__DTI(a->dtype)], at, ctx);
    }
    if (nb__needs_grad(ctx, 1, &a)) {
        nb__node *n = nb__record(ctx, d->op, y, 1, &a);
        if (!n)
            return NULL;
        n->a = *at;
    }
    return y;
}

nb_status nb__unary_backward(nb_ctx *ctx, nb__node *n, const nb__ew_def *d)
{
    nb_tensor *x = n->in[0], *y = n->out, *dx;
    bool fresh;
    nb_status st = nb__grad_of_w(ctx, x, &dx, &fresh);
    if (st != NB_OK || !dx)
        return st;
    nb__attrs a = n->a;
    a.write = fresh; /* dx has y's shape: every element is written exactly once */
    nb__kern k = d->bwd[0][NB__DTI(x->dtype)];
    if (nb__flat(x, y->ndim, y->shape)) { /* dx, dy and y are always flat */
        int64_t es = (int64_t)nb__esize(x->dtype), esz[4] = {es, es, es, es};
        void *p[4] = {dx->data, y->grad->data, x->data, y->data};
        nb__run_flat(k, &a, nb__numel(y), 4, p, esz, ctx->nthreads);
        return NB_OK;
    }
    nb__iter it;
    nb__iter_init(&it, y->ndim, y->shape);
    nb__iter_add_t(&it, dx);
    nb__iter_add_t(&it, y->grad);
    nb__iter_add_t(&it, x);
    nb__iter_add_t(&it, y);
    nb__iter_run(&it, k, &a, ctx);
    return NB_OK;
}

nb_tensor *nb__binary(nb_ctx *ctx, const nb__ew_def *d, nb_tensor *a, nb_tensor *b,
                      const nb__attrs *at)
{
    const char *name = nb__ops[d->op].name;
    if (!ctx || nb__null_in(ctx, name, 2, a, b) || !nb__check_float(ctx, name, a, b))
        return NULL;
    int64_t shape[NB_MAX_DIMS];
    int nd = nb__broadcast_or_err(ctx, name, a, b, shape);
    if (nd < 0)
        return NULL;
    nb_tensor *y = nb__new_step(ctx, a->dtype, nd, shape);
    if (!y)
        return NULL;
    nb__attrs none;
    if (!at) {
        memset(&none, 0, sizeof none);
        at = &none;
    }
    if (nb__flat(a, nd, shape) && nb__flat(b, nd, shape)) {
        int64_t es = (int64_t)nb__esize(a->dtype), esz[3] = {es, es, es};
        void *p[3] = {y->data, a->data, b->data};
        nb__run_flat(d->fwd[NB__DTI(a->dtype)], at, nb__numel(y), 3, p, esz, ctx->nthreads);
    } else {
        nb__iter it;
        nb__iter_init(&it, nd, shape);
        nb__iter_add_t(&it, y);
        nb__iter_add_t(&it, a);
        nb__iter_add_t(&it, b);
        nb__iter_run(&it, d->fwd[NB__DTI(a->dtype)], at, ctx);
    }
    nb_tensor *in[2] = {a, b};
    if (nb__needs_grad(ctx, 2, in)) {
        nb__node *n = nb__record(ctx, d->op, y, 2, in);
        if (!n)
            return NULL;
        n->a = *at;
    }
    return y;
}

nb_status nb__binary_backward(nb_ctx *ctx, nb__node *n, const nb__ew_def *d)
{
    nb_tensor *y = n->out;
    for (int i = 0; i < 2; i++) {
        nb_tensor *t = n->in[i], *dt;
        if (!d->bwd[i][0])
            continue;
        bool fresh;
        nb_status st = nb__grad_of_w(ctx, t, &dt, &fresh);
        if (st != NB_OK)
            return st;
        if (!dt)
            continue;
        /* a fresh buffer may be stored into only where it is not broadcast
         * (there each element gets exactly one term); else it starts at 0 */
        bool whole = dt->ndim == y->ndim &&
                     !memcmp(dt->shape, y->shape, sizeof(int64_t) * (size_t)y->ndim);
        if (fresh && !whole) {
            memset(dt->data, 0, (size_t)nb__numel(dt) * nb__esize(dt->dtype));
            fresh = false;
        }
        if (d->acc[i] != 0) {
            st = nb__acc_grad_w(ctx, dt, y->grad, d->acc[i], fresh);
            if (st != NB_OK)
                return st;
            continue;
        }
        nb__attrs a = n->a;
        a.write = fresh;
        /* dt is iterated over the output's shape: where the input was
         * broadcast its stride is 0 and the kernel's += sums the terms */
        nb__iter it;
        nb__iter_init(&it, y->ndim, y->shape);
        unsigned u = d->uses[i] ? d->uses[i] : 7;
        nb_tensor *ops[3] = {(u & 1) ? n->in[0] : y->grad, (u & 2) ? n->in[1] : y->grad,
                             (u & 4) ? y : y->grad};
        nb__kern k = d->bwd[i][NB__DTI(y->dtype)];
        if (nb__flat(dt, y->ndim, y->shape) && nb__flat(ops[0], y->ndim, y->shape) &&
            nb__flat(ops[1], y->ndim, y->shape)) {
            int64_t es = (int64_t)nb__esize(y->dtype), esz[5] = {es, es, es, es, es};
            void *p[5] = {dt->data, y->grad->data, ops[0]->data, ops[1]->data, ops[2]->data};
            nb__run_flat(k, &a, nb__numel(y), 5, p, esz, ctx->nthreads);
            continue;
        }
        nb__iter_add_t(&it, dt);
        nb__iter_add_t(&it, y->grad);
        nb__iter_add_t(&it, ops[0]); /* unread ones: any valid stand-in */
        nb__iter_add_t(&it, ops[1]);
        nb__iter_add_t(&it, ops[2]);
        nb__iter_run(&it, k, &a, ctx);
    }
    return NB_OK;
}
