/* Pooling and resampling (src/ops/pool.c, src/nn/pool_layers.c): bad input
 * of every kind (status and text, nothing recorded), known answers from
 * PyTorch 1.13 (padding, ceil mode, count_include_pad, ties, -inf, NaN),
 * global average pooling's backward, 1 vs 2 threads, and the layers. The
 * gradient checks and PyTorch parity of the ops are in test_ops. */
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

/* The call returned NULL with status st and exactly the text msg; clears it. */
static void expect_err(nb_ctx *ctx, const void *result, nb_status st, const char *msg)
{
    assert_null(result);
    assert_int_equal(nb_last_status(ctx), st);
    assert_string_equal(nb_last_error(ctx), msg);
    nb_clear_error(ctx);
}
#define EXPECT(call, st, msg) expect_err(ctx, (call), st, msg)

static nb_pool_opts popts(int kh, int kw, int sh, int sw, int ph, int pw, bool ceil_mode,
                          bool cip)
{
    nb_pool_opts o = nb_pool_opts_default(kh, kw);
    o.stride[0] = sh;
    o.stride[1] = sw;
    o.padding[0] = ph;
    o.padding[1] = pw;
    o.ceil_mode = ceil_mode;
    o.count_include_pad = cip;
    return o;
}

static void expect_values(const nb_tensor *t, int n, const double *want, double tol)
{
    assert_non_null(t);
    assert_int_equal(nb_numel(t), n);
    for (int i = 0; i < n; i++) {
        double got = nb_get(t, i);
        if (!(fabs(got - want[i]) <= tol) && !(isnan(got) && isnan(want[i])) &&
            !(got == want[i]))
            fail_msg("element %d: got %.10g, want %.10g", i, got, want[i]);
    }
}

static void expect_shape(const nb_tensor *t, int64_t n, int64_t c, int64_t h, int64_t w)
{
    assert_non_null(t);
    assert_int_equal(t->ndim, 4);
    assert_int_equal(t->shape[0], n);
    assert_int_equal(t->shape[1], c);
    assert_int_equal(t->shape[2], h);
    assert_int_equal(t->shape[3], w);
}

/* 0, 1, ..., 15 as [1, 1, 4, 4], requiring grad */
static nb_tensor *ramp16(nb_ctx *ctx, nb_dtype dt)
{
    nb_tensor *x = nb_empty(ctx, dt, NB_SHAPE(1, 1, 4, 4));
    assert_non_null(x);
    for (int i = 0; i < 16; i++)
        nb_set(x, i, i);
    assert_int_equal(nb_set_requires_grad(ctx, x, true), NB_OK);
    return x;
}

/* ---- bad input ------------------------------------------------------------- */
static void test_defaults(void **state)
{
    (void)state;
    nb_pool_opts o = nb_pool_opts_default(3, 2);
    assert_int_equal(o.kernel[0], 3);
    assert_int_equal(o.kernel[1], 2);
    assert_int_equal(o.stride[0], 0);
    assert_int_equal(o.stride[1], 0);
    assert_int_equal(o.padding[0], 0);
    assert_int_equal(o.padding[1], 0);
    assert_false(o.ceil_mode);
    assert_true(o.count_include_pad);
}

