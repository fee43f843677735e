/* Elementwise regression and binary losses, with d = p - t:
 *   mse              l = d^2                          dp = 2d           dt = -dp
 *   l1               l = |d|                          dp = sign(d)      dt = -dp
 *   smooth_l1(beta)  l = |d| < beta ? d^2 / (2 beta) : |d| - beta / 2
 *                                                     dp = |d| < beta ? d / beta : sign(d)
 *   huber(delta)     = delta * smooth_l1(beta = delta)   (one op, a scale attribute)
 *   bce_with_logits  l = max(x, 0) - x t + ln(1 + e^-|x|)   dx = sigmoid(x) - t, dt = -x
 * reduction: none keeps l's shape, sum adds, mean divides by the count. The
 * upstream gradient of each element is g[i] (none), g (sum) or g / N (mean).
 * Shapes must match exactly: a [N] against [N, 1] target is an error, not a
 * silent broadcast to [N, N]. Nothing is saved beyond the inputs. */
#include "core/internal.h"

#include <math.h>
#include <stdio.h>

enum { L_MSE, L_L1, L_SMOOTH, L_BCE };

#define LOSS_KERNS(T, SUF)                                                               \
    static inline void elem_##SUF(int kind, double beta, T p, T t, T *l, T *dp, T *dt)   \
    {                                                                                    \
        T d = p - t, ad = d < 0 ? -d : d, sg = (T)((d > 0) - (d < 0));                   \
        switch (kind) {                                                                  \
        case L_MSE: *l = d * d; *dp = (T)2 * d; *dt = -*dp; break;                       \
        case L_L1: *l = ad; *dp = sg; *dt = -sg; break;                                  \
        case L_SMOOTH:                                                                   \
            if (ad < (T)beta) {                                                          \
                *l = (T)0.5 * d * d / (T)beta;                                           \
                *dp = d / (T)beta;                                                       \
            } else {                                                                     \
                *l = ad - (T)0.5 * (T)beta;                                              \
                *dp = sg;                                                                \
            }                                                                            \
            *dt = -*dp;                                                                  \
            break;                                                                       \
        default: {                                                                       \
            T ax = p < 0 ? -p : p, e = exp(-ax);                                         \
            *l = (p > 0 ? p : (T)0) - p * t + log1p(e);                                  \
            *dp = (p >= 0 ? (T)1 / ((T)1 + e) : e / ((T)1 + e)) - t;                     \
            *dt = -p;                                                                    \
        }                                                                                \
        }                                                                                \
    }                                                                                    \
    static double fwd_##SUF(int kind, double beta, double scale, int64_t n, const T *p,  \
                            const T *t, T *out)                                          \
    {                                                                                    \
        double acc = 0;                                                                  \
        for (int64_t i = 0; i < n; i++) {                                                \
            T l, dp, dt;                                                                 \
            elem_##SUF(kind, beta, p[i], t[i], &l, &dp, &dt);                            \
            l *= (T)scale;                                                               \
            if (out)                                                                     \
                out[i] = l;                                                              \
            acc += l;                                                                    \
        }                                                                                \
        return acc;                                                                      \
    }                                                                                    \
    /* dP, dT may be NULL; g has n elements (gstride 1) or one (gstride 0) */            \
    static void bwd_##SUF(int kind, double beta, double scale, int64_t n, const T *p,    \
                          const T *t, const T *g, int64_t gstride, double gscale, T *dP, \
                          T *dT)                                                         \
    {                                                                                    \
        for (int64_t i = 0; i < n; i++) {                                                \
            T l, dp, dt, gi = (T)(g[i * gstride] * gscale * scale);                      \
            elem_##SUF(kind, beta, p[i], t[i], &l, &dp, &dt);                            \
            if (dP)                                                                      \
                dP[i] += gi * dp;                                                        \
            if (dT)                                                                      \
                dT[i] += gi * dt;                                                        \
        }                                                                                \
    }
LOSS_KERNS(float, f32)
LOSS_KERNS(double, f64)

static const nb__op_id loss_op[] = {NB__OP_MSE_LOSS, NB__OP_L1_LOSS, NB__OP_SMOOTH_L1_LOSS,
                                    NB__OP_BCE_WITH_LOGITS};

