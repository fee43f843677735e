/* Attention (src/nn/attention.c): nb_attention's float64 gradient check
 * (causal with Tq != Tk, key padding), fully masked rows, the MHA layer's
 * names and torch's init, positional encodings (sinusoidal values, learned
 * gradient), bad input. With a file argument it also writes the PyTorch
 * parity cases that parity_attn.py replays (MultiheadAttention with 1 and 4
 * heads, causal and key padding; nb_attention against softmax(q k^T / sqrt(D)
 * + mask) v). Usage: test_attn [PARITY_FILE] */
#include "dump.h"
#include "nn/nn.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static const char *parity_path;

static nb_ctx *new_ctx(uint64_t seed)
{
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = seed;
    nb_ctx *ctx = nb_ctx_new(&o);
    assert_non_null(ctx);
    return ctx;
}

static void expect_err(nb_ctx *ctx, const void *result, nb_status st, const char *msg)
{
    assert_null(result);
    if (nb_last_status(ctx) != st || strcmp(nb_last_error(ctx), msg) != 0)
        fprintf(stderr, "got %d \"%s\"\n", (int)nb_last_status(ctx), nb_last_error(ctx));
    assert_int_equal(nb_last_status(ctx), st);
    assert_string_equal(nb_last_error(ctx), msg);
    nb_clear_error(ctx);
}
#define EXPECT(call, st, msg) expect_err(ctx, (call), st, msg)

static nb_tensor *randn(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, bool grad)
{
    nb_tensor *t = nb_zeros(ctx, dt, ndim, shape);
    assert_non_null(t);
    nb_fill_normal(ctx, t, 0, 1);
    if (grad)
        assert_int_equal(nb_set_requires_grad(ctx, t, true), NB_OK);
    return t;
}

/* sum over all elements of a * b: folds an upstream gradient into a loss */
static nb_tensor *dot(nb_ctx *ctx, nb_tensor *a, nb_tensor *b)
{
    return nb_sum(ctx, nb_mul(ctx, a, b), 0, NULL, false);
}

/* key padding [N, Tk] u8: row n pads its last pad[n] keys */
static nb_tensor *pad_mask(nb_ctx *ctx, int64_t N, int64_t Tk, const int *pad)
{
    nb_tensor *m = nb_zeros(ctx, NB_U8, NB_SHAPE(N, Tk));
    assert_non_null(m);
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = Tk - pad[n]; j < Tk; j++)
            nb_set(m, n * Tk + j, 1);
    return m;
}

/* ---- float64 gradient check of nb_attention ------------------------------- */
typedef struct {
    bool causal;
    nb_tensor *key_pad;
} gc_user;

static nb_tensor *gc_fn(nb_ctx *ctx, nb_tensor *const *in, int n, void *user)
{
    (void)n;
    gc_user *u = user;
    return nb_attention(ctx, in[0], in[1], in[2], u->causal, u->key_pad);
}

static void gradcheck_case(int64_t Tq, int64_t Tk, bool causal, const int *pad)
{
    nb_ctx *ctx = new_ctx(11);
    const int64_t N = 3, H = 2, D = 3, Dv = 4;
    nb_tensor *in[3] = {randn(ctx, NB_F64, NB_SHAPE(N, H, Tq, D), true),
                        randn(ctx, NB_F64, NB_SHAPE(N, H, Tk, D), true),
                        randn(ctx, NB_F64, NB_SHAPE(N, H, Tk, Dv), true)};
    gc_user u = {causal, pad ? pad_mask(ctx, N, Tk, pad) : NULL};
    nb_gradcheck_opts go = nb_gradcheck_opts_default();
    nb_gradcheck_result res;
    nb_status st = nb_gradcheck(ctx, gc_fn, &u, in, 3, &go, &res);
    if (st != NB_OK)
        fprintf(stderr, "gradcheck Tq %lld Tk %lld: %s worst %g\n", (long long)Tq, (long long)Tk,
                nb_last_error(ctx), res.worst);
    assert_int_equal(st, NB_OK);
    assert_int_equal(res.n, 3);
    nb_ctx_free(ctx);
}

