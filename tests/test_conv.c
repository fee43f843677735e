/* Convolution beyond the op table: the multi-threaded paths (per-thread
 * partial weight gradients) against one thread, Winograd against im2col on
 * the shapes it is chosen for, and bad input. */
#include "core/internal.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static void expect(nb_ctx *ctx, const void *r, nb_status st, const char *msg)
{
    assert_null(r);
    assert_int_equal(nb_last_status(ctx), st);
    if (!strstr(nb_last_error(ctx), msg))
        fail_msg("'%s' does not contain '%s'", nb_last_error(ctx), msg);
    nb_clear_error(ctx);
}

static void test_threads_agree(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    for (int transpose = 0; transpose < 2; transpose++) {
        nb_tensor *x = nb_buffer(ctx, NB_F32, NB_SHAPE(9, 6, 12, 12));
        nb_tensor *w = nb_param(ctx, NB_F32, transpose ? 4 : 4,
                                transpose ? (const int64_t[]){6, 4, 3, 3} : (const int64_t[]){8, 3, 3, 3});
        nb_tensor *b = nb_param(ctx, NB_F32, NB_SHAPE(8));
        nb_fill_normal(ctx, x, 0, 1);
        nb_fill_normal(ctx, w, 0, 0.3);
        nb_fill_normal(ctx, b, 0, 0.3);
        nb_set_requires_grad(ctx, x, true);
        nb_conv_opts o = nb_conv_opts_default();
        o.stride[0] = o.stride[1] = 2;
        o.padding[0] = o.padding[1] = 1;
        o.groups = 2;
        o.relu = !transpose; /* the fused ReLU's mask on the threaded path too */
        double ref[3][2048];
        int64_t cnt[3] = {0};
        for (int t = 1; t <= 2; t++) {
            nb_set_num_threads(ctx, t);
            nb_arena_reset(ctx);
            nb_zero_grads(ctx);
            nb_tensor *y = transpose ? nb_conv_transpose2d(ctx, x, w, b, &o) : nb_conv2d(ctx, x, w, b, &o);
            assert_non_null(y);
            nb_tensor *l = nb_sum(ctx, nb_square(ctx, y), 0, NULL, false);
            assert_int_equal(nb_backward(ctx, l), NB_OK);
            nb_tensor *gs[3] = {w->grad, b->grad, x->grad};
            for (int k = 0; k < 3; k++) {
                int64_t n = nb_numel(gs[k]) < 2048 ? nb_numel(gs[k]) : 2048;
                for (int64_t i = 0; i < n; i++) {
                    double v = nb_get(gs[k], i);
                    if (t == 1) {
                        ref[k][i] = v;
                        cnt[k] = n;
                    } else if (fabs(v - ref[k][i]) > 1e-4 * (1 + fabs(ref[k][i]))) {
                        fail_msg("transpose %d grad %d[%lld]: %g with 2 threads, %g with 1", transpose,
                                 k, (long long)i, v, ref[k][i]);
                    }
                }
            }
        }
        assert_true(cnt[0] > 0);
        nb_tensor_free(ctx, x);
        nb_tensor_free(ctx, w);
        nb_tensor_free(ctx, b);
    }
    nb_ctx_free(ctx);
}

/* Winograd F(2x2, 3x3) against im2col + GEMM in float32 on the shapes AUTO
 * gives it (the benchmark CNN's 32->64 conv, a ResNet-like 16->16 on an odd
 * size, padding 0 and 2), 1 and 2 threads, with V kept from the forward and
 * rebuilt in backward: output and every gradient within 1e-5 of the largest
 * magnitude (the two differ in rounding only). */
static void test_winograd_matches_im2col(void **state)
{
    (void)state;
    static const int cases[][7] = { /* N, C, O, H, W, pad, relu */
        {5, 32, 64, 14, 14, 1, 1}, {3, 16, 16, 7, 7, 1, 0}, {2, 8, 12, 9, 6, 0, 1}, {4, 9, 8, 5, 8, 2, 0}};
    size_t keep0 = nb__conv_keep_bytes;
    nb_ctx *ctx = nb_ctx_new(NULL);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int *c = cases[ci];
        nb_tensor *x = nb_buffer(ctx, NB_F32, NB_SHAPE(c[0], c[1], c[3], c[4]));
        nb_tensor *w = nb_param(ctx, NB_F32, NB_SHAPE(c[2], c[1], 3, 3));
        nb_tensor *b = nb_param(ctx, NB_F32, NB_SHAPE(c[2]));
        nb_fill_normal(ctx, x, 0, 1);
        nb_fill_normal(ctx, w, 0, 0.2);
        nb_fill_normal(ctx, b, 0, 0.2);
        nb_set_requires_grad(ctx, x, true);
        nb_tensor *gy = NULL;
        float *ref[4] = {NULL};
        int64_t cnt[4] = {0};
        for (int run = 0; run < 5; run++) { /* im2col; Winograd x {1, 2 threads} x {kept, rebuilt} */
            nb_conv_opts o = nb_conv_opts_default();
            o.padding[0] = o.padding[1] = c[5];
            o.relu = c[6];
            o.algo = run == 0 ? NB_CONV_IM2COL : NB_CONV_AUTO;
            nb_set_num_threads(ctx, run == 0 ? 1 : 1 + (run & 1));
            nb__conv_keep_bytes = run >= 3 ? 0 : keep0;
            nb_arena_reset(ctx);
            nb_zero_grads(ctx);
            nb_tensor *y = nb_conv2d(ctx, x, w, b, &o);
            assert_non_null(y);
            if (!gy) { /* a fixed random upstream gradient */
                gy = nb_buffer(ctx, NB_F32, 4, y->shape);
                nb_fill_normal(ctx, gy, 0, 1);
            }
            assert_int_equal(nb_backward_with(ctx, y, gy), NB_OK);
            nb_tensor *ts[4] = {y, x->grad, w->grad, b->grad};
            for (int k = 0; k < 4; k++) {
                int64_t n = nb_numel(ts[k]);
                const float *v = ts[k]->data;
                if (run == 0) {
                    ref[k] = malloc((size_t)n * sizeof(float));
                    memcpy(ref[k], v, (size_t)n * sizeof(float));
                    cnt[k] = n;
                    continue;
                }
                double scale = 0;
                for (int64_t i = 0; i < n; i++)
                    scale = fmax(scale, fabs(ref[k][i]));
                for (int64_t i = 0; i < n; i++)
                    if (!(fabs(v[i] - ref[k][i]) <= 1e-5 * scale))
                        fail_msg("case %zu run %d tensor %d [%lld]: winograd %.9g, im2col %.9g (scale %g)",
                                 ci, run, k, (long long)i, v[i], ref[k][i], scale);
            }
        }
        for (int k = 0; k < 4; k++) {
            assert_true(cnt[k] > 0);
            free(ref[k]);
        }
        nb_tensor_free(ctx, x);
        nb_tensor_free(ctx, w);
        nb_tensor_free(ctx, b);
        nb_tensor_free(ctx, gy);
    }
    nb__conv_keep_bytes = keep0;
    nb_ctx_free(ctx);
}