static void test_bad_options(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(1, 1, 4, 4));
    nb_pool_opts o = popts(5, 5, 0, 0, 0, 0, false, true);
    EXPECT(nb_max_pool2d(ctx, x, &o), NB_ERR_SHAPE,
           "max_pool2d: kernel 5x5 larger than the padded input 4x4 (padding 0)");
    o = popts(7, 2, 1, 1, 1, 1, false, true);
    EXPECT(nb_avg_pool2d(ctx, x, &o), NB_ERR_SHAPE,
           "avg_pool2d: kernel 7x2 larger than the padded input 6x6 (padding 1)");
    o = popts(2, 7, 1, 1, 1, 0, true, true); /* ceil mode does not rescue it */
    EXPECT(nb_max_pool2d(ctx, x, &o), NB_ERR_SHAPE,
           "max_pool2d: kernel 2x7 larger than the padded input 6x4 (padding 1x0)");
    o = popts(0, 2, 0, 0, 0, 0, false, true);
    EXPECT(nb_max_pool2d(ctx, x, &o), NB_ERR_ARG, "max_pool2d: kernel 0x2 must be positive");
    o = popts(2, -1, 0, 0, 0, 0, false, true);
    EXPECT(nb_avg_pool2d(ctx, x, &o), NB_ERR_ARG, "avg_pool2d: kernel 2x-1 must be positive");
    o = popts(2, 2, -1, 1, 0, 0, false, true);
    EXPECT(nb_max_pool2d(ctx, x, &o), NB_ERR_ARG,
           "max_pool2d: stride -1x1 must be positive (0: the kernel size)");
    o = popts(3, 3, 1, 1, 2, 0, false, true);
    EXPECT(nb_max_pool2d(ctx, x, &o), NB_ERR_ARG,
           "max_pool2d: padding 2x0 is more than half the kernel 3x3");
    o = popts(3, 2, 1, 1, 1, 2, false, true);
    EXPECT(nb_avg_pool2d(ctx, x, &o), NB_ERR_ARG,
           "avg_pool2d: padding 1x2 is more than half the kernel 3x2");
    o = popts(3, 3, 1, 1, 0, -1, false, true);
    EXPECT(nb_avg_pool2d(ctx, x, &o), NB_ERR_ARG, "avg_pool2d: padding 0x-1 is negative");
    EXPECT(nb_max_pool2d(ctx, x, NULL), NB_ERR_NULL, "max_pool2d: options are NULL");
    EXPECT(nb_adaptive_avg_pool2d(ctx, x, 0, 2), NB_ERR_ARG,
           "adaptive_avg_pool2d: output size 0x2 must be positive");
    EXPECT(nb_adaptive_avg_pool2d(ctx, x, 2, -3), NB_ERR_ARG,
           "adaptive_avg_pool2d: output size 2x-3 must be positive");
    EXPECT(nb_upsample_nearest2d(ctx, x, 0, 2), NB_ERR_ARG,
           "upsample_nearest2d: factors 0x2 must be positive");
    EXPECT(nb_upsample_nearest2d(ctx, x, 2, -1), NB_ERR_ARG,
           "upsample_nearest2d: factors 2x-1 must be positive");
    /* the largest accepted: kernel = padded input, padding = half the kernel */
    o = popts(6, 4, 1, 1, 1, 0, false, true);
    expect_shape(nb_max_pool2d(ctx, x, &o), 1, 1, 1, 1);
    o = popts(4, 5, 2, 2, 2, 2, false, true);
    expect_shape(nb_avg_pool2d(ctx, x, &o), 1, 1, 3, 2);
    assert_int_equal(nb_last_status(ctx), NB_OK);
    nb_ctx_free(ctx);
}

