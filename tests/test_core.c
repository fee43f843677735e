/* Known answers and semantics of the core: RNG, views, broadcasting, the tape
 * (no-grad, detach, accumulation, fan-out, non-scalar backward), the arena,
 * threads and gradcheck itself. */
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
    nb_set_num_threads(ctx, 1);
    return ctx;
}

static void assert_close(double a, double b, double tol)
{
    if (!(fabs(a - b) <= tol * (1 + fabs(b))))
        fail_msg("%.17g != %.17g (tol %g)", a, b, tol);
}

static nb_tensor *from(nb_ctx *ctx, int ndim, const int64_t *shape, const double *v)
{
    nb_tensor *t = nb_empty(ctx, NB_F64, ndim, shape);
    assert_non_null(t);
    for (int64_t i = 0; i < nb_numel(t); i++)
        nb_set(t, i, v[i]);
    return t;
}
#define FROM(vals, ...) from(ctx, NB_SHAPE(__VA_ARGS__), vals)

/* ---- RNG ----------------------------------------------------------------- */
static void test_rng_known_answer(void **state)
{
    (void)state;
    /* the reference pcg32 demo, pcg32_srandom(42, 54) */
    static const uint32_t want[6] = {0xa15c02b7, 0x7b47f409, 0xba1d3330,
                                     0x83d2f293, 0xbfa4784b, 0xcbed606e};
    nb_rng r;
    nb_rng_seed(&r, 42, 54);
    for (int i = 0; i < 6; i++)
        assert_int_equal(nb_rng_u32(&r), want[i]);
}

static void test_rng_distributions(void **state)
{
    (void)state;
    nb_rng r;
    nb_rng_seed(&r, 7, 0);
    double s = 0, s2 = 0, umin = 1, umax = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = nb_rng_uniform(&r);
        umin = fmin(umin, u);
        umax = fmax(umax, u);
        double z = nb_rng_normal(&r);
        s += z;
        s2 += z * z;
    }
    assert_true(umin >= 0.0 && umax < 1.0);
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1.0) < 0.02);
    int hist[5] = {0};
    for (int i = 0; i < 50000; i++)
        hist[nb_rng_below(&r, 5)]++;
    for (int i = 0; i < 5; i++)
        assert_true(abs(hist[i] - 10000) < 500);
    assert_int_equal(nb_rng_below(&r, 0), 0);
}

static void test_rng_fills_reproducible(void **state)
{
    (void)state;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = 123;
    nb_ctx *a = nb_ctx_new(&o), *b = nb_ctx_new(&o);
    nb_tensor *x = nb_zeros(a, NB_F32, NB_SHAPE(100));
    nb_tensor *y = nb_zeros(b, NB_F32, NB_SHAPE(100));
    assert_int_equal(nb_fill_normal(a, x, 0, 1), NB_OK);
    assert_int_equal(nb_fill_normal(b, y, 0, 1), NB_OK);
    assert_memory_equal(x->data, y->data, 400);
    /* Bernoulli gives 0/1 at about the right rate */
    nb_tensor *m = nb_zeros(a, NB_F64, NB_SHAPE(10000));
    assert_int_equal(nb_fill_bernoulli(a, m, 0.3), NB_OK);
    double ones = 0;
    for (int i = 0; i < 10000; i++) {
        double v = nb_get(m, i);
        assert_true(v == 0.0 || v == 1.0);
        ones += v;
    }
    assert_true(fabs(ones / 10000 - 0.3) < 0.02);
    nb_tensor *u = nb_zeros(a, NB_F64, NB_SHAPE(1000));
    assert_int_equal(nb_fill_uniform(a, u, -2, 3), NB_OK);
    for (int i = 0; i < 1000; i++)
        assert_true(nb_get(u, i) >= -2 && nb_get(u, i) < 3);
    nb_ctx_free(a);
    nb_ctx_free(b);
}