static void test_gradcheck(void **state)
{
    (void)state;
    static const int pad[3] = {0, 2, 1}, pad_all[3] = {1, 5, 0};
    gradcheck_case(4, 4, false, NULL);
    gradcheck_case(4, 4, true, NULL);
    gradcheck_case(3, 5, true, NULL); /* causal offset: query i sees j <= i + 2 */
    gradcheck_case(4, 5, false, pad);
    gradcheck_case(5, 5, true, pad);
    gradcheck_case(5, 3, true, pad_all); /* fully masked rows (causal and padding) */
}

/* ---- masks by hand, fully masked rows ---------------------------------------- */
static void test_masks(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(5);
    const int64_t N = 2, Tq = 4, Tk = 3, D = 2;
    nb_tensor *q = randn(ctx, NB_F32, NB_SHAPE(N, Tq, D), true);
    nb_tensor *k = randn(ctx, NB_F32, NB_SHAPE(N, Tk, D), true);
    nb_tensor *v = randn(ctx, NB_F32, NB_SHAPE(N, Tk, D), true);
    static const int pad[2] = {0, 3}; /* row 1: every key is padding */
    nb_tensor *kp = pad_mask(ctx, N, Tk, pad);
    nb_tensor *y = nb_attention(ctx, q, k, v, true, kp);
    assert_non_null(y);
    assert_int_equal(y->ndim, 3);
    /* reference by hand; causal offset Tk - Tq = -1: query 0 sees nothing */
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < Tq; i++) {
            double s[3], mx = -INFINITY, z = 0;
            int64_t last = i + Tk - Tq; /* visible keys j <= last */
            bool any = n == 0 && last >= 0;
            for (int64_t j = 0; any && j <= last; j++) {
                s[j] = 0;
                for (int64_t d = 0; d < D; d++)
                    s[j] += nb_get(q, (n * Tq + i) * D + d) * nb_get(k, (n * Tk + j) * D + d);
                s[j] /= sqrt((double)D);
                mx = fmax(mx, s[j]);
            }
            for (int64_t j = 0; any && j <= last; j++)
                z += (s[j] = exp(s[j] - mx));
            for (int64_t d = 0; d < D; d++) {
                double want = 0;
                for (int64_t j = 0; any && j <= last; j++)
                    want += s[j] / z * nb_get(v, (n * Tk + j) * D + d);
                double got = nb_get(y, (n * Tq + i) * D + d);
                assert_true(fabs(got - want) < 1e-5);
                if (!any)
                    assert_true(got == 0);
            }
        }
    nb_tensor *g = randn(ctx, NB_F32, y->ndim, y->shape, false);
    assert_int_equal(nb_backward(ctx, dot(ctx, y, g)), NB_OK);
    nb_tensor *gs[3] = {q->grad, k->grad, v->grad};
    for (int t = 0; t < 3; t++) {
        assert_non_null(gs[t]);
        for (int64_t i = 0; i < nb_numel(gs[t]); i++)
            assert_true(isfinite(nb_get(gs[t], i)));
    }
    /* batch row 1 sees no key: no gradient at all reaches it */
    for (int64_t i = N * Tq * D / 2; i < N * Tq * D; i++)
        assert_true(nb_get(q->grad, i) == 0);
    for (int64_t i = N * Tk * D / 2; i < N * Tk * D; i++)
        assert_true(nb_get(k->grad, i) == 0 && nb_get(v->grad, i) == 0);
    /* without masks: no mask step at all, plain composition; 2-D inputs work */
    nb_tensor *q2 = randn(ctx, NB_F32, NB_SHAPE(3, 2), false);
    nb_tensor *y2 = nb_attention(ctx, q2, q2, q2, true, NULL);
    assert_non_null(y2);
    assert_int_equal(y2->shape[0], 3);
    /* query 0 sees key 0 only: y[0] = v[0] */
    assert_true(fabs(nb_get(y2, 0) - nb_get(q2, 0)) < 1e-6);
    assert_true(fabs(nb_get(y2, 1) - nb_get(q2, 1)) < 1e-6);
    nb_ctx_free(ctx);
}