static void test_bad_tensors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_pool_opts o = nb_pool_opts_default(2, 2);
    nb_tensor *x3 = nb_zeros(ctx, NB_F32, NB_SHAPE(1, 4, 4));
    nb_tensor *x5 = nb_zeros(ctx, NB_F64, NB_SHAPE(1, 1, 1, 4, 4));
    EXPECT(nb_max_pool2d(ctx, x3, &o), NB_ERR_SHAPE,
           "max_pool2d: expects a 4-D input [N, C, H, W], got [1,4,4]");
    EXPECT(nb_avg_pool2d(ctx, x5, &o), NB_ERR_SHAPE,
           "avg_pool2d: expects a 4-D input [N, C, H, W], got [1,1,1,4,4]");
    EXPECT(nb_adaptive_avg_pool2d(ctx, x3, 2, 2), NB_ERR_SHAPE,
           "adaptive_avg_pool2d: expects a 4-D input [N, C, H, W], got [1,4,4]");
    EXPECT(nb_global_avg_pool2d(ctx, x3), NB_ERR_SHAPE,
           "global_avg_pool2d: expects a 4-D input [N, C, H, W], got [1,4,4]");
    EXPECT(nb_upsample_nearest2d(ctx, x5, 2, 2), NB_ERR_SHAPE,
           "upsample_nearest2d: expects a 4-D input [N, C, H, W], got [1,1,1,4,4]");
    nb_tensor *empty = nb_zeros(ctx, NB_F32, NB_SHAPE(1, 1, 0, 4));
    EXPECT(nb_max_pool2d(ctx, empty, &o), NB_ERR_SHAPE,
           "max_pool2d: input [1,1,0,4] has an empty plane (H and W must be at least 1)");
    EXPECT(nb_global_avg_pool2d(ctx, empty), NB_ERR_SHAPE,
           "global_avg_pool2d: input [1,1,0,4] has an empty plane (H and W must be at least 1)");
    nb_tensor *xi = nb_zeros(ctx, NB_I32, NB_SHAPE(1, 1, 4, 4));
    EXPECT(nb_max_pool2d(ctx, xi, &o), NB_ERR_DTYPE, "max_pool2d: needs a float tensor, got i32");
    EXPECT(nb_upsample_nearest2d(ctx, xi, 2, 2), NB_ERR_DTYPE,
           "upsample_nearest2d: needs a float tensor, got i32");
    /* NULL input: NB_ERR_NULL, or nothing new when an error is pending */
    EXPECT(nb_max_pool2d(ctx, NULL, &o), NB_ERR_NULL, "max_pool2d: input 0 is NULL");
    EXPECT(nb_avg_pool2d(ctx, NULL, &o), NB_ERR_NULL, "avg_pool2d: input 0 is NULL");
    EXPECT(nb_adaptive_avg_pool2d(ctx, NULL, 1, 1), NB_ERR_NULL,
           "adaptive_avg_pool2d: input 0 is NULL");
    EXPECT(nb_global_avg_pool2d(ctx, NULL), NB_ERR_NULL, "global_avg_pool2d: input 0 is NULL");
    EXPECT(nb_upsample_nearest2d(ctx, NULL, 2, 2), NB_ERR_NULL,
           "upsample_nearest2d: input 0 is NULL");
    EXPECT(nb_max_pool2d(ctx, nb_max_pool2d(ctx, x3, &o), &o), NB_ERR_SHAPE,
           "max_pool2d: expects a 4-D input [N, C, H, W], got [1,4,4]");
    assert_null(nb_max_pool2d(NULL, x3, &o));
    assert_null(nb_global_avg_pool2d(NULL, x3));
    /* a refused call records nothing, not even the contiguous copy */
    nb_tensor *leaf = nb_zeros(ctx, NB_F64, NB_SHAPE(1, 2, 3, 4));
    assert_int_equal(nb_set_requires_grad(ctx, leaf, true), NB_OK);
    nb_tensor *tr = nb_transpose(ctx, leaf, 2, 3);
    size_t len = nb_tape_length(ctx);
    o = nb_pool_opts_default(5, 5);
    EXPECT(nb_max_pool2d(ctx, tr, &o), NB_ERR_SHAPE,
           "max_pool2d: kernel 5x5 larger than the padded input 4x3 (padding 0)");
    EXPECT(nb_upsample_nearest2d(ctx, tr, 0, 1), NB_ERR_ARG,
           "upsample_nearest2d: factors 0x1 must be positive");
    assert_int_equal(nb_tape_length(ctx), len);
    nb_ctx_free(ctx);
}

