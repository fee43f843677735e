/* Bad input never crashes: every case checks the returned status and the
 * recorded text. Also: arena exhaustion and injected out-of-memory at every
 * allocation of a training step, with nothing leaked. */
#include "core/internal.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static nb_ctx *new_ctx(void)
{
    nb_ctx *ctx = nb_ctx_new(NULL);
    assert_non_null(ctx);
    return ctx;
}

/* The op returned NULL, the status is `st` and the message is exactly `msg`
 * (or contains it, when `exact` is false). Clears the error. */
static void expect_err(nb_ctx *ctx, const void *result, nb_status st, const char *msg, bool exact)
{
    assert_null(result);
    assert_int_equal(nb_last_status(ctx), st);
    if (exact)
        assert_string_equal(nb_last_error(ctx), msg);
    else if (!strstr(nb_last_error(ctx), msg))
        fail_msg("error '%s' does not contain '%s'", nb_last_error(ctx), msg);
    nb_clear_error(ctx);
    assert_int_equal(nb_last_status(ctx), NB_OK);
    assert_string_equal(nb_last_error(ctx), "");
}
#define EXPECT(call, st, msg) expect_err(ctx, (call), st, msg, true)
#define EXPECT_HAS(call, st, msg) expect_err(ctx, (call), st, msg, false)

static void test_chained_expression_first_error(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(32, 784));
    nb_tensor *w = nb_zeros(ctx, NB_F32, NB_SHAPE(512, 10));
    nb_tensor *b = nb_zeros(ctx, NB_F32, NB_SHAPE(10));
    /* one check for the whole expression; the first cause is kept */
    EXPECT(nb_relu(ctx, nb_add(ctx, nb_matmul(ctx, x, w), b)), NB_ERR_SHAPE,
           "matmul: inner dimensions differ: [32,784] @ [512,10]");
    nb_ctx_free(ctx);
}

static void test_null_inputs(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *a = nb_zeros(ctx, NB_F32, NB_SHAPE(2));
    EXPECT(nb_add(ctx, NULL, a), NB_ERR_NULL, "add: input 0 is NULL");
    EXPECT(nb_mul(ctx, a, NULL), NB_ERR_NULL, "mul: input 1 is NULL");
    EXPECT(nb_exp(ctx, NULL), NB_ERR_NULL, "exp: input 0 is NULL");
    EXPECT(nb_sum(ctx, NULL, 0, NULL, false), NB_ERR_NULL, "sum: input 0 is NULL");
    nb_tensor *list[2] = {a, NULL};
    EXPECT(nb_concat(ctx, 2, list, 0), NB_ERR_NULL, "concat: input 1 is NULL");
    assert_int_equal(nb_backward(ctx, NULL), NB_ERR_NULL);
    nb_clear_error(ctx);
    /* a NULL context is refused, not dereferenced */
    assert_null(nb_add(NULL, a, a));
    assert_null(nb_zeros(NULL, NB_F32, NB_SHAPE(2)));
    assert_int_equal(nb_backward(NULL, a), NB_ERR_NULL);
    assert_int_equal(nb_last_status(NULL), NB_ERR_NULL);
    nb_ctx_free(NULL);
    nb_ctx_free(ctx);
}

