/* Normalisation ops and layers beyond what test_ops checks (gradients, PyTorch
 * parity): bad input with its status and text; the running-statistics update
 * against hand-computed numbers; evaluation mode; the layers' registry names,
 * train/eval behaviour and num_batches_tracked; the threaded kernels giving
 * the serial results; no allocation through the hook in a steady step. */
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

/* The call returned NULL with status st and exactly the message msg. */
static void expect_err(nb_ctx *ctx, const void *result, nb_status st, const char *msg)
{
    assert_null(result);
    assert_int_equal(nb_last_status(ctx), st);
    assert_string_equal(nb_last_error(ctx), msg);
    nb_clear_error(ctx);
}
#define EXPECT(call, st, msg) expect_err(ctx, (call), st, msg)

static nb_tensor *filled(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, const double *v)
{
    nb_tensor *t = nb_empty(ctx, dt, ndim, shape);
    assert_non_null(t);
    for (int64_t i = 0; i < nb_numel(t); i++)
        nb_set(t, i, v[i]);
    return t;
}

static void expect_close(const nb_tensor *t, const double *want, int64_t n, double tol)
{
    assert_non_null(t);
    assert_int_equal(nb_numel(t), n);
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(nb_get(t, i) - want[i]) <= tol * (1 + fabs(want[i]))))
            fail_msg("element %lld: got %.10g, want %.10g", (long long)i, nb_get(t, i), want[i]);
}

/* ---- bad input ---------------------------------------------------------------- */
static void test_batch_norm_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 5));
    nb_tensor *c3 = nb_full(ctx, NB_F32, NB_SHAPE(3), 1.0);
    nb_tensor *c4 = nb_full(ctx, NB_F32, NB_SHAPE(4), 1.0);
    nb_tensor *d3 = nb_full(ctx, NB_F64, NB_SHAPE(3), 1.0);
    nb_tensor *i3 = nb_zeros(ctx, NB_I64, NB_SHAPE(3));
    EXPECT(nb_batch_norm(ctx, NULL, c3, c3, NULL, NULL, true, 0.1, 1e-5), NB_ERR_NULL,
           "batch_norm: input 0 is NULL");
    EXPECT(nb_batch_norm(ctx, x, c4, c3, NULL, NULL, true, 0.1, 1e-5), NB_ERR_SHAPE,
           "batch_norm: weight [4] does not match 3 channels of [2,3,5]");
    EXPECT(nb_batch_norm(ctx, x, c3, c4, NULL, NULL, true, 0.1, 1e-5), NB_ERR_SHAPE,
           "batch_norm: bias [4] does not match 3 channels of [2,3,5]");
    EXPECT(nb_batch_norm(ctx, c3, NULL, NULL, NULL, NULL, true, 0.1, 1e-5), NB_ERR_SHAPE,
           "batch_norm: x [3] needs at least 2 dims ([N, C, ...])");
    EXPECT(nb_batch_norm(ctx, x, NULL, NULL, NULL, NULL, true, 0.1, 0.0), NB_ERR_ARG,
           "batch_norm: eps must be positive and finite, got 0");
    EXPECT(nb_batch_norm(ctx, x, NULL, NULL, NULL, NULL, true, 0.1, -1e-5), NB_ERR_ARG,
           "batch_norm: eps must be positive and finite, got -1e-05");
    EXPECT(nb_batch_norm(ctx, x, NULL, NULL, NULL, NULL, true, 1.5, 1e-5), NB_ERR_ARG,
           "batch_norm: momentum 1.5 is not in [0, 1]");
    EXPECT(nb_batch_norm(ctx, x, NULL, NULL, NULL, NULL, true, -0.1, 1e-5), NB_ERR_ARG,
           "batch_norm: momentum -0.1 is not in [0, 1]");
    EXPECT(nb_batch_norm(ctx, x, NULL, NULL, NULL, NULL, true, NAN, 1e-5), NB_ERR_ARG,
           "batch_norm: momentum nan is not in [0, 1]");
    /* one value per channel: torch's "Expected more than 1 value per channel" */
    nb_tensor *one = nb_zeros(ctx, NB_F32, NB_SHAPE(1, 3));
    EXPECT(nb_batch_norm(ctx, one, NULL, NULL, NULL, NULL, true, 0.1, 1e-5), NB_ERR_SHAPE,
           "batch_norm: expected more than 1 value per channel when training, got [1,3]");
    EXPECT(nb_batch_norm(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(1, 3, 1, 1)), NULL, NULL, NULL, NULL,
                         true, 0.1, 1e-5),
           NB_ERR_SHAPE, "batch_norm: expected more than 1 value per channel when training, got "
           "[1,3,1,1]");
    assert_non_null(nb_batch_norm(ctx, one, NULL, NULL, c3, c3, false, 0.1, 1e-5)); /* eval: fine */
    EXPECT(nb_batch_norm(ctx, x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5), NB_ERR_ARG,
           "batch_norm: evaluation mode needs running_mean and running_var");
    EXPECT(nb_batch_norm(ctx, x, NULL, NULL, c3, NULL, true, 0.1, 1e-5), NB_ERR_ARG,
           "batch_norm: give both running_mean and running_var, or neither");
    EXPECT(nb_batch_norm(ctx, x, NULL, NULL, c3, c4, true, 0.1, 1e-5), NB_ERR_SHAPE,
           "batch_norm: running_var [4] does not match 3 channels of [2,3,5]");
    EXPECT(nb_batch_norm(ctx, x, NULL, NULL, i3, c3, false, 0.1, 1e-5), NB_ERR_DTYPE,
           "batch_norm: running_mean is i64; needs f32 or f64");
    EXPECT(nb_batch_norm(ctx, x, d3, NULL, NULL, NULL, true, 0.1, 1e-5), NB_ERR_DTYPE,
           "batch_norm: weight is f64 but x is f32");
    EXPECT(nb_batch_norm(ctx, nb_zeros(ctx, NB_I32, NB_SHAPE(2, 3)), NULL, NULL, NULL, NULL, true,
                         0.1, 1e-5),
           NB_ERR_DTYPE, "batch_norm: x is i32; needs f32 or f64");
    /* running statistics updated in place must be writable, one element per channel */
    nb_tensor *rs = nb_expand(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(1)), NB_SHAPE(3));
    EXPECT(nb_batch_norm(ctx, x, NULL, NULL, rs, c3, true, 0.1, 1e-5), NB_ERR_ARG,
           "batch_norm: running_mean is an expanded (stride 0) view; it is updated in place");
    assert_non_null(nb_batch_norm(ctx, x, NULL, NULL, rs, c3, false, 0.1, 1e-5)); /* read only */
    nb_ctx_free(ctx);
}