/* ---- known answers (PyTorch 1.13) -------------------------------------------- */
static void test_max_pool_known(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        nb_tensor *x = ramp16(ctx, dt);
        nb_pool_opts o = nb_pool_opts_default(2, 2);
        nb_tensor *y = nb_max_pool2d(ctx, x, &o);
        expect_shape(y, 1, 1, 2, 2);
        expect_values(y, 4, (const double[]){5, 7, 13, 15}, 0);
        /* F.max_pool2d(x, 3, 2, 1, ceil_mode=True) and its backward from ones */
        o = popts(3, 3, 2, 2, 1, 1, true, true);
        y = nb_max_pool2d(ctx, x, &o);
        expect_shape(y, 1, 1, 3, 3);
        expect_values(y, 9, (const double[]){5, 7, 7, 13, 15, 15, 13, 15, 15}, 0);
        assert_int_equal(nb_backward_with(ctx, y, nb_full(ctx, dt, NB_SHAPE(1, 1, 3, 3), 1)),
                         NB_OK);
        expect_values(x->grad, 16,
                      (const double[]){0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 2, 0, 4}, 0);
    }
    /* ties: the first in row-major window order; -inf everywhere: the first
     * element of the window; NaN: the last NaN of the window (torch) */
    static const double ties[16] = {1, 1, 3, 2, 1, 1, 2, 3, -INFINITY, -INFINITY, 0, NAN,
                                    -INFINITY, -INFINITY, NAN, 0};
    nb_tensor *x = nb_from_data(ctx, NB_F64, NB_SHAPE(1, 1, 4, 4), ties);
    assert_int_equal(nb_set_requires_grad(ctx, x, true), NB_OK);
    nb_pool_opts o = nb_pool_opts_default(2, 2);
    nb_tensor *y = nb_max_pool2d(ctx, x, &o);
    expect_values(y, 4, (const double[]){1, 3, -INFINITY, NAN}, 0);
    nb_tensor *g = nb_from_data(ctx, NB_F64, NB_SHAPE(1, 1, 2, 2), (const double[]){1, 2, 3, 4});
    assert_int_equal(nb_backward_with(ctx, y, g), NB_OK);
    expect_values(x->grad, 16, (const double[]){1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 4, 0},
                  0);
    /* padding is -inf, never the max, even for an all-negative plane */
    nb_tensor *neg = nb_full(ctx, NB_F32, NB_SHAPE(1, 1, 3, 3), -5);
    o = popts(3, 3, 1, 1, 1, 1, false, true);
    y = nb_max_pool2d(ctx, neg, &o);
    expect_shape(y, 1, 1, 3, 3);
    for (int i = 0; i < 9; i++)
        assert_true(nb_get(y, i) == -5);
    nb_ctx_free(ctx);
}

static void test_avg_pool_known(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        double tol = d ? 1e-12 : 1e-5;
        nb_tensor *x = ramp16(ctx, dt);
        nb_pool_opts o = nb_pool_opts_default(2, 2);
        expect_values(nb_avg_pool2d(ctx, x, &o), 4, (const double[]){2.5, 4.5, 10.5, 12.5}, tol);
        /* F.avg_pool2d(x, 3, 2, 1, ceil_mode=True): divisors 9 9 6 / 9 9 6 / 6 6 4
         * (the last windows stop at the right padding) */
        o = popts(3, 3, 2, 2, 1, 1, true, true);
        nb_tensor *y = nb_avg_pool2d(ctx, x, &o);
        expect_shape(y, 1, 1, 3, 3);
        expect_values(y, 9,
                      (const double[]){10 / 9., 24 / 9., 10 / 6., 51 / 9., 90 / 9., 33 / 6.,
                                       25 / 6., 42 / 6., 15 / 4.},
                      tol);
        /* count_include_pad=False: divisors 4 6 2 / 6 9 3 / 4 6 2 */
        o.count_include_pad = false;
        y = nb_avg_pool2d(ctx, x, &o);
        expect_values(y, 9, (const double[]){2.5, 4, 5, 8.5, 10, 11, 12.5, 14, 15}, tol);
        assert_int_equal(nb_backward_with(ctx, y, nb_full(ctx, dt, NB_SHAPE(1, 1, 3, 3), 36)),
                         NB_OK);
        expect_values(x->grad, 16,
                      (const double[]){9, 15, 6, 24, 15, 25, 10, 40, 6, 10, 4, 16, 24, 40, 16, 64},
                      d ? 1e-12 : 1e-4);
    }
    nb_ctx_free(ctx);
}

