/* Sampling, the Gaussian KL term, and surrogate gradients.
 *
 *   reparameterize  z = mu + exp(lv / 2) eps         dmu = g, dlv = g eps exp(lv / 2) / 2
 *                   (eps is an input without gradient; saved: nothing new)
 *   kl_normal       k_i = -1/2 sum_j (1 + lv_ij - mu_ij^2 - exp(lv_ij))     per row i
 *                                                    dmu_ij = g_i mu_ij
 *                                                    dlv_ij = g_i (exp(lv_ij) - 1) / 2
 *   gumbel_softmax  y = softmax((l + gn) / tau) over the last dim; hard: the
 *                   output is onehot(argmax y)       dl = (y (g - sum(g y))) / tau
 *                   (saved: the soft y, which is the output unless hard)
 *   sign_ste        y = x >= 0 ? 1 : -1              dx = g [clip <= 0 or |x| <= clip]
 *   round_ste       y = round half to even           dx = g [clip <= 0 or |x| <= clip]
 *   quantize_ste    y = lo + round((clamp(x) - lo) / d) d
 *                                                    dx = g [!clip or lo <= x <= hi]
 * The STE backward is not the derivative of the forward (which is 0 almost
 * everywhere): it is the documented surrogate, tested exactly, not by finite
 * differences. Non-contiguous inputs are made contiguous first (recorded, so
 * their gradients route back through the copy). */
#include "ops/ew.h"

#include <math.h>

/* ---- straight-through estimators (the elementwise framework) ------------ */
#define STE_OP(name, ID, FWD, PASS) NB__UNARY_OP(name, ID, FWD, (PASS) ? g : (E)0)

/* f[0] = clip (<= 0: pass everywhere) */
#define PASS_CLIP (A->f[0] <= 0 || fabs(x) <= (E)A->f[0])
STE_OP(sign_ste, SIGN_STE, x >= 0 ? (E)1 : (E)-1, PASS_CLIP)
STE_OP(round_ste, ROUND_STE, nearbyint(x), PASS_CLIP)
/* f[0] = lo, f[1] = hi, f[2] = step d, f[3] = 1 to clip the gradient */
#define QCLAMP(x) ((x) < (E)A->f[0] ? (E)A->f[0] : ((x) > (E)A->f[1] ? (E)A->f[1] : (x)))
STE_OP(quantize_ste, QUANTIZE_STE,
       (E)A->f[0] + nearbyint((QCLAMP(x) - (E)A->f[0]) / (E)A->f[2]) * (E)A->f[2],
       A->f[3] == 0 || (x >= (E)A->f[0] && x <= (E)A->f[1]))

static nb_tensor *ste(nb_ctx *ctx, const nb__ew_def *d, const char *op, nb_tensor *x, double f0,
                      double f1, double f2, double f3)
{
    if (!ctx || nb__null_in(ctx, op, 1, x))
        return NULL;
    if (!nb__is_float(x->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: needs a float tensor, got %s", op, nb_dtype_name(x->dtype));
        return NULL;
    }
    nb__attrs at;
    memset(&at, 0, sizeof at);
    at.f[0] = f0, at.f[1] = f1, at.f[2] = f2, at.f[3] = f3;
    return nb__unary(ctx, d, x, &at);
}

nb_tensor *nb_sign_ste(nb_ctx *ctx, nb_tensor *x, double clip)
{
    if (ctx && isnan(clip)) {
        nb__err(ctx, NB_ERR_ARG, "sign_ste: clip is NaN");
        return NULL;
    }
    return ste(ctx, &sign_ste_def, "sign_ste", x, clip, 0, 0, 0);
}

nb_tensor *nb_round_ste(nb_ctx *ctx, nb_tensor *x, double clip)
{
    if (ctx && isnan(clip)) {
        nb__err(ctx, NB_ERR_ARG, "round_ste: clip is NaN");
        return NULL;
    }
    return ste(ctx, &round_ste_def, "round_ste", x, clip, 0, 0, 0);
}

nb_tensor *nb_quantize_ste(nb_ctx *ctx, nb_tensor *x, double lo, double hi, int levels, bool clip)
{
    if (ctx && (!isfinite(lo) || !isfinite(hi) || !(lo < hi) || levels < 2)) {
        nb__err(ctx, NB_ERR_ARG,
                "quantize_ste: needs finite lo < hi and levels >= 2, got [%g, %g] with %d levels",
                lo, hi, levels);
        return NULL;
    }
    return ste(ctx, &quantize_ste_def, "quantize_ste", x, lo, hi, (hi - lo) / (levels - 1),
               clip ? 1 : 0);
}

/* ---- shared checks -------------------------------------------------------- */
static bool same_shape(const nb_tensor *a, const nb_tensor *b)
{
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim);
}