/* ---- MHA names, init, module_forward --------------------------------------- */
static void test_mha_names_init(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    const int64_t E = 16;
    nb_module *seq = nb_sequential(ctx, "model");
    assert_int_equal(nb_sequential_add(ctx, seq, nb_mha_layer(ctx, "attn", E, 4)), NB_OK);
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, seq, &pl), NB_OK);
    assert_int_equal(pl.n, 4);
    static const char *want[] = {"attn.in_proj_weight", "attn.in_proj_bias",
                                 "attn.out_proj.weight", "attn.out_proj.bias"};
    static const int64_t rows[] = {3 * E, 3 * E, E, E};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(pl.items[i].name, want[i]);
        assert_int_equal(pl.items[i].tensor->shape[0], rows[i]);
        assert_false(pl.items[i].is_buffer);
    }
    for (int pass = 0; pass < 2; pass++) {
        double r_in = sqrt(6.0 / (double)(E + 3 * E)), r_out = 1 / sqrt((double)E);
        double mx_in = 0, mx_out = 0;
        for (int64_t j = 0; j < nb_numel(pl.items[0].tensor); j++)
            mx_in = fmax(mx_in, fabs(nb_get(pl.items[0].tensor, j)));
        for (int64_t j = 0; j < nb_numel(pl.items[2].tensor); j++)
            mx_out = fmax(mx_out, fabs(nb_get(pl.items[2].tensor, j)));
        assert_true(mx_in <= r_in && mx_in > 0.9 * r_in);
        assert_true(mx_out <= r_out && mx_out > 0.9 * r_out);
        for (int64_t j = 0; j < 3 * E; j++)
            assert_true(nb_get(pl.items[1].tensor, j) == 0);
        for (int64_t j = 0; j < E; j++)
            assert_true(nb_get(pl.items[3].tensor, j) == 0);
        assert_int_equal(nb_module_init(ctx, seq, NULL, NULL), NB_OK); /* same rules again */
    }
    nb_param_list_free(ctx, &pl);
    nb_module *mha = nb_module_child(seq, 0);
    assert_string_equal(nb_module_kind(mha), "mha");
    assert_int_equal(nb_module_param_count(seq), 4 * E * E + 4 * E);

    nb_tensor *x = randn(ctx, NB_F32, NB_SHAPE(2, 5, E), false);
    nb_tensor *a = nb_module_forward(ctx, seq, x);
    nb_tensor *b = nb_mha_forward(ctx, mha, x, false, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->ndim, 3);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->shape[1], 5);
    assert_int_equal(a->shape[2], E);
    for (int64_t i = 0; i < nb_numel(a); i++)
        assert_true(nb_get(a, i) == nb_get(b, i));
    nb_module_free(ctx, seq);
    nb_ctx_free(ctx);
}