static void test_adaptive_and_upsample_known(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *a = nb_empty(ctx, NB_F64, NB_SHAPE(1, 1, 3, 5));
    for (int i = 0; i < 15; i++)
        nb_set(a, i, i);
    assert_int_equal(nb_set_requires_grad(ctx, a, true), NB_OK);
    /* rows [0,2) [1,3); columns [0,2) [1,4) [3,5) */
    nb_tensor *y = nb_adaptive_avg_pool2d(ctx, a, 2, 3);
    expect_shape(y, 1, 1, 2, 3);
    expect_values(y, 6, (const double[]){3, 4.5, 6, 8, 9.5, 11}, 1e-12);
    assert_int_equal(nb_backward_with(ctx, y, nb_full(ctx, NB_F64, NB_SHAPE(1, 1, 2, 3), 12)),
                     NB_OK);
    expect_values(a->grad, 15,
                  (const double[]){3, 5, 2, 5, 3, 6, 10, 4, 10, 6, 3, 5, 2, 5, 3}, 1e-12);

    nb_tensor *u = nb_from_data(ctx, NB_F32, NB_SHAPE(1, 1, 2, 2), (const float[]){1, 2, 3, 4});
    assert_int_equal(nb_set_requires_grad(ctx, u, true), NB_OK);
    y = nb_upsample_nearest2d(ctx, u, 2, 3);
    expect_shape(y, 1, 1, 4, 6);
    expect_values(y, 24,
                  (const double[]){1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2,
                                   3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4},
                  0);
    nb_tensor *g = nb_empty(ctx, NB_F32, NB_SHAPE(1, 1, 4, 6));
    for (int i = 0; i < 24; i++)
        nb_set(g, i, i);
    assert_int_equal(nb_backward_with(ctx, y, g), NB_OK);
    /* block sums: rows 0-1 x columns 0-2 = 0+1+2+6+7+8, ... */
    expect_values(u->grad, 4, (const double[]){24, 42, 96, 114}, 0);
    nb_ctx_free(ctx);
}

static void test_global_avg_pool(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *x = nb_empty(ctx, NB_F64, NB_SHAPE(2, 3, 2, 2));
    for (int i = 0; i < 24; i++)
        nb_set(x, i, i * i);
    assert_int_equal(nb_set_requires_grad(ctx, x, true), NB_OK);
    nb_tensor *y = nb_global_avg_pool2d(ctx, x);
    assert_non_null(y);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 3);
    for (int p = 0; p < 6; p++) {
        double s = 0;
        for (int k = 0; k < 4; k++)
            s += (4 * p + k) * (4 * p + k);
        assert_true(fabs(nb_get(y, p) - s / 4) < 1e-12);
    }
    assert_int_equal(ctx->tape->op, NB__OP_MEAN); /* composed: the mean's node */
    nb_tensor *g = nb_from_data(ctx, NB_F64, NB_SHAPE(2, 3), (const double[]){1, -2, 3, 4, 0.5, 8});
    assert_int_equal(nb_backward_with(ctx, y, g), NB_OK);
    for (int i = 0; i < 24; i++)
        assert_true(fabs(nb_get(x->grad, i) - nb_get(g, i / 4) / 4) < 1e-15);
    /* a transposed input: the gradient lands on the leaf's layout */
    nb_tensor *z = nb_empty(ctx, NB_F32, NB_SHAPE(1, 2, 3, 2));
    for (int i = 0; i < 12; i++)
        nb_set(z, i, i);
    assert_int_equal(nb_set_requires_grad(ctx, z, true), NB_OK);
    y = nb_global_avg_pool2d(ctx, nb_transpose(ctx, z, 1, 3));
    assert_non_null(y);
    assert_int_equal(y->shape[1], 2);
    expect_values(y, 2, (const double[]){5, 6}, 1e-6);
    assert_int_equal(nb_backward_with(ctx, y, nb_from_data(ctx, NB_F32, NB_SHAPE(1, 2),
                                                           (const float[]){6, 12})),
                     NB_OK);
    expect_values(z->grad, 12, (const double[]){1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, 0);
    nb_ctx_free(ctx);
}

