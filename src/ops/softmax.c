/* softmax and log_softmax over one axis, stable by subtracting the row max.
 *   softmax      y = e^(x - m) / s,  s = sum e^(x - m)     dx += y (g - sum(g y))
 *   log_softmax  y = x - m - ln s                          dx += g - e^y sum(g)
 * Only the output is needed for backward. Rows along the axis are strided
 * by `inner` (the product of the dims after the axis). */
#include "core/internal.h"
#include "kernels/parallel.h"
#include "kernels/vmath.h"

#include <math.h>
#include <stdio.h>

typedef struct {
    int64_t outer, len, inner;
} rows_t;

typedef struct {
    rows_t r;
    const void *x, *g; /* forward input, or backward's output y and upstream g */
    void *y;           /* forward output, or backward's dx (+=) */
    bool logsm;
} job_t;

/* Rows [q0, q1) of the outer * inner rows, each `len` long with stride inner. */
#define SOFTMAX_KERNS(T, SUF, EXP)                                                   \
    static void fwd_##SUF(int64_t q0, int64_t q1, void *arg)                         \
    {                                                                                \
        const job_t *J = arg;                                                        \
        const rows_t *r = &J->r;                                                     \
        for (int64_t q = q0; q < q1; q++) {                                          \
            int64_t o = q / r->inner, i = q % r->inner, st = r->inner;               \
            const T *xr = (const T *)J->x + o * r->len * r->inner + i;               \
            T *yr = (T *)J->y + o * r->len * r->inner + i;                           \
            /* max and sum in 8 lanes (element j in lane j % 8, the tail apart):     \
               no serial dependency, and the same order for any stride */            \
            const int64_t len = r->len, len8 = len - len % 8;                        \
            T mx[8], m = -INFINITY;                                                  \
            double sl[8], s = 0;                                                     \
            for (int l = 0; l < 8; l++) {                                            \
                mx[l] = -INFINITY;                                                   \
                sl[l] = 0;                                                           \
            }                                                                        \
            for (int64_t j = 0; j < len8; j += 8)                                    \
                for (int l = 0; l < 8; l++) {                                        \
                    T v = xr[(j + l) * st];                                          \
                    mx[l] = (v > mx[l] || v != v) ? v : mx[l];                       \
                }                                                                    \
            for (int64_t j = len8; j < len; j++)                                     \
                m = (xr[j * st] > m || xr[j * st] != xr[j * st]) ? xr[j * st] : m;   \
            for (int l = 0; l < 8; l++)                                              \
                m = (mx[l] > m || mx[l] != mx[l]) ? mx[l] : m;                       \
            if (m == -INFINITY)                                                      \
                m = 0; /* a row of -inf: let the result be nan like torch */         \
            if (st == 1) { /* e^(x - m) into y first: that loop vectorises */        \
                for (int64_t j = 0; j < len; j++)                                    \
                    yr[j] = EXP(xr[j] - m);                                          \
                for (int64_t j = 0; j < len8; j += 8)                                \
                    for (int l = 0; l < 8; l++)                                      \
                        sl[l] += (double)yr[j + l];                                  \
                for (int64_t j = len8; j < len; j++)                                 \
                    s += (double)yr[j];                                              \
            } else {                                                                 \
                for (int64_t j = 0; j < len; j++) {                                  \
                    T e = EXP(xr[j * st] - m);                                       \
                    if (j < len8)                                                    \
                        sl[j % 8] += (double)e;                                      \
                    else                                                             \
                        s += (double)e;                                              \
                    if (!J->logsm)                                                   \
                        yr[j * st] = e;                                              \
                }                                                                    \
            }                                                                        \
            s += (sl[0] + sl[1] + sl[2] + sl[3]) + (sl[4] + sl[5] + sl[6] + sl[7]);  \
            if (J->logsm) {                                                          \
                T ls = m + (T)log(s);                                                \
                for (int64_t j = 0; j < r->len; j++)                                 \
                    yr[j * st] = xr[j * st] - ls;                                    \
            } else {                                                                 \
                T inv = (T)(1 / s);                                                  \
                for (int64_t j = 0; j < r->len; j++)                                 \
                    yr[j * st] *= inv;                                               \
            }                                                                        \
        }                                                                            \
    }                                                                                \
    static void bwd_##SUF(int64_t q0, int64_t q1, void *arg)                         \
    {                                                                                \
        const job_t *J = arg;                                                        \
        const rows_t *r = &J->r;                                                     \
        for (int64_t q = q0; q < q1; q++) {                                          \
            int64_t o = q / r->inner, i = q % r->inner, st = r->inner;               \
            int64_t base = o * r->len * r->inner + i;                                \
            const T *yr = (const T *)J->x + base, *gr = (const T *)J->g + base;      \
            T *dr = (T *)J->y + base;                                                \
            T dot = 0;                                                               \
            for (int64_t j = 0; j < r->len; j++)                                     \
                dot += J->logsm ? gr[j * st] : gr[j * st] * yr[j * st];              \
            for (int64_t j = 0; j < r->len; j++)                                     \
                dr[j * st] += J->logsm ? gr[j * st] - EXP(yr[j * st]) * dot          \
                                       : yr[j * st] * (gr[j * st] - dot);            \
        }                                                                            \
    }