/* ---- positional encodings ---------------------------------------------------- */
static void test_positional(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(3);
    const int64_t L = 12, E = 6, N = 2, T = 9;
    nb_module *pe = nb_positional_layer(ctx, "pos", L, E, false);
    assert_non_null(pe);
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, pe, &pl), NB_OK);
    assert_int_equal(pl.n, 1);
    assert_true(pl.items[0].is_buffer);
    nb_param_list_free(ctx, &pl);
    assert_int_equal(nb_module_param_count(pe), 0);
    nb_tensor *x = randn(ctx, NB_F32, NB_SHAPE(N, T, E), false);
    nb_tensor *y = nb_module_forward(ctx, pe, x);
    assert_non_null(y);
    for (int64_t n = 0; n < N; n++)
        for (int64_t p = 0; p < T; p++)
            for (int64_t i = 0; i < E / 2; i++) {
                double ang = (double)p / pow(10000.0, 2.0 * (double)i / (double)E);
                int64_t o = (n * T + p) * E + 2 * i;
                assert_true(fabs(nb_get(y, o) - nb_get(x, o) - sin(ang)) < 1e-6);
                assert_true(fabs(nb_get(y, o + 1) - nb_get(x, o + 1) - cos(ang)) < 1e-6);
            }
    assert_int_equal(nb_module_init(ctx, pe, NULL, NULL), NB_OK); /* values unchanged */
    nb_tensor *y2 = nb_module_forward(ctx, pe, x);
    for (int64_t i = 0; i < nb_numel(y); i++)
        assert_true(nb_get(y, i) == nb_get(y2, i));
    nb_module_free(ctx, pe);

    /* learned: "weight" [L, E] ~ N(0, 0.02^2), rows < T get the summed gradient */
    nb_module *lp = nb_positional_layer(ctx, NULL, L, E, true);
    assert_non_null(lp);
    nb_tensor *w = nb_module_find(ctx, lp, "weight");
    assert_non_null(w);
    assert_true(nb_requires_grad(w));
    double ss = 0;
    for (int64_t i = 0; i < nb_numel(w); i++)
        ss += nb_get(w, i) * nb_get(w, i);
    double sd = sqrt(ss / (double)nb_numel(w));
    assert_true(sd > 0.01 && sd < 0.03);
    nb_tensor *xr = randn(ctx, NB_F32, NB_SHAPE(N, T, E), true);
    nb_tensor *g = randn(ctx, NB_F32, NB_SHAPE(N, T, E), false);
    y = nb_module_forward(ctx, lp, xr);
    assert_non_null(y);
    assert_int_equal(nb_backward(ctx, dot(ctx, y, g)), NB_OK);
    assert_non_null(w->grad);
    for (int64_t p = 0; p < L; p++)
        for (int64_t e = 0; e < E; e++) {
            double want = p < T ? nb_get(g, p * E + e) + nb_get(g, (T + p) * E + e) : 0;
            assert_true(fabs(nb_get(w->grad, p * E + e) - want) < 1e-5);
        }
    for (int64_t i = 0; i < nb_numel(xr); i++)
        assert_true(nb_get(xr->grad, i) == nb_get(g, i));
    nb_module_free(ctx, lp);
    nb_ctx_free(ctx);
}

