/* Recurrent layers (src/nn/rnn.c): parameter names and init, a float64
 * gradient check of LSTM and GRU (input, h0, c0 and every parameter, with
 * lengths), a 500-step LSTM, truncated BPTT, dropout between layers, bad
 * input. With a file argument it also writes the PyTorch parity cases that
 * parity_rnn.py replays. Usage: test_rnn [PARITY_FILE] */
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

static nb_module *make(nb_ctx *ctx, const char *name, nb_rnn_kind k, int64_t in, int64_t hid,
                       int layers, bool bidir, bool bf, bool bias)
{
    nb_rnn_opts o = nb_rnn_opts_default(k, in, hid);
    o.layers = layers;
    o.bidirectional = bidir;
    o.batch_first = bf;
    o.bias = bias;
    nb_module *m = nb_rnn_layer(ctx, name, &o);
    if (!m)
        fprintf(stderr, "%s\n", nb_last_error(ctx));
    assert_non_null(m);
    return m;
}

/* sum over all elements of a * b: folds an upstream gradient into a loss */
static nb_tensor *dot(nb_ctx *ctx, nb_tensor *a, nb_tensor *b)
{
    return nb_sum(ctx, nb_mul(ctx, a, b), 0, NULL, false);
}

/* ---- names, init, module_forward ---------------------------------------- */
static void test_names_init(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_module *seq = nb_sequential(ctx, "model");
    assert_int_equal(nb_sequential_add(ctx, seq, make(ctx, "lstm", NB_LSTM, 5, 7, 2, true, false, true)),
                     NB_OK);
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, seq, &pl), NB_OK);
    assert_int_equal(pl.n, 16);
    static const char *want[] = {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0",
                                 "lstm.bias_hh_l0", "lstm.weight_ih_l0_reverse",
                                 "lstm.weight_hh_l0_reverse", "lstm.bias_ih_l0_reverse",
                                 "lstm.bias_hh_l0_reverse", "lstm.weight_ih_l1"};
    for (int i = 0; i < 9; i++)
        assert_string_equal(pl.items[i].name, want[i]);
    assert_string_equal(pl.items[15].name, "lstm.bias_hh_l1_reverse");
    /* shapes: W_ih of layer 1 sees both directions */
    assert_int_equal(pl.items[8].tensor->shape[0], 28);
    assert_int_equal(pl.items[8].tensor->shape[1], 14);
    double k = 1 / sqrt(7.0), mx = 0;
    for (int i = 0; i < pl.n; i++)
        for (int64_t j = 0; j < nb_numel(pl.items[i].tensor); j++)
            mx = fmax(mx, fabs(nb_get(pl.items[i].tensor, j)));
    assert_true(mx <= k && mx > 0.9 * k);
    nb_param_list_free(ctx, &pl);
    assert_int_equal(nb_module_init(ctx, seq, NULL, NULL), NB_OK);
    assert_string_equal(nb_module_kind(nb_module_child(seq, 0)), "lstm");

    /* module_forward is rnn_forward with zeros and no lengths */
    nb_tensor *x = randn(ctx, NB_F32, NB_SHAPE(4, 3, 5), false);
    nb_tensor *a = nb_module_forward(ctx, seq, x);
    nb_tensor *b = nb_rnn_forward(ctx, nb_module_child(seq, 0), x, NULL, NULL, NULL, NULL, NULL);
    assert_non_null(a);
    assert_int_equal(a->ndim, 3);
    assert_int_equal(a->shape[2], 14);
    for (int64_t i = 0; i < nb_numel(a); i++)
        assert_true(nb_get(a, i) == nb_get(b, i));
    nb_module_free(ctx, seq);
    nb_ctx_free(ctx);
}

/* ---- float64 gradient check ------------------------------------------------ */
/* The module's parameters are swapped for F64 ones and passed to the check
 * as inputs too (the check perturbs them in place), so the gradients of the
 * input, h0, c0 and every parameter are compared with central differences. */
typedef struct {
    nb_module *m;
    nb_tensor *lengths;
    int n_state; /* h0 (and c0) after x */
} gc_user;