static void test_bad_input(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(1, 3, 4, 4));
    nb_tensor *w5 = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 5, 5));
    nb_tensor *w = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 3, 3));
    nb_conv_opts o = nb_conv_opts_default();
    expect(ctx, nb_conv2d(ctx, x, w5, NULL, &o), NB_ERR_SHAPE,
           "conv2d: kernel 5x5 (5x5 dilated) larger than the padded input 4x4");
    o.stride[0] = 0;
    expect(ctx, nb_conv2d(ctx, x, w, NULL, &o), NB_ERR_ARG, "stride 0x1 and dilation 1x1 must be >= 1");
    o = nb_conv_opts_default();
    nb_tensor *w2 = nb_zeros(ctx, NB_F32, NB_SHAPE(2, 2, 3, 3));
    expect(ctx, nb_conv2d(ctx, x, w2, NULL, &o), NB_ERR_SHAPE, "1 groups do not fit input [1,3,4,4] and weight [2,2,3,3]");
    o.groups = 2;
    expect(ctx, nb_conv2d(ctx, x, w, NULL, &o), NB_ERR_SHAPE, "2 groups do not fit");
    o = nb_conv_opts_default();
    expect(ctx, nb_conv2d(ctx, x, w, nb_zeros(ctx, NB_F32, NB_SHAPE(3)), &o), NB_ERR_SHAPE,
           "bias [3] does not match 2 output channels");
    expect(ctx, nb_conv2d(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(3, 4, 4)), w, NULL, &o), NB_ERR_SHAPE,
           "expects input [N, C, H, W]");
    expect(ctx, nb_conv2d(ctx, x, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3, 3, 3)), NULL, &o), NB_ERR_DTYPE,
           "one dtype");
    o.output_padding[0] = 1;
    expect(ctx, nb_conv2d(ctx, x, w, NULL, &o), NB_ERR_ARG, "output_padding");
    nb_tensor *wt = nb_zeros(ctx, NB_F32, NB_SHAPE(3, 2, 3, 3));
    o = nb_conv_opts_default();
    o.relu = true;
    expect(ctx, nb_conv_transpose2d(ctx, x, wt, NULL, &o), NB_ERR_ARG, "the fused ReLU is for conv2d only");
    o = nb_conv_opts_default();
    o.output_padding[0] = 1; /* must stay below stride or dilation */
    expect(ctx, nb_conv_transpose2d(ctx, x, wt, NULL, &o), NB_ERR_ARG, "output_padding 1x0");
    o = nb_conv_opts_default();
    o.algo = NB_CONV_WINOGRAD;
    o.stride[0] = 2;
    expect(ctx, nb_conv2d(ctx, x, w, NULL, &o), NB_ERR_ARG,
           "conv2d: algo winograd needs a 3x3 kernel, stride 1, dilation 1 and one group, got 3x3, stride 2x1");
    o = nb_conv_opts_default();
    o.algo = NB_CONV_WINOGRAD;
    expect(ctx, nb_conv2d(ctx, x, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3, 1, 1)), NULL, &o), NB_ERR_ARG,
           "got 1x1");
    o.algo = 7;
    expect(ctx, nb_conv2d(ctx, x, w, NULL, &o), NB_ERR_ARG, "conv2d: algo 7 is not an nb_conv_algo");
    o.algo = NB_CONV_WINOGRAD;
    expect(ctx, nb_conv_transpose2d(ctx, x, wt, NULL, &o), NB_ERR_ARG, "conv_transpose2d takes NB_CONV_AUTO only");
    expect(ctx, nb_conv2d(ctx, NULL, w, NULL, NULL), NB_ERR_NULL, "conv2d: input 0 is NULL");
    expect(ctx, nb_conv1d(ctx, x, w, NULL, NULL), NB_ERR_SHAPE, "conv1d: expects input [N, C, L]");
    nb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_winograd_matches_im2col),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