static void test_layer_group_norm_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 4));
    nb_tensor *w43 = nb_full(ctx, NB_F32, NB_SHAPE(4, 3), 1.0);
    nb_tensor *w4 = nb_full(ctx, NB_F32, NB_SHAPE(4), 1.0);
    EXPECT(nb_layer_norm(ctx, NULL, 1, NULL, NULL, 1e-5), NB_ERR_NULL,
           "layer_norm: input 0 is NULL");
    EXPECT(nb_layer_norm(ctx, x, 0, NULL, NULL, 1e-5), NB_ERR_ARG,
           "layer_norm: ndims 0 is not in [1, 3] for x [2,3,4]");
    EXPECT(nb_layer_norm(ctx, x, 4, NULL, NULL, 1e-5), NB_ERR_ARG,
           "layer_norm: ndims 4 is not in [1, 3] for x [2,3,4]");
    EXPECT(nb_layer_norm(ctx, x, 2, w43, NULL, 1e-5), NB_ERR_SHAPE,
           "layer_norm: weight [4,3] does not match the normalised shape [3,4] of x [2,3,4]");
    EXPECT(nb_layer_norm(ctx, x, 2, NULL, w4, 1e-5), NB_ERR_SHAPE,
           "layer_norm: bias [4] does not match the normalised shape [3,4] of x [2,3,4]");
    EXPECT(nb_layer_norm(ctx, x, 1, w4, NULL, -1.0), NB_ERR_ARG,
           "layer_norm: eps must be positive and finite, got -1");
    assert_non_null(nb_layer_norm(ctx, x, 1, w4, w4, 1e-5));

    nb_tensor *g = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 6, 3, 3));
    nb_tensor *w6 = nb_full(ctx, NB_F32, NB_SHAPE(6), 1.0);
    EXPECT(nb_group_norm(ctx, g, 4, NULL, NULL, 1e-5), NB_ERR_SHAPE,
           "group_norm: 4 groups do not divide 6 channels of [2,6,3,3]");
    EXPECT(nb_group_norm(ctx, g, 0, NULL, NULL, 1e-5), NB_ERR_ARG,
           "group_norm: groups must be positive, got 0");
    EXPECT(nb_group_norm(ctx, g, 3, w4, NULL, 1e-5), NB_ERR_SHAPE,
           "group_norm: weight [4] does not match 6 channels of [2,6,3,3]");
    EXPECT(nb_group_norm(ctx, g, 3, w6, w4, 1e-5), NB_ERR_SHAPE,
           "group_norm: bias [4] does not match 6 channels of [2,6,3,3]");
    EXPECT(nb_group_norm(ctx, w6, 3, NULL, NULL, 1e-5), NB_ERR_SHAPE,
           "group_norm: x [6] needs at least 2 dims ([N, C, ...])");
    EXPECT(nb_group_norm(ctx, g, 3, NULL, NULL, 0.0), NB_ERR_ARG,
           "group_norm: eps must be positive and finite, got 0");
    EXPECT(nb_group_norm(ctx, g, 3, NULL, NULL, INFINITY), NB_ERR_ARG,
           "group_norm: eps must be positive and finite, got inf");
    assert_non_null(nb_group_norm(ctx, g, 3, w6, w6, 1e-5));

    /* the layers check their settings */
    EXPECT(nb_batch_norm_layer(ctx, "bn", 0, 0.1, 1e-5, true), NB_ERR_ARG,
           "batch_norm: channels must be positive, got 0");
    EXPECT(nb_batch_norm_layer(ctx, "bn", 3, 2.0, 1e-5, true), NB_ERR_ARG,
           "batch_norm: momentum 2 is not in [0, 1]");
    EXPECT(nb_batch_norm_layer(ctx, "bn", 3, 0.1, 0.0, true), NB_ERR_ARG,
           "batch_norm: eps must be positive and finite, got 0");
    EXPECT(nb_layer_norm_layer(ctx, "ln", 0, NULL, 1e-5, true), NB_ERR_ARG,
           "layer_norm: ndims 0 is not in [1, 8] or the shape is NULL");
    EXPECT(nb_layer_norm_layer(ctx, "ln", 2, (int64_t[]){3, 0}, 1e-5, true), NB_ERR_ARG,
           "layer_norm: normalised shape [3,0] has a dim below 1");
    EXPECT(nb_group_norm_layer(ctx, "gn", 4, 6, 1e-5, true), NB_ERR_ARG,
           "group_norm: 4 groups must be positive and divide 6 channels");
    EXPECT(nb_group_norm_layer(ctx, "gn", 2, 6, -1.0, true), NB_ERR_ARG,
           "group_norm: eps must be positive and finite, got -1");
    nb_ctx_free(ctx);
}