SOFTMAX_KERNS(float, f32, nb__vexpf)
SOFTMAX_KERNS(double, f64, exp)

static rows_t rows_of(const nb_tensor *t, int axis)
{
    rows_t r = {1, t->shape[axis], 1};
    for (int d = 0; d < axis; d++)
        r.outer *= t->shape[d];
    for (int d = axis + 1; d < t->ndim; d++)
        r.inner *= t->shape[d];
    return r;
}

static nb_tensor *softmax_any(nb_ctx *ctx, nb_tensor *x, int axis, bool logsm)
{
    const char *op = logsm ? "log_softmax" : "softmax";
    if (!ctx || nb__null_in(ctx, op, 1, x))
        return NULL;
    if (!nb__is_float(x->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: needs a float tensor, got %s", op, nb_dtype_name(x->dtype));
        return NULL;
    }
    int ax = nb__axis(axis, x->ndim);
    if (ax < 0) {
        char b[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_AXIS, "%s: axis %d out of range for %s", op, axis,
                nb_shape_str(x, b, sizeof b));
        return NULL;
    }
    x = nb_contiguous(ctx, x);
    if (!x)
        return NULL;
    nb_tensor *y = nb__new_step(ctx, x->dtype, x->ndim, x->shape);
    if (!y)
        return NULL;
    job_t J = {rows_of(x, ax), x->data, NULL, y->data, logsm};
    nb__parallel_for(ctx->nthreads, J.r.outer * J.r.inner, 4 * J.r.len,
                     x->dtype == NB_F32 ? fwd_f32 : fwd_f64, &J);
    if (nb__needs_grad(ctx, 1, &x)) {
        nb__node *n = nb__record(ctx, logsm ? NB__OP_LOG_SOFTMAX : NB__OP_SOFTMAX, y, 1, &x);
        if (!n)
            return NULL;
        n->a.axes[0] = ax;
    }
    return y;
}

nb_tensor *nb_softmax(nb_ctx *ctx, nb_tensor *a, int axis) { return softmax_any(ctx, a, axis, false); }
nb_tensor *nb_log_softmax(nb_ctx *ctx, nb_tensor *a, int axis) { return softmax_any(ctx, a, axis, true); }

static nb_status backward(nb_ctx *ctx, nb__node *n, bool logsm)
{
    nb_tensor *x = n->in[0], *y = n->out, *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    job_t J = {rows_of(y, n->a.axes[0]), y->data, y->grad->data, dx->data, logsm};
    nb__parallel_for(ctx->nthreads, J.r.outer * J.r.inner, 3 * J.r.len,
                     y->dtype == NB_F32 ? bwd_f32 : bwd_f64, &J);
    return NB_OK;
}

nb_status nb__softmax_backward(nb_ctx *ctx, nb__node *n) { return backward(ctx, n, false); }
nb_status nb__log_softmax_backward(nb_ctx *ctx, nb__node *n) { return backward(ctx, n, true); }