/* ---- views ---------------------------------------------------------------- */
static void test_views_share_data(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    double v[6] = {0, 1, 2, 3, 4, 5};
    nb_tensor *x = FROM(v, 2, 3);
    nb_tensor *r = nb_reshape(ctx, x, NB_SHAPE(3, 2));
    assert_ptr_equal(r->data, x->data);
    nb_tensor *t = nb_transpose(ctx, x, 0, 1);
    assert_ptr_equal(t->data, x->data);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->strides[0], 1);
    assert_int_equal(t->strides[1], 3);
    assert_false(nb_is_contiguous(t));
    /* t = [[0,3],[1,4],[2,5]] */
    assert_close(nb_get(t, 1), 3, 0);
    assert_close(nb_get(t, 4), 2, 0);
    nb_tensor *s = nb_slice(ctx, x, 1, 1, 3, 1); /* [[1,2],[4,5]] */
    assert_close(nb_get(s, 0), 1, 0);
    assert_close(nb_get(s, 3), 5, 0);
    nb_tensor *e = nb_expand(ctx, nb_slice(ctx, x, 0, 0, 1, 1), NB_SHAPE(4, 3));
    assert_int_equal(e->strides[0], 0);
    assert_close(nb_get(e, 10), 1, 0);
    nb_tensor *c = nb_contiguous(ctx, t);
    assert_true(nb_is_contiguous(c));
    assert_ptr_not_equal(c->data, x->data);
    for (int i = 0; i < 6; i++)
        assert_close(((double *)c->data)[i], nb_get(t, i), 0);
    /* reshape of a non-contiguous view copies */
    nb_tensor *rc = nb_reshape(ctx, t, NB_SHAPE(6));
    assert_ptr_not_equal(rc->data, x->data);
    assert_close(nb_get(rc, 1), 3, 0);
    nb_tensor *sq = nb_unsqueeze(ctx, t, 1);
    assert_ptr_equal(sq->data, x->data);
    assert_int_equal(sq->ndim, 3);
    assert_int_equal(nb_squeeze(ctx, sq, 1)->ndim, 2);
    nb_ctx_free(ctx);
}

static void test_broadcast_values(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    double a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30}, c[2] = {2, 3};
    nb_tensor *y = nb_add(ctx, FROM(a, 2, 3), FROM(b, 3));
    double want[6] = {11, 22, 33, 14, 25, 36};
    for (int i = 0; i < 6; i++)
        assert_close(nb_get(y, i), want[i], 0);
    nb_tensor *z = nb_mul(ctx, FROM(c, 2, 1), FROM(b, 1, 3)); /* outer product */
    double wz[6] = {20, 40, 60, 30, 60, 90};
    assert_int_equal(z->ndim, 2);
    for (int i = 0; i < 6; i++)
        assert_close(nb_get(z, i), wz[i], 0);
    nb_ctx_free(ctx);
}

static void test_matmul_values_and_transpose_without_copy(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    double a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
    nb_tensor *A = FROM(a, 2, 3), *B = FROM(b, 3, 2);
    nb_set_requires_grad(ctx, A, true);
    nb_tensor *y = nb_matmul(ctx, A, B); /* [[58, 64], [139, 154]] */
    double want[4] = {58, 64, 139, 154};
    for (int i = 0; i < 4; i++)
        assert_close(nb_get(y, i), want[i], 0);
    /* (B^T)^T @ ... through a view: no CONTIGUOUS node is recorded */
    size_t before = nb_tape_length(ctx);
    nb_tensor *Bt = nb_transpose(ctx, FROM(b, 2, 3), 0, 1); /* [3,2], column-major */
    nb_tensor *y2 = nb_matmul(ctx, A, Bt);
    assert_non_null(y2);
    for (const nb__node *n = ctx->tape; n && nb_tape_length(ctx) > before; n = n->prev)
        assert_int_not_equal(n->op, NB__OP_CONTIGUOUS);
    /* [1,2,3]@[[7,10],[8,11],[9,12]] = [50, 68] */
    assert_close(nb_get(y2, 0), 50, 0);
    assert_close(nb_get(y2, 1), 68, 0);
    nb_ctx_free(ctx);
}

/* ---- autodiff semantics ------------------------------------------------ */
static void test_no_grad_and_detach(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *w = nb_param(ctx, NB_F64, NB_SHAPE(3));
    nb_fill(ctx, w, 2.0);
    bool was = nb_set_grad_enabled(ctx, false);
    assert_true(was);
    nb_tensor *y = nb_mul(ctx, w, w);
    assert_false(nb_requires_grad(y));
    assert_int_equal(nb_tape_length(ctx), 0);
    nb_set_grad_enabled(ctx, true);
    /* y = sum(w * detach(w)): dy/dw = detach(w) = 2, not 2w = 4 */
    nb_tensor *l = nb_sum(ctx, nb_mul(ctx, w, nb_detach(ctx, w)), 0, NULL, false);
    assert_int_equal(nb_backward(ctx, l), NB_OK);
    for (int i = 0; i < 3; i++)
        assert_close(nb_get(w->grad, i), 2.0, 0);
    nb_ctx_free(ctx);
}