/* ---- running statistics ------------------------------------------------------------ */
/* x [4, 2]: channel 0 is 1 2 3 4 (mean 2.5, biased var 1.25, unbiased 5/3),
 * channel 1 is 0 0 2 6 (mean 2, biased var 6, unbiased 8). */
static const double X42[8] = {1, 0, 2, 0, 3, 2, 4, 6};

static void test_running_update(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    const double eps = 1e-5;
    for (int dt = 0; dt < 2; dt++) { /* running buffers in f64, then f32 */
        nb_dtype rdt = dt ? NB_F32 : NB_F64;
        double tol = dt ? 1e-6 : 1e-14;
        nb_tensor *x = filled(ctx, NB_F64, NB_SHAPE(4, 2), X42);
        nb_tensor *rm = nb_buffer(ctx, rdt, NB_SHAPE(2)), *rv = nb_buffer(ctx, rdt, NB_SHAPE(2));
        assert_int_equal(nb_fill(ctx, rv, 1.0), NB_OK);
        nb_tensor *y = nb_batch_norm(ctx, x, NULL, NULL, rm, rv, true, 0.1, eps);
        /* normalised with the biased variance */
        double r0 = 1 / sqrt(1.25 + eps), r1 = 1 / sqrt(6 + eps);
        double want_y[8] = {-1.5 * r0, -2 * r1, -0.5 * r0, -2 * r1, 0.5 * r0, 0, 1.5 * r0, 4 * r1};
        expect_close(y, want_y, 8, 1e-14);
        /* moved with the unbiased variance */
        expect_close(rm, (double[]){0.1 * 2.5, 0.1 * 2}, 2, tol);
        expect_close(rv, (double[]){0.9 + 0.1 * 5.0 / 3.0, 0.9 + 0.1 * 8}, 2, tol);
        assert_non_null(nb_batch_norm(ctx, x, NULL, NULL, rm, rv, true, 0.1, eps));
        expect_close(rm, (double[]){0.9 * 0.25 + 0.25, 0.9 * 0.2 + 0.2}, 2, tol);
        expect_close(rv, (double[]){0.9 * (0.9 + 0.5 / 3.0) + 0.5 / 3.0, 0.9 * 1.7 + 0.8}, 2, tol);
        /* momentum 0 keeps them, 1 replaces them; grad mode does not matter */
        bool was = nb_set_grad_enabled(ctx, false);
        nb_fill(ctx, rm, 7.0);
        nb_fill(ctx, rv, 3.0);
        assert_non_null(nb_batch_norm(ctx, x, NULL, NULL, rm, rv, true, 0.0, eps));
        expect_close(rm, (double[]){7, 7}, 2, 0);
        expect_close(rv, (double[]){3, 3}, 2, 0);
        assert_non_null(nb_batch_norm(ctx, x, NULL, NULL, rm, rv, true, 1.0, eps));
        expect_close(rm, (double[]){2.5, 2}, 2, tol);
        expect_close(rv, (double[]){5.0 / 3.0, 8}, 2, tol);
        nb_set_grad_enabled(ctx, was);
        /* evaluation reads them and leaves them alone */
        nb_tensor *ye = nb_batch_norm(ctx, x, NULL, NULL, rm, rv, false, 0.1, eps);
        double e0 = 1 / sqrt(5.0 / 3.0 + eps), e1 = 1 / sqrt(8 + eps);
        double want_e[8] = {-1.5 * e0, -2 * e1, -0.5 * e0, -2 * e1, 0.5 * e0, 0, 1.5 * e0, 4 * e1};
        expect_close(ye, want_e, 8, dt ? 1e-6 : 1e-14);
        expect_close(rm, (double[]){2.5, 2}, 2, tol);
        nb_tensor_free(ctx, rm);
        nb_tensor_free(ctx, rv);
    }
    /* [N, C, H, W]: statistics over N, H and W; channel 1 is 10 x channel 0 */
    double v[8] = {1, 2, 10, 20, 3, 4, 30, 40};
    nb_tensor *x4 = filled(ctx, NB_F32, NB_SHAPE(2, 2, 1, 2), v);
    nb_tensor *rm = nb_buffer(ctx, NB_F32, NB_SHAPE(2)), *rv = nb_buffer(ctx, NB_F32, NB_SHAPE(2));
    nb_fill(ctx, rv, 1.0);
    nb_tensor *y4 = nb_batch_norm(ctx, x4, NULL, NULL, rm, rv, true, 0.5, 1e-5);
    assert_non_null(y4);
    expect_close(rm, (double[]){0.5 * 2.5, 0.5 * 25}, 2, 1e-6);
    expect_close(rv, (double[]){0.5 + 0.5 * 5.0 / 3.0, 0.5 + 0.5 * 500.0 / 3.0}, 2, 1e-6);
    double r0 = 1 / sqrt(1.25 + 1e-5), r1 = 1 / sqrt(125 + 1e-5);
    expect_close(y4, (double[]){-1.5 * r0, -0.5 * r0, -15 * r1, -5 * r1, 0.5 * r0, 1.5 * r0,
                                5 * r1, 15 * r1}, 8, 1e-6);
    nb_ctx_free(ctx);
}

