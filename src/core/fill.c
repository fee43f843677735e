/* In-place writes that are not recorded on the tape: fills, assign, axpy. */
#include "internal.h"
#include "kernels/iter.h"

#include <math.h>

typedef struct {
    nb_dtype dst, src;
    double v;
} conv_arg;

#define NB__COPY_KERN(NAME, TD, TS)                                                      \
    static void NAME(int64_t n, char *const *p, const int64_t *s, const void *arg)       \
    {                                                                                    \
        (void)arg;                                                                       \
        if (NB__CONTIG2(s, TD) && sizeof(TD) == sizeof(TS)) {                             \
            TD *d = (TD *)p[0];                                                          \
            const TS *x = (const TS *)p[1];                                              \
            for (int64_t i = 0; i < n; i++)                                              \
                d[i] = (TD)x[i];                                                         \
            return;                                                                      \
        }                                                                                \
        for (int64_t i = 0; i < n; i++)                                                  \
            *(TD *)(p[0] + i * s[0]) = (TD) * (const TS *)(p[1] + i * s[1]);             \
    }
NB__COPY_KERN(copy_ff, float, float)
NB__COPY_KERN(copy_dd, double, double)
NB__COPY_KERN(copy_fd, float, double)
NB__COPY_KERN(copy_df, double, float)
NB__COPY_KERN(copy_ii, int32_t, int32_t)
NB__COPY_KERN(copy_ll, int64_t, int64_t)
NB__COPY_KERN(copy_bb, uint8_t, uint8_t)

static void copy_any(int64_t n, char *const *p, const int64_t *s, const void *arg)
{
    const conv_arg *a = arg;
    for (int64_t i = 0; i < n; i++)
        nb__store(a->dst, p[0] + i * s[0], nb__load(a->src, p[1] + i * s[1]));
}

static nb__kern copy_kernel(nb_dtype d, nb_dtype s)
{
    if (d == s) {
        switch (d) {
        case NB_F32: return copy_ff;
        case NB_F64: return copy_dd;
        case NB_I32: return copy_ii;
        case NB_I64: return copy_ll;
        case NB_U8: return copy_bb;
        default: break;
        }
    }
    if (d == NB_F32 && s == NB_F64)
        return copy_fd;
    if (d == NB_F64 && s == NB_F32)
        return copy_df;
    return copy_any;
}

/* dst and src of the same shape (src may also broadcast to dst's shape). */
static void copy_into(nb_ctx *ctx, nb_tensor *dst, const nb_tensor *src)
{
    nb__iter it;
    nb__iter_init(&it, dst->ndim, dst->shape);
    nb__iter_add_t(&it, dst);
    nb__iter_add_t(&it, src);
    conv_arg a = {dst->dtype, src->dtype, 0};
    nb__iter_run(&it, copy_kernel(dst->dtype, src->dtype), &a, ctx);
}

void nb__copy_strided(nb_ctx *ctx, nb_tensor *dst, const nb_tensor *src)
{
    copy_into(ctx, dst, src);
}

static void fill_kern(int64_t n, char *const *p, const int64_t *s, const void *arg)
{
    const conv_arg *a = arg;
    if (a->dst == NB_F32) {
        float v = (float)a->v;
        for (int64_t i = 0; i < n; i++)
            *(float *)(p[0] + i * s[0]) = v;
    } else if (a->dst == NB_F64) {
        for (int64_t i = 0; i < n; i++)
            *(double *)(p[0] + i * s[0]) = a->v;
    } else {
        for (int64_t i = 0; i < n; i++)
            nb__store(a->dst, p[0] + i * s[0], a->v);
    }
}

static bool writable(nb_ctx *ctx, const char *op, nb_tensor *t)
{
    if (nb__null_in(ctx, op, 1, t))
        return false;
    if (t->node_ && ctx->grad_enabled && (t->flags & NB_REQUIRES_GRAD)) {
        nb__err(ctx, NB_ERR_ARG,
                "%s: writing in place into a tensor recorded on the tape would corrupt its "
                "gradient",
                op);
        return false;
    }
    for (int i = 0; i < t->ndim; i++)
        if (t->strides[i] == 0 && t->shape[i] > 1) {
            nb__err(ctx, NB_ERR_ARG, "%s: cannot write into an expanded (stride 0) view", op);
            return false;
        }
    return true;
}

