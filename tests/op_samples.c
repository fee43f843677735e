#include "op_samples.h"

#include <math.h>
#include <stdio.h>

/* ---- input makers ------------------------------------------------------- */
nb_tensor *sample_input(nb_ctx *ctx, nb_rng *r, int kind, int ndim, const int64_t *shape)
{
    nb_tensor *t = nb_empty(ctx, NB_F64, ndim, shape);
    if (!t)
        return NULL;
    int64_t n = nb_numel(t);
    double *d = t->data;
    for (int64_t i = 0; i < n; i++) {
        double u = nb_rng_uniform(r), z = nb_rng_normal(r);
        switch (kind) {
        case V_POS: d[i] = 0.5 + 1.5 * u; break;
        case V_AWAY0: d[i] = (u < 0.5 ? -1 : 1) * (0.1 + 1.4 * nb_rng_uniform(r)); break;
        case V_WIDE: d[i] = 2.0 * z; break;
        default: d[i] = z;
        }
    }
    nb_set_requires_grad(ctx, t, true);
    return t;
}
#define mk sample_input
#define MK(kind, ...) mk(ctx, r, kind, NB_SHAPE(__VA_ARGS__))

static nb_tensor *mk_idx(nb_ctx *ctx, nb_rng *r, int64_t limit, nb_dtype dt, int ndim,
                         const int64_t *shape)
{
    nb_tensor *t = nb_empty(ctx, dt, ndim, shape);
    for (int64_t i = 0; t && i < nb_numel(t); i++)
        nb_set(t, i, (double)nb_rng_below(r, (uint32_t)limit));
    return t;
}
#define IDX(limit, dt, ...) mk_idx(ctx, r, limit, dt, NB_SHAPE(__VA_ARGS__))

#define EXPR(...) snprintf(s->expr, sizeof s->expr, __VA_ARGS__)
#define LABEL(...) snprintf(s->label, sizeof s->label, __VA_ARGS__)
#define S ((const op_sample *)user)
#define FN(name) static nb_tensor *name(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
#define UNUSED_FN_ARGS ((void)n, (void)user)

/* ---- binary -------------------------------------------------------------- */
/* variant -> (a shape, b shape) */
static bool bin_shapes(nb_ctx *ctx, nb_rng *r, int v, op_sample *s, int ka, int kb)
{
    switch (v) {
    case 0: s->in[0] = MK(ka, 3, 4); s->in[1] = MK(kb, 3, 4); break;
    case 1: s->in[0] = MK(ka, 2, 3, 4); s->in[1] = MK(kb, 4); break;
    case 2: s->in[0] = MK(ka, 3, 1); s->in[1] = MK(kb, 1, 4); break;
    case 3: s->in[0] = mk(ctx, r, ka, 0, NULL); s->in[1] = MK(kb, 2, 3); break;
    case 4: s->in[0] = MK(ka, 2, 1, 3); s->in[1] = MK(kb, 4, 1); break;
    case 5:
    case 6:
    case 7: { /* random ranks and sizes; each of b's dims may be 1 or missing */
        int64_t sa[4], sb[4];
        int na = 1 + (int)nb_rng_below(r, 4), nbd = 1 + (int)nb_rng_below(r, (uint32_t)na);
        for (int i = 0; i < na; i++)
            sa[i] = 1 + nb_rng_below(r, 4);
        for (int i = 0; i < nbd; i++)
            sb[i] = nb_rng_below(r, 3) == 0 ? 1 : sa[na - nbd + i];
        bool swap = nb_rng_below(r, 2);
        s->in[swap] = mk(ctx, r, swap ? kb : ka, na, sa);
        s->in[!swap] = mk(ctx, r, swap ? ka : kb, nbd, sb);
        break;
    }
    default: return false;
    }
    s->n_in = 2;
    LABEL("broadcast case %d", v);
    return true;
}

