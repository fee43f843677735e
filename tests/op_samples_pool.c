/* Samples of the pooling and resampling ops (see op_samples.h): fixed cases
 * covering kernels, strides (0 = the kernel), paddings, ceil_mode,
 * count_include_pad, non-square shapes, batches and channels, odd sizes and
 * a transposed (non-contiguous) input, then one random case per op.
 * s->shape holds the pooling options: kernel h, w, stride h, w, padding h, w,
 * ceil_mode, count_include_pad; s->axis = 1 runs on x0.transpose(2, 3). */
#include "op_samples.h"

#include <stdio.h>

#define EXPR(...) snprintf(s->expr, sizeof s->expr, __VA_ARGS__)
#define LABEL(...) snprintf(s->label, sizeof s->label, __VA_ARGS__)
#define S ((const op_sample *)user)
#define FN(name) static nb_tensor *name(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)

typedef struct {
    int64_t n, c, h, w; /* input as stored (before a transpose) */
    int kh, kw, sh, sw, ph, pw;
    bool ceil, cip, transposed;
} pool_case;

static nb_tensor *arg0(nb_ctx *ctx, nb_tensor *const *x, const op_sample *s)
{
    return s->axis == 1 ? nb_transpose(ctx, x[0], 2, 3) : x[0];
}

static const char *arg0_expr(const op_sample *s)
{
    return s->axis == 1 ? "x0.transpose(2, 3)" : "x0";
}

/* Values far from ties: a random permutation of 0..n-1, spaced 0.25 apart
 * with a jitter below 0.1, so that central differences never cross a max. */
static void distinct_values(nb_rng *r, nb_tensor *t)
{
    int64_t n = nb_numel(t);
    double *d = t->data;
    for (int64_t i = 0; i < n; i++)
        d[i] = (double)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = nb_rng_below(r, (uint32_t)(i + 1));
        double tmp = d[i];
        d[i] = d[j];
        d[j] = tmp;
    }
    for (int64_t i = 0; i < n; i++)
        d[i] = 0.25 * (d[i] - (double)n / 2) + 0.1 * nb_rng_uniform(r);
}

static pool_case random_case(nb_rng *r)
{
    pool_case c;
    memset(&c, 0, sizeof c);
    c.n = 1 + nb_rng_below(r, 2);
    c.c = 1 + nb_rng_below(r, 2);
    c.kh = 1 + (int)nb_rng_below(r, 3);
    c.kw = 1 + (int)nb_rng_below(r, 3);
    c.h = c.kh + nb_rng_below(r, 5);
    c.w = c.kw + nb_rng_below(r, 5);
    c.sh = (int)nb_rng_below(r, 4); /* 0: the kernel */
    c.sw = (int)nb_rng_below(r, 4);
    c.ph = (int)nb_rng_below(r, (uint32_t)(c.kh / 2 + 1));
    c.pw = (int)nb_rng_below(r, (uint32_t)(c.kw / 2 + 1));
    c.ceil = nb_rng_below(r, 2);
    c.cip = nb_rng_below(r, 2);
    return c;
}

static void set_case(nb_ctx *ctx, nb_rng *r, op_sample *s, const pool_case *c, bool distinct)
{
    s->in[0] = sample_input(ctx, r, V_NORMAL, 4, (const int64_t[]){c->n, c->c, c->h, c->w});
    if (s->in[0] && distinct)
        distinct_values(r, s->in[0]);
    s->n_in = 1;
    s->axis = c->transposed;
    int64_t o[8] = {c->kh, c->kw, c->sh, c->sw, c->ph, c->pw, c->ceil, c->cip};
    memcpy(s->shape, o, sizeof o);
    s->ndim = 8;
}