/* ---- bad input ------------------------------------------------------------------ */
static void test_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(4);
    nb_tensor *q = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 4));
    nb_tensor *k = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 5, 4));
    nb_tensor *v = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 5, 6));
    nb_tensor *q1 = nb_zeros(ctx, NB_F32, NB_SHAPE(4));
    EXPECT(nb_attention(ctx, q1, k, v, false, NULL), NB_ERR_SHAPE,
           "attention: q [4], k [2,5,4], v [2,5,6] need at least 2 dimensions ([..., T, D])");
    EXPECT(nb_attention(ctx, q, q1, v, false, NULL), NB_ERR_SHAPE,
           "attention: q [2,3,4], k [4], v [2,5,6] need at least 2 dimensions ([..., T, D])");
    EXPECT(nb_attention(ctx, q, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 5, 3)), v, false, NULL),
           NB_ERR_SHAPE, "attention: q [2,3,4] and k [2,5,3] differ in the last dimension");
    EXPECT(nb_attention(ctx, q, k, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 4, 6)), false, NULL),
           NB_ERR_SHAPE, "attention: k [2,5,4] and v [2,4,6] have different numbers of keys");
    EXPECT(nb_attention(ctx, q, nb_zeros(ctx, NB_F32, NB_SHAPE(3, 5, 4)), v, false, NULL),
           NB_ERR_SHAPE,
           "attention: the batch dimensions of q [2,3,4], k [3,5,4], v [2,5,6] do not broadcast");
    EXPECT(nb_attention(ctx, q, k, nb_cast(ctx, v, NB_F64), false, NULL), NB_ERR_DTYPE,
           "attention: q, k, v are f32, f32, f64; they need one float dtype");
    EXPECT(nb_attention(ctx, q, k, v, false, nb_zeros(ctx, NB_U8, NB_SHAPE(2, 4))), NB_ERR_SHAPE,
           "attention: key_pad [2,4] should be [2,5] (batch, keys)");
    EXPECT(nb_attention(ctx, q, k, v, false, nb_zeros(ctx, NB_U8, NB_SHAPE(10))), NB_ERR_SHAPE,
           "attention: key_pad [10] should be [2,5] (batch, keys)");
    EXPECT(nb_attention(ctx, q, k, v, true, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 5))), NB_ERR_DTYPE,
           "attention: key_pad is f32, it should be u8, i32 or i64");
    EXPECT(nb_attention(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(3, 4)), nb_zeros(ctx, NB_F32, NB_SHAPE(5, 4)),
                        nb_zeros(ctx, NB_F32, NB_SHAPE(5, 4)), false, nb_zeros(ctx, NB_U8, NB_SHAPE(1, 5))),
           NB_ERR_SHAPE, "attention: key_pad needs a batch dimension, q is [3,4]");
    EXPECT(nb_attention(ctx, q, NULL, v, false, NULL), NB_ERR_NULL, "attention: input 1 is NULL");
    /* i32 and i64 padding masks are accepted */
    assert_non_null(nb_attention(ctx, q, k, v, true, nb_zeros(ctx, NB_I32, NB_SHAPE(2, 5))));
    assert_non_null(nb_attention(ctx, q, k, v, true, nb_zeros(ctx, NB_I64, NB_SHAPE(2, 5))));

    EXPECT(nb_mha_layer(ctx, "attn", 10, 4), NB_ERR_ARG,
           "mha_layer: embed 10 must be a positive multiple of heads 4");
    EXPECT(nb_mha_layer(ctx, "attn", 8, 0), NB_ERR_ARG,
           "mha_layer: embed 8 must be a positive multiple of heads 0");
    nb_module *mha = nb_mha_layer(ctx, "attn", 8, 2);
    assert_non_null(mha);
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 5, 8));
    EXPECT(nb_mha_forward(ctx, mha, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 5, 6)), false, NULL),
           NB_ERR_SHAPE, "attn: input [2,5,6] should be [batch, time, 8]");
    EXPECT(nb_mha_forward(ctx, mha, nb_zeros(ctx, NB_F32, NB_SHAPE(10, 8)), false, NULL),
           NB_ERR_SHAPE, "attn: input [10,8] should be [batch, time, 8]");
    EXPECT(nb_mha_forward(ctx, mha, nb_cast(ctx, x, NB_F64), false, NULL), NB_ERR_DTYPE,
           "attn: input is f64, the layer is f32");
    EXPECT(nb_mha_forward(ctx, mha, x, true, nb_zeros(ctx, NB_U8, NB_SHAPE(2, 4))), NB_ERR_SHAPE,
           "attn: key_pad [2,4] should be [2,5] (batch, time)");
    EXPECT(nb_mha_forward(ctx, mha, x, true, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 5))), NB_ERR_DTYPE,
           "attn: key_pad is f64, it should be u8, i32 or i64");
    EXPECT(nb_mha_forward(ctx, mha, NULL, false, NULL), NB_ERR_NULL, "attn: input 0 is NULL");
    nb_module *lin = nb_linear(ctx, "fc", 8, 8, true);
    EXPECT(nb_mha_forward(ctx, lin, x, false, NULL), NB_ERR_ARG,
           "mha_forward: linear is not a multi-head attention layer");
    EXPECT(nb_mha_forward(ctx, NULL, x, false, NULL), NB_ERR_ARG,
           "mha_forward: NULL module is not a multi-head attention layer");

    EXPECT(nb_positional_layer(ctx, "pos", 0, 8, false), NB_ERR_ARG,
           "positional_layer: max_len 0 and embed 8 must be positive");
    nb_module *pe = nb_positional_layer(ctx, "pos", 4, 8, true);
    assert_non_null(pe);
    EXPECT(nb_module_forward(ctx, pe, x), NB_ERR_SHAPE,
           "pos: input [2,5,8] has 5 steps, max_len is 4");
    EXPECT(nb_module_forward(ctx, pe, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 6))), NB_ERR_SHAPE,
           "pos: input [2,3,6] should be [batch, time, 8]");
    EXPECT(nb_module_forward(ctx, pe, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3, 8))), NB_ERR_DTYPE,
           "pos: input is f64, the layer is f32");
    assert_int_equal(nb_tape_length(ctx), 0);
    nb_module_free(ctx, pe);
    nb_module_free(ctx, lin);
    nb_module_free(ctx, mha);
    nb_ctx_free(ctx);
}