static nb_tensor *loss(nb_ctx *ctx, const char *name, int kind, nb_tensor *p, nb_tensor *t,
                       nb_reduction r, double beta, double scale)
{
    if (!ctx || nb__null_in(ctx, name, 2, p, t))
        return NULL;
    char b1[NB__SHAPE_BUF], b2[NB__SHAPE_BUF];
    if (!nb__is_float(p->dtype) || p->dtype != t->dtype) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: prediction and target must share a float dtype, got %s and %s",
                name, nb_dtype_name(p->dtype), nb_dtype_name(t->dtype));
        return NULL;
    }
    if (p->ndim != t->ndim || memcmp(p->shape, t->shape, sizeof(int64_t) * (size_t)p->ndim)) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: prediction %s and target %s differ in shape", name,
                nb_shape_str(p, b1, sizeof b1), nb_shape_str(t, b2, sizeof b2));
        return NULL;
    }
    if ((int)r < 0 || r > NB_REDUCE_NONE) {
        nb__err(ctx, NB_ERR_ARG, "%s: unknown reduction %d", name, (int)r);
        return NULL;
    }
    if (kind == L_SMOOTH && !(beta >= 0 && isfinite(beta))) {
        nb__err(ctx, NB_ERR_ARG, "%s: beta/delta must be finite and >= 0, got %g", name, beta);
        return NULL;
    }
    p = nb_contiguous(ctx, p);
    t = nb_contiguous(ctx, t);
    if (!p || !t)
        return NULL;
    int64_t n = nb__numel(p);
    nb_tensor *y = r == NB_REDUCE_NONE ? nb__new_step(ctx, p->dtype, p->ndim, p->shape)
                                       : nb__new_step(ctx, p->dtype, 0, NULL);
    if (!y)
        return NULL;
    bool none = r == NB_REDUCE_NONE;
    double s = p->dtype == NB_F32
                   ? fwd_f32(kind, beta, scale, n, p->data, t->data, none ? y->data : NULL)
                   : fwd_f64(kind, beta, scale, n, p->data, t->data, none ? y->data : NULL);
    if (!none)
        nb__store(p->dtype, y->data, r == NB_REDUCE_MEAN ? s / (double)n : s);
    nb_tensor *in[2] = {p, t};
    if (nb__needs_grad(ctx, 2, in)) {
        nb__node *nd = nb__record(ctx, loss_op[kind], y, 2, in);
        if (!nd)
            return NULL;
        nd->a.i[0] = kind;
        nd->a.i[1] = r;
        nd->a.f[0] = beta;
        nd->a.f[1] = scale;
    }
    return y;
}

static nb_status loss_backward(nb_ctx *ctx, nb__node *nd)
{
    nb_tensor *p = nd->in[0], *t = nd->in[1], *dp, *dt;
    nb_status st = nb__grad_of(ctx, p, &dp);
    if (st == NB_OK)
        st = nb__grad_of(ctx, t, &dt);
    if (st != NB_OK)
        return st;
    int kind = (int)nd->a.i[0];
    nb_reduction r = (nb_reduction)nd->a.i[1];
    int64_t n = nb__numel(p);
    int64_t gs = r == NB_REDUCE_NONE ? 1 : 0;
    double gscale = r == NB_REDUCE_MEAN ? 1.0 / (double)n : 1.0;
    if (p->dtype == NB_F32)
        bwd_f32(kind, nd->a.f[0], nd->a.f[1], n, p->data, t->data, nd->out->grad->data, gs,
                gscale, dp ? dp->data : NULL, dt ? dt->data : NULL);
    else
        bwd_f64(kind, nd->a.f[0], nd->a.f[1], n, p->data, t->data, nd->out->grad->data, gs,
                gscale, dp ? dp->data : NULL, dt ? dt->data : NULL);
    return NB_OK;
}

nb_status nb__mse_loss_backward(nb_ctx *ctx, nb__node *n) { return loss_backward(ctx, n); }
nb_status nb__l1_loss_backward(nb_ctx *ctx, nb__node *n) { return loss_backward(ctx, n); }
nb_status nb__smooth_l1_loss_backward(nb_ctx *ctx, nb__node *n) { return loss_backward(ctx, n); }
nb_status nb__bce_with_logits_backward(nb_ctx *ctx, nb__node *n) { return loss_backward(ctx, n); }

nb_tensor *nb_mse_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction r)
{
    return loss(ctx, "mse_loss", L_MSE, pred, target, r, 0, 1);
}
nb_tensor *nb_l1_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction r)
{
    return loss(ctx, "l1_loss", L_L1, pred, target, r, 0, 1);
}
nb_tensor *nb_smooth_l1_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction r,
                             double beta)
{
    return loss(ctx, "smooth_l1_loss", L_SMOOTH, pred, target, r, beta, 1);
}
nb_tensor *nb_huber_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction r,
                         double delta)
{
    if (ctx && !(delta > 0)) {
        nb__err(ctx, NB_ERR_ARG, "huber_loss: delta must be positive, got %g", delta);
        return NULL;
    }
    return loss(ctx, "huber_loss", L_SMOOTH, pred, target, r, delta, delta);
}
nb_tensor *nb_bce_with_logits(nb_ctx *ctx, nb_tensor *logits, nb_tensor *target, nb_reduction r)
{
    return loss(ctx, "bce_with_logits", L_BCE, logits, target, r, 0, 1);
}

/* ---- loss terms added by layers (a VAE's KL) --------------------------------- */
nb_status nb_add_loss(nb_ctx *ctx, nb_tensor *t)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!t)
        return ctx->err != NB_OK ? ctx->err : nb__err(ctx, NB_ERR_NULL, "add_loss: the term is NULL");
    if (nb__numel(t) != 1 || !nb__is_float(t->dtype))
        return nb__err(ctx, NB_ERR_SHAPE, "add_loss: the term must be a float scalar, got %lld elements",
                       (long long)nb__numel(t));
    nb_tensor *s = ctx->added_loss ? nb_add(ctx, ctx->added_loss, nb_reshape(ctx, t, 0, NULL))
                                   : nb_reshape(ctx, t, 0, NULL);
    if (!s)
        return ctx->err;
    ctx->added_loss = s;
    return NB_OK;
}

nb_tensor *nb_take_added_loss(nb_ctx *ctx)
{
    if (!ctx)
        return NULL;
    nb_tensor *s = ctx->added_loss;
    ctx->added_loss = NULL;
    return s;
}
