/* The embedding op and layer (src/ops/embedding.c, src/nn/embedding.c):
 * known answers for every integer dtype of ids and any shape of them, the
 * gradient only into the rows used (repeated ids sum), the padding row (zero
 * at init, looked up as is, no gradient), every error with its status and
 * text (nothing recorded), 1 vs 4 threads bit for bit, the layer's parameter
 * name and nb_module_init, and a tiny model embedding -> flatten -> linear
 * that trains. The gradient check and PyTorch parity are in test_ops. */
#include "core/internal.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static nb_ctx *new_ctx(int threads)
{
    nb_ctx_opts o = nb_ctx_opts_default();
    o.num_threads = threads;
    nb_ctx *ctx = nb_ctx_new(&o);
    assert_non_null(ctx);
    return ctx;
}

/* The call returned NULL with status st and exactly the text msg, and
 * recorded nothing; clears the error. */
static void expect_err(nb_ctx *ctx, const void *result, nb_status st, const char *msg)
{
    assert_null(result);
    assert_int_equal(nb_last_status(ctx), st);
    assert_string_equal(nb_last_error(ctx), msg);
    assert_null(ctx->tape);
    nb_clear_error(ctx);
}
#define EXPECT(call, st, msg) expect_err(ctx, (call), st, msg)

static void expect_values(const nb_tensor *t, int n, const double *want)
{
    assert_non_null(t);
    assert_int_equal(nb_numel(t), n);
    for (int i = 0; i < n; i++)
        if (nb_get(t, i) != want[i])
            fail_msg("element %d: got %.10g, want %.10g", i, nb_get(t, i), want[i]);
}

/* W [4, 3] = 10 r + c, requiring grad */
static nb_tensor *weight43(nb_ctx *ctx)
{
    nb_tensor *w = nb_param(ctx, NB_F32, NB_SHAPE(4, 3));
    assert_non_null(w);
    for (int i = 0; i < 12; i++)
        nb_set(w, i, 10.0 * (i / 3) + i % 3);
    return w;
}

static nb_tensor *ids_of(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape,
                         const int *v)
{
    nb_tensor *t = nb_empty(ctx, dt, ndim, shape);
    assert_non_null(t);
    for (int64_t i = 0; i < nb_numel(t); i++)
        nb_set(t, i, v[i]);
    return t;
}

static void test_known_answers(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_tensor *w = weight43(ctx);
    static const int v[4] = {3, 0, 3, 1};
    static const double want[12] = {30, 31, 32, 0, 1, 2, 30, 31, 32, 10, 11, 12};
    const nb_dtype dts[3] = {NB_I64, NB_I32, NB_U8};
    for (int k = 0; k < 3; k++) {
        nb_tensor *y = nb_embedding_op(ctx, w, ids_of(ctx, dts[k], NB_SHAPE(2, 2), v), -1);
        assert_non_null(y);
        assert_int_equal(y->dtype, NB_F32);
        assert_int_equal(y->ndim, 3);
        assert_int_equal(y->shape[0], 2);
        assert_int_equal(y->shape[1], 2);
        assert_int_equal(y->shape[2], 3);
        expect_values(y, 12, want);
        assert_true(nb_requires_grad(y));
    }
    /* 1-D ids, and a 0-d id gives one row [dim] */
    nb_tensor *y = nb_embedding_op(ctx, w, ids_of(ctx, NB_I64, NB_SHAPE(4), v), -1);
    assert_int_equal(y->ndim, 2);
    expect_values(y, 12, want);
    nb_tensor *s = nb_scalar(ctx, NB_I64, 2);
    y = nb_embedding_op(ctx, w, s, -1);
    assert_non_null(y);
    assert_int_equal(y->ndim, 1);
    expect_values(y, 3, (const double[]){20, 21, 22});
    /* non-contiguous ids (a transposed view) */
    nb_tensor *it = nb_transpose(ctx, ids_of(ctx, NB_I32, NB_SHAPE(2, 2), v), 0, 1);
    y = nb_embedding_op(ctx, w, it, -1); /* ids 3 3 / 0 1 */
    expect_values(y, 12, (const double[]){30, 31, 32, 30, 31, 32, 0, 1, 2, 10, 11, 12});
    /* non-contiguous weight: the transpose of W^T is W */
    nb_tensor *wt = nb_param(ctx, NB_F64, NB_SHAPE(3, 4));
    for (int i = 0; i < 12; i++)
        nb_set(wt, i, 10.0 * (i % 4) + i / 4);
    y = nb_embedding_op(ctx, nb_transpose(ctx, wt, 0, 1), ids_of(ctx, NB_U8, NB_SHAPE(4), v), -1);
    assert_int_equal(y->dtype, NB_F64);
    expect_values(y, 12, want);
    /* nothing recorded without grad */
    nb_set_requires_grad(ctx, w, false);
    y = nb_embedding_op(ctx, w, ids_of(ctx, NB_I64, NB_SHAPE(4), v), -1);
    assert_false(nb_requires_grad(y));
    assert_int_equal(nb_last_status(ctx), NB_OK);
    nb_ctx_free(ctx);
}

