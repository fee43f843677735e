/* Classification losses over logits or log-probabilities [N, C] with integer
 * targets [N] (i32/i64).
 *   cross_entropy  lp = log_softmax(x)
 *                  l_i = -(1 - e) lp[i, t_i] - (e / C) sum_c lp[i, c]
 *                  dx[i, c] = w_i (softmax[i, c] - (1 - e)[c = t_i] - e / C)
 *   nll_loss       l_i = -lp[i, t_i]          dlp[i, t_i] = -w_i
 * e is the label smoothing. Rows whose target equals ignore_index add nothing
 * and get no gradient. w_i = g_i (none), g (sum), g / (rows kept) (mean, as
 * torch). cross_entropy saves lp (one [N, C] buffer) for backward. */
#include "core/internal.h"
#include "kernels/vmath.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

nb_ce_opts nb_ce_opts_default(void)
{
    nb_ce_opts o;
    o.reduction = NB_REDUCE_MEAN;
    o.label_smoothing = 0.0;
    o.ignore_index = -100;
    return o;
}

static int64_t target_at(const nb_tensor *t, int64_t i)
{
    const char *p = nb__elem_ptr(t, i);
    return t->dtype == NB_I32 ? (int64_t) * (const int32_t *)p : *(const int64_t *)p;
}

static bool check(nb_ctx *ctx, const char *op, const nb_tensor *x, const nb_tensor *t,
                  const nb_ce_opts *o)
{
    char b1[NB__SHAPE_BUF], b2[NB__SHAPE_BUF];
    if (!nb__is_float(x->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: input must be float, got %s", op, nb_dtype_name(x->dtype));
        return false;
    }
    if (t->dtype != NB_I32 && t->dtype != NB_I64) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: targets must be i32 or i64 class ids, got %s", op,
                nb_dtype_name(t->dtype));
        return false;
    }
    if (x->ndim != 2 || t->ndim != 1 || t->shape[0] != x->shape[0]) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: expects input [N, C] and targets [N], got %s and %s", op,
                nb_shape_str(x, b1, sizeof b1), nb_shape_str(t, b2, sizeof b2));
        return false;
    }
    if ((int)o->reduction < 0 || o->reduction > NB_REDUCE_NONE) {
        nb__err(ctx, NB_ERR_ARG, "%s: unknown reduction %d", op, (int)o->reduction);
        return false;
    }
    if (!(o->label_smoothing >= 0.0 && o->label_smoothing <= 1.0)) {
        nb__err(ctx, NB_ERR_ARG, "%s: label_smoothing %g is not in [0, 1]", op, o->label_smoothing);
        return false;
    }
    int64_t C = x->shape[1];
    for (int64_t i = 0; i < t->shape[0]; i++) {
        int64_t c = target_at(t, i);
        if (c != o->ignore_index && (c < 0 || c >= C)) {
            nb__err(ctx, NB_ERR_INDEX, "%s: target %lld of row %lld is outside [0, %lld)", op,
                    (long long)c, (long long)i, (long long)C);
            return false;
        }
    }
    return true;
}

/* Rows kept (target != ignore_index). */
static int64_t kept(const nb_tensor *t, int64_t ignore)
{
    int64_t k = 0;
    for (int64_t i = 0; i < t->shape[0]; i++)
        k += target_at(t, i) != ignore;
    return k;
}

/* Per-row losses into l (n doubles); lp is [N, C] contiguous log-probabilities. */
static void row_losses(const nb_tensor *lp, const nb_tensor *t, double eps, int64_t ignore,
                       double *l)
{
    int64_t N = lp->shape[0], C = lp->shape[1];
    for (int64_t i = 0; i < N; i++) {
        int64_t c = target_at(t, i);
        if (c == ignore) {
            l[i] = 0;
            continue;
        }
        double s = 0, pick = nb__load(lp->dtype, (const char *)lp->data +
                                                     (i * C + c) * (int64_t)nb__esize(lp->dtype));
        if (eps > 0)
            for (int64_t k = 0; k < C; k++)
                s += nb__load(lp->dtype,
                              (const char *)lp->data + (i * C + k) * (int64_t)nb__esize(lp->dtype));
        l[i] = -(1.0 - eps) * pick - (eps / (double)C) * s;
    }
}

static nb_tensor *finish(nb_ctx *ctx, nb__op_id op, nb_tensor *x, nb_tensor *t, nb_tensor *lp,
                         const nb_ce_opts *o)
{
    int64_t N = x->shape[0];
    double *l = nb__arena_alloc(ctx, sizeof(double) * (size_t)(N > 0 ? N : 1));
    if (!l) {
        nb__arena_err(ctx, nb__ops[op].name, sizeof(double) * (size_t)N);
        return NULL;
    }
    double eps = op == NB__OP_CROSS_ENTROPY ? o->label_smoothing : 0.0;
    row_losses(lp, t, eps, o->ignore_index, l);
    nb_tensor *y;
    if (o->reduction == NB_REDUCE_NONE) {
        y = nb__new_step(ctx, x->dtype, 1, &N);
        if (!y)
            return NULL;
        for (int64_t i = 0; i < N; i++)
            nb__store(y->dtype, (char *)y->data + i * (int64_t)nb__esize(y->dtype), l[i]);
    } else {
        y = nb__new_step(ctx, x->dtype, 0, NULL);
        if (!y)
            return NULL;
        double s = 0;
        for (int64_t i = 0; i < N; i++)
            s += l[i];
        if (o->reduction == NB_REDUCE_MEAN)
            s /= (double)kept(t, o->ignore_index); /* 0 rows kept: nan, as torch */
        nb__store(y->dtype, y->data, s);
    }
    nb_tensor *in[2] = {x, t};
    if (nb__needs_grad(ctx, 2, in)) {
        nb__node *n = nb__record(ctx, op, y, 2, in);
        if (!n)
            return NULL;
        n->a.i[0] = o->reduction;
        n->a.i[1] = o->ignore_index;
        n->a.f[0] = eps;
        n->saved[0] = lp;
    }
    return y;
}