static void test_accumulation_and_zero_grad(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *w = nb_param(ctx, NB_F64, NB_SHAPE(2));
    nb_fill(ctx, w, 3.0);
    for (int k = 0; k < 2; k++) { /* two separate forwards and backwards */
        nb_arena_reset(ctx);
        nb_tensor *l = nb_sum(ctx, nb_square(ctx, w), 0, NULL, false);
        assert_int_equal(nb_backward(ctx, l), NB_OK);
    }
    assert_close(nb_get(w->grad, 0), 12.0, 0); /* 2 * (2 * 3) */
    nb_zero_grads(ctx);
    assert_close(nb_get(w->grad, 1), 0.0, 0);
    nb_ctx_free(ctx);
}

static void test_nonscalar_backward_and_fanout(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    double xv[3] = {1, 2, 3}, gv[3] = {1, 10, 100};
    nb_tensor *x = FROM(xv, 3);
    nb_set_requires_grad(ctx, x, true);
    /* y = x*x + 3x uses x three times; dy/dx = 2x + 3 */
    nb_tensor *y = nb_add(ctx, nb_mul(ctx, x, x), nb_mul_scalar(ctx, x, 3));
    assert_int_equal(nb_backward_with(ctx, y, FROM(gv, 3)), NB_OK);
    for (int i = 0; i < 3; i++)
        assert_close(nb_get(x->grad, i), gv[i] * (2 * xv[i] + 3), 1e-15);
    nb_ctx_free(ctx);
}

static void test_weight_sharing(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *w = nb_param(ctx, NB_F64, NB_SHAPE(2, 2));
    double wv[4] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++)
        nb_set(w, i, wv[i]);
    double av[2] = {1, -1}, bv[2] = {2, 5};
    nb_tensor *a = FROM(av, 1, 2), *b = FROM(bv, 1, 2);
    /* the same W in two branches: dL/dW = a^T 1 + b^T 1 */
    nb_tensor *l = nb_add(ctx, nb_sum(ctx, nb_matmul(ctx, a, w), 0, NULL, false),
                          nb_sum(ctx, nb_matmul(ctx, b, w), 0, NULL, false));
    assert_int_equal(nb_backward(ctx, l), NB_OK);
    double want[4] = {3, 3, 4, 4};
    for (int i = 0; i < 4; i++)
        assert_close(nb_get(w->grad, i), want[i], 0);
    nb_ctx_free(ctx);
}

static void test_backward_twice_same_graph(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *w = nb_param(ctx, NB_F64, NB_SHAPE(3));
    nb_fill(ctx, w, 1.5);
    nb_tensor *l = nb_sum(ctx, nb_exp(ctx, nb_tanh(ctx, w)), 0, NULL, false);
    assert_int_equal(nb_backward(ctx, l), NB_OK);
    double g1 = nb_get(w->grad, 0);
    assert_int_equal(nb_backward(ctx, l), NB_OK);
    assert_close(nb_get(w->grad, 0), 2 * g1, 1e-15);
    nb_ctx_free(ctx);
}

/* ---- arena ------------------------------------------------------------------- */
static void test_arena_grows_merges_and_rewinds(void **state)
{
    (void)state;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.arena_initial_bytes = 4096;
    nb_ctx *ctx = nb_ctx_new(&o);
    for (int i = 0; i < 20; i++)
        assert_non_null(nb_zeros(ctx, NB_F32, NB_SHAPE(1000)));
    assert_true(ctx->chunks->next != NULL); /* spilled into more chunks */
    size_t cap = nb_arena_capacity(ctx);
    nb_arena_reset(ctx);
    assert_null(ctx->chunks->next); /* merged into one */
    assert_int_equal(nb_arena_capacity(ctx), cap);
    assert_int_equal(nb_arena_used(ctx), 0);
    for (int i = 0; i < 20; i++)
        assert_non_null(nb_zeros(ctx, NB_F32, NB_SHAPE(1000)));
    assert_int_equal(nb_arena_capacity(ctx), cap); /* same work, no growth */
    nb_arena_mark m = nb_arena_mark_get(ctx);
    size_t used = nb_arena_used(ctx);
    nb_tensor *w = nb_param(ctx, NB_F32, NB_SHAPE(4));
    nb_tensor *y = nb_mul(ctx, w, w);
    assert_non_null(y);
    assert_int_equal(nb_tape_length(ctx), 1);
    nb_arena_rewind(ctx, m);
    assert_int_equal(nb_arena_used(ctx), used);
    assert_int_equal(nb_tape_length(ctx), 0);
    nb_ctx_free(ctx);
}