/* float, one dtype, one shape; NULL-in handled by the caller */
static bool check_pair(nb_ctx *ctx, const char *op, const nb_tensor *a, const nb_tensor *b,
                       const char *an, const char *bn)
{
    if (!nb__check_float(ctx, op, a, b))
        return false;
    if (!same_shape(a, b)) {
        char s1[NB__SHAPE_BUF], s2[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_SHAPE, "%s: %s %s and %s %s must have the same shape", op, an,
                nb__shape_fmt(a->ndim, a->shape, s1, sizeof s1), bn,
                nb__shape_fmt(b->ndim, b->shape, s2, sizeof s2));
        return false;
    }
    return true;
}

#define LD(t, i) ((t)->dtype == NB_F32 ? (double)((const float *)(t)->data)[i] \
                                       : ((const double *)(t)->data)[i])
#define ST(t, i, v)                                        \
    do {                                                   \
        if ((t)->dtype == NB_F32)                          \
            ((float *)(t)->data)[i] = (float)(v);          \
        else                                               \
            ((double *)(t)->data)[i] = (v);                \
    } while (0)

/* ---- reparameterize -------------------------------------------------------- */
/* Each element computed in the input's precision: float exp for float, so
 * the result matches torch's float32 arithmetic. */
#define REPARAM_K(T, EXP)                                                                   \
    static void reparam_##T(int64_t n, T *z, const T *mu, const T *lv, const T *e)          \
    {                                                                                       \
        for (int64_t i = 0; i < n; i++)                                                     \
            z[i] = mu[i] + EXP(lv[i] * (T)0.5) * e[i];                                      \
    }                                                                                       \
    static void reparam_bwd_##T(int64_t n, T *dmu, T *dlv, const T *g, const T *lv,         \
                                const T *e)                                                 \
    {                                                                                       \
        for (int64_t i = 0; i < n; i++) {                                                   \
            if (dmu)                                                                        \
                dmu[i] += g[i];                                                             \
            if (dlv)                                                                        \
                dlv[i] += g[i] * e[i] * EXP(lv[i] * (T)0.5) * (T)0.5;                       \
        }                                                                                   \
    }
REPARAM_K(float, expf)
REPARAM_K(double, exp)

nb_tensor *nb_reparameterize(nb_ctx *ctx, nb_tensor *mu, nb_tensor *logvar, nb_tensor *eps)
{
    if (!ctx || nb__null_in(ctx, "reparameterize", 3, mu, logvar, eps))
        return NULL;
    if (!check_pair(ctx, "reparameterize", mu, logvar, "mu", "logvar") ||
        !check_pair(ctx, "reparameterize", mu, eps, "mu", "eps"))
        return NULL;
    nb_tensor *in[3] = {nb_contiguous(ctx, mu), nb_contiguous(ctx, logvar), NULL};
    bool was = nb_set_grad_enabled(ctx, false); /* eps gets no gradient */
    in[2] = nb_contiguous(ctx, eps);
    nb_set_grad_enabled(ctx, was);
    nb_tensor *z = in[0] && in[1] && in[2] ? nb__new_step(ctx, mu->dtype, mu->ndim, mu->shape) : NULL;
    if (!z)
        return NULL;
    int64_t n = nb__numel(z);
    if (z->dtype == NB_F32)
        reparam_float(n, z->data, in[0]->data, in[1]->data, in[2]->data);
    else
        reparam_double(n, z->data, in[0]->data, in[1]->data, in[2]->data);
    if (nb__needs_grad(ctx, 2, in) && !nb__record(ctx, NB__OP_REPARAMETERIZE, z, 3, in))
        return NULL;
    return z;
}

