/* Samples of the normalisation ops (see op_samples.h). Which input is which
 * is kept in s->axes: [0] gamma, [1] beta, [2] running_mean, [3] running_var
 * (an index into s->in, or -1); s->keep = 1 applies fn to x0.transpose(0, 2)
 * (or x0.transpose(0, 1) for a 2-D x0); s->f[0] = eps, s->f[1] = training;
 * s->ndim = layer norm's ndims or group norm's groups.
 * Training-mode batch norm samples pass no running statistics: the gradient
 * check evaluates the op many times and would keep moving them (their update
 * is tested in test_norm.c). Evaluation samples pass them as inputs that do not
 * require grad, so the op is affine in x. */
#include "op_samples.h"

#include <stdio.h>

#define MK(kind, ...) sample_input(ctx, r, kind, NB_SHAPE(__VA_ARGS__))
#define S ((const op_sample *)user)

static nb_tensor *slot(nb_tensor *const *x, const op_sample *s, int k)
{
    return s->axes[k] >= 0 ? x[s->axes[k]] : NULL;
}

static nb_tensor *x_arg(nb_ctx *ctx, nb_tensor *x, const op_sample *s)
{
    return s->keep ? nb_transpose(ctx, x, 0, x->ndim > 2 ? 2 : 1) : x;
}

/* sets x0 and the inputs named in `which` ("gb": gamma and beta, "g", "b", or
 * "") of `c` elements; returns the next free input */
static int affine_in(nb_ctx *ctx, nb_rng *r, op_sample *s, const char *which, int64_t c)
{
    int k = 1;
    s->axes[0] = s->axes[1] = s->axes[2] = s->axes[3] = -1;
    if (strchr(which, 'g')) {
        s->axes[0] = k;
        s->in[k++] = MK(V_NORMAL, c);
    }
    if (strchr(which, 'b')) {
        s->axes[1] = k;
        s->in[k++] = MK(V_NORMAL, c);
    }
    return k;
}

static void py_slot(const op_sample *s, int k, char *buf, size_t cap)
{
    if (s->axes[k] >= 0)
        snprintf(buf, cap, "x%d", s->axes[k]);
    else
        snprintf(buf, cap, "None");
}

static const char *py_x(const op_sample *s)
{
    return !s->keep ? "x0" : s->in[0]->ndim > 2 ? "x0.transpose(0, 2)" : "x0.transpose(0, 1)";
}

/* ---- batch norm -------------------------------------------------------------- */
static nb_tensor *fn_batch_norm(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    return nb_batch_norm(ctx, x_arg(ctx, x[0], S), slot(x, S, 0), slot(x, S, 1), slot(x, S, 2),
                         slot(x, S, 3), S->f[1] != 0, 0.1, S->f[0]);
}

bool gen_batch_norm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    const char *aff;
    bool train = true;
    s->f[0] = 1e-5;
    switch (v) {
    case 0: s->in[0] = MK(V_NORMAL, 4, 3); aff = "gb"; break;          /* [N, C] */
    case 1: s->in[0] = MK(V_NORMAL, 3, 2, 2, 3); aff = ""; break;      /* [N, C, H, W] */
    case 2: s->in[0] = MK(V_NORMAL, 2, 3, 4); aff = "gb"; break;       /* [N, C, L] */
    case 3: s->in[0] = MK(V_NORMAL, 3, 3, 2, 2); aff = "gb"; s->f[0] = 1e-3; train = false; break;
    case 4: s->in[0] = MK(V_NORMAL, 4, 3); aff = ""; train = false; break;
    case 5: s->in[0] = MK(V_NORMAL, 4, 3, 2); aff = "g"; s->keep = 1; break; /* view [2, 3, 4] */
    case 6: s->in[0] = MK(V_WIDE, 5, 2); aff = "b"; s->f[0] = 0.1; break;
    case 7: s->in[0] = MK(V_NORMAL, 2, 3, 2); aff = "gb"; s->keep = 1; train = false; break;
    default: return false;
    }
    int64_t C = s->in[0]->shape[1];
    int k = affine_in(ctx, r, s, aff, C);
    if (!train) { /* running statistics: constants */
        s->axes[2] = k;
        s->in[k++] = MK(V_NORMAL, C);
        s->axes[3] = k;
        s->in[k++] = MK(V_POS, C);
        nb_set_requires_grad(ctx, s->in[k - 2], false);
        nb_set_requires_grad(ctx, s->in[k - 1], false);
    }
    s->n_in = k;
    s->f[1] = train;
    s->fn = fn_batch_norm;
    char g[16], b[16], m[16], va[16];
    py_slot(s, 0, g, sizeof g);
    py_slot(s, 1, b, sizeof b);
    py_slot(s, 2, m, sizeof m);
    py_slot(s, 3, va, sizeof va);
    snprintf(s->expr, sizeof s->expr, "F.batch_norm(%s, %s, %s, %s, %s, training=%s, eps=%g)",
             py_x(s), m, va, g, b, train ? "True" : "False", s->f[0]);
    snprintf(s->label, sizeof s->label, "batch_norm %s %s", train ? "train" : "eval", aff);
    return true;
}

/* ---- layer norm -------------------------------------------------------------- */
static nb_tensor *fn_layer_norm(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    nb_tensor *g = slot(x, S, 0);
    if (g && S->axis) /* gamma given as a transposed view */
        g = nb_transpose(ctx, g, 0, 1);
    return nb_layer_norm(ctx, x_arg(ctx, x[0], S), S->ndim, g, slot(x, S, 1), S->f[0]);
}