#define BIN_SAMPLE(name, ka, kb, torch_expr)                                            \
    FN(fn_##name)                                                                        \
    {                                                                                    \
        UNUSED_FN_ARGS;                                                                  \
        return nb_##name(ctx, x[0], x[1]);                                               \
    }                                                                                    \
    static bool gen_##name(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)                  \
    {                                                                                    \
        if (!bin_shapes(ctx, r, v, s, ka, kb))                                           \
            return false;                                                                \
        s->fn = fn_##name;                                                               \
        EXPR("%s", torch_expr);                                                          \
        return true;                                                                     \
    }
BIN_SAMPLE(add, V_NORMAL, V_NORMAL, "x0 + x1")
BIN_SAMPLE(sub, V_NORMAL, V_NORMAL, "x0 - x1")
BIN_SAMPLE(mul, V_NORMAL, V_NORMAL, "x0 * x1")
BIN_SAMPLE(div, V_NORMAL, V_AWAY0, "x0 / x1")
BIN_SAMPLE(pow, V_POS, V_NORMAL, "torch.pow(x0, x1)")
BIN_SAMPLE(maximum, V_NORMAL, V_NORMAL, "torch.maximum(x0, x1)")
BIN_SAMPLE(minimum, V_NORMAL, V_NORMAL, "torch.minimum(x0, x1)")

FN(fn_where)
{
    UNUSED_FN_ARGS;
    return nb_where(ctx, x[0], x[1], x[2]);
}
static bool gen_where(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    nb_tensor *m;
    if (v == 0) {
        m = IDX(2, NB_U8, 3, 4);
        s->in[1] = MK(V_NORMAL, 3, 4);
        s->in[2] = MK(V_NORMAL, 4);
    } else if (v == 1) {
        m = nb_empty(ctx, NB_F64, NB_SHAPE(3, 1)); /* a float mask: nonzero is true */
        for (int i = 0; i < 3; i++)
            nb_set(m, i, i == 1 ? 0.0 : 2.5);
        s->in[1] = MK(V_NORMAL, 1, 4);
        s->in[2] = mk(ctx, r, V_NORMAL, 0, NULL);
    } else {
        return false;
    }
    s->in[0] = m;
    s->n_in = 3;
    s->fn = fn_where;
    EXPR("torch.where(x0 != 0, x1, x2)");
    return true;
}

FN(fn_compare)
{
    UNUSED_FN_ARGS;
    switch (S->axis) {
    case 0: return nb_gt(ctx, x[0], x[1]);
    case 1: return nb_le(ctx, x[0], x[1]);
    case 2: return nb_eq(ctx, x[0], x[1]);
    case 3: return nb_lt(ctx, x[0], x[1]);
    default: return nb_ge(ctx, x[0], x[1]);
    }
}
static bool gen_compare(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    static const char *ops[] = {">", "<=", "==", "<", ">="};
    if (v > 4)
        return false;
    s->in[0] = MK(V_NORMAL, 3, 4);
    s->in[1] = MK(V_NORMAL, 4);
    if (v == 2) /* make some entries equal */
        for (int j = 0; j < 4; j += 2)
            nb_set(s->in[0], 4 + j, nb_get(s->in[1], j));
    s->n_in = 2;
    s->axis = v;
    s->no_grad = true;
    s->fn = fn_compare;
    EXPR("(x0 %s x1)", ops[v]);
    return true;
}

/* ---- unary (two variants: plain, and on a transposed view) ------------ */
static bool unary_in(nb_ctx *ctx, nb_rng *r, int v, op_sample *s, int kind)
{
    if (v == 0) {
        s->in[0] = MK(kind, 3, 4);
    } else if (v == 1) {
        s->in[0] = MK(kind, 4, 2, 3); /* transposed inside fn */
    } else if (v == 2) { /* a random shape of rank 0 to 4 */
        int64_t sh[4];
        int nd = (int)nb_rng_below(r, 5);
        for (int i = 0; i < nd; i++)
            sh[i] = 1 + nb_rng_below(r, 4);
        s->in[0] = mk(ctx, r, kind, nd, sh);
    } else {
        return false;
    }
    s->n_in = 1;
    s->axis = v; /* 1: apply to x0.transpose(0, 2) */
    return true;
}

static nb_tensor *unary_arg(nb_ctx *ctx, nb_tensor *x, const op_sample *s)
{
    return s->axis == 1 ? nb_transpose(ctx, x, 0, 2) : x;
}

static void unary_expr(op_sample *s, const char *fmt)
{
    char arg[32];
    snprintf(arg, sizeof arg, "%s", s->axis == 1 ? "x0.transpose(0, 2)" : "x0");
    snprintf(s->expr, sizeof s->expr, fmt, arg);
}

#define UNARY_SAMPLE(name, kind, call, torch_fmt)                                      \
    FN(fn_##name)                                                                       \
    {                                                                                   \
        UNUSED_FN_ARGS;                                                                 \
        nb_tensor *a = unary_arg(ctx, x[0], S);                                         \
        return call;                                                                    \
    }                                                                                   \
    static bool gen_##name(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)                 \
    {                                                                                   \
        if (!unary_in(ctx, r, v, s, kind))                                              \
            return false;                                                               \
        s->fn = fn_##name;                                                              \
        unary_expr(s, torch_fmt);                                                       \
        return true;                                                                    \
    }
UNARY_SAMPLE(exp, V_NORMAL, nb_exp(ctx, a), "torch.exp(%s)")
UNARY_SAMPLE(log, V_POS, nb_log(ctx, a), "torch.log(%s)")
UNARY_SAMPLE(sqrt, V_POS, nb_sqrt(ctx, a), "torch.sqrt(%s)")
UNARY_SAMPLE(abs, V_AWAY0, nb_abs(ctx, a), "torch.abs(%s)")
UNARY_SAMPLE(square, V_NORMAL, nb_square(ctx, a), "torch.square(%s)")
UNARY_SAMPLE(relu, V_AWAY0, nb_relu(ctx, a), "torch.relu(%s)")
UNARY_SAMPLE(leaky_relu, V_AWAY0, nb_leaky_relu(ctx, a, 0.1), "F.leaky_relu(%s, 0.1)")
UNARY_SAMPLE(elu, V_AWAY0, nb_elu(ctx, a, 1.3), "F.elu(%s, 1.3)")
UNARY_SAMPLE(sigmoid, V_WIDE, nb_sigmoid(ctx, a), "torch.sigmoid(%s)")
UNARY_SAMPLE(tanh, V_NORMAL, nb_tanh(ctx, a), "torch.tanh(%s)")
UNARY_SAMPLE(gelu, V_WIDE, nb_gelu(ctx, a), "F.gelu(%s)")
UNARY_SAMPLE(gelu_tanh, V_WIDE, nb_gelu_tanh(ctx, a), "F.gelu(%s, approximate='tanh')")
UNARY_SAMPLE(silu, V_WIDE, nb_silu(ctx, a), "F.silu(%s)")
UNARY_SAMPLE(softplus, V_WIDE, nb_softplus(ctx, a, 1.5, 2.0), "F.softplus(%s, beta=1.5, threshold=2.0)")
UNARY_SAMPLE(rdiv_scalar, V_AWAY0, nb_rdiv_scalar(ctx, a, 2.0), "2.0 / %s")

/* clamp: variant 1 is one-sided (no lower bound) on a transposed view */
FN(fn_clamp)
{
    UNUSED_FN_ARGS;
    nb_tensor *a = unary_arg(ctx, x[0], S);
    return S->axis ? nb_clamp(ctx, a, -INFINITY, 0.8) : nb_clamp(ctx, a, -0.5, 0.8);
}
static bool gen_clamp(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    if (!unary_in(ctx, r, v, s, V_WIDE))
        return false;
    s->fn = fn_clamp;
    unary_expr(s, v ? "torch.clamp(%s, max=0.8)" : "torch.clamp(%s, min=-0.5, max=0.8)");
    return true;
}

/* the scalar forms share the affine op; one variant per public function */
FN(fn_affine)
{
    UNUSED_FN_ARGS;
    double c = S->f[0];
    switch (S->axis) {
    case 0: return nb_add_scalar(ctx, x[0], c);
    case 1: return nb_sub_scalar(ctx, x[0], c);
    case 2: return nb_rsub_scalar(ctx, x[0], c);
    case 3: return nb_mul_scalar(ctx, x[0], c);
    case 4: return nb_div_scalar(ctx, x[0], c);
    default: return nb_neg(ctx, x[0]);
    }
}
static bool gen_affine(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    static const char *fmt[] = {"x0 + %g", "x0 - %g", "%g - x0", "x0 * %g", "x0 / %g", "-x0"};
    static const double c[] = {0.7, 0.7, 2.5, -1.3, 0.6, 0};
    if (v > 5)
        return false;
    s->in[0] = MK(V_NORMAL, 2, 3, 2);
    s->n_in = 1;
    s->axis = v;
    s->f[0] = c[v];
    s->fn = fn_affine;
    EXPR(fmt[v], c[v]);
    return true;
}

FN(fn_pow_scalar)
{
    UNUSED_FN_ARGS;
    return nb_pow_scalar(ctx, x[0], S->f[0]);
}
static bool gen_pow_scalar(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    static const double p[] = {2.5, -1.5, 3.0, 0.0};
    if (v > 3)
        return false;
    s->in[0] = v == 2 ? MK(V_NORMAL, 3, 4) : MK(V_POS, 3, 4);
    s->n_in = 1;
    s->f[0] = p[v];
    s->fn = fn_pow_scalar;
    EXPR("torch.pow(x0, %.1f)", p[v]);
    return true;
}

/* f64 -> f32 -> f64: the check needs a larger step, f32 rounds at ~6e-8 */
FN(fn_cast)
{
    UNUSED_FN_ARGS;
    return nb_cast(ctx, nb_cast(ctx, x[0], NB_F32), NB_F64);
}
static bool gen_cast(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    if (v > 0)
        return false;
    s->in[0] = MK(V_NORMAL, 3, 4);
    s->n_in = 1;
    s->fn = fn_cast;
    s->gc_eps = 1e-2;
    s->gc_tol = 1e-4;
    EXPR("x0.float().double()");
    return true;
}

/* ---- softmax ------------------------------------------------------------ */
#define SOFTMAX_SAMPLE(name, torch_name)                                                 \
    FN(fn_##name)                                                                        \
    {                                                                                    \
        UNUSED_FN_ARGS;                                                                  \
        nb_tensor *a = S->keep ? nb_transpose(ctx, x[0], 0, 1) : x[0];                   \
        return nb_##name(ctx, a, S->axis);                                               \
    }                                                                                    \
    static bool gen_##name(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)                  \
    {                                                                                    \
        switch (v) {                                                                     \
        case 0: s->in[0] = MK(V_WIDE, 3, 5); s->axis = 1; break;                         \
        case 1: s->in[0] = MK(V_WIDE, 2, 3, 4); s->axis = 1; break;                      \
        case 2: s->in[0] = MK(V_WIDE, 4, 3); s->axis = 0; break;                         \
        case 3: s->in[0] = MK(V_WIDE, 4, 3); s->axis = -1; s->keep = 1; break;           \
        default: return false;                                                           \
        }                                                                                \
        s->n_in = 1;                                                                     \
        s->fn = fn_##name;                                                               \
        EXPR("torch.%s(x0%s, dim=%d)", torch_name, s->keep ? ".transpose(0, 1)" : "", s->axis); \
        return true;                                                                     \
    }
SOFTMAX_SAMPLE(softmax, "softmax")
SOFTMAX_SAMPLE(log_softmax, "log_softmax")

/* ---- matmul ------------------------------------------------------------- */
FN(fn_matmul)
{
    UNUSED_FN_ARGS;
    nb_tensor *a = x[0], *b = x[1];
    if (S->keep) { /* operands given transposed */
        a = nb_transpose(ctx, a, -1, -2);
        b = nb_transpose(ctx, b, -1, -2);
    }
    return nb_matmul(ctx, a, b);
}
static bool gen_matmul(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    switch (v) {
    case 0: s->in[0] = MK(V_NORMAL, 3, 4); s->in[1] = MK(V_NORMAL, 4, 5); break;
    case 1: s->in[0] = MK(V_NORMAL, 2, 3, 4); s->in[1] = MK(V_NORMAL, 2, 4, 5); break;
    case 2: s->in[0] = MK(V_NORMAL, 2, 3, 4); s->in[1] = MK(V_NORMAL, 4, 5); break;
    case 3: s->in[0] = MK(V_NORMAL, 2, 1, 3, 4); s->in[1] = MK(V_NORMAL, 3, 4, 2); break;
    case 4: s->in[0] = MK(V_NORMAL, 4, 3); s->in[1] = MK(V_NORMAL, 5, 4); s->keep = 1; break;
    case 5: s->in[0] = MK(V_NORMAL, 4); s->in[1] = MK(V_NORMAL, 4, 3); break;
    case 6: s->in[0] = MK(V_NORMAL, 2, 3, 4); s->in[1] = MK(V_NORMAL, 4); break;
    case 7: s->in[0] = MK(V_NORMAL, 20, 30); s->in[1] = MK(V_NORMAL, 30, 16); break; /* BLAS */
    case 8: s->in[0] = MK(V_NORMAL, 2, 24, 20); s->in[1] = MK(V_NORMAL, 2, 16, 24); s->keep = 1; break;
    case 9: s->in[0] = MK(V_NORMAL, 3, 10, 24); s->in[1] = MK(V_NORMAL, 24, 20); break; /* folded */
    default: return false;
    }
    s->n_in = 2;
    s->fn = fn_matmul;
    LABEL("matmul case %d", v);
    if (s->keep)
        EXPR("torch.matmul(x0.transpose(-1, -2), x1.transpose(-1, -2))");
    else
        EXPR("torch.matmul(x0, x1)");
    return true;
}

/* ---- linear ---------------------------------------------------------------- */
FN(fn_linear)
{
    UNUSED_FN_ARGS;
    nb_tensor *a = S->keep ? nb_transpose(ctx, x[0], 0, 1) : x[0];
    return nb_linear_op(ctx, a, x[1], n > 2 ? x[2] : NULL);
}
static bool gen_linear(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    s->n_in = 3;
    switch (v) {
    case 0: s->in[0] = MK(V_NORMAL, 3, 4); break;
    case 1: s->in[0] = MK(V_NORMAL, 2, 3, 4); break;             /* leading dims fold */
    case 2: s->in[0] = MK(V_NORMAL, 3, 4); s->n_in = 2; break;   /* no bias */
    case 3: s->in[0] = MK(V_NORMAL, 4, 3); s->keep = 1; break;   /* x a transposed view */
    case 4: s->in[0] = MK(V_NORMAL, 40, 30); break;              /* large enough for BLAS */
    default: return false;
    }
    int64_t in = v == 4 ? 30 : 4, out = v == 4 ? 20 : 5;
    s->in[1] = MK(V_NORMAL, out, in);
    if (s->n_in > 2)
        s->in[2] = MK(V_NORMAL, out);
    s->fn = fn_linear;
    EXPR("F.linear(%s, x1%s)", s->keep ? "x0.transpose(0, 1)" : "x0", s->n_in > 2 ? ", x2" : "");
    return true;
}

/* ---- reductions ----------------------------------------------------------- */
static const char *axes_py(const op_sample *s, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < s->naxes; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%d,", s->axes[i]);
    snprintf(buf + k, cap - k, ")");
    return buf;
}

static bool red_variant(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    s->n_in = 1;
    s->naxes = 0;
    s->keep = 0;
    s->axis = 0;
    switch (v) {
    case 0: s->in[0] = MK(V_NORMAL, 3, 4); break; /* all axes */
    case 1: s->in[0] = MK(V_NORMAL, 3, 4); s->naxes = 1; s->axes[0] = 1; s->keep = 1; break;
    case 2: s->in[0] = MK(V_NORMAL, 2, 3, 4); s->naxes = 2; s->axes[0] = 0; s->axes[1] = 2; break;
    case 3: s->in[0] = MK(V_NORMAL, 4, 3); s->naxes = 1; s->axes[0] = -1; s->axis = 1; break;
    case 4: s->in[0] = MK(V_NORMAL, 5, 3); s->naxes = 1; s->axes[0] = 0; break;
    case 5: s->in[0] = MK(V_NORMAL, 2, 3, 4); s->naxes = 2; s->axes[0] = 2; s->axes[1] = 1; s->keep = 1; break;
    default: return false;
    }
    return true;
}

#define RED_SAMPLE(name, call, torch_fmt)                                                \
    FN(fn_##name)                                                                        \
    {                                                                                    \
        UNUSED_FN_ARGS;                                                                  \
        nb_tensor *a = S->axis ? nb_transpose(ctx, x[0], 0, 1) : x[0];                   \
        return call;                                                                     \
    }                                                                                    \
    static bool gen_##name(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)                  \
    {                                                                                    \
        if (!red_variant(ctx, r, v, s))                                                  \
            return false;                                                                \
        s->fn = fn_##name;                                                               \
        char ax[64], in[40];                                                             \
        snprintf(in, sizeof in, "%s", s->axis ? "x0.transpose(0, 1)" : "x0");           \
        if (s->naxes == 0)                                                               \
            snprintf(ax, sizeof ax, "%s", "tuple(range(" "x0.dim()))");                  \
        else                                                                             \
            axes_py(s, ax, sizeof ax);                                                   \
        EXPR(torch_fmt, in, ax, s->keep ? "True" : "False");                             \
        return true;                                                                     \
    }
RED_SAMPLE(sum, nb_sum(ctx, a, S->naxes, S->axes, S->keep), "torch.sum(%s, dim=%s, keepdim=%s)")
RED_SAMPLE(mean, nb_mean(ctx, a, S->naxes, S->axes, S->keep), "torch.mean(%s, dim=%s, keepdim=%s)")
RED_SAMPLE(max, nb_max(ctx, a, S->naxes, S->axes, S->keep), "torch.amax(%s, dim=%s, keepdim=%s)")
RED_SAMPLE(min, nb_min(ctx, a, S->naxes, S->axes, S->keep), "torch.amin(%s, dim=%s, keepdim=%s)")

FN(fn_var)
{
    UNUSED_FN_ARGS;
    nb_tensor *a = S->axis ? nb_transpose(ctx, x[0], 0, 1) : x[0];
    return nb_var(ctx, a, S->naxes, S->axes, S->keep, (int)S->f[0]);
}
static bool gen_var(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    if (!red_variant(ctx, r, v / 2, s))
        return false;
    s->f[0] = v % 2; /* correction 0 and 1 */
    s->fn = fn_var;
    char ax[64];
    if (s->naxes == 0)
        snprintf(ax, sizeof ax, "tuple(range(x0.dim()))");
    else
        axes_py(s, ax, sizeof ax);
    EXPR("torch.var(%s, dim=%s, unbiased=%s, keepdim=%s)", s->axis ? "x0.transpose(0, 1)" : "x0",
         ax, v % 2 ? "True" : "False", s->keep ? "True" : "False");
    return true;
}

/* ---- views and copies ------------------------------------------------------ */
FN(fn_reshape)
{
    UNUSED_FN_ARGS;
    switch (S->axis) {
    case 0: return nb_reshape(ctx, x[0], S->ndim, S->shape);
    case 1: return nb_reshape(ctx, nb_transpose(ctx, x[0], 0, 1), S->ndim, S->shape);
    case 2: return nb_unsqueeze(ctx, nb_squeeze(ctx, x[0], 1), 0);
    case 3: return nb_flatten(ctx, x[0], 1, 2);
    default: return nb_squeeze(ctx, nb_unsqueeze(ctx, nb_transpose(ctx, x[0], 0, 2), -1), 0);
    }
}
static bool gen_reshape(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    s->n_in = 1;
    s->axis = v;
    s->fn = fn_reshape;
    switch (v) {
    case 0:
        s->in[0] = MK(V_NORMAL, 2, 3, 4);
        s->ndim = 2; s->shape[0] = 6; s->shape[1] = -1;
        EXPR("x0.reshape(6, -1)");
        return true;
    case 1:
        s->in[0] = MK(V_NORMAL, 4, 6);
        s->ndim = 3; s->shape[0] = 2; s->shape[1] = 3; s->shape[2] = 4;
        EXPR("x0.transpose(0, 1).reshape(2, 3, 4)");
        return true;
    case 2: s->in[0] = MK(V_NORMAL, 3, 1, 4); EXPR("x0.squeeze(1).unsqueeze(0)"); return true;
    case 3: s->in[0] = MK(V_NORMAL, 2, 3, 4); EXPR("torch.flatten(x0, 1, 2)"); return true;
    case 4: s->in[0] = MK(V_NORMAL, 1, 3, 2); EXPR("x0.transpose(0, 2).unsqueeze(-1).squeeze(0)"); return true;
    default: return false;
    }
}

FN(fn_permute)
{
    UNUSED_FN_ARGS;
    if (S->axis)
        return nb_transpose(ctx, x[0], 0, 2);
    return nb_permute(ctx, x[0], 3, S->axes);
}
static bool gen_permute(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    if (v > 1)
        return false;
    s->in[0] = MK(V_NORMAL, 2, 3, 4);
    s->n_in = 1;
    s->axis = v;
    s->axes[0] = 2; s->axes[1] = 0; s->axes[2] = 1;
    s->fn = fn_permute;
    EXPR("%s", v ? "x0.transpose(0, 2)" : "x0.permute(2, 0, 1)");
    return true;
}

FN(fn_slice)
{
    UNUSED_FN_ARGS;
    return nb_slice(ctx, x[0], S->axis, (int64_t)S->f[0], (int64_t)S->f[1], (int64_t)S->f[2]);
}
static bool gen_slice(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    s->n_in = 1;
    s->fn = fn_slice;
    switch (v) {
    case 0: s->in[0] = MK(V_NORMAL, 3, 6); s->axis = 1; s->f[0] = 1; s->f[1] = 5; s->f[2] = 2;
        EXPR("x0[:, 1:5:2]"); return true;
    case 1: s->in[0] = MK(V_NORMAL, 3, 6); s->axis = -1; s->f[0] = -4; s->f[1] = 100; s->f[2] = 1;
        EXPR("x0[:, -4:]"); return true;
    case 2: s->in[0] = MK(V_NORMAL, 7, 2); s->axis = 0; s->f[0] = 0; s->f[1] = 7; s->f[2] = 3;
        EXPR("x0[0:7:3]"); return true;
    default: return false;
    }
}

FN(fn_expand)
{
    UNUSED_FN_ARGS;
    return nb_expand(ctx, x[0], S->ndim, S->shape);
}
static bool gen_expand(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    s->n_in = 1;
    s->fn = fn_expand;
    if (v == 0) {
        s->in[0] = MK(V_NORMAL, 3, 1);
        s->ndim = 3; s->shape[0] = 2; s->shape[1] = 3; s->shape[2] = 4;
        EXPR("x0.expand(2, 3, 4)");
    } else if (v == 1) {
        s->in[0] = MK(V_NORMAL, 1, 4);
        s->ndim = 2; s->shape[0] = 3; s->shape[1] = -1;
        EXPR("x0.expand(3, -1)");
    } else {
        return false;
    }
    return true;
}

FN(fn_contiguous)
{
    UNUSED_FN_ARGS;
    return nb_contiguous(ctx, nb_transpose(ctx, x[0], 0, 1));
}
static bool gen_contiguous(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    if (v > 0)
        return false;
    s->in[0] = MK(V_NORMAL, 3, 4, 2);
    s->n_in = 1;
    s->fn = fn_contiguous;
    EXPR("x0.transpose(0, 1).contiguous()");
    return true;
}

/* ---- joining and indexing ----------------------------------------------------- */
FN(fn_concat)
{
    UNUSED_FN_ARGS;
    if (S->keep)
        return nb_stack(ctx, n, x, S->axis);
    return nb_concat(ctx, n, x, S->axis);
}
static bool gen_concat(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    s->fn = fn_concat;
    switch (v) {
    case 0:
        s->in[0] = MK(V_NORMAL, 2, 3); s->in[1] = MK(V_NORMAL, 2, 1); s->in[2] = MK(V_NORMAL, 2, 4);
        s->n_in = 3; s->axis = 1;
        EXPR("torch.cat([x0, x1, x2], dim=1)");
        return true;
    case 1:
        s->in[0] = MK(V_NORMAL, 2, 3, 2); s->in[1] = MK(V_NORMAL, 1, 3, 2);
        s->n_in = 2; s->axis = 0;
        EXPR("torch.cat([x0, x1], dim=0)");
        return true;
    case 2:
        s->in[0] = MK(V_NORMAL, 2, 3); s->in[1] = MK(V_NORMAL, 2, 3); s->in[2] = MK(V_NORMAL, 2, 3);
        s->n_in = 3; s->axis = 1; s->keep = 1;
        EXPR("torch.stack([x0, x1, x2], dim=1)");
        return true;
    case 3:
        s->in[0] = MK(V_NORMAL, 4); s->in[1] = MK(V_NORMAL, 4);
        s->n_in = 2; s->axis = -1; s->keep = 1;
        EXPR("torch.stack([x0, x1], dim=-1)");
        return true;
    default: return false;
    }
}

FN(fn_index_select)
{
    UNUSED_FN_ARGS;
    return nb_index_select(ctx, x[0], S->axis, x[1]);
}
static bool gen_index_select(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    s->n_in = 2;
    s->fn = fn_index_select;
    if (v == 0) {
        s->in[0] = MK(V_NORMAL, 4, 3);
        s->in[1] = IDX(4, NB_I64, 6); /* repeats are likely: gradients must add */
        s->axis = 0;
    } else if (v == 1) {
        s->in[0] = MK(V_NORMAL, 2, 5, 3);
        s->in[1] = IDX(5, NB_I32, 3);
        s->axis = 1;
    } else {
        return false;
    }
    EXPR("torch.index_select(x0, %d, x1)", s->axis);
    return true;
}

FN(fn_gather)
{
    UNUSED_FN_ARGS;
    return nb_gather(ctx, x[0], S->axis, x[1]);
}
static bool gen_gather(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    s->n_in = 2;
    s->fn = fn_gather;
    if (v == 0) {
        s->in[0] = MK(V_NORMAL, 3, 4);
        s->in[1] = IDX(4, NB_I64, 3, 5);
        s->axis = 1;
    } else if (v == 1) {
        s->in[0] = MK(V_NORMAL, 4, 3, 2);
        s->in[1] = IDX(4, NB_I64, 2, 3, 2);
        s->axis = 0;
    } else {
        return false;
    }
    EXPR("torch.gather(x0, %d, x1)", s->axis);
    return true;
}

/* ---- losses --------------------------------------------------------------------- */
static const char *red_name[] = {"mean", "sum", "none"};

#define LOSS_SAMPLE(name, kp, kt, call, torch_fmt)                                     \
    FN(fn_##name)                                                                       \
    {                                                                                   \
        UNUSED_FN_ARGS;                                                                 \
        nb_reduction red = (nb_reduction)S->axis;                                       \
        (void)red;                                                                      \
        return call;                                                                    \
    }                                                                                   \
    static bool gen_##name(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)                 \
    {                                                                                   \
        if (v > 2)                                                                      \
            return false;                                                               \
        s->in[0] = MK(kp, 3, 4);                                                        \
        s->in[1] = MK(kt, 3, 4);                                                        \
        s->n_in = 2;                                                                    \
        s->axis = v;                                                                    \
        s->fn = fn_##name;                                                              \
        EXPR(torch_fmt, red_name[v]);                                                   \
        return true;                                                                    \
    }
LOSS_SAMPLE(mse_loss, V_NORMAL, V_NORMAL, nb_mse_loss(ctx, x[0], x[1], red),
            "F.mse_loss(x0, x1, reduction='%s')")
LOSS_SAMPLE(bce_with_logits, V_WIDE, V_POS, nb_bce_with_logits(ctx, x[0], x[1], red),
            "F.binary_cross_entropy_with_logits(x0, x1, reduction='%s')")

/* l1 and smooth_l1 need |p - t| away from their kinks (0 and beta) */
static void separate(nb_tensor *p, nb_tensor *t, double kink)
{
    for (int64_t i = 0; i < nb_numel(p); i++) {
        double d = nb_get(p, i) - nb_get(t, i);
        double ad = fabs(d);
        if (fabs(ad - kink) < 0.05 || ad < 0.05)
            nb_set(p, i, nb_get(t, i) + (d < 0 ? -1 : 1) * (kink + 0.3));
    }
}

FN(fn_l1_loss)
{
    UNUSED_FN_ARGS;
    return nb_l1_loss(ctx, x[0], x[1], (nb_reduction)S->axis);
}
static bool gen_l1_loss(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    if (v > 2)
        return false;
    s->in[0] = MK(V_NORMAL, 3, 4);
    s->in[1] = MK(V_NORMAL, 3, 4);
    separate(s->in[0], s->in[1], 0.0);
    s->n_in = 2;
    s->axis = v;
    s->fn = fn_l1_loss;
    EXPR("F.l1_loss(x0, x1, reduction='%s')", red_name[v]);
    return true;
}

FN(fn_smooth_l1_loss)
{
    UNUSED_FN_ARGS;
    nb_reduction red = (nb_reduction)S->axis;
    return S->keep ? nb_huber_loss(ctx, x[0], x[1], red, S->f[0])
                   : nb_smooth_l1_loss(ctx, x[0], x[1], red, S->f[0]);
}
static bool gen_smooth_l1_loss(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    if (v > 5)
        return false;
    s->in[0] = MK(V_WIDE, 3, 4);
    s->in[1] = MK(V_NORMAL, 3, 4);
    s->n_in = 2;
    s->axis = v % 3;
    s->keep = v >= 3; /* huber */
    s->f[0] = s->keep ? 1.5 : 0.8;
    separate(s->in[0], s->in[1], s->f[0]);
    s->fn = fn_smooth_l1_loss;
    if (s->keep)
        EXPR("F.huber_loss(x0, x1, reduction='%s', delta=%g)", red_name[s->axis], s->f[0]);
    else
        EXPR("F.smooth_l1_loss(x0, x1, reduction='%s', beta=%g)", red_name[s->axis], s->f[0]);
    return true;
}

FN(fn_ce)
{
    UNUSED_FN_ARGS;
    nb_ce_opts o = nb_ce_opts_default();
    o.reduction = (nb_reduction)S->axis;
    o.label_smoothing = S->f[0];
    o.ignore_index = (int64_t)S->f[1];
    return S->keep ? nb_nll_loss(ctx, x[0], x[1], &o) : nb_cross_entropy(ctx, x[0], x[1], &o);
}
static bool ce_sample(nb_ctx *ctx, nb_rng *r, int v, op_sample *s, bool nll)
{
    if (v > 3)
        return false;
    s->in[0] = MK(V_WIDE, 5, 4);
    s->in[1] = IDX(4, NB_I64, 5);
    s->n_in = 2;
    s->axis = v == 3 ? 0 : v; /* mean, sum, none, mean */
    s->keep = nll;
    s->f[0] = nll ? 0.0 : (v == 1 || v == 3 ? 0.1 : 0.0);
    s->f[1] = v >= 2 ? 2 : -100; /* ignore class 2 in variants 2 and 3 */
    if (v >= 2) { /* at least one ignored row and one kept */
        nb_set(s->in[1], 0, 3.0);
        nb_set(s->in[1], 1, 2.0);
    }
    s->fn = fn_ce;
    if (nll)
        EXPR("F.nll_loss(x0, x1, reduction='%s', ignore_index=%d)", red_name[s->axis],
             (int)s->f[1]);
    else
        EXPR("F.cross_entropy(x0, x1, reduction='%s', label_smoothing=%g, ignore_index=%d)",
             red_name[s->axis], s->f[0], (int)s->f[1]);
    return true;
}
static bool gen_cross_entropy(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    return ce_sample(ctx, r, v, s, false);
}
static bool gen_nll_loss(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    return ce_sample(ctx, r, v, s, true);
}

FN(fn_dropout)
{
    UNUSED_FN_ARGS;
    return nb_dropout(ctx, x[0], S->f[0], S->keep);
}
static bool gen_dropout(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    if (v > 1)
        return false;
    s->in[0] = MK(V_AWAY0, 6, 5);
    s->n_in = 1;
    s->f[0] = 0.3;
    s->keep = v == 0; /* training */
    s->fn = fn_dropout;
    if (s->keep) /* the mask is ours (OUT); torch checks scaling and routing */
        EXPR("torch.where(OUT != 0, x0 / 0.7, torch.zeros_like(x0))");
    else
        EXPR("x0 * 1");
    return true;
}

const sample_gen op_samples[NB__OP_COUNT] = {
    [NB__OP_ADD] = gen_add,
    [NB__OP_SUB] = gen_sub,
    [NB__OP_MUL] = gen_mul,
    [NB__OP_DIV] = gen_div,
    [NB__OP_POW] = gen_pow,
    [NB__OP_MAXIMUM] = gen_maximum,
    [NB__OP_MINIMUM] = gen_minimum,
    [NB__OP_WHERE] = gen_where,
    [NB__OP_COMPARE] = gen_compare,
    [NB__OP_AFFINE] = gen_affine,
    [NB__OP_RDIV_SCALAR] = gen_rdiv_scalar,
    [NB__OP_POW_SCALAR] = gen_pow_scalar,
    [NB__OP_CLAMP] = gen_clamp,
    [NB__OP_EXP] = gen_exp,
    [NB__OP_LOG] = gen_log,
    [NB__OP_SQRT] = gen_sqrt,
    [NB__OP_ABS] = gen_abs,
    [NB__OP_SQUARE] = gen_square,
    [NB__OP_RELU] = gen_relu,
    [NB__OP_LEAKY_RELU] = gen_leaky_relu,
    [NB__OP_ELU] = gen_elu,
    [NB__OP_SIGMOID] = gen_sigmoid,
    [NB__OP_TANH] = gen_tanh,
    [NB__OP_GELU] = gen_gelu,
    [NB__OP_GELU_TANH] = gen_gelu_tanh,
    [NB__OP_SILU] = gen_silu,
    [NB__OP_SOFTPLUS] = gen_softplus,
    [NB__OP_CAST] = gen_cast,
    [NB__OP_SOFTMAX] = gen_softmax,
    [NB__OP_LOG_SOFTMAX] = gen_log_softmax,
    [NB__OP_MATMUL] = gen_matmul,
    [NB__OP_LINEAR] = gen_linear,
    [NB__OP_CONV2D] = gen_conv2d,
    [NB__OP_CONV_TRANSPOSE2D] = gen_conv_transpose2d,
    [NB__OP_MAX_POOL2D] = gen_max_pool2d,
    [NB__OP_AVG_POOL2D] = gen_avg_pool2d,
    [NB__OP_ADAPTIVE_AVG_POOL2D] = gen_adaptive_avg_pool2d,
    [NB__OP_UPSAMPLE_NEAREST2D] = gen_upsample_nearest2d,
    [NB__OP_BATCH_NORM] = gen_batch_norm,
    [NB__OP_LAYER_NORM] = gen_layer_norm,
    [NB__OP_GROUP_NORM] = gen_group_norm,
    [NB__OP_SUM] = gen_sum,
    [NB__OP_MEAN] = gen_mean,
    [NB__OP_MAX] = gen_max,
    [NB__OP_MIN] = gen_min,
    [NB__OP_VAR] = gen_var,
    [NB__OP_RESHAPE] = gen_reshape,
    [NB__OP_PERMUTE] = gen_permute,
    [NB__OP_SLICE] = gen_slice,
    [NB__OP_EXPAND] = gen_expand,
    [NB__OP_CONTIGUOUS] = gen_contiguous,
    [NB__OP_CONCAT] = gen_concat,
    [NB__OP_INDEX_SELECT] = gen_index_select,
    [NB__OP_GATHER] = gen_gather,
    [NB__OP_MSE_LOSS] = gen_mse_loss,
    [NB__OP_L1_LOSS] = gen_l1_loss,
    [NB__OP_SMOOTH_L1_LOSS] = gen_smooth_l1_loss,
    [NB__OP_BCE_WITH_LOGITS] = gen_bce_with_logits,
    [NB__OP_CROSS_ENTROPY] = gen_cross_entropy,
    [NB__OP_NLL_LOSS] = gen_nll_loss,
    [NB__OP_DROPOUT] = gen_dropout,
    [NB__OP_REPARAMETERIZE] = gen_reparameterize,
    [NB__OP_KL_NORMAL] = gen_kl_normal,
    [NB__OP_GUMBEL_SOFTMAX] = gen_gumbel_softmax,
    [NB__OP_SIGN_STE] = gen_sign_ste,
    [NB__OP_ROUND_STE] = gen_round_ste,
    [NB__OP_QUANTIZE_STE] = gen_quantize_ste,
    [NB__OP_EMBEDDING] = gen_embedding,
    [NB__OP_SPMM] = gen_spmm,
    [NB__OP_ATTENTION] = gen_attention,
    [NB__OP_ATTENTION_QKV] = gen_attention_qkv,
    [NB__OP_LSTM_CELL] = gen_lstm_cell,
    [NB__OP_LSTM_SEQ] = gen_lstm_seq,
};
