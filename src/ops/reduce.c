/* Reductions over any set of axes, with keepdim.
 *   sum   y = sum_R x                   dx += g             (g repeated over R)
 *   mean  y = sum_R x / N               dx += g / N
 *   max   y = max_R x                   dx += g [x = y] / #ties   (torch.amax's rule)
 *   min   y = min_R x                   dx += g [x = y] / #ties
 *   var   y = sum_R (x - m)^2 / (N - c), m = mean_R x
 *                                       dx += 2 g (x - m) / (N - c);  saves m
 * R is the set of reduced axes and N the number of elements reduced into
 * each output. The kernels iterate over x's shape with y broadcast (stride 0
 * over R), so one kernel serves every choice of axes. */
#include "core/internal.h"
#include "kernels/iter.h"

#include <math.h>
#include <stdio.h>

/* p0 = y (accumulator), p1 = x */
#define RED_KERNS(T, SUF)                                                                \
    static void sum_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg)  \
    {                                                                                    \
        (void)arg;                                                                       \
        if (s[0] == 0) {                                                                 \
            double acc = 0;                                                              \
            for (int64_t i = 0; i < n; i++)                                              \
                acc += *(const T *)(p[1] + i * s[1]);                                    \
            *(T *)p[0] += (T)acc;                                                        \
        } else {                                                                         \
            for (int64_t i = 0; i < n; i++)                                              \
                *(T *)(p[0] + i * s[0]) += *(const T *)(p[1] + i * s[1]);                \
        }                                                                                \
    }                                                                                    \
    static void max_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg)  \
    {                                                                                    \
        const int sign = *(const int *)arg; /* +1 max, -1 min */                          \
        for (int64_t i = 0; i < n; i++) {                                                \
            T v = *(const T *)(p[1] + i * s[1]);                                         \
            T *m = (T *)(p[0] + i * s[0]);                                               \
            if ((sign > 0 ? v > *m : v < *m) || v != v)                                  \
                *m = v;                                                                  \
        }                                                                                \
    }                                                                                    \
    /* p0 = y, p1 = x, p2 = mean */                                                      \
    static void sqdev_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg) \
    {                                                                                    \
        (void)arg;                                                                       \
        for (int64_t i = 0; i < n; i++) {                                                \
            T d = *(const T *)(p[1] + i * s[1]) - *(const T *)(p[2] + i * s[2]);         \
            *(T *)(p[0] + i * s[0]) += d * d;                                            \
        }                                                                                \
    }                                                                                    \
    /* p0 = count (+=), p1 = x, p2 = y */                                                \
    static void ties_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg) \
    {                                                                                    \
        (void)arg;                                                                       \
        for (int64_t i = 0; i < n; i++)                                                  \
            *(T *)(p[0] + i * s[0]) +=                                                   \
                *(const T *)(p[1] + i * s[1]) == *(const T *)(p[2] + i * s[2]);          \
    }                                                                                    \
    /* p0 = dx, p1 = g, p2 = x, p3 = y, p4 = count */                                    \
    static void maxb_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg) \
    {                                                                                    \
        (void)arg;                                                                       \
        for (int64_t i = 0; i < n; i++)                                                  \
            if (*(const T *)(p[2] + i * s[2]) == *(const T *)(p[3] + i * s[3]))          \
                *(T *)(p[0] + i * s[0]) +=                                               \
                    *(const T *)(p[1] + i * s[1]) / *(const T *)(p[4] + i * s[4]);       \
    }                                                                                    \
    /* p0 = dx, p1 = g, p2 = x, p3 = mean; arg: 2 / (N - c) */                           \
    static void varb_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg) \
    {                                                                                    \
        const T k = (T) * (const double *)arg;                                           \
        for (int64_t i = 0; i < n; i++)                                                  \
            *(T *)(p[0] + i * s[0]) += k * *(const T *)(p[1] + i * s[1]) *              \
                                       (*(const T *)(p[2] + i * s[2]) -                  \
                                        *(const T *)(p[3] + i * s[3]));                  \
    }
RED_KERNS(float, f32)
RED_KERNS(double, f64)

#define PICK(name, dt) ((dt) == NB_F32 ? name##_f32 : name##_f64)

/* Parses axes into at (sorted, normalised); fills the keepdim shape. */
static bool parse_axes(nb_ctx *ctx, const char *op, const nb_tensor *x, int naxes,
                       const int *axes, nb__attrs *at, int64_t *kshape)
{
    char b[NB__SHAPE_BUF];
    bool red[NB_MAX_DIMS] = {false};
    if (naxes < 0 || naxes > NB_MAX_DIMS || (naxes > 0 && !axes)) {
        nb__err(ctx, NB_ERR_AXIS, "%s: bad axis list (%d axes)", op, naxes);
        return false;
    }
    for (int i = 0; i < naxes; i++) {
        int ax = nb__axis(axes[i], x->ndim);
        if (ax < 0) {
            nb__err(ctx, NB_ERR_AXIS, "%s: axis %d out of range for %s", op, axes[i],
                    nb_shape_str(x, b, sizeof b));
            return false;
        }
        if (red[ax]) {
            nb__err(ctx, NB_ERR_AXIS, "%s: axis %d given twice for %s", op, axes[i],
                    nb_shape_str(x, b, sizeof b));
            return false;
        }
        red[ax] = true;
    }
    at->naxes = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (naxes == 0)
            red[d] = true;
        kshape[d] = red[d] ? 1 : x->shape[d];
        if (red[d])
            at->axes[at->naxes++] = d;
    }
    return true;
}