static void test_gradient_rows(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_tensor *w = weight43(ctx);
    static const int v[4] = {3, 0, 3, 1};
    nb_tensor *y = nb_embedding_op(ctx, w, ids_of(ctx, NB_I64, NB_SHAPE(2, 2), v), -1);
    nb_tensor *g = nb_empty(ctx, NB_F32, NB_SHAPE(2, 2, 3));
    for (int i = 0; i < 12; i++)
        nb_set(g, i, i + 1);
    assert_int_equal(nb_backward_with(ctx, y, g), NB_OK);
    /* row 0 <- position 1, row 1 <- position 3, row 2 unused, row 3 <- 0 + 2 */
    static const double want[12] = {4, 5, 6, 10, 11, 12, 0, 0, 0, 1 + 7, 2 + 8, 3 + 9};
    expect_values(w->grad, 12, want);
    /* a second backward over the same graph adds up */
    assert_int_equal(nb_backward_with(ctx, y, g), NB_OK);
    for (int i = 0; i < 12; i++)
        assert_true(nb_get(w->grad, i) == 2 * want[i]);
    nb_ctx_free(ctx);
}

static void test_padding(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_tensor *w = weight43(ctx);
    static const int v[5] = {2, 1, 2, 3, 0};
    nb_tensor *y = nb_embedding_op(ctx, w, ids_of(ctx, NB_I32, NB_SHAPE(5), v), 2);
    /* looked up as is */
    expect_values(y, 15, (const double[]){20, 21, 22, 10, 11, 12, 20, 21, 22, 30, 31, 32, 0, 1, 2});
    assert_int_equal(nb_backward(ctx, nb_sum(ctx, y, 0, NULL, false)), NB_OK);
    expect_values(w->grad, 12, (const double[]){1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1});

    /* the layer: padding row zero at init, no gradient, others N(0, 1) */
    nb_module *m = nb_embedding(ctx, "emb", 6, 4, 5);
    assert_non_null(m);
    nb_tensor *W = nb_module_find(ctx, m, "weight");
    assert_non_null(W);
    int nonzero = 0;
    for (int i = 0; i < 24; i++) {
        if (i >= 20)
            assert_true(nb_get(W, i) == 0.0);
        else
            nonzero += nb_get(W, i) != 0.0;
    }
    assert_int_equal(nonzero, 20);
    static const int v2[6] = {5, 0, 5, 4, 5, 1};
    y = nb_module_forward(ctx, m, ids_of(ctx, NB_I64, NB_SHAPE(2, 3), v2));
    assert_non_null(y);
    assert_int_equal(y->ndim, 3);
    assert_int_equal(nb_backward(ctx, nb_sum(ctx, y, 0, NULL, false)), NB_OK);
    for (int i = 0; i < 24; i++) {
        double want = (i >= 20 || (i >= 8 && i < 16)) ? 0.0 : 1.0; /* rows 2, 3 unused */
        if (nb_get(W->grad, i) != want)
            fail_msg("dW element %d: %g, want %g", i, nb_get(W->grad, i), want);
    }
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_tensor *w = weight43(ctx);
    static const int v[4] = {3, 0, 4, 1};
    nb_tensor *ok = ids_of(ctx, NB_I64, NB_SHAPE(2), v);
    EXPECT(nb_embedding_op(ctx, NULL, ok, -1), NB_ERR_NULL, "embedding: input 0 is NULL");
    EXPECT(nb_embedding_op(ctx, w, NULL, -1), NB_ERR_NULL, "embedding: input 1 is NULL");
    nb_tensor *w1 = nb_param(ctx, NB_F32, NB_SHAPE(4));
    EXPECT(nb_embedding_op(ctx, w1, ok, -1), NB_ERR_SHAPE,
           "embedding: weight must be 2-D [num, dim], got [4]");
    nb_tensor *wi = nb_zeros(ctx, NB_I32, NB_SHAPE(4, 3));
    EXPECT(nb_embedding_op(ctx, wi, ok, -1), NB_ERR_DTYPE,
           "embedding: weight must be f32 or f64, got i32");
    nb_tensor *fid = nb_zeros(ctx, NB_F32, NB_SHAPE(2));
    EXPECT(nb_embedding_op(ctx, w, fid, -1), NB_ERR_DTYPE,
           "embedding: ids must be an integer tensor (i32, i64, u8), got f32");
    EXPECT(nb_embedding_op(ctx, w, ids_of(ctx, NB_I32, NB_SHAPE(2, 2), v), -1), NB_ERR_INDEX,
           "embedding: id 4 at position 2 is outside [0, 4) (weight [4,3])");
    static const int neg[3] = {0, 1, -1};
    EXPECT(nb_embedding_op(ctx, w, ids_of(ctx, NB_I64, NB_SHAPE(3), neg), -1), NB_ERR_INDEX,
           "embedding: id -1 at position 2 is outside [0, 4) (weight [4,3])");
    EXPECT(nb_embedding_op(ctx, w, ok, 4), NB_ERR_ARG,
           "embedding: padding_idx 4 is outside [-1, 4)");
    EXPECT(nb_embedding_op(ctx, w, ok, -2), NB_ERR_ARG,
           "embedding: padding_idx -2 is outside [-1, 4)");
    EXPECT(nb_embedding(ctx, "e", 0, 3, -1), NB_ERR_ARG,
           "embedding: sizes must be positive, got num 0, dim 3");
    EXPECT(nb_embedding(ctx, "e", 4, 0, -1), NB_ERR_ARG,
           "embedding: sizes must be positive, got num 4, dim 0");
    EXPECT(nb_embedding(ctx, "e", 4, 3, 4), NB_ERR_ARG,
           "embedding: padding_idx 4 is outside [-1, 4)");
    /* the layer reports the op's errors */
    nb_module *m = nb_embedding(ctx, NULL, 4, 3, -1);
    assert_non_null(m);
    EXPECT(nb_module_forward(ctx, m, ids_of(ctx, NB_U8, NB_SHAPE(4), v)), NB_ERR_INDEX,
           "embedding: id 4 at position 2 is outside [0, 4) (weight [4,3])");
    nb_module_free(ctx, m);
    assert_null(nb_embedding_op(NULL, w, ok, -1));
    nb_ctx_free(ctx);
}