static void test_shapes(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *a = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3));
    nb_tensor *b = nb_zeros(ctx, NB_F32, NB_SHAPE(4));
    nb_tensor *c = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 4));
    EXPECT(nb_add(ctx, a, b), NB_ERR_SHAPE, "add: shapes do not broadcast: [2,3] and [4]");
    EXPECT(nb_where(ctx, b, a, a), NB_ERR_SHAPE,
           "where: shapes do not broadcast: mask [4], a [2,3], b [2,3]");
    EXPECT(nb_matmul(ctx, c, nb_zeros(ctx, NB_F32, NB_SHAPE(5, 4, 2))), NB_ERR_SHAPE,
           "matmul: batch dimensions do not broadcast: [2,3,4] @ [5,4,2]");
    EXPECT(nb_matmul(ctx, nb_scalar(ctx, NB_F32, 1), a), NB_ERR_SHAPE,
           "matmul: operands must have at least one dimension (got 0 and 2)");
    EXPECT(nb_reshape(ctx, a, NB_SHAPE(4, 2)), NB_ERR_SHAPE,
           "reshape: [2,3] has 6 elements, [4,2] needs 8");
    EXPECT(nb_reshape(ctx, a, NB_SHAPE(-1, 4)), NB_ERR_SHAPE, "reshape: cannot view [2,3] as [-1,4]");
    EXPECT(nb_reshape(ctx, a, NB_SHAPE(-1, -1)), NB_ERR_SHAPE,
           "reshape: bad size -1 in [-1,-1] (one -1 allowed)");
    EXPECT(nb_expand(ctx, a, NB_SHAPE(2, 4)), NB_ERR_SHAPE, "expand: [2,3] cannot be broadcast to [2,4]");
    EXPECT(nb_mse_loss(ctx, b, nb_zeros(ctx, NB_F32, NB_SHAPE(4, 1)), NB_REDUCE_MEAN), NB_ERR_SHAPE,
           "mse_loss: prediction [4] and target [4,1] differ in shape");
    nb_tensor *parts[2] = {a, nb_zeros(ctx, NB_F32, NB_SHAPE(3, 3))};
    EXPECT(nb_concat(ctx, 2, parts, 1), NB_ERR_SHAPE,
           "concat: input 1 [3,3] does not match input 0 [2,3] off axis 1");
    nb_tensor *t32 = nb_zeros(ctx, NB_I64, NB_SHAPE(3));
    EXPECT(nb_cross_entropy(ctx, a, t32, NULL), NB_ERR_SHAPE,
           "cross_entropy: expects input [N, C] and targets [N], got [2,3] and [3]");
    EXPECT(nb_gather(ctx, a, 1, nb_zeros(ctx, NB_I64, NB_SHAPE(3, 1))), NB_ERR_SHAPE,
           "gather: index [3,1] must have the input's rank and fit in [2,3] off axis 1");
    EXPECT(nb_zeros(ctx, NB_F32, NB_SHAPE(2, -1)), NB_ERR_SHAPE, "empty: negative size in shape [2,-1]");
    EXPECT(nb_zeros(ctx, NB_F32, 9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}), NB_ERR_SHAPE,
           "empty: 9 dimensions (0..8 allowed)");
    EXPECT(nb_zeros(ctx, NB_F32, NB_SHAPE(INT64_MAX / 4, 8)), NB_ERR_SHAPE,
           "empty: shape too large (element count overflows)");
    nb_ctx_free(ctx);
}

static void test_axes(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *a = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3));
    EXPECT(nb_sum(ctx, a, NB_AXES(2), false), NB_ERR_AXIS, "sum: axis 2 out of range for [2,3]");
    EXPECT(nb_mean(ctx, a, NB_AXES(-3), false), NB_ERR_AXIS, "mean: axis -3 out of range for [2,3]");
    EXPECT(nb_max(ctx, a, NB_AXES(1, -1), false), NB_ERR_AXIS, "max: axis -1 given twice for [2,3]");
    EXPECT(nb_softmax(ctx, a, 5), NB_ERR_AXIS, "softmax: axis 5 out of range for [2,3]");
    EXPECT(nb_transpose(ctx, a, 0, 2), NB_ERR_AXIS, "transpose: axes 0, 2 out of range for [2,3]");
    EXPECT(nb_permute(ctx, a, NB_AXES(0, 0)), NB_ERR_AXIS,
           "permute: axis 0 is out of range or repeated for [2,3]");
    EXPECT(nb_slice(ctx, a, 3, 0, 1, 1), NB_ERR_AXIS, "slice: axis 3 out of range for [2,3]");
    EXPECT(nb_concat(ctx, 1, &a, 4), NB_ERR_AXIS, "concat: axis 4 out of range for [2,3]");
    EXPECT(nb_flatten(ctx, a, 1, 0), NB_ERR_AXIS, "flatten: axes 1..0 invalid for [2,3]");
    nb_ctx_free(ctx);
}

