/* Samples of the sampling, KL and straight-through ops (see op_samples.h).
 * Noise (eps, Gumbel noise) is an input that does not require grad, so the
 * ops are deterministic functions and PyTorch replays them with the same
 * noise. STE samples are marked `surrogate`: no finite-difference check (the
 * forward is a step function); the backward-twice check and the PyTorch
 * replay, which writes the surrogate as value.detach() + (f(x) - f(x).detach()),
 * still check their documented gradient. s->keep = 1 passes x0 transposed
 * (a non-contiguous input). */
#include "op_samples.h"

#include <stdio.h>

#define MK(kind, ...) sample_input(ctx, r, kind, NB_SHAPE(__VA_ARGS__))
#define S ((const op_sample *)user)
#define EXPR(...) snprintf(s->expr, sizeof s->expr, __VA_ARGS__)

static nb_tensor *noise(nb_ctx *ctx, nb_rng *r, int ndim, const int64_t *shape)
{
    nb_tensor *t = sample_input(ctx, r, V_NORMAL, ndim, shape);
    if (t)
        nb_set_requires_grad(ctx, t, false);
    return t;
}

static nb_tensor *x0_of(nb_ctx *ctx, nb_tensor *const *x, const op_sample *s)
{
    return s->keep ? nb_transpose(ctx, x[0], 0, 1) : x[0];
}

/* ---- reparameterize, kl_normal ---------------------------------------------------- */
static nb_tensor *fn_reparam(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    return nb_reparameterize(ctx, x0_of(ctx, x, S), x[1], x[2]);
}

bool gen_reparameterize(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    if (v > 2)
        return false;
    int64_t a = v == 2 ? 2 : 4, b = v == 2 ? 3 : 5;
    s->keep = v == 1;
    s->in[0] = s->keep ? MK(V_NORMAL, b, a) : MK(V_NORMAL, a, b);
    s->in[1] = MK(V_NORMAL, a, b);
    s->in[2] = noise(ctx, r, 2, (const int64_t[]){a, b});
    s->n_in = 3;
    s->fn = fn_reparam;
    EXPR("%s + torch.exp(x1 * 0.5) * x2", s->keep ? "x0.t()" : "x0");
    return true;
}

static nb_tensor *fn_kl(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    return nb_kl_normal(ctx, x0_of(ctx, x, S), x[1], (nb_reduction)S->axis);
}

bool gen_kl_normal(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    static const char *red[] = {".mean()", ".sum()", ""};
    if (v > 3)
        return false;
    s->axis = v % 3; /* mean, sum, none */
    s->keep = v == 3;
    if (v == 3) {
        s->in[0] = MK(V_NORMAL, 6, 4);
        s->in[1] = MK(V_NORMAL, 4, 6);
    } else {
        s->in[0] = MK(V_NORMAL, 4, 2, 3);
        s->in[1] = MK(V_NORMAL, 4, 2, 3);
    }
    s->n_in = 2;
    s->fn = fn_kl;
    EXPR("(-0.5 * (1 + x1 - %s ** 2 - torch.exp(x1))).flatten(1).sum(1)%s",
         s->keep ? "x0.t()" : "x0", red[s->axis]);
    return true;
}

/* ---- gumbel_softmax ------------------------------------------------------------- */
static nb_tensor *fn_gumbel(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    return nb_gumbel_softmax(ctx, x0_of(ctx, x, S), x[1], S->f[0], S->axis);
}

bool gen_gumbel_softmax(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    if (v > 3)
        return false;
    s->f[0] = v == 2 ? 0.5 : 1.5;
    s->axis = v == 3; /* hard */
    s->keep = v == 1;
    s->in[0] = s->keep ? MK(V_NORMAL, 5, 3) : MK(V_NORMAL, 3, 5);
    s->in[1] = noise(ctx, r, 2, (const int64_t[]){3, 5});
    s->n_in = 2;
    s->fn = fn_gumbel;
    s->surrogate = s->axis; /* hard: the forward is piecewise constant */
    const char *x0 = s->keep ? "x0.t()" : "x0";
    if (s->axis)
        EXPR("(lambda y: F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype) - y.detach() + y)"
             "(torch.softmax((%s + x1) / %g, -1))", x0, s->f[0]);
    else
        EXPR("torch.softmax((%s + x1) / %g, -1)", x0, s->f[0]);
    return true;
}

/* ---- straight-through estimators ----------------------------------------------- */
static nb_tensor *fn_ste(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    nb_tensor *a = x0_of(ctx, x, S);
    switch (S->ndim) {
    case 0: return nb_sign_ste(ctx, a, S->f[0]);
    case 1: return nb_round_ste(ctx, a, S->f[0]);
    default: return nb_quantize_ste(ctx, a, S->f[1], S->f[2], (int)S->f[3], S->f[0] > 0);
    }
}

/* kind 0 sign, 1 round, 2 quantize; variants: no clip, clip, transposed */
static bool ste_sample(nb_ctx *ctx, nb_rng *r, int v, op_sample *s, int kind)
{
    if (v > 2)
        return false;
    s->ndim = kind;
    s->keep = v == 2;
    s->f[0] = v == 1 ? 1.0 : 0.0;
    s->f[1] = -1.5, s->f[2] = 1.0, s->f[3] = 6; /* quantize: 6 levels over [-1.5, 1] */
    s->in[0] = s->keep ? MK(V_WIDE, 6, 4) : MK(V_WIDE, 4, 6);
    s->n_in = 1;
    s->fn = fn_ste;
    s->surrogate = true;
    const char *x0 = s->keep ? "x0.t()" : "x0";
    char val[128], pass[64];
    if (kind == 0)
        snprintf(val, sizeof val, "torch.where(%s >= 0, 1.0, -1.0).to(x0.dtype)", x0);
    else if (kind == 1)
        snprintf(val, sizeof val, "torch.round(%s)", x0);
    else
        snprintf(val, sizeof val, "(-1.5 + torch.round((%s.clamp(-1.5, 1.0) + 1.5) / 0.5) * 0.5)", x0);
    if (s->f[0] > 0 && kind < 2)
        snprintf(pass, sizeof pass, "%s.clamp(-1.0, 1.0)", x0);
    else if (s->f[0] > 0)
        snprintf(pass, sizeof pass, "%s.clamp(-1.5, 1.0)", x0);
    else
        snprintf(pass, sizeof pass, "%s", x0);
    EXPR("%s.detach() + (%s - %s.detach())", val, pass, pass);
    return true;
}

bool gen_sign_ste(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { return ste_sample(ctx, r, v, s, 0); }
bool gen_round_ste(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { return ste_sample(ctx, r, v, s, 1); }
bool gen_quantize_ste(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { return ste_sample(ctx, r, v, s, 2); }