/* ---- threads: results do not depend on the thread count ---------------------- */
static nb_tensor *run_all(nb_ctx *ctx, nb_tensor *x)
{
    nb_pool_opts mo = popts(3, 2, 2, 1, 1, 1, true, true);
    nb_pool_opts ao = popts(3, 3, 2, 2, 1, 1, true, false);
    nb_tensor *a = nb_max_pool2d(ctx, x, &mo);
    nb_tensor *b = nb_avg_pool2d(ctx, x, &ao);
    nb_tensor *c = nb_adaptive_avg_pool2d(ctx, x, 7, 5);
    nb_tensor *d = nb_upsample_nearest2d(ctx, x, 2, 3);
    nb_tensor *parts[4] = {nb_flatten(ctx, a, 0, -1), nb_flatten(ctx, b, 0, -1),
                           nb_flatten(ctx, c, 0, -1), nb_flatten(ctx, d, 0, -1)};
    return nb_concat(ctx, 4, parts, 0);
}

static void test_threads(void **state)
{
    (void)state;
    double *out[2] = {NULL, NULL}, *grad[2] = {NULL, NULL};
    int64_t ny = 0, nx = 0;
    for (int t = 0; t < 2; t++) {
        nb_ctx *ctx = new_ctx();
        nb_set_num_threads(ctx, t + 1);
        nb_tensor *x = nb_empty(ctx, NB_F32, NB_SHAPE(4, 16, 33, 31));
        assert_non_null(x);
        nb_rng_seed(nb_ctx_rng(ctx), 5, 0);
        assert_int_equal(nb_fill_normal(ctx, x, 0, 1), NB_OK);
        assert_int_equal(nb_set_requires_grad(ctx, x, true), NB_OK);
        nb_tensor *y = run_all(ctx, x);
        assert_non_null(y);
        nb_tensor *w = nb_empty(ctx, NB_F32, y->ndim, y->shape);
        assert_int_equal(nb_fill_normal(ctx, w, 0, 1), NB_OK);
        assert_int_equal(nb_backward_with(ctx, y, w), NB_OK);
        ny = nb_numel(y);
        nx = nb_numel(x);
        out[t] = malloc(sizeof(double) * (size_t)ny);
        grad[t] = malloc(sizeof(double) * (size_t)nx);
        assert_non_null(out[t]);
        assert_non_null(grad[t]);
        for (int64_t i = 0; i < ny; i++)
            out[t][i] = nb_get(y, i);
        for (int64_t i = 0; i < nx; i++)
            grad[t][i] = nb_get(x->grad, i);
        nb_ctx_free(ctx);
    }
    assert_memory_equal(out[0], out[1], sizeof(double) * (size_t)ny);
    assert_memory_equal(grad[0], grad[1], sizeof(double) * (size_t)nx);
    for (int t = 0; t < 2; t++) {
        free(out[t]);
        free(grad[t]);
    }
}