/* ids repeat, so a parallel backward must not race: 1 and 4 threads agree bit for bit */
static void test_threads(void **state)
{
    (void)state;
    nb_tensor *grads[2], *outs[2];
    nb_ctx *ctxs[2] = {new_ctx(1), new_ctx(4)};
    for (int k = 0; k < 2; k++) {
        nb_ctx *ctx = ctxs[k];
        nb_rng r;
        nb_rng_seed(&r, 7, 1);
        nb_tensor *w = nb_param(ctx, NB_F32, NB_SHAPE(50, 64));
        for (int64_t i = 0; i < nb_numel(w); i++)
            nb_set(w, i, nb_rng_uniform(&r) - 0.5);
        nb_tensor *ids = nb_empty(ctx, NB_I64, NB_SHAPE(64, 64));
        for (int64_t i = 0; i < nb_numel(ids); i++)
            nb_set(ids, i, nb_rng_below(&r, 50));
        nb_tensor *g = nb_empty(ctx, NB_F32, NB_SHAPE(64, 64, 64));
        for (int64_t i = 0; i < nb_numel(g); i++)
            nb_set(g, i, nb_rng_uniform(&r) - 0.5);
        outs[k] = nb_embedding_op(ctx, w, ids, 7);
        assert_non_null(outs[k]);
        assert_int_equal(nb_backward_with(ctx, outs[k], g), NB_OK);
        grads[k] = w->grad;
        for (int j = 0; j < 64; j++)
            assert_true(nb_get(w->grad, 7 * 64 + j) == 0.0);
    }
    assert_memory_equal(outs[0]->data, outs[1]->data, sizeof(float) * 64 * 64 * 64);
    assert_memory_equal(grads[0]->data, grads[1]->data, sizeof(float) * 50 * 64);
    nb_ctx_free(ctxs[0]);
    nb_ctx_free(ctxs[1]);
}