/* A header for t's data with the keepdim shape (same element order). */
static nb_tensor keep_view(const nb_tensor *t, int ndim, const int64_t *kshape)
{
    nb_tensor h = *t;
    h.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        h.shape[d] = kshape[d];
    nb__contig_strides(ndim, kshape, h.strides);
    return h;
}

static void scale(nb_tensor *t, double alpha)
{
    int64_t n = nb__numel(t);
    if (t->dtype == NB_F32) {
        float *p = t->data, a = (float)alpha;
        for (int64_t i = 0; i < n; i++)
            p[i] *= a;
    } else {
        double *p = t->data;
        for (int64_t i = 0; i < n; i++)
            p[i] *= alpha;
    }
}

/* acc (broadcast over x's shape) accumulates k over x; combine says how
 * partial results of threads merge: 0 add, 1 max, -1 min */
static void run2(nb_ctx *ctx, const nb_tensor *x, nb_tensor *acc, nb__kern k, const void *arg,
                 const nb_tensor *third, int combine)
{
    nb__iter it;
    nb__iter_init(&it, x->ndim, x->shape);
    nb__iter_add_t(&it, acc);
    nb__iter_add_t(&it, x);
    if (third)
        nb__iter_add_t(&it, third);
    nb__iter_run_red(&it, k, arg, ctx, combine);
}

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_VAR };
static const nb__op_id red_op[] = {NB__OP_SUM, NB__OP_MEAN, NB__OP_MAX, NB__OP_MIN, NB__OP_VAR};