static nb_tensor *flat(nb_ctx *ctx, nb_tensor *t) { return nb_flatten(ctx, t, 0, -1); }

static nb_tensor *gc_fn(nb_ctx *ctx, nb_tensor *const *in, int n, void *user)
{
    (void)n;
    gc_user *u = user;
    nb_tensor *hn = NULL, *cn = NULL;
    nb_tensor *c0 = u->n_state > 1 ? in[2] : NULL;
    nb_tensor *y = nb_rnn_forward(ctx, u->m, in[0], in[1], c0, u->lengths, &hn, c0 ? &cn : NULL);
    if (!y)
        return NULL;
    nb_tensor *parts[3] = {flat(ctx, y), flat(ctx, hn), c0 ? flat(ctx, cn) : NULL};
    return nb_concat(ctx, c0 ? 3 : 2, parts, 0);
}

static void to_f64(nb_ctx *ctx, nb_module *m)
{
    for (int i = 0; i < m->n_t; i++) {
        nb_tensor *t = nb_param(ctx, NB_F64, m->t[i]->ndim, m->t[i]->shape);
        assert_int_equal(nb_assign(ctx, t, m->t[i]), NB_OK);
        nb_tensor_free(ctx, m->t[i]);
        m->t[i] = t;
    }
}

static void gradcheck_kind(nb_rnn_kind k, bool bidir, bool bf, bool lengths)
{
    nb_ctx *ctx = new_ctx(7);
    const int64_t T = 4, N = 3, I = 3, H = 3;
    nb_module *m = make(ctx, "cell", k, I, H, 1, bidir, bf, true);
    to_f64(ctx, m);
    int D = bidir ? 2 : 1, ns = k == NB_LSTM ? 2 : 1;
    nb_tensor *in[16];
    int n = 0;
    in[n++] = bf ? randn(ctx, NB_F64, NB_SHAPE(N, T, I), true) : randn(ctx, NB_F64, NB_SHAPE(T, N, I), true);
    for (int s = 0; s < ns; s++)
        in[n++] = randn(ctx, NB_F64, NB_SHAPE(D, N, H), true);
    for (int i = 0; i < m->n_t; i++)
        in[n++] = m->t[i];
    gc_user u = {m, NULL, ns};
    if (lengths) {
        u.lengths = nb_zeros(ctx, NB_I64, NB_SHAPE(N));
        nb_set(u.lengths, 0, 4);
        nb_set(u.lengths, 1, 1);
        nb_set(u.lengths, 2, 2);
    }
    nb_gradcheck_opts go = nb_gradcheck_opts_default();
    nb_gradcheck_result res;
    nb_status st = nb_gradcheck(ctx, gc_fn, &u, in, n, &go, &res);
    if (st != NB_OK)
        fprintf(stderr, "gradcheck kind %d: %s worst %g\n", (int)k, nb_last_error(ctx), res.worst);
    assert_int_equal(st, NB_OK);
    assert_int_equal(res.n, n); /* x, h0, c0 and every parameter were checked */
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

static void test_gradcheck(void **state)
{
    (void)state;
    gradcheck_kind(NB_LSTM, false, false, false);
    gradcheck_kind(NB_LSTM, true, true, true);
    gradcheck_kind(NB_GRU, false, true, false);
    gradcheck_kind(NB_GRU, true, false, true);
    gradcheck_kind(NB_RNN_TANH, true, false, true);
}

/* ---- an embedding followed by a recurrent layer ---------------------------
 * A sequential runs them as one (layer 0's input projection over the table,
 * src/nn/rnn.c): the same outputs and gradients as the two run apart, and a
 * float64 gradient check of the fused path. */
static int64_t gates_of_kind(nb_rnn_kind k) { return k == NB_LSTM ? 4 : k == NB_GRU ? 3 : 1; }

static bool tape_has_table_gather(nb_ctx *ctx, int64_t G)
{
    for (const nb__node *n = ctx->tape; n; n = n->prev)
        if (n->op == NB__OP_EMBEDDING && n->in[0]->shape[1] == G)
            return true;
    return false;
}

typedef struct {
    nb_module *seq;
    int64_t rows, cols, V;
} fused_user;

static nb_tensor *fused_ids(nb_ctx *ctx, int64_t rows, int64_t cols, int64_t V)
{
    nb_tensor *ids = nb_zeros(ctx, NB_I64, NB_SHAPE(rows, cols));
    for (int64_t i = 0; ids && i < rows * cols; i++)
        nb_set(ids, i, (double)((i * 7 + 3) % V)); /* every row, the padding one too */
    return ids;
}

static nb_tensor *fused_fn(nb_ctx *ctx, nb_tensor *const *in, int n, void *user)
{
    (void)in, (void)n;
    const fused_user *u = user;
    return flat(ctx, nb_module_forward(ctx, u->seq, fused_ids(ctx, u->rows, u->cols, u->V)));
}

static void fused_case(nb_rnn_kind k, bool bidir, bool bf, int64_t pad)
{
    nb_ctx *ctx = new_ctx(11);
    const int64_t V = 5, E = 3, H = 4, T = 4, N = 3;
    nb_module *emb = nb_embedding(ctx, "emb", V, E, pad);
    nb_module *rnn = make(ctx, "rnn", k, E, H, 2, bidir, bf, true);
    assert_non_null(emb);
    to_f64(ctx, emb);
    to_f64(ctx, rnn);
    nb_module *seq = nb_sequential(ctx, NULL);
    assert_int_equal(nb_sequential_add(ctx, seq, emb), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, seq, rnn), NB_OK);
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, seq, &pl), NB_OK);
    double *g1[2 * NB__MOD_MAX_T], *y0 = NULL;
    nb_tensor *y[2];
    for (int pass = 0; pass < 2; pass++) {
        nb_arena_reset(ctx);
        nb_zero_grads(ctx);
        nb_tensor *ids = fused_ids(ctx, bf ? N : T, bf ? T : N, V);
        y[pass] = pass == 0 ? nb_module_forward(ctx, seq, ids)
                            : nb_module_forward(ctx, rnn, nb_module_forward(ctx, emb, ids));
        if (!y[pass])
            fail_msg("pass %d: %s", pass, nb_last_error(ctx));
        /* with a padding index the two stay apart (see nb__rnn_fuses) */
        assert_int_equal(tape_has_table_gather(ctx, gates_of_kind(k) * H),
                         pass == 0 && pad < 0);
        nb_tensor *w = randn(ctx, NB_F64, y[pass]->ndim, y[pass]->shape, false);
        for (int64_t i = 0; i < nb_numel(w); i++) /* the same upstream weights both passes */
            nb_set(w, i, sin(1.0 + (double)i));
        assert_int_equal(nb_backward(ctx, dot(ctx, y[pass], w)), NB_OK);
        if (pass == 0) {
            y0 = malloc(sizeof(double) * (size_t)nb_numel(y[0]));
            for (int64_t j = 0; j < nb_numel(y[0]); j++)
                y0[j] = nb_get(y[0], j);
            for (int i = 0; i < pl.n; i++) {
                nb_tensor *g = pl.items[i].tensor->grad;
                assert_non_null(g);
                g1[i] = malloc(sizeof(double) * (size_t)nb_numel(g));
                for (int64_t j = 0; j < nb_numel(g); j++)
                    g1[i][j] = nb_get(g, j);
            }
            continue;
        }
        for (int64_t j = 0; j < nb_numel(y[1]); j++)
            assert_true(fabs(y0[j] - nb_get(y[1], j)) <= 1e-12);
        free(y0);
        for (int i = 0; i < pl.n; i++) {
            nb_tensor *g = pl.items[i].tensor->grad;
            for (int64_t j = 0; j < nb_numel(g); j++)
                if (fabs(g1[i][j] - nb_get(g, j)) > 1e-12 * (1 + fabs(g1[i][j])))
                    fail_msg("%s[%lld]: fused %g, apart %g", pl.items[i].name, (long long)j,
                             g1[i][j], nb_get(g, j));
            if (pad >= 0 && pl.items[i].tensor == emb->t[0]) /* the padding row gets nothing */
                for (int64_t j = 0; j < E; j++)
                    assert_true(g1[0][pad * E + j] == 0.0);
            free(g1[i]);
        }
    }
    /* and the fused path against finite differences (a padding row has no
     * gradient by definition, so only without one) */
    nb_tensor *in[2 * NB__MOD_MAX_T];
    for (int i = 0; i < pl.n; i++)
        in[i] = pl.items[i].tensor;
    fused_user u = {seq, bf ? N : T, bf ? T : N, V};
    nb_gradcheck_opts go = nb_gradcheck_opts_default();
    nb_gradcheck_result res;
    nb_status st = pad >= 0 ? NB_OK
                   : nb_gradcheck(ctx, fused_fn, &u, in, pl.n < 16 ? pl.n : 16, &go, &res);
    if (st != NB_OK)
        fail_msg("gradcheck: %s worst %g", nb_last_error(ctx), res.worst);
    nb_param_list_free(ctx, &pl);
    nb_module_free(ctx, seq);
    nb_ctx_free(ctx);
}