bool gen_layer_norm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    const char *aff;
    s->f[0] = 1e-5;
    switch (v) {
    case 0: s->in[0] = MK(V_NORMAL, 3, 4); s->ndim = 1; aff = "gb"; break;
    case 1: s->in[0] = MK(V_NORMAL, 2, 3, 4); s->ndim = 2; aff = "gb"; break;
    case 2: s->in[0] = MK(V_NORMAL, 2, 2, 3, 2); s->ndim = 3; aff = ""; break;
    case 3: s->in[0] = MK(V_NORMAL, 4, 3); s->ndim = 1; aff = "g"; s->keep = 1; break;
    case 4: s->in[0] = MK(V_WIDE, 5, 6); s->ndim = 2; aff = "b"; s->f[0] = 1e-2; break;
    case 5: s->in[0] = MK(V_NORMAL, 4, 2, 3); s->ndim = 2; aff = "gb"; s->axis = 1; break;
    case 6: s->in[0] = MK(V_NORMAL, 3, 2, 4); s->ndim = 1; aff = ""; s->keep = 1; break;
    default: return false;
    }
    /* the normalised shape: the trailing ndims dims of fn's x */
    int64_t xs[NB_MAX_DIMS];
    int nd = s->in[0]->ndim;
    for (int d = 0; d < nd; d++)
        xs[d] = s->in[0]->shape[d];
    if (s->keep) {
        int o = nd > 2 ? 2 : 1;
        int64_t t = xs[0];
        xs[0] = xs[o];
        xs[o] = t;
    }
    const int64_t *ns = xs + nd - s->ndim;
    s->axes[0] = s->axes[1] = s->axes[2] = s->axes[3] = -1;
    int k = 1;
    if (strchr(aff, 'g')) {
        s->axes[0] = k;
        if (s->axis) { /* stored transposed: [d1, d0] */
            int64_t ts[2] = {ns[1], ns[0]};
            s->in[k++] = sample_input(ctx, r, V_NORMAL, 2, ts);
        } else {
            s->in[k++] = sample_input(ctx, r, V_NORMAL, s->ndim, ns);
        }
    }
    if (strchr(aff, 'b')) {
        s->axes[1] = k;
        s->in[k++] = sample_input(ctx, r, V_NORMAL, s->ndim, ns);
    }
    s->n_in = k;
    s->fn = fn_layer_norm;
    char shp[64], g[32], b[16];
    size_t q = (size_t)snprintf(shp, sizeof shp, "(");
    for (int d = 0; d < s->ndim; d++)
        q += (size_t)snprintf(shp + q, sizeof shp - q, "%lld,", (long long)ns[d]);
    snprintf(shp + q, sizeof shp - q, ")");
    py_slot(s, 0, g, sizeof g);
    if (s->axis)
        snprintf(g, sizeof g, "x%d.transpose(0, 1)", s->axes[0]);
    py_slot(s, 1, b, sizeof b);
    snprintf(s->expr, sizeof s->expr, "F.layer_norm(%s, %s, %s, %s, eps=%g)", py_x(s), shp, g, b,
             s->f[0]);
    snprintf(s->label, sizeof s->label, "layer_norm ndims %d %s", s->ndim, aff);
    return true;
}

/* ---- group norm -------------------------------------------------------------- */
static nb_tensor *fn_group_norm(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    return nb_group_norm(ctx, x_arg(ctx, x[0], S), S->ndim, slot(x, S, 0), slot(x, S, 1),
                         S->f[0]);
}

bool gen_group_norm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    const char *aff;
    s->f[0] = 1e-5;
    switch (v) {
    case 0: s->in[0] = MK(V_NORMAL, 2, 6, 3); s->ndim = 3; aff = "gb"; break;
    case 1: s->in[0] = MK(V_NORMAL, 2, 6, 2, 2); s->ndim = 1; aff = "gb"; break;
    case 2: s->in[0] = MK(V_NORMAL, 2, 4, 3); s->ndim = 4; aff = ""; break;
    case 3: s->in[0] = MK(V_NORMAL, 3, 6); s->ndim = 2; aff = "g"; break;
    case 4: s->in[0] = MK(V_NORMAL, 3, 4, 2); s->ndim = 2; aff = "gb"; s->keep = 1; break;
    case 5: s->in[0] = MK(V_WIDE, 2, 6, 2, 2); s->ndim = 2; aff = "b"; s->f[0] = 1e-3; break;
    default: return false;
    }
    /* C: dim 1, which transpose(0, 2) keeps in place */
    s->n_in = affine_in(ctx, r, s, aff, s->in[0]->shape[1]);
    s->fn = fn_group_norm;
    char g[16], b[16];
    py_slot(s, 0, g, sizeof g);
    py_slot(s, 1, b, sizeof b);
    if (s->axes[0] < 0 && s->axes[1] >= 0) /* torch 1.13's backward fails on bias without
                                              weight ("tensor does not have a device") */
        snprintf(s->expr, sizeof s->expr,
                 "F.group_norm(%s, %d, None, None, eps=%g) + %s[:, None, None]", py_x(s), s->ndim,
                 s->f[0], b);
    else
        snprintf(s->expr, sizeof s->expr, "F.group_norm(%s, %d, %s, %s, eps=%g)", py_x(s), s->ndim,
                 g, b, s->f[0]);
    snprintf(s->label, sizeof s->label, "group_norm groups %d %s", s->ndim, aff);
    return true;
}