/* ---- transformer block and GPT ---------------------------------------------- */
/* Every tensor of the tree is swapped for an F64 copy, so the float64 check
 * covers x and all parameters through the whole block. */
static int tree_to_f64(nb_ctx *ctx, nb_module *m, nb_tensor **out, int n)
{
    for (int i = 0; i < m->n_t; i++) {
        nb_tensor *t = nb_param(ctx, NB_F64, m->t[i]->ndim, m->t[i]->shape);
        assert_int_equal(nb_assign(ctx, t, m->t[i]), NB_OK);
        nb_tensor_free(ctx, m->t[i]);
        m->t[i] = t;
        out[n++] = t;
    }
    for (int c = 0; c < m->n_children; c++)
        n = tree_to_f64(ctx, m->children[c], out, n);
    return n;
}

typedef struct {
    nb_module *m;
    nb_tensor *key_pad;
} block_user;

static nb_tensor *block_fn(nb_ctx *ctx, nb_tensor *const *in, int n, void *user)
{
    (void)n;
    block_user *u = user;
    return nb_transformer_forward(ctx, u->m, in[0], u->key_pad);
}

static void block_gradcheck(int heads, bool causal, const int *pad)
{
    nb_ctx *ctx = new_ctx(21);
    const int64_t N = 2, T = 4, E = 4;
    nb_module *m = nb_transformer_block(ctx, "blk", E, heads, 6, 0, causal);
    assert_non_null(m);
    nb_tensor *in[32];
    in[0] = randn(ctx, NB_F64, NB_SHAPE(N, T, E), true);
    int n = tree_to_f64(ctx, m, in, 1);
    assert_int_equal(n, 13); /* x + 12 parameters */
    for (int i = 1; i < n; i++)
        if (in[i]->ndim == 1) /* biases and norm parameters away from 0 / 1 */
            nb_fill_normal(ctx, in[i], 0.5, 0.5);
    block_user u = {m, pad ? pad_mask(ctx, N, T, pad) : NULL};
    nb_gradcheck_opts go = nb_gradcheck_opts_default();
    nb_gradcheck_result res;
    nb_status st = nb_gradcheck(ctx, block_fn, &u, in, n, &go, &res);
    if (st != NB_OK)
        fprintf(stderr, "block gradcheck: %s worst %g\n", nb_last_error(ctx), res.worst);
    assert_int_equal(st, NB_OK);
    assert_int_equal(res.n, n);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

static void test_transformer(void **state)
{
    (void)state;
    static const int pad[2] = {1, 0};
    block_gradcheck(1, false, NULL);
    block_gradcheck(2, true, NULL);
    block_gradcheck(2, true, pad);

    /* GPT: names, parameter count, logits shape, causality (a later token
     * cannot change an earlier position's logits), and errors */
    nb_ctx *ctx = new_ctx(8);
    const int64_t V = 11, C = 6, W = 8;
    nb_module *g = nb_gpt(ctx, "gpt", V, C, 2, 2, W, 0.1);
    assert_non_null(g);
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, g, &pl), NB_OK);
    assert_int_equal(pl.n, 2 + 2 * 12 + 2);
    assert_string_equal(pl.items[0].name, "emb.weight");
    assert_string_equal(pl.items[1].name, "pos.weight");
    assert_string_equal(pl.items[2].name, "block0.self_attn.in_proj_weight");
    assert_string_equal(pl.items[6].name, "block0.linear1.weight");
    assert_string_equal(pl.items[13].name, "block0.norm2.bias");
    assert_string_equal(pl.items[pl.n - 2].name, "ln_f.weight");
    nb_param_list_free(ctx, &pl);
    /* per block: 4 W^2 + 4 W (attention) + 8 W^2 + 5 W (MLP) + 4 W (norms) */
    assert_int_equal(nb_module_param_count(g),
                     V * W + C * W + 2 * (12 * W * W + 13 * W) + 2 * W);
    nb_module_train(g, false);
    nb_tensor *ids = nb_zeros(ctx, NB_I64, NB_SHAPE(2, 5));
    for (int i = 0; i < 10; i++)
        nb_set(ids, i, (i * 7) % V);
    nb_tensor *y1 = nb_module_forward(ctx, g, ids);
    assert_non_null(y1);
    assert_int_equal(y1->ndim, 3);
    assert_int_equal(y1->shape[2], V);
    nb_set(ids, 4, 3); /* the last token of row 0 */
    nb_tensor *y2 = nb_module_forward(ctx, g, ids);
    assert_non_null(y2);
    double before = 0, last = 0;
    for (int64_t t = 0; t < 5; t++)
        for (int64_t v = 0; v < V; v++) {
            double d = fabs(nb_get(y1, t * V + v) - nb_get(y2, t * V + v));
            if (t < 4)
                before = fmax(before, d);
            else
                last = fmax(last, d);
        }
    assert_true(before == 0 && last > 0);
    EXPECT(nb_module_forward(ctx, g, nb_zeros(ctx, NB_I64, NB_SHAPE(1, 7))), NB_ERR_SHAPE,
           "pos: input [1,7,8] has 7 steps, max_len is 6");
    EXPECT(nb_gpt(ctx, "gpt", V, C, 2, 3, W, 0), NB_ERR_ARG,
           "transformer_block: embed 8 must be a positive multiple of heads 3, hidden 32 positive");
    EXPECT(nb_transformer_block(ctx, "b", 8, 2, 16, 1.0, false), NB_ERR_ARG,
           "transformer_block: dropout 1 is not in [0, 1)");
    EXPECT(nb_transformer_forward(ctx, nb_module_child(g, 0), y1, NULL), NB_ERR_ARG,
           "transformer_forward: embedding is not a transformer block");
    EXPECT(nb_transformer_forward(ctx, nb_module_child(g, 2), y1, NULL), NB_ERR_SHAPE,
           "block0: input [2,5,11] should be [batch, time, 8]");
    nb_module_free(ctx, g);
    nb_ctx_free(ctx);
}