static void test_embedding_fused(void **state)
{
    (void)state;
    fused_case(NB_LSTM, false, true, -1);
    fused_case(NB_LSTM, true, false, -1);
    fused_case(NB_GRU, false, false, -1);
    fused_case(NB_LSTM, false, false, 2);
    fused_case(NB_RNN_TANH, true, true, -1);
}

/* ---- long sequences ---------------------------------------------------------- */
static void test_long_sequence(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(3);
    const int64_t T = 500, N = 4, I = 8, H = 16;
    nb_module *m = make(ctx, "lstm", NB_LSTM, I, H, 1, false, false, true);
    nb_tensor *ps[4] = {m->t[0], m->t[1], m->t[2], m->t[3]};
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    oo.lr = 0.01;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    assert_int_equal(nb_optim_add_module(ctx, opt, m, false), NB_OK);
    double first = 0, last = 0;
    for (int step = 0; step < 5; step++) {
        nb_arena_reset(ctx);
        nb_optim_zero_grad(opt);
        nb_tensor *x = randn(ctx, NB_F32, NB_SHAPE(T, N, I), false);
        nb_tensor *y = nb_rnn_forward(ctx, m, x, NULL, NULL, NULL, NULL, NULL);
        assert_non_null(y);
        /* regress the last step's output to a constant */
        nb_tensor *last_h = nb_slice(ctx, y, 0, T - 1, T, 1);
        nb_tensor *loss = nb_mean(ctx, nb_square(ctx, nb_add_scalar(ctx, last_h, -0.5)), 0, NULL, false);
        assert_non_null(loss);
        assert_int_equal(nb_backward(ctx, loss), NB_OK);
        double norm = 0;
        for (int i = 0; i < 4; i++)
            for (int64_t j = 0; j < nb_numel(ps[i]); j++)
                assert_true(isfinite(nb_get(ps[i]->grad, j)));
        assert_int_equal(nb_clip_grad_norm(ctx, 4, ps, 1.0, &norm), NB_OK);
        assert_true(isfinite(norm));
        assert_int_equal(nb_optim_step(ctx, opt), NB_OK);
        last = nb_get(loss, 0);
        if (step == 0)
            first = last;
    }
    assert_true(isfinite(last) && last < first);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

/* ---- truncated BPTT: the second chunk from the first's detached state ------- */
static void tbptt_kind(nb_rnn_kind k, bool bf)
{
    nb_ctx *ctx = new_ctx(5);
    const int64_t T = 10, N = 3, I = 4, H = 6;
    nb_module *m = make(ctx, "r", k, I, H, 2, false, bf, true);
    int ax = bf ? 1 : 0;
    nb_tensor *x = bf ? randn(ctx, NB_F32, NB_SHAPE(N, T, I), false) : randn(ctx, NB_F32, NB_SHAPE(T, N, I), false);
    bool lstm = k == NB_LSTM;
    nb_tensor *hn, *cn = NULL, *h1, *c1 = NULL, *h2, *c2 = NULL;
    nb_tensor *full = nb_rnn_forward(ctx, m, x, NULL, NULL, NULL, &hn, lstm ? &cn : NULL);
    nb_tensor *a = nb_rnn_forward(ctx, m, nb_slice(ctx, x, ax, 0, 5, 1), NULL, NULL, NULL, &h1,
                                  lstm ? &c1 : NULL);
    nb_tensor *b = nb_rnn_forward(ctx, m, nb_slice(ctx, x, ax, 5, 10, 1), nb_detach(ctx, h1),
                                  lstm ? nb_detach(ctx, c1) : NULL, NULL, &h2, lstm ? &c2 : NULL);
    assert_non_null(full);
    assert_non_null(a);
    assert_non_null(b);
    nb_tensor *want = nb_contiguous(ctx, nb_slice(ctx, full, ax, 5, 10, 1));
    b = nb_contiguous(ctx, b);
    for (int64_t i = 0; i < nb_numel(b); i++)
        assert_true(fabs(nb_get(b, i) - nb_get(want, i)) <= 1e-6);
    for (int64_t i = 0; i < nb_numel(hn); i++)
        assert_true(fabs(nb_get(h2, i) - nb_get(hn, i)) <= 1e-6);
    for (int64_t i = 0; lstm && i < nb_numel(cn); i++)
        assert_true(fabs(nb_get(c2, i) - nb_get(cn, i)) <= 1e-6);
    /* the second chunk's backward stops at the detached state */
    nb_tensor *loss = nb_sum(ctx, b, 0, NULL, false);
    assert_int_equal(nb_backward(ctx, loss), NB_OK);
    assert_null(h1->grad);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

static void test_tbptt(void **state)
{
    (void)state;
    tbptt_kind(NB_LSTM, false);
    tbptt_kind(NB_GRU, true);
    tbptt_kind(NB_RNN_RELU, false);
}

/* ---- dropout between layers ------------------------------------------------- */
static void test_dropout(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(9);
    nb_rnn_opts o = nb_rnn_opts_default(NB_GRU, 4, 5);
    o.layers = 2;
    o.dropout = 0.5;
    nb_module *m = nb_rnn_layer(ctx, "gru", &o);
    assert_non_null(m);
    nb_tensor *x = randn(ctx, NB_F32, NB_SHAPE(6, 2, 4), false);
    nb_tensor *tr = nb_module_forward(ctx, m, x);
    nb_module_train(m, false);
    nb_tensor *ev = nb_module_forward(ctx, m, x);
    m->f[0] = 0; /* no dropout: evaluation mode must match it */
    nb_tensor *nd = nb_module_forward(ctx, m, x);
    int differ = 0;
    for (int64_t i = 0; i < nb_numel(ev); i++) {
        assert_true(nb_get(ev, i) == nb_get(nd, i));
        differ += nb_get(tr, i) != nb_get(ev, i);
    }
    assert_true(differ > 0);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

/* ---- bad input ------------------------------------------------------------ */
static void test_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_rnn_opts o = nb_rnn_opts_default(NB_LSTM, 0, 4);
    EXPECT(nb_rnn_layer(ctx, "l", &o), NB_ERR_ARG,
           "lstm: input, hidden and layers must be positive, got 0, 4, 1");
    o = nb_rnn_opts_default(NB_GRU, 3, 4);
    o.layers = 0;
    EXPECT(nb_rnn_layer(ctx, "l", &o), NB_ERR_ARG,
           "gru: input, hidden and layers must be positive, got 3, 4, 0");
    o.layers = 9;
    char msg[160];
    snprintf(msg, sizeof msg, "gru: 9 layers x 1 directions need 36 tensors, at most %d fit one "
             "module (at most %d layers)", NB__MOD_MAX_T, NB__MOD_MAX_T / 4 < 8 ? NB__MOD_MAX_T / 4 : 8);
    EXPECT(nb_rnn_layer(ctx, "l", &o), NB_ERR_ARG, msg);
    o.layers = 1;
    o.dropout = 1.5;
    EXPECT(nb_rnn_layer(ctx, "l", &o), NB_ERR_ARG, "gru: dropout 1.5 is not in [0, 1]");
    o = nb_rnn_opts_default((nb_rnn_kind)7, 3, 4);
    EXPECT(nb_rnn_layer(ctx, "l", &o), NB_ERR_ARG, "rnn_layer: unknown kind 7");
    EXPECT(nb_rnn_layer(ctx, "l", NULL), NB_ERR_NULL, "rnn_layer: options are NULL");

    nb_module *lstm = make(ctx, "enc", NB_LSTM, 3, 4, 2, false, false, true);
    nb_module *gru = make(ctx, NULL, NB_GRU, 3, 4, 1, true, true, true);
    nb_tensor *x = randn(ctx, NB_F32, NB_SHAPE(5, 2, 3), false);
    EXPECT(nb_rnn_forward(ctx, lstm, randn(ctx, NB_F32, NB_SHAPE(5, 3), false), NULL, NULL, NULL,
                          NULL, NULL),
           NB_ERR_SHAPE, "enc: input [5,3] should be [time, batch, features] with 3 features");
    EXPECT(nb_rnn_forward(ctx, gru, randn(ctx, NB_F32, NB_SHAPE(2, 5, 4), false), NULL, NULL, NULL,
                          NULL, NULL),
           NB_ERR_SHAPE, "gru: input [2,5,4] should be [batch, time, features] with 3 features");
    EXPECT(nb_rnn_forward(ctx, lstm, nb_cast(ctx, x, NB_F64), NULL, NULL, NULL, NULL, NULL),
           NB_ERR_DTYPE, "enc: input is f64, the layer is f32");
    EXPECT(nb_rnn_forward(ctx, lstm, x, nb_zeros(ctx, NB_F32, NB_SHAPE(1, 2, 4)), NULL, NULL, NULL,
                          NULL),
           NB_ERR_SHAPE, "enc: h0 [1,2,4] should be [2,2,4] (layers x directions, batch, hidden)");
    EXPECT(nb_rnn_forward(ctx, lstm, x, NULL, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 4)), NULL, NULL,
                          NULL),
           NB_ERR_SHAPE, "enc: c0 [2,3,4] should be [2,2,4] (layers x directions, batch, hidden)");
    EXPECT(nb_rnn_forward(ctx, gru, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 5, 3)), NULL,
                          nb_zeros(ctx, NB_F32, NB_SHAPE(2, 2, 4)), NULL, NULL, NULL),
           NB_ERR_ARG, "gru: c0 is only for an LSTM");
    nb_tensor *len = nb_zeros(ctx, NB_I64, NB_SHAPE(2));
    nb_set(len, 0, 5);
    nb_set(len, 1, 6);
    EXPECT(nb_rnn_forward(ctx, lstm, x, NULL, NULL, len, NULL, NULL), NB_ERR_ARG,
           "enc: lengths[1] = 6 is outside [1, 5]");
    nb_set(len, 1, 0);
    EXPECT(nb_rnn_forward(ctx, lstm, x, NULL, NULL, len, NULL, NULL), NB_ERR_ARG,
           "enc: lengths[1] = 0 is outside [1, 5]");
    EXPECT(nb_rnn_forward(ctx, lstm, x, NULL, NULL, nb_zeros(ctx, NB_F32, NB_SHAPE(2)), NULL, NULL),
           NB_ERR_SHAPE, "enc: lengths f32 [2] should be [2] of i32 or i64");
    EXPECT(nb_rnn_forward(ctx, lstm, x, NULL, NULL, nb_zeros(ctx, NB_I32, NB_SHAPE(3)), NULL, NULL),
           NB_ERR_SHAPE, "enc: lengths i32 [3] should be [2] of i32 or i64");
    EXPECT(nb_rnn_forward(ctx, lstm, NULL, NULL, NULL, NULL, NULL, NULL), NB_ERR_NULL,
           "enc: input 0 is NULL");
    nb_module *lin = nb_linear(ctx, "fc", 3, 4, true);
    EXPECT(nb_rnn_forward(ctx, lin, x, NULL, NULL, NULL, NULL, NULL), NB_ERR_ARG,
           "rnn_forward: linear is not a recurrent layer");
    assert_int_equal(nb_tape_length(ctx), 0);
    nb_module_free(ctx, lin);
    nb_module_free(ctx, lstm);
    nb_module_free(ctx, gru);
    nb_ctx_free(ctx);
}