static void test_layer_params_init(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_module *m = nb_embedding(ctx, "emb", 200, 50, 3);
    assert_non_null(m);
    assert_string_equal(nb_module_kind(m), "embedding");
    nb_param_list l;
    assert_int_equal(nb_module_params(ctx, m, &l), NB_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].name, "weight");
    assert_false(l.items[0].is_buffer);
    nb_tensor *W = l.items[0].tensor;
    nb_param_list_free(ctx, &l);
    assert_int_equal(W->ndim, 2);
    assert_int_equal(W->shape[0], 200);
    assert_int_equal(W->shape[1], 50);
    assert_int_equal(W->dtype, NB_F32);
    assert_true(nb_requires_grad(W));
    assert_int_equal(nb_module_param_count(m), 200 * 50);

    /* N(0, 1): 10000 draws */
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < nb_numel(W); i++) {
        double x = nb_get(W, i);
        s += x;
        s2 += x * x;
    }
    double mean = s / 9950, sd = sqrt(s2 / 9950 - mean * mean); /* 50 zeros of the pad row */
    assert_true(fabs(mean) < 0.05);
    assert_true(fabs(sd - 1.0) < 0.05);

    /* nb_module_init resets it: the default, then a given initializer */
    assert_int_equal(nb_fill(ctx, W, 7.0), NB_OK);
    assert_int_equal(nb_module_init(ctx, m, NULL, NULL), NB_OK);
    for (int64_t i = 0; i < nb_numel(W); i++) {
        double x = nb_get(W, i);
        if (i / 50 == 3)
            assert_true(x == 0.0);
        else
            assert_true(x != 7.0);
    }
    nb_init c = nb_init_default(NB_INIT_CONSTANT);
    c.a = 0.5;
    assert_int_equal(nb_module_init(ctx, m, &c, NULL), NB_OK);
    for (int64_t i = 0; i < nb_numel(W); i++)
        assert_true(nb_get(W, i) == (i / 50 == 3 ? 0.0 : 0.5));
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

/* embedding -> flatten -> linear learns which class the first token names */
static void test_trains_in_sequential(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(2);
    nb_module *seq = nb_sequential(ctx, "model");
    assert_int_equal(nb_sequential_add(ctx, seq, nb_embedding(ctx, NULL, 10, 4, 0)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, seq, nb_flatten_layer(ctx, NULL)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, seq, nb_linear(ctx, NULL, 3 * 4, 2, true)), NB_OK);
    assert_non_null(nb_module_find(ctx, seq, "0.weight"));
    assert_non_null(nb_module_find(ctx, seq, "2.weight"));
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    oo.lr = 0.05;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    assert_non_null(opt);
    assert_int_equal(nb_optim_add_module(ctx, opt, seq, false), NB_OK);
    nb_rng r;
    nb_rng_seed(&r, 3, 0);
    int64_t idv[16 * 3], tv[16];
    for (int i = 0; i < 16; i++) {
        for (int t = 0; t < 3; t++)
            idv[i * 3 + t] = 1 + (int64_t)nb_rng_below(&r, 9); /* id 0 is padding */
        idv[i * 3 + 2] = i % 3 == 0 ? 0 : idv[i * 3 + 2];
        tv[i] = idv[i * 3] % 2;
    }
    double first = 0, last = 0;
    for (int step = 0; step < 40; step++) {
        nb_arena_reset(ctx);
        nb_tensor *x = nb_from_data(ctx, NB_I64, NB_SHAPE(16, 3), idv);
        nb_tensor *t = nb_from_data(ctx, NB_I64, NB_SHAPE(16), tv);
        nb_tensor *y = nb_module_forward(ctx, seq, x);
        assert_non_null(y);
        assert_int_equal(y->ndim, 2);
        assert_int_equal(y->shape[1], 2);
        nb_tensor *loss = nb_cross_entropy(ctx, y, t, NULL);
        assert_non_null(loss);
        double lv = nb_get(loss, 0);
        if (step == 0)
            first = lv;
        last = lv;
        nb_optim_zero_grad(opt);
        assert_int_equal(nb_backward(ctx, loss), NB_OK);
        assert_int_equal(nb_optim_step(ctx, opt), NB_OK);
    }
    assert_true(last < 0.3 * first);
    /* the padding row never moved */
    nb_tensor *W = nb_module_find(ctx, seq, "0.weight");
    for (int j = 0; j < 4; j++)
        assert_true(nb_get(W, j) == 0.0);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, seq);
    nb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_gradient_rows),
        cmocka_unit_test(test_padding),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_layer_params_init),
        cmocka_unit_test(test_trains_in_sequential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