/* Evaluation mode is affine in x: dx = g gamma / sqrt(var + eps); the running
 * statistics get no gradient even when they require one. Training with
 * running statistics differentiates like training without them. */
static void test_eval_gradients(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *x = filled(ctx, NB_F64, NB_SHAPE(4, 2), X42);
    nb_tensor *rm = nb_param(ctx, NB_F64, NB_SHAPE(2)), *rv = nb_param(ctx, NB_F64, NB_SHAPE(2));
    nb_tensor *gam = nb_param(ctx, NB_F64, NB_SHAPE(2)), *bet = nb_param(ctx, NB_F64, NB_SHAPE(2));
    nb_set_requires_grad(ctx, x, true);
    nb_fill(ctx, rm, 1.0);
    nb_fill(ctx, rv, 3.0);
    nb_set(gam, 0, 2.0);
    nb_set(gam, 1, -1.0);
    nb_fill(ctx, bet, 0.5);
    nb_tensor *y = nb_batch_norm(ctx, x, gam, bet, rm, rv, false, 0.1, 1.0); /* sqrt(3 + 1) = 2 */
    double want[8] = {0.5, 0.5 + 0.5, 1.5, 0.5 + 0.5, 2.5, 0.5 - 0.5, 3.5, 0.5 - 2.5};
    expect_close(y, want, 8, 1e-15);
    assert_int_equal(nb_backward(ctx, nb_sum(ctx, y, 0, NULL, false)), NB_OK);
    expect_close(x->grad, (double[]){1, -0.5, 1, -0.5, 1, -0.5, 1, -0.5}, 8, 1e-15);
    expect_close(gam->grad, (double[]){(0 + 1 + 2 + 3) / 2.0, (-1 - 1 + 1 + 5) / 2.0}, 2, 1e-15);
    expect_close(bet->grad, (double[]){4, 4}, 2, 1e-15);
    assert_null(rm->grad);
    assert_null(rv->grad);

    /* training: the same gradients with and without running statistics */
    static const double wv[8] = {0.3, -1, 2, 0.5, -0.7, 1, 0.2, 3};
    nb_tensor *w = filled(ctx, NB_F64, NB_SHAPE(4, 2), wv);
    double g1[8], g2[8];
    for (int k = 0; k < 2; k++) {
        x->grad = NULL;
        nb_tensor *m = k ? nb_zeros(ctx, NB_F64, NB_SHAPE(2)) : NULL;
        nb_tensor *v = k ? nb_full(ctx, NB_F64, NB_SHAPE(2), 1.0) : NULL;
        nb_tensor *yt = nb_batch_norm(ctx, x, gam, bet, m, v, true, 0.1, 1e-5);
        assert_int_equal(nb_backward_with(ctx, yt, w), NB_OK);
        for (int i = 0; i < 8; i++)
            (k ? g2 : g1)[i] = nb_get(x->grad, i);
    }
    expect_close(x->grad, g1, 8, 1e-15);
    double s = 0; /* batch statistics: the gradient sums to zero over each channel */
    for (int i = 0; i < 8; i += 2)
        s += g2[i];
    assert_true(fabs(s) < 1e-12);
    nb_ctx_free(ctx);
}