nb_tensor *nb_cross_entropy(nb_ctx *ctx, nb_tensor *logits, nb_tensor *target,
                            const nb_ce_opts *opts)
{
    nb_ce_opts o = opts ? *opts : nb_ce_opts_default();
    if (!ctx || nb__null_in(ctx, "cross_entropy", 2, logits, target) ||
        !check(ctx, "cross_entropy", logits, target, &o))
        return NULL;
    /* log-probabilities computed without recording: this op's backward is fused */
    bool was = nb_set_grad_enabled(ctx, false);
    nb_tensor *lp = nb_log_softmax(ctx, logits, 1);
    nb_set_grad_enabled(ctx, was);
    if (!lp)
        return NULL;
    return finish(ctx, NB__OP_CROSS_ENTROPY, logits, target, lp, &o);
}

nb_tensor *nb_nll_loss(nb_ctx *ctx, nb_tensor *logp, nb_tensor *target, const nb_ce_opts *opts)
{
    nb_ce_opts o = opts ? *opts : nb_ce_opts_default();
    if (!ctx || nb__null_in(ctx, "nll_loss", 2, logp, target) ||
        !check(ctx, "nll_loss", logp, target, &o))
        return NULL;
    nb_tensor *lp = nb_contiguous(ctx, logp);
    if (!lp)
        return NULL;
    return finish(ctx, NB__OP_NLL_LOSS, lp, target, lp, &o);
}

/* Row weights w_i of the backward (see the top of the file). */
static double row_weight(const nb__node *n, int64_t i)
{
    const nb_tensor *g = n->out->grad;
    nb_reduction r = (nb_reduction)n->a.i[0];
    if (r == NB_REDUCE_NONE)
        return nb__load(g->dtype, (const char *)g->data + i * (int64_t)nb__esize(g->dtype));
    double w = nb__load(g->dtype, g->data);
    if (r == NB_REDUCE_MEAN)
        w /= (double)kept(n->in[1], n->a.i[1]);
    return w;
}

/* fresh: dx is new here (nb__grad_of_w), so rows are stored, not added to a
 * zeroed buffer, and the softmax row's exps come from the array form (the
 * same bits as the inline exp) straight into it */
#define CE_BWD(T, SUF, EXP_N)                                                            \
    static void ce_bwd_##SUF(const nb__node *n, T *dx, bool nll, bool fresh)             \
    {                                                                                    \
        const nb_tensor *t = n->in[1], *lp = n->saved[0];                                \
        const T *L = (const T *)lp->data;                                                \
        int64_t N = lp->shape[0], C = lp->shape[1];                                      \
        double eps = n->a.f[0];                                                          \
        double wmean = n->a.i[0] == NB_REDUCE_NONE ? 0 : row_weight(n, 0);               \
        for (int64_t i = 0; i < N; i++) {                                                \
            int64_t c = target_at(t, i);                                                 \
            T *d = dx + i * C;                                                           \
            if (c == n->a.i[1] || nll) {                                                 \
                if (fresh)                                                               \
                    memset(d, 0, (size_t)C * sizeof(T));                                 \
                if (c != n->a.i[1])                                                      \
                    d[c] -= (T)(n->a.i[0] == NB_REDUCE_NONE ? row_weight(n, i) : wmean); \
                continue;                                                                \
            }                                                                            \
            T w = (T)(n->a.i[0] == NB_REDUCE_NONE ? row_weight(n, i) : wmean);           \
            T off = (T)(eps / (double)C);                                                \
            if (fresh) {                                                                 \
                EXP_N(C, d, L + i * C);                                                  \
                for (int64_t k = 0; k < C; k++)                                          \
                    d[k] = w * (d[k] - off);                                             \
            } else {                                                                     \
                for (int64_t k = 0; k < C; k++)                                          \
                    d[k] += w * (NB__VEXP(L[i * C + k]) - off);                          \
            }                                                                            \
            d[c] -= w * (T)(1.0 - eps);                                                  \
        }                                                                                \
    }
CE_BWD(float, f32, nb__vexp_n)
CE_BWD(double, f64, nb__exp_n_f64)

static nb_status backward(nb_ctx *ctx, nb__node *n, bool nll)
{
    nb_tensor *dx;
    bool fresh;
    nb_status st = nb__grad_of_w(ctx, n->in[0], &dx, &fresh);
    if (st != NB_OK || !dx)
        return st;
    if (dx->dtype == NB_F32)
        ce_bwd_f32(n, dx->data, nll, fresh);
    else
        ce_bwd_f64(n, dx->data, nll, fresh);
    return NB_OK;
}

nb_status nb__cross_entropy_backward(nb_ctx *ctx, nb__node *n) { return backward(ctx, n, false); }
nb_status nb__nll_loss_backward(nb_ctx *ctx, nb__node *n) { return backward(ctx, n, true); }