static void test_dtypes_and_arguments(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *f = nb_zeros(ctx, NB_F32, NB_SHAPE(3));
    nb_tensor *d = nb_zeros(ctx, NB_F64, NB_SHAPE(3));
    nb_tensor *i = nb_zeros(ctx, NB_I64, NB_SHAPE(3));
    EXPECT(nb_add(ctx, f, d), NB_ERR_DTYPE, "add: dtypes differ: f32 vs f64 (convert with nb_cast)");
    EXPECT(nb_exp(ctx, i), NB_ERR_DTYPE, "exp: needs float tensors, got i64");
    EXPECT(nb_param(ctx, NB_I32, NB_SHAPE(2)), NB_ERR_DTYPE, "param: dtype i32 cannot require grad");
    EXPECT(nb_index_select(ctx, f, 0, f), NB_ERR_DTYPE, "index_select: index must be i32 or i64, got f32");
    EXPECT(nb_slice(ctx, f, 0, 0, 2, 0), NB_ERR_ARG, "slice: step 0 must be at least 1");
    EXPECT(nb_dropout(ctx, f, 1.5, true), NB_ERR_ARG, "dropout: probability 1.5 is not in [0, 1]");
    EXPECT(nb_clamp(ctx, f, 2, 1), NB_ERR_ARG, "clamp: bounds [2, 1] are not an interval");
    EXPECT(nb_div_scalar(ctx, f, 0), NB_ERR_ARG, "div_scalar: division by zero");
    EXPECT(nb_add_scalar(ctx, f, NAN), NB_ERR_ARG, "add_scalar: the scalar must be finite, got nan");
    EXPECT(nb_var(ctx, f, 0, NULL, false, -1), NB_ERR_ARG, "var: correction -1 is negative");
    EXPECT(nb_softplus(ctx, f, 0, 20), NB_ERR_ARG, "softplus: beta must be positive and finite, got 0");
    nb_ce_opts o = nb_ce_opts_default();
    o.label_smoothing = 1.5;
    nb_tensor *lg = nb_zeros(ctx, NB_F32, NB_SHAPE(3, 4));
    EXPECT(nb_cross_entropy(ctx, lg, i, &o), NB_ERR_ARG,
           "cross_entropy: label_smoothing 1.5 is not in [0, 1]");
    EXPECT(nb_cross_entropy(ctx, lg, f, NULL), NB_ERR_DTYPE,
           "cross_entropy: targets must be i32 or i64 class ids, got f32");
    assert_int_equal(nb_fill_bernoulli(ctx, f, 2.0), NB_ERR_ARG);
    nb_clear_error(ctx);
    assert_int_equal(nb_fill_normal(ctx, i, 0, 1), NB_ERR_DTYPE);
    nb_clear_error(ctx);
    nb_ctx_free(ctx);
}

static void test_indices_out_of_range(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *a = nb_zeros(ctx, NB_F32, NB_SHAPE(3, 4));
    int64_t bad[3] = {0, 4, 1};
    nb_tensor *idx = nb_from_data(ctx, NB_I64, NB_SHAPE(3), bad);
    EXPECT(nb_index_select(ctx, a, 1, idx), NB_ERR_INDEX,
           "index_select: index 4 at position 1 is outside [0, 4)");
    int32_t neg[2] = {0, -1};
    nb_tensor *idx2 = nb_from_data(ctx, NB_I32, NB_SHAPE(1, 2), neg);
    EXPECT(nb_gather(ctx, a, 1, idx2), NB_ERR_INDEX, "gather: index -1 at position 1 is outside [0, 4)");
    int64_t tg[3] = {0, 7, 1};
    EXPECT(nb_cross_entropy(ctx, a, nb_from_data(ctx, NB_I64, NB_SHAPE(3), tg), NULL), NB_ERR_INDEX,
           "cross_entropy: target 7 of row 1 is outside [0, 4)");
    nb_ctx_free(ctx);
}