static nb_pool_opts opts_of(const op_sample *s)
{
    nb_pool_opts o = nb_pool_opts_default((int)s->shape[0], (int)s->shape[1]);
    o.stride[0] = (int)s->shape[2];
    o.stride[1] = (int)s->shape[3];
    o.padding[0] = (int)s->shape[4];
    o.padding[1] = (int)s->shape[5];
    o.ceil_mode = s->shape[6] != 0;
    o.count_include_pad = s->shape[7] != 0;
    return o;
}

/* F.<fn>(x0, kernel_size=..., stride=..., padding=..., ceil_mode=...[, count_include_pad=False]) */
static void pool_expr(op_sample *s, const char *fn, bool avg)
{
    const int64_t *o = s->shape;
    char stride[48] = "";
    if (o[2] || o[3]) /* torch's stride must be positive: 0 (the kernel) is its default */
        snprintf(stride, sizeof stride, ", stride=(%d, %d)", (int)(o[2] ? o[2] : o[0]),
                 (int)(o[3] ? o[3] : o[1]));
    EXPR("F.%s(%s, kernel_size=(%d, %d)%s, padding=(%d, %d), ceil_mode=%s%s)", fn, arg0_expr(s),
         (int)o[0], (int)o[1], stride, (int)o[4], (int)o[5], o[6] ? "True" : "False",
         avg && !o[7] ? ", count_include_pad=False" : "");
}

/* ---- max_pool2d -------------------------------------------------------------- */
FN(fn_max_pool2d)
{
    (void)n;
    nb_pool_opts o = opts_of(S);
    return nb_max_pool2d(ctx, arg0(ctx, x, S), &o);
}

bool gen_max_pool2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    static const pool_case cases[] = {
        /*  n  c  h  w kh kw sh sw ph pw ceil   cip   transposed */
        {1, 1, 4, 4, 2, 2, 0, 0, 0, 0, false, true, false},
        {2, 3, 5, 5, 3, 3, 2, 2, 1, 1, false, true, false},
        {2, 2, 5, 7, 3, 2, 2, 1, 1, 0, true, true, false},
        {1, 2, 7, 6, 2, 3, 2, 2, 0, 1, true, true, false},
        {2, 3, 4, 6, 3, 3, 1, 1, 1, 1, false, true, true},
        {3, 2, 7, 7, 3, 3, 3, 3, 0, 0, true, true, false},
        {1, 2, 5, 5, 1, 1, 2, 2, 0, 0, false, true, false},
        {1, 1, 4, 5, 3, 2, 2, 3, 1, 1, true, true, true},
        {2, 1, 3, 5, 2, 2, 2, 2, 1, 1, true, true, false}, /* ceil's extra window dropped */
        {2, 3, 5, 7, 2, 2, 2, 2, 0, 0, false, true, false}, /* the 2x2 fast path, odd sizes */
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    if (v > nc)
        return false;
    pool_case c = v < nc ? cases[v] : random_case(r);
    set_case(ctx, r, s, &c, true);
    s->fn = fn_max_pool2d;
    LABEL("max_pool2d case %d", v);
    pool_expr(s, "max_pool2d", false);
    return true;
}

/* ---- avg_pool2d -------------------------------------------------------------- */
FN(fn_avg_pool2d)
{
    (void)n;
    nb_pool_opts o = opts_of(S);
    return nb_avg_pool2d(ctx, arg0(ctx, x, S), &o);
}