/* ---- PyTorch parity dump ------------------------------------------------------ */
/* kind 0: MHA (heads, causal, padding); kind 1: nb_attention (Tq, Tk, causal, padding);
 * kind 2: a pre-LN transformer block (heads, causal, padding; hidden 24) */
typedef struct {
    int kind, heads;
    bool causal, pad;
    int64_t Tq, Tk;
} pcase;

static const pcase cases[] = {
    {0, 1, false, false, 0, 0}, {0, 1, true, false, 0, 0}, {0, 1, false, true, 0, 0},
    {0, 1, true, true, 0, 0},   {0, 4, false, false, 0, 0}, {0, 4, true, false, 0, 0},
    {0, 4, false, true, 0, 0},  {0, 4, true, true, 0, 0},  {1, 2, false, false, 4, 6},
    {1, 2, true, false, 4, 6},  {1, 2, true, true, 6, 6},  {1, 2, false, true, 5, 6},
    {2, 1, false, false, 0, 0}, {2, 4, true, false, 0, 0}, {2, 4, false, true, 0, 0},
    {2, 2, true, true, 0, 0},
};

static void dump_params(nb_ctx *ctx, FILE *f, nb_module *m)
{
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, m, &pl), NB_OK);
    dump_u32(f, (uint32_t)pl.n);
    for (int i = 0; i < pl.n; i++) {
        dump_str(f, pl.items[i].name);
        dump_tensor(f, pl.items[i].tensor);
        dump_tensor(f, pl.items[i].tensor->grad);
    }
    nb_param_list_free(ctx, &pl);
}