static void test_backward_misuse(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *w = nb_param(ctx, NB_F32, NB_SHAPE(3));
    nb_tensor *y = nb_mul(ctx, w, w);
    assert_int_equal(nb_backward(ctx, y), NB_ERR_SHAPE);
    assert_string_equal(nb_last_error(ctx),
                        "backward: output [3] has 3 elements; give an upstream gradient with "
                        "nb_backward_with");
    nb_clear_error(ctx);
    assert_int_equal(nb_backward_with(ctx, y, nb_zeros(ctx, NB_F32, NB_SHAPE(4))), NB_ERR_SHAPE);
    assert_string_equal(nb_last_error(ctx), "backward: gradient shape [4] does not match output [3]");
    nb_clear_error(ctx);
    nb_tensor *c = nb_zeros(ctx, NB_F32, NB_SHAPE(1));
    assert_int_equal(nb_backward(ctx, nb_exp(ctx, c)), NB_ERR_GRAD);
    nb_clear_error(ctx);
    assert_int_equal(nb_set_requires_grad(ctx, y, false), NB_ERR_GRAD);
    assert_string_equal(nb_last_error(ctx),
                        "set_requires_grad: only leaves can change; this tensor was made by op 'mul'");
    nb_clear_error(ctx);
    /* writing into a recorded result would corrupt its backward */
    assert_int_equal(nb_fill(ctx, y, 1.0), NB_ERR_ARG);
    nb_clear_error(ctx);
    assert_int_equal(nb_axpy(ctx, w, 1.0, nb_zeros(ctx, NB_F32, NB_SHAPE(2))), NB_ERR_SHAPE);
    nb_clear_error(ctx);
    assert_int_equal(nb_gradcheck(ctx, NULL, NULL, &w, 1, NULL, NULL), NB_ERR_NULL);
    nb_clear_error(ctx);
    nb_ctx_free(ctx);
}

static nb_tensor *square_fn(nb_ctx *ctx, nb_tensor *const *x, int n, void *u)
{
    (void)n;
    (void)u;
    return nb_square(ctx, x[0]);
}

static void test_gradcheck_needs_f64(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *w = nb_param(ctx, NB_F32, NB_SHAPE(3));
    assert_int_equal(nb_gradcheck(ctx, square_fn, NULL, &w, 1, NULL, NULL), NB_ERR_DTYPE);
    assert_string_equal(nb_last_error(ctx), "gradcheck: input 0 is f32; checks run in f64");
    nb_ctx_free(ctx);
}

static void test_arena_exhaustion(void **state)
{
    (void)state;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.arena_initial_bytes = 16 << 10;
    o.arena_max_bytes = 64 << 10;
    nb_ctx *ctx = nb_ctx_new(&o);
    assert_non_null(ctx);
    EXPECT_HAS(nb_zeros(ctx, NB_F32, NB_SHAPE(1 << 20)), NB_ERR_ARENA_FULL, "arena full");
    /* many small tensors also hit the limit, and the error stays the first */
    nb_tensor *t = NULL;
    int made = 0;
    for (int i = 0; i < 1000; i++, made++)
        if (!(t = nb_zeros(ctx, NB_F32, NB_SHAPE(256))))
            break;
    assert_null(t);
    assert_true(made > 10);
    assert_int_equal(nb_last_status(ctx), NB_ERR_ARENA_FULL);
    nb_clear_error(ctx);
    /* a reset makes room again */
    nb_arena_reset(ctx);
    assert_non_null(nb_zeros(ctx, NB_F32, NB_SHAPE(256)));
    nb_ctx_free(ctx);
}

/* ---- injected out-of-memory -------------------------------------------- */
typedef struct {
    long allocs, frees, fail_at; /* fail the allocation numbered fail_at (0-based), -1 never */
} counting;

static void *count_alloc(size_t size, size_t align, void *user)
{
    counting *c = user;
    if (c->fail_at >= 0 && c->allocs == c->fail_at) {
        c->fail_at = -2; /* fail once */
        return NULL;
    }
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size ? size : 1))
        return NULL;
    c->allocs++;
    return p;
}