nb_status nb__reparameterize_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *dmu, *dlv, *lv = n->in[1], *e = n->in[2], *g = n->out->grad;
    nb_status st = nb__grad_of(ctx, n->in[0], &dmu);
    if (st == NB_OK)
        st = nb__grad_of(ctx, lv, &dlv);
    if (st != NB_OK || (!dmu && !dlv))
        return st;
    int64_t k = nb__numel(g);
    if (g->dtype == NB_F32)
        reparam_bwd_float(k, dmu ? dmu->data : NULL, dlv ? dlv->data : NULL, g->data, lv->data,
                          e->data);
    else
        reparam_bwd_double(k, dmu ? dmu->data : NULL, dlv ? dlv->data : NULL, g->data, lv->data,
                           e->data);
    return NB_OK;
}

nb_tensor *nb_gaussian_sample(nb_ctx *ctx, nb_tensor *mu, nb_tensor *logvar)
{
    if (!ctx || nb__null_in(ctx, "gaussian_sample", 2, mu, logvar))
        return NULL;
    if (!nb__is_float(mu->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "gaussian_sample: needs float tensors, got %s",
                nb_dtype_name(mu->dtype));
        return NULL;
    }
    nb_tensor *e = nb__new_step(ctx, mu->dtype, mu->ndim, mu->shape);
    if (!e || nb_fill_normal(ctx, e, 0.0, 1.0) != NB_OK)
        return NULL;
    return nb_reparameterize(ctx, mu, logvar, e);
}

/* ---- KL(N(mu, exp(lv)) || N(0, 1)) per row ------------------------------------ */
nb_tensor *nb_kl_normal(nb_ctx *ctx, nb_tensor *mu, nb_tensor *logvar, nb_reduction r)
{
    if (!ctx || nb__null_in(ctx, "kl_normal", 2, mu, logvar))
        return NULL;
    if (!check_pair(ctx, "kl_normal", mu, logvar, "mu", "logvar"))
        return NULL;
    if (mu->ndim < 1 || mu->shape[0] < 1) {
        nb__err(ctx, NB_ERR_SHAPE, "kl_normal: needs [N, ...] with N >= 1");
        return NULL;
    }
    if ((int)r < 0 || r > NB_REDUCE_NONE) {
        nb__err(ctx, NB_ERR_ARG, "kl_normal: unknown reduction %d", (int)r);
        return NULL;
    }
    nb_tensor *in[2] = {nb_contiguous(ctx, mu), nb_contiguous(ctx, logvar)};
    int64_t N = mu->shape[0];
    nb_tensor *k = in[0] && in[1] ? nb__new_step(ctx, mu->dtype, 1, &N) : NULL;
    if (!k)
        return NULL;
    int64_t D = nb__numel(mu) / N;
    for (int64_t i = 0; i < N; i++) {
        double s = 0;
        for (int64_t j = i * D; j < (i + 1) * D; j++) {
            double m = LD(in[0], j), v = LD(in[1], j);
            s += 1 + v - m * m - exp(v);
        }
        ST(k, i, -0.5 * s);
    }
    if (nb__needs_grad(ctx, 2, in) && !nb__record(ctx, NB__OP_KL_NORMAL, k, 2, in))
        return NULL;
    return r == NB_REDUCE_NONE ? k : r == NB_REDUCE_SUM ? nb_sum(ctx, k, 0, NULL, false)
                                                        : nb_mean(ctx, k, 0, NULL, false);
}

nb_status nb__kl_normal_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *dmu, *dlv, *mu = n->in[0], *lv = n->in[1], *g = n->out->grad;
    nb_status st = nb__grad_of(ctx, mu, &dmu);
    if (st == NB_OK)
        st = nb__grad_of(ctx, lv, &dlv);
    if (st != NB_OK)
        return st;
    int64_t N = g->shape[0], D = nb__numel(mu) / N;
    for (int64_t i = 0; i < N; i++) {
        double gi = LD(g, i);
        for (int64_t j = i * D; j < (i + 1) * D; j++) {
            if (dmu)
                ST(dmu, j, LD(dmu, j) + gi * LD(mu, j));
            if (dlv)
                ST(dlv, j, LD(dlv, j) + gi * 0.5 * (exp(LD(lv, j)) - 1));
        }
    }
    return NB_OK;
}