nb_status nb_fill(nb_ctx *ctx, nb_tensor *t, double value)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!writable(ctx, "fill", t))
        return ctx->err;
    nb__iter it;
    nb__iter_init(&it, t->ndim, t->shape);
    nb__iter_add_t(&it, t);
    conv_arg a = {t->dtype, t->dtype, value};
    nb__iter_run(&it, fill_kern, &a, ctx);
    return NB_OK;
}

/* Random fills go element by element in row-major order so the numbers do not
 * depend on strides or on the thread count. */
static nb_status rand_fill(nb_ctx *ctx, nb_tensor *t, const char *op, int kind, double x,
                           double y)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!writable(ctx, op, t))
        return ctx->err;
    if (!nb__is_float(t->dtype))
        return nb__err(ctx, NB_ERR_DTYPE, "%s: needs a float tensor, got %s", op,
                       nb_dtype_name(t->dtype));
    if (kind == 2 && !(x >= 0.0 && x <= 1.0))
        return nb__err(ctx, NB_ERR_ARG, "%s: probability %g is not in [0, 1]", op, x);
    if (kind == 1 && !(y >= 0.0))
        return nb__err(ctx, NB_ERR_ARG, "%s: standard deviation %g is negative", op, y);
    int64_t n = nb__numel(t);
    bool contig = nb_is_contiguous(t);
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (kind == 0)
            v = x + (y - x) * nb_rng_uniform(&ctx->rng);
        else if (kind == 1)
            v = x + y * nb_rng_normal(&ctx->rng);
        else
            v = nb_rng_uniform(&ctx->rng) < x ? 1.0 : 0.0;
        if (contig)
            nb__store(t->dtype, (char *)t->data + i * (int64_t)nb__esize(t->dtype), v);
        else
            nb__store(t->dtype, nb__elem_ptr(t, i), v);
    }
    return NB_OK;
}

nb_status nb_fill_uniform(nb_ctx *ctx, nb_tensor *t, double lo, double hi)
{
    return rand_fill(ctx, t, "fill_uniform", 0, lo, hi);
}
nb_status nb_fill_normal(nb_ctx *ctx, nb_tensor *t, double mean, double sd)
{
    return rand_fill(ctx, t, "fill_normal", 1, mean, sd);
}
nb_status nb_fill_bernoulli(nb_ctx *ctx, nb_tensor *t, double p)
{
    return rand_fill(ctx, t, "fill_bernoulli", 2, p, 0);
}

static bool same_shape(const nb_tensor *a, const nb_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

static nb_status shape_err(nb_ctx *ctx, const char *op, const nb_tensor *a, const nb_tensor *b)
{
    char x[NB__SHAPE_BUF], y[NB__SHAPE_BUF];
    return nb__err(ctx, NB_ERR_SHAPE, "%s: shapes differ: %s vs %s", op,
                   nb_shape_str(a, x, sizeof x), nb_shape_str(b, y, sizeof y));
}

nb_status nb_assign(nb_ctx *ctx, nb_tensor *dst, const nb_tensor *src)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (nb__null_in(ctx, "assign", 2, dst, src) || !writable(ctx, "assign", dst))
        return ctx->err;
    if (!same_shape(dst, src))
        return shape_err(ctx, "assign", dst, src);
    copy_into(ctx, dst, src);
    return NB_OK;
}

nb_status nb_axpy(nb_ctx *ctx, nb_tensor *dst, double alpha, const nb_tensor *src)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (nb__null_in(ctx, "axpy", 2, dst, src) || !writable(ctx, "axpy", dst))
        return ctx->err;
    if (!same_shape(dst, src))
        return shape_err(ctx, "axpy", dst, src);
    if (!nb__is_float(dst->dtype) || dst->dtype != src->dtype)
        return nb__err(ctx, NB_ERR_DTYPE, "axpy: needs two float tensors of one dtype, got %s and %s",
                       nb_dtype_name(dst->dtype), nb_dtype_name(src->dtype));
    return nb__acc_grad(ctx, dst, src, alpha); /* the same dst += alpha * src */
}