/* ---- layers --------------------------------------------------------------------- */
static void test_layers(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_pool_opts mo = nb_pool_opts_default(2, 2);
    nb_pool_opts ao = popts(3, 3, 1, 1, 1, 1, false, false);
    nb_module *seq = nb_sequential(ctx, NULL);
    assert_non_null(seq);
    assert_int_equal(nb_sequential_add(ctx, seq, nb_max_pool_layer(ctx, "pool1", &mo)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, seq, nb_avg_pool_layer(ctx, NULL, &ao)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, seq, nb_upsample_layer(ctx, "up", 2, 3)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, seq, nb_global_avg_pool_layer(ctx, "gap")), NB_OK);
    assert_string_equal(nb_module_kind(nb_module_child(seq, 0)), "max_pool2d");
    assert_string_equal(nb_module_kind(nb_module_child(seq, 1)), "avg_pool2d");
    assert_string_equal(nb_module_kind(nb_module_child(seq, 2)), "upsample");
    assert_string_equal(nb_module_kind(nb_module_child(seq, 3)), "global_avg_pool2d");
    assert_string_equal(nb_module_name(nb_module_child(seq, 0)), "pool1");
    assert_int_equal(nb_module_param_count(seq), 0);
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, seq, &pl), NB_OK);
    assert_int_equal(pl.n, 0);
    nb_param_list_free(ctx, &pl);

    nb_tensor *x = nb_empty(ctx, NB_F32, NB_SHAPE(2, 3, 8, 6));
    assert_int_equal(nb_fill_normal(ctx, x, 0, 1), NB_OK);
    assert_int_equal(nb_set_requires_grad(ctx, x, true), NB_OK);
    nb_tensor *y = nb_module_forward(ctx, seq, x);
    assert_non_null(y);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 3);
    /* the same ops called directly give the same numbers */
    nb_tensor *ref = nb_global_avg_pool2d(
        ctx, nb_upsample_nearest2d(ctx, nb_avg_pool2d(ctx, nb_max_pool2d(ctx, x, &mo), &ao), 2, 3));
    assert_non_null(ref);
    for (int i = 0; i < 6; i++)
        assert_true(nb_get(y, i) == nb_get(ref, i));
    assert_int_equal(nb_backward(ctx, nb_sum(ctx, y, 0, NULL, false)), NB_OK);
    assert_non_null(x->grad);
    /* the layer's own error, then the op's for a wrong input */
    EXPECT(nb_max_pool_layer(ctx, NULL, NULL), NB_ERR_NULL, "max_pool2d: options are NULL");
    nb_pool_opts bad = popts(3, 0, 1, 1, 0, 0, false, true);
    EXPECT(nb_avg_pool_layer(ctx, NULL, &bad), NB_ERR_ARG,
           "avg_pool2d: kernel 3x0, stride 1x1, padding 0x0: needs kernel >= 1, stride >= 0 "
           "(0: the kernel) and 0 <= padding <= kernel / 2");
    bad = popts(3, 3, 1, 1, 2, 0, false, true);
    EXPECT(nb_max_pool_layer(ctx, NULL, &bad), NB_ERR_ARG,
           "max_pool2d: kernel 3x3, stride 1x1, padding 2x0: needs kernel >= 1, stride >= 0 "
           "(0: the kernel) and 0 <= padding <= kernel / 2");
    EXPECT(nb_upsample_layer(ctx, NULL, 1, 0), NB_ERR_ARG, "upsample: factors 1x0 must be positive");
    EXPECT(nb_max_pool_layer(ctx, "a.b", &mo), NB_ERR_ARG,
           "max_pool2d: module name \"a.b\" must be 1-63 characters without '.'");
    assert_null(nb_global_avg_pool_layer(NULL, NULL));
    nb_module *gap = nb_global_avg_pool_layer(ctx, NULL);
    EXPECT(nb_module_forward(ctx, gap, nb_zeros(ctx, NB_F32, NB_SHAPE(3, 4))), NB_ERR_SHAPE,
           "global_avg_pool2d: expects a 4-D input [N, C, H, W], got [3,4]");
    EXPECT(nb_module_forward(ctx, gap, NULL), NB_ERR_NULL, "global_avg_pool2d: input 0 is NULL");
    nb_module *big = nb_max_pool_layer(ctx, NULL, &(nb_pool_opts){{9, 9}, {0, 0}, {0, 0}, false, true});
    EXPECT(nb_module_forward(ctx, big, x), NB_ERR_SHAPE,
           "max_pool2d: kernel 9x9 larger than the padded input 8x6 (padding 0)");
    nb_module_free(ctx, big);
    nb_module_free(ctx, gap);
    nb_module_free(ctx, seq);
    nb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_max_pool_known),
        cmocka_unit_test(test_avg_pool_known),
        cmocka_unit_test(test_adaptive_and_upsample_known),
        cmocka_unit_test(test_global_avg_pool),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_layers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