bool gen_avg_pool2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    static const pool_case cases[] = {
        /*  n  c  h  w kh kw sh sw ph pw ceil   cip    transposed */
        {1, 1, 4, 4, 2, 2, 0, 0, 0, 0, false, true, false},
        {2, 3, 5, 5, 3, 3, 2, 2, 1, 1, false, true, false},
        {2, 3, 5, 5, 3, 3, 2, 2, 1, 1, false, false, false},
        {2, 2, 5, 7, 3, 2, 2, 1, 1, 0, true, true, false},
        {2, 2, 5, 7, 3, 2, 2, 1, 1, 0, true, false, false},
        {2, 1, 4, 5, 3, 3, 2, 2, 1, 1, true, true, false}, /* last windows clipped by ceil */
        {1, 2, 7, 6, 2, 3, 2, 2, 1, 1, true, false, false},
        {2, 3, 4, 6, 3, 3, 1, 1, 1, 1, false, false, true},
        {1, 2, 6, 5, 4, 2, 3, 1, 2, 1, true, true, true},
        {2, 1, 3, 5, 2, 2, 2, 2, 1, 1, true, true, false}, /* ceil's extra window dropped */
        {1, 2, 4, 4, 4, 4, 3, 3, 2, 2, true, false, false},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    if (v > nc)
        return false;
    pool_case c = v < nc ? cases[v] : random_case(r);
    set_case(ctx, r, s, &c, false);
    s->fn = fn_avg_pool2d;
    LABEL("avg_pool2d case %d", v);
    pool_expr(s, "avg_pool2d", true);
    return true;
}

/* ---- adaptive_avg_pool2d ----------------------------------------------------- */
FN(fn_adaptive_avg_pool2d)
{
    (void)n;
    return nb_adaptive_avg_pool2d(ctx, arg0(ctx, x, S), (int)S->shape[0], (int)S->shape[1]);
}

bool gen_adaptive_avg_pool2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    static const struct {
        int64_t n, c, h, w;
        int oh, ow;
        bool transposed;
    } cases[] = {
        {1, 1, 4, 4, 2, 2, false}, /* divides */
        {2, 3, 5, 7, 3, 4, false}, /* does not divide: overlapping windows */
        {1, 2, 6, 5, 4, 5, false},
        {2, 2, 3, 3, 5, 4, false}, /* larger than the input */
        {1, 2, 5, 6, 4, 3, true},
        {2, 1, 7, 5, 1, 1, false}, /* global */
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    if (v >= nc)
        return false;
    s->in[0] = sample_input(ctx, r, V_NORMAL, 4,
                            (const int64_t[]){cases[v].n, cases[v].c, cases[v].h, cases[v].w});
    s->n_in = 1;
    s->axis = cases[v].transposed;
    s->shape[0] = cases[v].oh;
    s->shape[1] = cases[v].ow;
    s->fn = fn_adaptive_avg_pool2d;
    LABEL("adaptive_avg_pool2d case %d", v);
    EXPR("F.adaptive_avg_pool2d(%s, (%d, %d))", arg0_expr(s), cases[v].oh, cases[v].ow);
    return true;
}

/* ---- upsample_nearest2d ------------------------------------------------------ */
FN(fn_upsample_nearest2d)
{
    (void)n;
    return nb_upsample_nearest2d(ctx, arg0(ctx, x, S), (int)S->shape[0], (int)S->shape[1]);
}

bool gen_upsample_nearest2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    static const struct {
        int64_t n, c, h, w;
        int fh, fw;
        bool transposed;
    } cases[] = {
        {1, 1, 2, 3, 1, 2, false},
        {2, 3, 3, 2, 2, 3, false},
        {1, 2, 2, 2, 2, 2, false},
        {1, 2, 3, 4, 3, 1, true},
        {2, 1, 3, 3, 1, 1, false},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    if (v >= nc)
        return false;
    s->in[0] = sample_input(ctx, r, V_NORMAL, 4,
                            (const int64_t[]){cases[v].n, cases[v].c, cases[v].h, cases[v].w});
    s->n_in = 1;
    s->axis = cases[v].transposed;
    s->shape[0] = cases[v].fh;
    s->shape[1] = cases[v].fw;
    s->fn = fn_upsample_nearest2d;
    LABEL("upsample_nearest2d case %d", v);
    EXPR("F.interpolate(%s, scale_factor=(%d.0, %d.0), mode='nearest')", arg0_expr(s),
         cases[v].fh, cases[v].fw);
    return true;
}