static void count_free(void *p, void *user)
{
    ((counting *)user)->frees++;
    free(p);
}

/* One small training step; returns the first failing status. */
static nb_status train_step(nb_ctx *ctx, nb_tensor *w1, nb_tensor *w2)
{
    nb_arena_reset(ctx);
    nb_tensor *x = nb_full(ctx, NB_F32, NB_SHAPE(8, 5), 0.5);
    int64_t t[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    nb_tensor *tg = nb_from_data(ctx, NB_I64, NB_SHAPE(8), t);
    nb_tensor *l = nb_cross_entropy(ctx, nb_matmul(ctx, nb_relu(ctx, nb_matmul(ctx, x, w1)), w2),
                                    tg, NULL);
    if (!l)
        return nb_last_status(ctx);
    nb_status st = nb_backward(ctx, l);
    if (st == NB_OK)
        st = nb_axpy(ctx, w1, -0.1, w1->grad);
    if (st == NB_OK)
        st = nb_axpy(ctx, w2, -0.1, w2->grad);
    return st;
}

static void test_out_of_memory_everywhere(void **state)
{
    (void)state;
    /* Count the allocations of a clean run, then fail each one in turn. A
     * failure must either come back as NB_ERR_NOMEM or be recovered from
     * (the arena's merge at reset may fail and grow again later); a run that
     * recovered must end with exactly the clean run's weights. */
    long total = -1, nomem = 0;
    float clean[5 * 16 + 16 * 3];
    for (long k = -1;; k++) {
        counting c = {0, 0, k};
        nb_ctx_opts o = nb_ctx_opts_default();
        o.allocator.alloc = count_alloc;
        o.allocator.free = count_free;
        o.allocator.user = &c;
        o.arena_initial_bytes = 1024; /* force several arena chunks */
        nb_ctx *ctx = nb_ctx_new(&o);
        if (!ctx) {
            assert_int_equal(k, 0); /* only the context's own allocation */
            assert_int_equal(c.allocs, c.frees);
            continue;
        }
        nb_status st = NB_OK;
        nb_tensor *w1 = nb_param(ctx, NB_F32, NB_SHAPE(5, 16));
        nb_tensor *w2 = nb_param(ctx, NB_F32, NB_SHAPE(16, 3));
        if (!w1 || !w2) {
            st = nb_last_status(ctx);
        } else {
            nb_fill_uniform(ctx, w1, -1, 1);
            nb_fill_uniform(ctx, w2, -1, 1);
            for (int s = 0; s < 3 && st == NB_OK; s++)
                st = train_step(ctx, w1, w2);
        }
        if (st == NB_OK) {
            float now[5 * 16 + 16 * 3];
            memcpy(now, w1->data, 5 * 16 * 4);
            memcpy(now + 5 * 16, w2->data, 16 * 3 * 4);
            if (k == -1)
                memcpy(clean, now, sizeof now);
            else
                assert_memory_equal(now, clean, sizeof now);
        } else {
            assert_int_equal(st, NB_ERR_NOMEM);
            assert_non_null(strstr(nb_last_error(ctx), "allocator"));
            nomem++;
        }
        nb_ctx_free(ctx);
        assert_int_equal(c.allocs, c.frees); /* nothing leaked */
        if (k == -1)
            total = c.allocs;
        else if (k >= total)
            break;
    }
    assert_true(total > 3);
    assert_true(nomem >= total - 3); /* nearly every failure is reported */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chained_expression_first_error),
        cmocka_unit_test(test_null_inputs),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_axes),
        cmocka_unit_test(test_dtypes_and_arguments),
        cmocka_unit_test(test_indices_out_of_range),
        cmocka_unit_test(test_backward_misuse),
        cmocka_unit_test(test_gradcheck_needs_f64),
        cmocka_unit_test(test_arena_exhaustion),
        cmocka_unit_test(test_out_of_memory_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
