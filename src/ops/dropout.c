/* Inverted dropout.
 *   training:  y = x m / (1 - p),  m_i ~ Bernoulli(1 - p)     dx += g m / (1 - p)
 *   eval:      y = x (the same tensor, nothing recorded)
 * The mask is drawn from the context's generator, one 32-bit draw per element
 * in row-major order (kept when the draw is >= p 2^32), and saved as U8. */
#include "core/internal.h"
#include "kernels/iter.h"

#include <math.h>

#define DROP_KERNS(T, SUF)                                                               \
    /* p0 = y or dx(+=), p1 = x or g, p2 = mask; arg: the scale */                       \
    static void fwd_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg)  \
    {                                                                                    \
        const T k = (T) * (const double *)arg;                                           \
        for (int64_t i = 0; i < n; i++)                                                  \
            *(T *)(p[0] + i * s[0]) = *(const uint8_t *)(p[2] + i * s[2])               \
                                          ? *(const T *)(p[1] + i * s[1]) * k            \
                                          : (T)0;                                        \
    }                                                                                    \
    static void bwd_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg)  \
    {                                                                                    \
        const T k = (T) * (const double *)arg;                                           \
        for (int64_t i = 0; i < n; i++)                                                  \
            if (*(const uint8_t *)(p[2] + i * s[2]))                                     \
                *(T *)(p[0] + i * s[0]) += *(const T *)(p[1] + i * s[1]) * k;            \
    }
DROP_KERNS(float, f32)
DROP_KERNS(double, f64)

static void run(nb_ctx *ctx, nb_tensor *o, const nb_tensor *x, const nb_tensor *m, nb__kern k,
                double scale)
{
    nb__iter it;
    nb__iter_init(&it, o->ndim, o->shape);
    nb__iter_add_t(&it, o);
    nb__iter_add_t(&it, x);
    nb__iter_add_t(&it, m);
    nb__iter_run(&it, k, &scale, ctx);
}

nb_tensor *nb_dropout(nb_ctx *ctx, nb_tensor *a, double p, bool training)
{
    if (!ctx || nb__null_in(ctx, "dropout", 1, a))
        return NULL;
    if (!(p >= 0.0 && p <= 1.0)) {
        nb__err(ctx, NB_ERR_ARG, "dropout: probability %g is not in [0, 1]", p);
        return NULL;
    }
    if (!nb__is_float(a->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "dropout: needs a float tensor, got %s", nb_dtype_name(a->dtype));
        return NULL;
    }
    if (!training || p == 0.0)
        return a;
    nb_tensor *m = nb__new_step(ctx, NB_U8, a->ndim, a->shape);
    nb_tensor *y = m ? nb__new_step(ctx, a->dtype, a->ndim, a->shape) : NULL;
    if (!y)
        return NULL;
    uint8_t *mp = m->data;
    int64_t n = nb__numel(a);
    double cut = ldexp(p, 32); /* keep when the draw is >= p 2^32 */
    for (int64_t i = 0; i < n; i++)
        mp[i] = (double)nb_rng_u32(&ctx->rng) >= cut;
    double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
    run(ctx, y, a, m, a->dtype == NB_F32 ? fwd_f32 : fwd_f64, scale);
    if (nb__needs_grad(ctx, 1, &a)) {
        nb__node *nd = nb__record(ctx, NB__OP_DROPOUT, y, 1, &a);
        if (!nd)
            return NULL;
        nd->saved[0] = m;
        nd->a.f[0] = scale;
    }
    return y;
}

nb_status nb__dropout_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    run(ctx, dx, n->out->grad, n->saved[0], x->dtype == NB_F32 ? bwd_f32 : bwd_f64, n->a.f[0]);
    return NB_OK;
}