/* ---- Gumbel-softmax --------------------------------------------------------- */
nb_tensor *nb_gumbel_softmax(nb_ctx *ctx, nb_tensor *logits, nb_tensor *gumbel, double tau,
                             bool hard)
{
    if (!ctx || nb__null_in(ctx, "gumbel_softmax", 1, logits))
        return NULL;
    if (!(tau > 0) || !isfinite(tau)) {
        nb__err(ctx, NB_ERR_ARG, "gumbel_softmax: temperature must be > 0 and finite, got %g", tau);
        return NULL;
    }
    if (!nb__is_float(logits->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "gumbel_softmax: needs float logits, got %s",
                nb_dtype_name(logits->dtype));
        return NULL;
    }
    if (logits->ndim < 1 || logits->shape[logits->ndim - 1] < 1) {
        nb__err(ctx, NB_ERR_SHAPE, "gumbel_softmax: needs logits [..., C] with C >= 1");
        return NULL;
    }
    bool was = nb_set_grad_enabled(ctx, false);
    if (gumbel) {
        if (!check_pair(ctx, "gumbel_softmax", logits, gumbel, "logits", "gumbel noise")) {
            nb_set_grad_enabled(ctx, was);
            return NULL;
        }
        gumbel = nb_contiguous(ctx, gumbel);
    } else {
        gumbel = nb__new_step(ctx, logits->dtype, logits->ndim, logits->shape);
        for (int64_t i = 0; gumbel && i < nb__numel(gumbel); i++) {
            double u = nb_rng_uniform(&ctx->rng);
            u = u > 0 ? u : 0x1p-60; /* -log(-log(0)) would be -inf */
            ST(gumbel, i, -log(-log(u)));
        }
    }
    nb_set_grad_enabled(ctx, was);
    nb_tensor *in[2] = {nb_contiguous(ctx, logits), gumbel};
    nb_tensor *y = in[0] && in[1] ? nb__new_step(ctx, logits->dtype, logits->ndim, logits->shape) : NULL;
    nb_tensor *out = y && hard ? nb__new_step(ctx, logits->dtype, logits->ndim, logits->shape) : y;
    if (!out)
        return NULL;
    int64_t C = logits->shape[logits->ndim - 1], R = nb__numel(y) / C;
    for (int64_t r = 0; r < R; r++) {
        int64_t o = r * C, arg = 0;
        double mx = -INFINITY, s = 0;
        for (int64_t c = 0; c < C; c++) {
            double z = (LD(in[0], o + c) + LD(gumbel, o + c)) / tau;
            ST(y, o + c, z);
            if (z > mx)
                mx = z, arg = c;
        }
        for (int64_t c = 0; c < C; c++) {
            double e = exp(LD(y, o + c) - mx);
            ST(y, o + c, e);
            s += e;
        }
        for (int64_t c = 0; c < C; c++) {
            ST(y, o + c, LD(y, o + c) / s);
            if (hard)
                ST(out, o + c, c == arg ? 1.0 : 0.0);
        }
    }
    if (nb__needs_grad(ctx, 1, in)) {
        nb__node *nd = nb__record(ctx, NB__OP_GUMBEL_SOFTMAX, out, 2, in);
        if (!nd)
            return NULL;
        nd->saved[0] = y;
        nd->a.f[0] = tau;
    }
    return out;
}

nb_status nb__gumbel_softmax_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *dl, *y = n->saved[0], *g = n->out->grad;
    nb_status st = nb__grad_of(ctx, n->in[0], &dl);
    if (st != NB_OK || !dl)
        return st;
    int64_t C = y->shape[y->ndim - 1], R = nb__numel(y) / C;
    double inv = 1.0 / n->a.f[0];
    for (int64_t r = 0; r < R; r++) {
        int64_t o = r * C;
        double dot = 0;
        for (int64_t c = 0; c < C; c++)
            dot += LD(g, o + c) * LD(y, o + c);
        for (int64_t c = 0; c < C; c++)
            ST(dl, o + c, LD(dl, o + c) + inv * LD(y, o + c) * (LD(g, o + c) - dot));
    }
    return NB_OK;
}