static void dump_case(nb_ctx *ctx, FILE *f, const pcase *c)
{
    static const int pad[3] = {0, 2, 1};
    const int64_t N = 3, T = 7, E = 16;
    uint32_t hdr[4] = {(uint32_t)c->kind, (uint32_t)c->heads, c->causal, c->pad};
    for (int i = 0; i < 4; i++)
        dump_u32(f, hdr[i]);
    if (c->kind == 0 || c->kind == 2) {
        nb_module *m = c->kind == 0 ? nb_mha_layer(ctx, "attn", E, c->heads)
                                    : nb_transformer_block(ctx, "blk", E, c->heads, 24, 0, c->causal);
        assert_non_null(m);
        /* non-zero biases and norm parameters so their use is checked too */
        nb_param_list pl;
        assert_int_equal(nb_module_params(ctx, m, &pl), NB_OK);
        for (int i = 0; i < pl.n; i++)
            if (pl.items[i].tensor->ndim == 1)
                nb_fill_normal(ctx, pl.items[i].tensor, c->kind == 2 && strstr(pl.items[i].name, "norm") &&
                               strstr(pl.items[i].name, "weight") ? 1 : 0, 0.5);
        nb_param_list_free(ctx, &pl);
        nb_tensor *x = randn(ctx, NB_F32, NB_SHAPE(N, T, E), true);
        nb_tensor *kp = c->pad ? pad_mask(ctx, N, T, pad) : NULL;
        nb_tensor *y = c->kind == 0 ? nb_mha_forward(ctx, m, x, c->causal, kp)
                                    : nb_transformer_forward(ctx, m, x, kp);
        assert_non_null(y);
        nb_tensor *gy = randn(ctx, NB_F32, y->ndim, y->shape, false);
        assert_int_equal(nb_backward(ctx, dot(ctx, y, gy)), NB_OK);
        nb_tensor *ts[] = {x, kp, gy, y, x->grad};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
            dump_tensor(f, ts[i]);
        dump_params(ctx, f, m);
        nb_module_free(ctx, m);
    } else {
        const int64_t H = c->heads, D = 5, Dv = 3;
        nb_tensor *q = randn(ctx, NB_F32, NB_SHAPE(N, H, c->Tq, D), true);
        nb_tensor *k = randn(ctx, NB_F32, NB_SHAPE(N, H, c->Tk, D), true);
        nb_tensor *v = randn(ctx, NB_F32, NB_SHAPE(N, H, c->Tk, Dv), true);
        nb_tensor *kp = c->pad ? pad_mask(ctx, N, c->Tk, pad) : NULL;
        nb_tensor *y = nb_attention(ctx, q, k, v, c->causal, kp);
        assert_non_null(y);
        nb_tensor *gy = randn(ctx, NB_F32, y->ndim, y->shape, false);
        assert_int_equal(nb_backward(ctx, dot(ctx, y, gy)), NB_OK);
        nb_tensor *ts[] = {q, k, v, kp, gy, y, q->grad, k->grad, v->grad};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
            dump_tensor(f, ts[i]);
    }
    nb_arena_reset(ctx);
}

static void test_parity_dump(void **state)
{
    (void)state;
    if (!parity_path)
        skip();
    FILE *f = fopen(parity_path, "wb");
    assert_non_null(f);
    nb_ctx *ctx = new_ctx(2026);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        dump_case(ctx, f, &cases[i]);
    fclose(f);
    nb_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    parity_path = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck),      cmocka_unit_test(test_masks),
        cmocka_unit_test(test_mha_names_init), cmocka_unit_test(test_positional),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_transformer),
        cmocka_unit_test(test_parity_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