/* ---- PyTorch parity dump ------------------------------------------------------ */
typedef struct {
    nb_rnn_kind k;
    int layers;
    bool bidir, bf, bias, lengths, h0;
} pcase;

static const pcase cases[] = {
    {NB_RNN_TANH, 1, false, false, true, false, true},
    {NB_RNN_TANH, 2, true, false, true, true, true},
    {NB_RNN_RELU, 2, true, true, true, true, false},
    {NB_LSTM, 2, true, false, true, true, true},
    {NB_LSTM, 1, false, true, false, false, false},
    {NB_LSTM, 2, false, true, true, false, true},
    {NB_LSTM, 2, true, true, false, true, true},
    {NB_GRU, 2, true, true, true, true, true},
    {NB_GRU, 1, true, false, false, false, false},
    {NB_GRU, 2, false, false, true, true, true},
};

static void dump_case(nb_ctx *ctx, FILE *f, const pcase *c)
{
    const int64_t T = 7, N = 5, I = 6, H = 8;
    int D = c->bidir ? 2 : 1;
    bool lstm = c->k == NB_LSTM;
    nb_module *m = make(ctx, "rnn", c->k, I, H, c->layers, c->bidir, c->bf, c->bias);
    nb_tensor *x = c->bf ? randn(ctx, NB_F32, NB_SHAPE(N, T, I), true) : randn(ctx, NB_F32, NB_SHAPE(T, N, I), true);
    nb_tensor *h0 = c->h0 ? randn(ctx, NB_F32, NB_SHAPE(c->layers * D, N, H), true) : NULL;
    nb_tensor *c0 = c->h0 && lstm ? randn(ctx, NB_F32, NB_SHAPE(c->layers * D, N, H), true) : NULL;
    nb_tensor *len = NULL;
    if (c->lengths) {
        static const int32_t l[5] = {7, 3, 1, 7, 5};
        len = nb_from_data(ctx, NB_I32, NB_SHAPE(N), l);
    }
    nb_tensor *hn, *cn = NULL;
    nb_tensor *y = nb_rnn_forward(ctx, m, x, h0, c0, len, &hn, lstm ? &cn : NULL);
    assert_non_null(y);
    nb_tensor *gy = randn(ctx, NB_F32, y->ndim, y->shape, false);
    nb_tensor *gh = randn(ctx, NB_F32, hn->ndim, hn->shape, false);
    nb_tensor *gc = lstm ? randn(ctx, NB_F32, cn->ndim, cn->shape, false) : NULL;
    nb_tensor *loss = nb_add(ctx, dot(ctx, y, gy), dot(ctx, hn, gh));
    if (lstm)
        loss = nb_add(ctx, loss, dot(ctx, cn, gc));
    assert_int_equal(nb_backward(ctx, loss), NB_OK);
    uint32_t hdr[5] = {(uint32_t)c->k, (uint32_t)c->layers, c->bidir, c->bf, c->bias};
    for (int i = 0; i < 5; i++)
        dump_u32(f, hdr[i]);
    nb_tensor *ts[] = {x, h0, c0, len, gy, gh, gc, y, hn, cn, x->grad, h0 ? h0->grad : NULL,
                       c0 ? c0->grad : NULL};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        dump_tensor(f, ts[i]);
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, m, &pl), NB_OK);
    dump_u32(f, (uint32_t)pl.n);
    for (int i = 0; i < pl.n; i++) {
        dump_str(f, pl.items[i].name);
        dump_tensor(f, pl.items[i].tensor);
        dump_tensor(f, pl.items[i].tensor->grad);
    }
    nb_param_list_free(ctx, &pl);
    nb_module_free(ctx, m);
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
        cmocka_unit_test(test_names_init), cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_long_sequence), cmocka_unit_test(test_tbptt),
        cmocka_unit_test(test_dropout), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_embedding_fused),
        cmocka_unit_test(test_parity_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