static nb_tensor *reduce(nb_ctx *ctx, int kind, nb_tensor *x, int naxes, const int *axes,
                         bool keepdim, int correction)
{
    const char *op = nb__ops[red_op[kind]].name;
    if (!ctx || nb__null_in(ctx, op, 1, x))
        return NULL;
    if (!nb__is_float(x->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: needs a float tensor, got %s", op, nb_dtype_name(x->dtype));
        return NULL;
    }
    nb__attrs at;
    memset(&at, 0, sizeof at);
    int64_t kshape[NB_MAX_DIMS];
    if (!parse_axes(ctx, op, x, naxes, axes, &at, kshape))
        return NULL;
    int64_t N = 1;
    for (int i = 0; i < at.naxes; i++)
        N *= x->shape[at.axes[i]];
    if ((kind == R_MAX || kind == R_MIN) && N == 0) {
        char b[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_SHAPE, "%s: reducing over zero elements of %s", op,
                nb_shape_str(x, b, sizeof b));
        return NULL;
    }
    int64_t yshape[NB_MAX_DIMS];
    int yn = 0;
    for (int d = 0, r = 0; d < x->ndim; d++) {
        bool reduced = r < at.naxes && at.axes[r] == d;
        r += reduced;
        if (!reduced || keepdim)
            yshape[yn++] = kshape[d];
    }
    nb_tensor *y = nb__new_step(ctx, x->dtype, yn, yshape);
    if (!y)
        return NULL;
    nb_tensor yk = keep_view(y, x->ndim, kshape);
    nb_tensor *mean = NULL;
    int sign = kind == R_MIN ? -1 : 1;
    switch (kind) {
    case R_SUM:
    case R_MEAN:
        nb_fill(ctx, &yk, 0.0);
        run2(ctx, x, &yk, PICK(sum, x->dtype), NULL, NULL, 0);
        if (kind == R_MEAN)
            scale(y, 1.0 / (double)N);
        break;
    case R_MAX:
    case R_MIN:
        nb_fill(ctx, &yk, kind == R_MAX ? -INFINITY : INFINITY);
        run2(ctx, x, &yk, PICK(max, x->dtype), &sign, NULL, sign);
        break;
    default: /* R_VAR: two passes, mean first, for accuracy */
        mean = nb__new_step(ctx, x->dtype, x->ndim, kshape);
        if (!mean)
            return NULL;
        nb_fill(ctx, mean, 0.0);
        run2(ctx, x, mean, PICK(sum, x->dtype), NULL, NULL, 0);
        scale(mean, 1.0 / (double)N);
        nb_fill(ctx, &yk, 0.0);
        run2(ctx, x, &yk, PICK(sqdev, x->dtype), NULL, mean, 0);
        scale(y, 1.0 / (double)(N - correction));
    }
    at.flag = keepdim;
    at.i[0] = correction;
    at.f[0] = (double)N;
    nb_tensor *in[1] = {x};
    if (nb__needs_grad(ctx, 1, in)) {
        nb__node *n = nb__record(ctx, red_op[kind], y, 1, in);
        if (!n)
            return NULL;
        n->a = at;
        n->saved[0] = mean;
    }
    return y;
}

nb_tensor *nb_sum(nb_ctx *ctx, nb_tensor *a, int naxes, const int *axes, bool keepdim)
{
    return reduce(ctx, R_SUM, a, naxes, axes, keepdim, 0);
}
nb_tensor *nb_mean(nb_ctx *ctx, nb_tensor *a, int naxes, const int *axes, bool keepdim)
{
    return reduce(ctx, R_MEAN, a, naxes, axes, keepdim, 0);
}
nb_tensor *nb_max(nb_ctx *ctx, nb_tensor *a, int naxes, const int *axes, bool keepdim)
{
    return reduce(ctx, R_MAX, a, naxes, axes, keepdim, 0);
}
nb_tensor *nb_min(nb_ctx *ctx, nb_tensor *a, int naxes, const int *axes, bool keepdim)
{
    return reduce(ctx, R_MIN, a, naxes, axes, keepdim, 0);
}
nb_tensor *nb_var(nb_ctx *ctx, nb_tensor *a, int naxes, const int *axes, bool keepdim,
                  int correction)
{
    if (ctx && correction < 0) {
        nb__err(ctx, NB_ERR_ARG, "var: correction %d is negative", correction);
        return NULL;
    }
    return reduce(ctx, R_VAR, a, naxes, axes, keepdim, correction);
}

/* ---- backward ---------------------------------------------------------- */
/* The keepdim shape of node n's output. */
static int kshape_of(const nb__node *n, int64_t *kshape)
{
    const nb_tensor *x = n->in[0];
    for (int d = 0; d < x->ndim; d++)
        kshape[d] = x->shape[d];
    for (int i = 0; i < n->a.naxes; i++)
        kshape[n->a.axes[i]] = 1;
    return x->ndim;
}

static nb_status sum_like_backward(nb_ctx *ctx, nb__node *n, double alpha)
{
    nb_tensor *dx;
    nb_status st = nb__grad_of(ctx, n->in[0], &dx);
    if (st != NB_OK || !dx)
        return st;
    int64_t kshape[NB_MAX_DIMS];
    int nd = kshape_of(n, kshape);
    nb_tensor gk = keep_view(n->out->grad, nd, kshape);
    return nb__acc_grad(ctx, dx, &gk, alpha);
}

nb_status nb__sum_backward(nb_ctx *ctx, nb__node *n) { return sum_like_backward(ctx, n, 1.0); }
nb_status nb__mean_backward(nb_ctx *ctx, nb__node *n)
{
    return sum_like_backward(ctx, n, 1.0 / n->a.f[0]);
}

static nb_status extreme_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    int64_t kshape[NB_MAX_DIMS];
    int nd = kshape_of(n, kshape);
    nb_tensor *count = nb__new_step(ctx, x->dtype, nd, kshape);
    if (!count)
        return ctx->err;
    nb_fill(ctx, count, 0.0);
    nb_tensor yk = keep_view(n->out, nd, kshape), gk = keep_view(n->out->grad, nd, kshape);
    run2(ctx, x, count, PICK(ties, x->dtype), NULL, &yk, 0);
    nb__iter it;
    nb__iter_init(&it, x->ndim, x->shape);
    nb__iter_add_t(&it, dx);
    nb__iter_add_t(&it, &gk);
    nb__iter_add_t(&it, x);
    nb__iter_add_t(&it, &yk);
    nb__iter_add_t(&it, count);
    nb__iter_run(&it, PICK(maxb, x->dtype), NULL, ctx);
    return NB_OK;
}

nb_status nb__max_backward(nb_ctx *ctx, nb__node *n) { return extreme_backward(ctx, n); }
nb_status nb__min_backward(nb_ctx *ctx, nb__node *n) { return extreme_backward(ctx, n); }

nb_status nb__var_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    int64_t kshape[NB_MAX_DIMS];
    int nd = kshape_of(n, kshape);
    nb_tensor gk = keep_view(n->out->grad, nd, kshape);
    double k = 2.0 / (n->a.f[0] - (double)n->a.i[0]);
    nb__iter it;
    nb__iter_init(&it, x->ndim, x->shape);
    nb__iter_add_t(&it, dx);
    nb__iter_add_t(&it, &gk);
    nb__iter_add_t(&it, x);
    nb__iter_add_t(&it, n->saved[0]);
    nb__iter_run(&it, PICK(varb, x->dtype), &k, ctx);
    return NB_OK;
}