/* float32 inputs far from zero relative to their spread (mean 3000, sd 0.01):
 * the result must match the float64 computation on the same values, which
 * needs x - mean formed accurately (a mean rounded to float would be off by
 * up to 1.2e-4, 1% of the spread). */
static void test_f32_large_offset(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_rng r;
    nb_rng_seed(&r, 11, 0);
    nb_tensor *x32 = nb_param(ctx, NB_F32, NB_SHAPE(4, 6, 5));
    nb_tensor *x64 = nb_param(ctx, NB_F64, NB_SHAPE(4, 6, 5));
    nb_tensor *w32 = nb_empty(ctx, NB_F32, NB_SHAPE(4, 6, 5));
    nb_tensor *w64 = nb_empty(ctx, NB_F64, NB_SHAPE(4, 6, 5));
    for (int64_t i = 0; i < 120; i++) {
        nb_set(x32, i, 3000.0 + 0.01 * nb_rng_normal(&r));
        nb_set(x64, i, nb_get(x32, i)); /* the same values */
        double wv = nb_rng_normal(&r);
        nb_set(w32, i, wv);
        nb_set(w64, i, nb_get(w32, i));
    }
    for (int op = 0; op < 3; op++) {
        nb_tensor *y[2], *xs[2] = {x32, x64}, *ws[2] = {w32, w64};
        for (int k = 0; k < 2; k++) {
            nb_zero_grad(xs[k]);
            y[k] = op == 0   ? nb_batch_norm(ctx, xs[k], NULL, NULL, NULL, NULL, true, 0.1, 1e-5)
                   : op == 1 ? nb_layer_norm(ctx, xs[k], 2, NULL, NULL, 1e-5)
                             : nb_group_norm(ctx, xs[k], 3, NULL, NULL, 1e-5);
            assert_non_null(y[k]);
            assert_int_equal(nb_backward_with(ctx, y[k], ws[k]), NB_OK);
        }
        double ey = 0, eg = 0, gmax = 0;
        for (int64_t i = 0; i < 120; i++) {
            ey = fmax(ey, fabs(nb_get(y[0], i) - nb_get(y[1], i)));
            eg = fmax(eg, fabs(nb_get(x32->grad, i) - nb_get(x64->grad, i)));
            gmax = fmax(gmax, fabs(nb_get(x64->grad, i)));
        }
        if (ey > 1e-4 || eg > 1e-4 * gmax)
            fail_msg("op %d: output error %g, gradient error %g of %g", op, ey, eg, gmax);
    }
    nb_ctx_free(ctx);
}