/* ---- numerics ------------------------------------------------------------ */
static void test_softmax_stable(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    double v[3] = {1000, 1001, 1002};
    nb_tensor *p = nb_softmax(ctx, FROM(v, 1, 3), 1);
    nb_tensor *lp = nb_log_softmax(ctx, FROM(v, 1, 3), 1);
    double z = exp(-2) + exp(-1) + 1;
    assert_close(nb_get(p, 2), 1 / z, 1e-15);
    assert_close(nb_get(lp, 0), -2 - log(z), 1e-12); /* 1000 - 1002.4 cancels digits */
    nb_ctx_free(ctx);
}

static void test_cross_entropy_known_value(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    double x[6] = {1, 2, 3, 1, 1, 1};
    int64_t t[2] = {2, 0};
    nb_tensor *lg = FROM(x, 2, 3);
    nb_tensor *tg = nb_from_data(ctx, NB_I64, NB_SHAPE(2), t);
    nb_ce_opts o = nb_ce_opts_default();
    o.label_smoothing = 0.2;
    nb_tensor *l = nb_cross_entropy(ctx, lg, tg, &o);
    double z0 = log(exp(1) + exp(2) + exp(3)), z1 = log(3 * exp(1));
    double l0 = -(0.8 * (3 - z0) + 0.2 / 3 * (6 - 3 * z0));
    double l1 = -(0.8 * (1 - z1) + 0.2 / 3 * (3 - 3 * z1));
    assert_close(nb_get(l, 0), (l0 + l1) / 2, 1e-14);
    nb_ctx_free(ctx);
}

static void test_threads_same_result(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    int64_t n = 1 << 18;
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(n));
    nb_fill_normal(ctx, x, 0, 1);
    nb_set_num_threads(ctx, 1);
    nb_tensor *a = nb_tanh(ctx, nb_mul(ctx, x, x));
    nb_set_num_threads(ctx, 2);
    assert_int_equal(nb_get_num_threads(ctx), 2);
    nb_tensor *b = nb_tanh(ctx, nb_mul(ctx, x, x));
    assert_memory_equal(a->data, b->data, (size_t)n * 4);
    /* NABLA_NUM_THREADS sets the default count */
    setenv("NABLA_NUM_THREADS", "3", 1);
    nb_set_num_threads(ctx, 0);
    assert_int_equal(nb_get_num_threads(ctx), 3);
    unsetenv("NABLA_NUM_THREADS");
    nb_set_num_threads(ctx, 2);
    /* a GEMM split over two threads (rows, then columns of C) */
    for (int wide = 0; wide < 2; wide++) {
        nb_tensor *A = nb_zeros(ctx, NB_F32, NB_SHAPE(wide ? 40 : 300, 200));
        nb_tensor *B = nb_zeros(ctx, NB_F32, NB_SHAPE(200, wide ? 300 : 40));
        nb_fill_normal(ctx, A, 0, 1);
        nb_fill_normal(ctx, B, 0, 1);
        nb_set_num_threads(ctx, 1);
        nb_tensor *c1 = nb_matmul(ctx, A, B);
        nb_set_num_threads(ctx, 2);
        nb_tensor *c2 = nb_matmul(ctx, A, B);
        for (int64_t i = 0; i < nb_numel(c1); i++)
            assert_close(nb_get(c2, i), nb_get(c1, i), 1e-5);
    }
    nb_ctx_free(ctx);
}