/* ---- layers --------------------------------------------------------------------------- */
static void test_batch_norm_layer(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_module *net = nb_sequential(ctx, "net");
    nb_module *bn = nb_batch_norm_layer(ctx, "bn", 2, 0.1, 1e-5, true);
    assert_int_equal(nb_sequential_add(ctx, net, bn), NB_OK);
    nb_module *plain = nb_batch_norm_layer(ctx, "plain", 2, 0.1, 1e-5, false);
    assert_int_equal(nb_sequential_add(ctx, net, plain), NB_OK);
    assert_string_equal(nb_module_kind(bn), "batch_norm");
    nb_param_list l;
    assert_int_equal(nb_module_params(ctx, net, &l), NB_OK);
    static const char *names[] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                                  "bn.num_batches_tracked", "plain.running_mean",
                                  "plain.running_var", "plain.num_batches_tracked"};
    static const bool buffer[] = {false, false, true, true, true, true, true, true};
    assert_int_equal(l.n, 8);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(l.items[i].name, names[i]);
        assert_int_equal(l.items[i].is_buffer, buffer[i]);
    }
    nb_param_list_free(ctx, &l);
    assert_int_equal(nb_module_param_count(net), 4);
    nb_tensor *w = nb_module_find(ctx, net, "bn.weight"), *b = nb_module_find(ctx, net, "bn.bias");
    nb_tensor *rm = nb_module_find(ctx, net, "bn.running_mean");
    nb_tensor *rv = nb_module_find(ctx, net, "bn.running_var");
    nb_tensor *nbt = nb_module_find(ctx, net, "bn.num_batches_tracked");
    assert_non_null(nbt);
    assert_int_equal(nbt->dtype, NB_I64);
    assert_int_equal(nbt->ndim, 0);
    expect_close(w, (double[]){1, 1}, 2, 0);
    expect_close(b, (double[]){0, 0}, 2, 0);
    expect_close(rm, (double[]){0, 0}, 2, 0);
    expect_close(rv, (double[]){1, 1}, 2, 0);
    assert_int_equal(nb_get(nbt, 0), 0);
    assert_true(nb_requires_grad(w));
    assert_false(nb_requires_grad(rm));

    /* training: batch statistics, running ones move, the count grows */
    nb_tensor *x = filled(ctx, NB_F32, NB_SHAPE(4, 2), X42);
    nb_set(w, 1, 2.0);
    nb_set(b, 0, 0.5);
    nb_tensor *y = nb_module_forward(ctx, bn, x);
    double r0 = 1 / sqrt(1.25 + 1e-5), r1 = 1 / sqrt(6 + 1e-5);
    expect_close(y, (double[]){0.5 - 1.5 * r0, -4 * r1, 0.5 - 0.5 * r0, -4 * r1, 0.5 + 0.5 * r0, 0,
                               0.5 + 1.5 * r0, 8 * r1}, 8, 1e-6);
    assert_int_equal(nb_get(nbt, 0), 1);
    expect_close(rm, (double[]){0.25, 0.2}, 2, 1e-6);
    expect_close(rv, (double[]){0.9 + 0.5 / 3.0, 1.7}, 2, 1e-6);
    assert_int_equal(nb_backward(ctx, nb_sum(ctx, nb_mul(ctx, y, y), 0, NULL, false)), NB_OK);
    assert_non_null(w->grad);
    assert_non_null(b->grad);
    assert_non_null(nb_module_forward(ctx, net, x)); /* both layers count */
    assert_int_equal(nb_get(nbt, 0), 2);
    assert_int_equal(nb_get(nb_module_find(ctx, net, "plain.num_batches_tracked"), 0), 1);

    /* evaluation: running statistics, nothing moves */
    nb_module_train(net, false);
    double m0 = nb_get(rm, 0), v0 = nb_get(rv, 0), m1 = nb_get(rm, 1), v1 = nb_get(rv, 1);
    nb_tensor *ye = nb_module_forward(ctx, bn, x);
    double want[8];
    for (int i = 0; i < 8; i++)
        want[i] = i % 2 ? (X42[i] - m1) / sqrt(v1 + 1e-5) * 2.0
                        : (X42[i] - m0) / sqrt(v0 + 1e-5) + 0.5;
    expect_close(ye, want, 8, 1e-6);
    assert_int_equal(nb_get(nbt, 0), 2);
    assert_true(nb_get(rm, 0) == m0 && nb_get(rv, 1) == v1);
    /* one row is fine in evaluation, an error in training (torch's rule) */
    nb_tensor *row = nb_zeros(ctx, NB_F32, NB_SHAPE(1, 2));
    assert_non_null(nb_module_forward(ctx, bn, row));
    nb_module_train(net, true);
    EXPECT(nb_module_forward(ctx, bn, row), NB_ERR_SHAPE,
           "batch_norm: expected more than 1 value per channel when training, got [1,2]");
    assert_int_equal(nb_get(nbt, 0), 2); /* a failed forward does not count */

    /* nb_module_init: weight 1 and bias 0 whatever the initializers */
    nb_init k = nb_init_default(NB_INIT_KAIMING_UNIFORM), c = nb_init_default(NB_INIT_CONSTANT);
    c.a = 3;
    assert_int_equal(nb_module_init(ctx, net, &k, &c), NB_OK);
    expect_close(w, (double[]){1, 1}, 2, 0);
    expect_close(b, (double[]){0, 0}, 2, 0);
    nb_module_free(ctx, net);
    nb_ctx_free(ctx);
}

static void test_layer_and_group_norm_layers(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_module *net = nb_sequential(ctx, NULL);
    static const int64_t ln_shape[2] = {3, 4}, last[1] = {4};
    nb_module *ln = nb_layer_norm_layer(ctx, "ln", 2, ln_shape, 1e-5, true);
    assert_int_equal(nb_sequential_add(ctx, net, ln), NB_OK);
    nb_module *gn = nb_group_norm_layer(ctx, "gn", 2, 4, 1e-5, true);
    assert_int_equal(nb_sequential_add(ctx, net, gn), NB_OK);
    nb_module *plain = nb_layer_norm_layer(ctx, NULL, 1, last, 1e-5, false);
    assert_int_equal(nb_sequential_add(ctx, net, plain), NB_OK);
    nb_param_list l;
    assert_int_equal(nb_module_params(ctx, net, &l), NB_OK);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.items[0].name, "ln.weight");
    assert_string_equal(l.items[1].name, "ln.bias");
    assert_string_equal(l.items[2].name, "gn.weight");
    assert_string_equal(l.items[3].name, "gn.bias");
    nb_param_list_free(ctx, &l);
    nb_tensor *lw = nb_module_find(ctx, net, "ln.weight");
    nb_tensor *gw = nb_module_find(ctx, net, "gn.weight");
    assert_int_equal(lw->ndim, 2);
    assert_int_equal(lw->shape[0], 3);
    assert_int_equal(lw->shape[1], 4);
    assert_int_equal(gw->shape[0], 4);
    assert_string_equal(nb_module_kind(ln), "layer_norm");
    assert_string_equal(nb_module_kind(gn), "group_norm");
    expect_close(lw, (double[]){1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 12, 0);

    /* each layer is its op; train and eval agree (no running statistics) */
    nb_rng r;
    nb_rng_seed(&r, 5, 0);
    nb_tensor *x = nb_empty(ctx, NB_F32, NB_SHAPE(2, 3, 4));
    for (int64_t i = 0; i < 24; i++)
        nb_set(x, i, nb_rng_normal(&r));
    nb_set(lw, 5, 3.0);
    nb_set(gw, 2, -2.0);
    nb_tensor *ya = nb_module_forward(ctx, ln, x);
    nb_tensor *yb = nb_layer_norm(ctx, x, 2, lw, nb_module_find(ctx, net, "ln.bias"), 1e-5);
    nb_tensor *x4 = nb_reshape(ctx, x, NB_SHAPE(2, 4, 3));
    nb_tensor *ga = nb_module_forward(ctx, gn, x4);
    nb_tensor *gb = nb_group_norm(ctx, x4, 2, gw, nb_module_find(ctx, net, "gn.bias"), 1e-5);
    nb_module_train(net, false);
    nb_tensor *gc = nb_module_forward(ctx, gn, x4);
    for (int64_t i = 0; i < 24; i++) {
        assert_true(nb_get(ya, i) == nb_get(yb, i));
        assert_true(nb_get(ga, i) == nb_get(gb, i));
        assert_true(nb_get(ga, i) == nb_get(gc, i));
    }
    /* without affine: the op without gamma and beta */
    nb_tensor *yp = nb_module_forward(ctx, plain, x), *yq = nb_layer_norm(ctx, x, 1, NULL, NULL, 1e-5);
    for (int64_t i = 0; i < 24; i++)
        assert_true(nb_get(yp, i) == nb_get(yq, i));
    assert_int_equal(nb_module_param_count(net), 12 + 12 + 4 + 4);
    nb_module_free(ctx, net);
    nb_ctx_free(ctx);
}

/* ---- threads, allocation ------------------------------------------------------------ */
/* Large enough for the parallel paths; every unit and parameter is computed by
 * one thread in a fixed order, so results are bitwise the same on 1 and 4. */