/* Reductions on two threads: split over outputs, or private partials. */
static void test_parallel_reductions(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *a = nb_zeros(ctx, NB_F64, NB_SHAPE(1000, 300));
    nb_tensor *c = nb_zeros(ctx, NB_F64, NB_SHAPE(300, 300, 3));
    nb_fill_normal(ctx, a, 0, 1);
    nb_fill_normal(ctx, c, 0, 1);
    nb_tensor *r1[8], *r2[8];
    for (int t = 1; t <= 2; t++) {
        nb_set_num_threads(ctx, t);
        nb_tensor **r = t == 1 ? r1 : r2;
        r[0] = nb_sum(ctx, a, NB_AXES(0), false);       /* kept dim 300: split */
        r[1] = nb_sum(ctx, a, 0, NULL, false);          /* scalar: partials */
        r[2] = nb_max(ctx, a, NB_AXES(1), false);       /* kept dim 1000: split */
        r[3] = nb_min(ctx, a, 0, NULL, false);          /* partials, combined by min */
        r[4] = nb_var(ctx, a, NB_AXES(0), true, 1);
        r[5] = nb_sum(ctx, c, NB_AXES(0, 1), false);    /* 3 outputs: partials */
        r[6] = nb_max(ctx, c, NB_AXES(0, 1), false);
        r[7] = nb_mean(ctx, c, NB_AXES(2), false);      /* inner reduction */
    }
    for (int i = 0; i < 8; i++) {
        assert_non_null(r1[i]);
        assert_int_equal(nb_numel(r1[i]), nb_numel(r2[i]));
        for (int64_t j = 0; j < nb_numel(r1[i]); j++)
            assert_close(nb_get(r2[i], j), nb_get(r1[i], j), 1e-12);
    }
    /* a bias gradient: broadcast add, then backward accumulates over rows */
    nb_set_num_threads(ctx, 2);
    nb_tensor *b = nb_param(ctx, NB_F64, NB_SHAPE(300));
    nb_tensor *y = nb_add(ctx, a, b);
    assert_int_equal(nb_backward_with(ctx, y, nb_full(ctx, NB_F64, NB_SHAPE(1000, 300), 1.0)), NB_OK);
    for (int j = 0; j < 300; j++)
        assert_close(nb_get(b->grad, j), 1000.0, 0);
    nb_ctx_free(ctx);
}

static void test_dropout_modes(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *x = nb_full(ctx, NB_F32, NB_SHAPE(100000), 1.0);
    assert_ptr_equal(nb_dropout(ctx, x, 0.4, false), x);
    nb_tensor *y = nb_dropout(ctx, x, 0.4, true);
    double kept = 0;
    for (int64_t i = 0; i < 100000; i++) {
        double v = nb_get(y, i);
        assert_true(v == 0.0 || fabs(v - 1 / 0.6) < 1e-6);
        kept += v != 0.0;
    }
    assert_true(fabs(kept / 100000 - 0.6) < 0.01);
    nb_ctx_free(ctx);
}

/* ---- gradcheck catches a wrong gradient ------------------------------------ */
static nb_tensor *wrong_fn(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    (void)user;
    return nb_mul(ctx, x[0], nb_detach(ctx, x[0])); /* analytic x, true 2x */
}

static nb_tensor *right_fn(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    (void)user;
    return nb_mul(ctx, x[0], x[0]);
}

static void test_gradcheck_detects(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *x = nb_param(ctx, NB_F64, NB_SHAPE(3, 2));
    nb_fill_normal(ctx, x, 0, 1);
    nb_gradcheck_result r;
    assert_int_equal(nb_gradcheck(ctx, right_fn, NULL, &x, 1, NULL, &r), NB_OK);
    assert_true(r.worst < 1e-7);
    assert_int_equal(nb_gradcheck(ctx, wrong_fn, NULL, &x, 1, NULL, &r), NB_ERR_GRADCHECK);
    assert_true(r.max_rel_err[0] > 0.1);
    assert_non_null(strstr(nb_last_error(ctx), "gradcheck: input 0"));
    /* the param's grad is left zeroed */
    for (int i = 0; i < 6; i++)
        assert_close(nb_get(x->grad, i), 0, 0);
    nb_ctx_free(ctx);
}

static void test_status_texts(void **state)
{
    (void)state;
    for (int i = 0; i < NB_STATUS_COUNT; i++) {
        const char *s = nb_status_str((nb_status)i);
        assert_non_null(s);
        assert_true(strlen(s) > 1);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(s, nb_status_str((nb_status)j));
    }
    assert_string_equal(nb_status_str((nb_status)999), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_known_answer),
        cmocka_unit_test(test_rng_distributions),
        cmocka_unit_test(test_rng_fills_reproducible),
        cmocka_unit_test(test_views_share_data),
        cmocka_unit_test(test_broadcast_values),
        cmocka_unit_test(test_matmul_values_and_transpose_without_copy),
        cmocka_unit_test(test_no_grad_and_detach),
        cmocka_unit_test(test_accumulation_and_zero_grad),
        cmocka_unit_test(test_nonscalar_backward_and_fanout),
        cmocka_unit_test(test_weight_sharing),
        cmocka_unit_test(test_backward_twice_same_graph),
        cmocka_unit_test(test_arena_grows_merges_and_rewinds),
        cmocka_unit_test(test_softmax_stable),
        cmocka_unit_test(test_cross_entropy_known_value),
        cmocka_unit_test(test_threads_same_result),
        cmocka_unit_test(test_parallel_reductions),
        cmocka_unit_test(test_dropout_modes),
        cmocka_unit_test(test_gradcheck_detects),
        cmocka_unit_test(test_status_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