static void run_all(nb_ctx *ctx, nb_tensor *x, nb_tensor **p, nb_tensor *rm, nb_tensor *rv,
                    double *out)
{
    nb_arena_reset(ctx);
    nb_zero_grad(x);
    for (int i = 0; i < 3; i++)
        nb_zero_grad(p[i]);
    nb_tensor *y1 = nb_batch_norm(ctx, x, p[0], p[1], rm, rv, true, 0.1, 1e-5);
    nb_tensor *y2 = nb_layer_norm(ctx, x, 2, p[2], NULL, 1e-5);
    nb_tensor *y3 = nb_group_norm(ctx, x, 8, p[0], p[1], 1e-5);
    nb_tensor *l = nb_add(ctx, nb_add(ctx, nb_sum(ctx, nb_mul(ctx, y1, y2), 0, NULL, false),
                                      nb_sum(ctx, nb_mul(ctx, y3, y3), 0, NULL, false)),
                          nb_sum(ctx, nb_mul(ctx, y2, x), 0, NULL, false));
    assert_non_null(l);
    assert_int_equal(nb_backward(ctx, l), NB_OK);
    if (!out)
        return;
    int64_t k = 0;
    nb_tensor *ts[] = {y1, y2, y3, x->grad, p[0]->grad, p[1]->grad, p[2]->grad, rm, rv};
    for (int t = 0; t < 9; t++)
        for (int64_t i = 0; i < nb_numel(ts[t]); i++)
            out[k++] = nb_get(ts[t], i);
}

static void test_threads_same_results(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *xp = nb_param(ctx, NB_F32, NB_SHAPE(16, 32, 8, 8)); /* persistent: outlives resets */
    nb_fill_normal(ctx, xp, 1.0, 2.0);
    nb_tensor *p[3] = {nb_param(ctx, NB_F32, NB_SHAPE(32)), nb_param(ctx, NB_F32, NB_SHAPE(32)),
                       nb_param(ctx, NB_F32, NB_SHAPE(8, 8))};
    nb_fill_normal(ctx, p[0], 1.0, 0.5);
    nb_fill_normal(ctx, p[1], 0.0, 0.5);
    nb_fill_normal(ctx, p[2], 1.0, 0.5);
    nb_tensor *rm = nb_buffer(ctx, NB_F32, NB_SHAPE(32));
    nb_tensor *rv = nb_buffer(ctx, NB_F32, NB_SHAPE(32));
    size_t n = (size_t)(4 * nb_numel(xp) + 32 + 32 + 64 + 64);
    double *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    nb_set_num_threads(ctx, 1);
    nb_fill(ctx, rv, 1.0);
    run_all(ctx, xp, p, rm, rv, a);
    nb_set_num_threads(ctx, 4);
    nb_fill(ctx, rm, 0.0);
    nb_fill(ctx, rv, 1.0);
    run_all(ctx, xp, p, rm, rv, b);
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            fail_msg("value %zu differs: 1 thread %.9g, 4 threads %.9g", i, a[i], b[i]);
    double g = 0; /* and the input got a gradient */
    for (int64_t i = 0; i < nb_numel(xp); i++)
        g += fabs(nb_get(xp->grad, i));
    assert_true(g > 0);
    free(a);
    free(b);
    nb_ctx_free(ctx);
}

static long hook_calls;
static void *hook_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    hook_calls++;
    void *p = NULL;
    return posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) ? NULL : p;
}
static void hook_free(void *p, void *user)
{
    (void)user;
    free(p);
}

static void test_steady_step_allocates_nothing(void **state)
{
    (void)state;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.allocator.alloc = hook_alloc;
    o.allocator.free = hook_free;
    o.num_threads = 1;
    nb_ctx *ctx = nb_ctx_new(&o);
    assert_non_null(ctx);
    nb_tensor *xp = nb_param(ctx, NB_F32, NB_SHAPE(8, 16, 4, 4));
    nb_fill_normal(ctx, xp, 0.0, 1.0);
    nb_tensor *p[3] = {nb_param(ctx, NB_F32, NB_SHAPE(16)), nb_param(ctx, NB_F32, NB_SHAPE(16)),
                       nb_param(ctx, NB_F32, NB_SHAPE(4, 4))};
    for (int i = 0; i < 3; i++)
        nb_fill(ctx, p[i], 1.0);
    nb_tensor *rm = nb_buffer(ctx, NB_F32, NB_SHAPE(16));
    nb_tensor *rv = nb_buffer(ctx, NB_F32, NB_SHAPE(16));
    for (int s = 0; s < 3; s++)
        run_all(ctx, xp, p, rm, rv, NULL);
    long before = hook_calls;
    for (int s = 0; s < 5; s++)
        run_all(ctx, xp, p, rm, rv, NULL);
    assert_int_equal(hook_calls - before, 0);
    nb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_norm_errors),
        cmocka_unit_test(test_layer_group_norm_errors),
        cmocka_unit_test(test_running_update),
        cmocka_unit_test(test_eval_gradients),
        cmocka_unit_test(test_f32_large_offset),
        cmocka_unit_test(test_batch_norm_layer),
        cmocka_unit_test(test_layer_and_group_norm_layers),
        cmocka_unit_test(test_threads_same_results),
        cmocka_unit_test(test_steady_step_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
