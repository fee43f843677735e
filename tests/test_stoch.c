/* Sampling, KL, straight-through and Gumbel-softmax ops, and the layers made
 * of them, beyond what test_ops checks (gradient checks where they mean
 * something, PyTorch parity):
 *   - each STE's documented surrogate gradient, element by element;
 *   - nb_gaussian_sample: moments of z, and gradients equal to those of
 *     nb_reparameterize with the eps it drew;
 *   - Gumbel noise drawn inside: hard samples follow softmax(logits);
 *   - bad input: clear errors;
 *   - nb_add_loss, the gaussian (VAE) layer, binary_linear, sign activation,
 *     range normalisation, and an autoencoder trained by nb_train. */
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

static void expect_err(nb_ctx *ctx, const void *result, nb_status st, const char *part)
{
    assert_null(result);
    if (nb_last_status(ctx) != st)
        fail_msg("status %d, want %d: %s", (int)nb_last_status(ctx), (int)st, nb_last_error(ctx));
    assert_int_equal(nb_last_status(ctx), st);
    if (!strstr(nb_last_error(ctx), part))
        fail_msg("error '%s' does not mention '%s'", nb_last_error(ctx), part);
    nb_clear_error(ctx);
}
#define EXPECT(call, st, part) expect_err(ctx, (call), st, part)

static nb_tensor *leaf(nb_ctx *ctx, int n, const double *v)
{
    nb_tensor *t = nb_empty(ctx, NB_F64, 1, (int64_t[]){n});
    assert_non_null(t);
    for (int i = 0; i < n; i++)
        nb_set(t, i, v[i]);
    assert_int_equal(nb_set_requires_grad(ctx, t, true), NB_OK);
    return t;
}

/* y = f(x); backward with upstream g = 1, 2, 3, ...; checks y and dx. */
static void check_ste(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const double *want_y,
                      const double *pass)
{
    assert_non_null(y);
    int64_t n = nb_numel(x);
    nb_tensor *g = nb_empty(ctx, y->dtype, 1, (int64_t[]){n});
    for (int64_t i = 0; i < n; i++)
        nb_set(g, i, (double)(i + 1));
    assert_int_equal(nb_backward_with(ctx, y, g), NB_OK);
    for (int64_t i = 0; i < n; i++) {
        if (nb_get(y, i) != want_y[i])
            fail_msg("element %lld: forward %g, want %g", (long long)i, nb_get(y, i), want_y[i]);
        double want_g = pass[i] ? (double)(i + 1) : 0.0;
        if (nb_get(x->grad, i) != want_g)
            fail_msg("element %lld: gradient %g, want %g", (long long)i, nb_get(x->grad, i), want_g);
    }
    x->grad = NULL;
}

static void test_ste_surrogates(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    const double v[] = {-2.5, -1.0, -0.4, 0.0, 0.5, 1.5, 2.5, 0.99};
    nb_tensor *x = leaf(ctx, 8, v);
    /* sign: 0 maps to +1; no clip passes all, clip 1 passes |x| <= 1 */
    const double sg[] = {-1, -1, -1, 1, 1, 1, 1, 1};
    const double all[] = {1, 1, 1, 1, 1, 1, 1, 1}, in1[] = {0, 1, 1, 1, 1, 0, 0, 1};
    check_ste(ctx, x, nb_sign_ste(ctx, x, 0), sg, all);
    check_ste(ctx, x, nb_sign_ste(ctx, x, 1.0), sg, in1);
    /* round half to even, as torch.round */
    const double rd[] = {-2, -1, -0.0, 0, 0, 2, 2, 1};
    check_ste(ctx, x, nb_round_ste(ctx, x, 0), rd, all);
    const double in2[] = {0, 1, 1, 1, 1, 1, 0, 1};
    check_ste(ctx, x, nb_round_ste(ctx, x, 2.0), rd, in2);
    /* 5 levels over [-1, 1]: step 0.5; values clamp first */
    const double q[] = {-1, -1, -0.5, 0, 0.5, 1, 1, 1};
    const double qin[] = {0, 1, 1, 1, 1, 0, 0, 1};
    check_ste(ctx, x, nb_quantize_ste(ctx, x, -1, 1, 5, false), q, all);
    check_ste(ctx, x, nb_quantize_ste(ctx, x, -1, 1, 5, true), q, qin);
    /* float32 too */
    bool was = nb_set_grad_enabled(ctx, false);
    nb_tensor *x32 = nb_cast(ctx, x, NB_F32);
    nb_set_grad_enabled(ctx, was);
    assert_int_equal(nb_set_requires_grad(ctx, x32, true), NB_OK);
    check_ste(ctx, x32, nb_sign_ste(ctx, x32, 1.0), sg, in1);
    /* errors */
    nb_tensor *xi = nb_zeros(ctx, NB_I32, NB_SHAPE(3));
    EXPECT(nb_sign_ste(ctx, xi, 0), NB_ERR_DTYPE, "sign_ste");
    EXPECT(nb_sign_ste(ctx, x, NAN), NB_ERR_ARG, "sign_ste");
    EXPECT(nb_quantize_ste(ctx, x, 1, -1, 5, false), NB_ERR_ARG, "quantize_ste");
    EXPECT(nb_quantize_ste(ctx, x, -1, 1, 1, false), NB_ERR_ARG, "levels");
    EXPECT(nb_round_ste(ctx, NULL, 0), NB_ERR_NULL, "round_ste");
    nb_ctx_free(ctx);
}

static void test_gaussian_sample(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    int64_t n = 20000;
    nb_tensor *mu = nb_full(ctx, NB_F64, NB_SHAPE(n, 1), 1.5);
    nb_tensor *lv = nb_full(ctx, NB_F64, NB_SHAPE(n, 1), log(4.0)); /* sd 2 */
    nb_set_requires_grad(ctx, mu, true);
    nb_set_requires_grad(ctx, lv, true);
    nb_rng before = ctx->rng;
    nb_tensor *z = nb_gaussian_sample(ctx, mu, lv);
    assert_non_null(z);
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++)
        s += nb_get(z, i), ss += nb_get(z, i) * nb_get(z, i);
    double m = s / (double)n, sd = sqrt(ss / (double)n - m * m);
    /* 5 standard errors */
    assert_true(fabs(m - 1.5) < 5 * 2 / sqrt((double)n));
    assert_true(fabs(sd - 2.0) < 5 * 2 / sqrt(2.0 * (double)n));
    /* gradients: dmu = g, dlv = g eps sd / 2 with the eps drawn */
    assert_int_equal(nb_backward(ctx, nb_sum(ctx, z, 0, NULL, false)), NB_OK);
    ctx->rng = before;
    nb_tensor *eps = nb_empty(ctx, NB_F64, 2, (int64_t[]){n, 1});
    nb_fill_normal(ctx, eps, 0, 1);
    for (int64_t i = 0; i < n; i++) {
        assert_true(nb_get(mu->grad, i) == 1.0);
        double want = nb_get(eps, i) * 2.0 / 2.0;
        assert_true(fabs(nb_get(lv->grad, i) - want) <= 1e-12 * (1 + fabs(want)));
        assert_true(fabs(nb_get(z, i) - (1.5 + 2.0 * nb_get(eps, i))) < 1e-12);
    }
    /* errors: logvar of the wrong shape, eps of another dtype */
    nb_tensor *lv2 = nb_zeros(ctx, NB_F64, NB_SHAPE(n, 2));
    EXPECT(nb_gaussian_sample(ctx, mu, lv2), NB_ERR_SHAPE, "logvar");
    EXPECT(nb_kl_normal(ctx, mu, lv2, NB_REDUCE_MEAN), NB_ERR_SHAPE, "kl_normal");
    nb_tensor *e32 = nb_zeros(ctx, NB_F32, NB_SHAPE(n, 1));
    EXPECT(nb_reparameterize(ctx, mu, lv, e32), NB_ERR_DTYPE, "reparameterize");
    EXPECT(nb_kl_normal(ctx, mu, lv, (nb_reduction)7), NB_ERR_ARG, "reduction");
    nb_ctx_free(ctx);
}

/* KL of N(mu, s^2) against N(0, 1): (s^2 + mu^2 - 1)/2 - ln s, per element. */
static void test_kl_known(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *mu = nb_from_data(ctx, NB_F64, NB_SHAPE(2, 2), (const double[]){0, 1, -2, 0.5});
    nb_tensor *lv = nb_from_data(ctx, NB_F64, NB_SHAPE(2, 2), (const double[]){0, log(4.0), -1, 0});
    assert_non_null(mu);
    double want[2];
    for (int i = 0; i < 2; i++) {
        want[i] = 0;
        for (int j = 0; j < 2; j++) {
            double m = nb_get(mu, 2 * i + j), s2 = exp(nb_get(lv, 2 * i + j));
            want[i] += (s2 + m * m - 1) / 2 - 0.5 * log(s2);
        }
    }
    nb_tensor *k = nb_kl_normal(ctx, mu, lv, NB_REDUCE_NONE);
    assert_true(fabs(nb_get(k, 0) - want[0]) < 1e-12 && fabs(nb_get(k, 1) - want[1]) < 1e-12);
    k = nb_kl_normal(ctx, mu, lv, NB_REDUCE_MEAN);
    assert_true(fabs(nb_get(k, 0) - (want[0] + want[1]) / 2) < 1e-12);
    nb_ctx_free(ctx);
}

/* Hard samples with noise drawn inside: one-hot rows whose frequencies
 * follow softmax(logits) (the Gumbel-max trick), at any temperature. */
static void test_gumbel_draws(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    int64_t n = 20000;
    const double p[3] = {0.2, 0.5, 0.3};
    nb_tensor *l = nb_empty(ctx, NB_F64, 2, (int64_t[]){n, 3});
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            nb_set(l, i * 3 + c, log(p[c]) + 0.7); /* a shift changes nothing */
    nb_set_requires_grad(ctx, l, true);
    nb_tensor *y = nb_gumbel_softmax(ctx, l, NULL, 0.3, true);
    assert_non_null(y);
    double cnt[3] = {0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        double row = 0;
        for (int c = 0; c < 3; c++) {
            double v = nb_get(y, i * 3 + c);
            assert_true(v == 0.0 || v == 1.0);
            row += v, cnt[c] += v;
        }
        assert_true(row == 1.0);
    }
    for (int c = 0; c < 3; c++)
        assert_true(fabs(cnt[c] / (double)n - p[c]) < 5 * sqrt(p[c] * (1 - p[c]) / (double)n));
    /* the straight-through gradient of a hard sample sums to 0 over a row */
    assert_int_equal(nb_backward_with(ctx, y, nb_full(ctx, NB_F64, NB_SHAPE(n, 3), 1.0)), NB_OK);
    assert_true(fabs(nb_get(l->grad, 0) + nb_get(l->grad, 1) + nb_get(l->grad, 2)) < 1e-12);
    EXPECT(nb_gumbel_softmax(ctx, l, NULL, 0, false), NB_ERR_ARG, "temperature");
    EXPECT(nb_gumbel_softmax(ctx, l, NULL, -1, true), NB_ERR_ARG, "temperature");
    nb_tensor *g2 = nb_zeros(ctx, NB_F64, NB_SHAPE(n, 2));
    EXPECT(nb_gumbel_softmax(ctx, l, g2, 1, false), NB_ERR_SHAPE, "gumbel");
    nb_ctx_free(ctx);
}

static void test_add_loss_and_layers(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    /* add_loss sums and is cleared by take and by arena reset */
    nb_tensor *a = nb_full(ctx, NB_F32, NB_SHAPE(1), 2.0), *b = nb_full(ctx, NB_F32, NB_SHAPE(1), 3.0);
    assert_int_equal(nb_add_loss(ctx, a), NB_OK);
    assert_int_equal(nb_add_loss(ctx, b), NB_OK);
    nb_tensor *s = nb_take_added_loss(ctx);
    assert_true(s && nb_get(s, 0) == 5.0);
    assert_null(nb_take_added_loss(ctx));
    assert_int_equal(nb_add_loss(ctx, a), NB_OK);
    nb_arena_reset(ctx);
    assert_null(nb_take_added_loss(ctx));
    assert_int_equal(nb_add_loss(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(2))), NB_ERR_SHAPE);
    nb_clear_error(ctx);

    /* gaussian layer: z [4, 3], KL added; parameter names; gradients reach both heads */
    nb_module *g = nb_gaussian_layer(ctx, "latent", 5, 3, 0.5);
    assert_non_null(g);
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, g, &pl), NB_OK);
    assert_int_equal(pl.n, 4);
    assert_string_equal(pl.items[0].name, "mu.weight");
    assert_string_equal(pl.items[2].name, "logvar.weight");
    nb_param_list_free(ctx, &pl);
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(4, 5));
    nb_fill_normal(ctx, x, 0, 1);
    nb_tensor *z = nb_module_forward(ctx, g, x);
    assert_non_null(z);
    assert_int_equal(z->shape[0], 4);
    assert_int_equal(z->shape[1], 3);
    nb_tensor *kl = nb_take_added_loss(ctx);
    assert_non_null(kl);
    nb_tensor *mu = nb_module_forward(ctx, nb_module_child(g, 0), x);
    nb_tensor *lv = nb_module_forward(ctx, nb_module_child(g, 1), x);
    nb_tensor *want = nb_kl_normal(ctx, mu, lv, NB_REDUCE_MEAN);
    assert_true(fabs(nb_get(kl, 0) - 0.5 * nb_get(want, 0)) < 1e-6);
    nb_take_added_loss(ctx);
    assert_int_equal(nb_backward(ctx, nb_add(ctx, nb_sum(ctx, z, 0, NULL, false), kl)), NB_OK);
    assert_non_null(nb_module_find(ctx, g, "mu.weight")->grad);
    assert_non_null(nb_module_find(ctx, g, "logvar.weight")->grad);
    nb_module_free(ctx, g);
    EXPECT(nb_gaussian_layer(ctx, NULL, 5, 0, 1), NB_ERR_ARG, "gaussian");
    EXPECT(nb_gaussian_layer(ctx, NULL, 5, 2, -1), NB_ERR_ARG, "beta");

    /* binary linear: forward uses sign(W); W's gradient is the plain one */
    nb_arena_reset(ctx);
    nb_module *bl = nb_binary_linear(ctx, "fc1", 3, 2, false);
    assert_non_null(bl);
    assert_string_equal(nb_module_kind(bl), "binary_linear");
    nb_tensor *w = nb_module_find(ctx, bl, "weight");
    const double wv[6] = {0.3, -0.2, 0.0, -0.7, 0.1, 0.05};
    for (int i = 0; i < 6; i++)
        nb_set(w, i, wv[i]);
    nb_tensor *xi = nb_from_data(ctx, NB_F32, NB_SHAPE(1, 3), (const float[]){1, 2, 4});
    nb_tensor *y = nb_module_forward(ctx, bl, xi);
    assert_true(nb_get(y, 0) == 1 - 2 + 4 && nb_get(y, 1) == -1 + 2 + 4);
    assert_int_equal(nb_backward(ctx, nb_sum(ctx, y, 0, NULL, false)), NB_OK);
    for (int i = 0; i < 6; i++)
        assert_true(nb_get(w->grad, i) == nb_get(xi, i % 3));
    nb_module_free(ctx, bl);

    /* sign activation: clip 1 by default */
    nb_module *act = nb_activation(ctx, NULL, nb_act_from_name("sign"), 0);
    assert_non_null(act);
    nb_tensor *v = nb_from_data(ctx, NB_F64, NB_SHAPE(3), (const double[]){-2, 0.5, 0});
    nb_set_requires_grad(ctx, v, true);
    nb_tensor *sv = nb_module_forward(ctx, act, v);
    assert_true(nb_get(sv, 0) == -1 && nb_get(sv, 1) == 1 && nb_get(sv, 2) == 1);
    assert_int_equal(nb_backward(ctx, nb_sum(ctx, sv, 0, NULL, false)), NB_OK);
    assert_true(nb_get(v->grad, 0) == 0 && nb_get(v->grad, 1) == 1 && nb_get(v->grad, 2) == 1);
    nb_module_free(ctx, act);
    nb_ctx_free(ctx);
}

/* Range normalisation gives [0, 1]; an autoencoder (loader without
 * targets) with a VAE latent trains by nb_train: its loss (BCE summed per
 * row + KL) falls. */
static void test_vae_training(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_set_num_threads(ctx, 1);
    int64_t n = 512, d = 16;
    /* data on a 2-D manifold: x = sigmoid(A u), u ~ N(0, I), times 200 */
    nb_tensor *x = nb_buffer(ctx, NB_F32, 2, (int64_t[]){n, d});
    nb_rng r;
    nb_rng_seed(&r, 5, 0);
    double A[16][2];
    for (int j = 0; j < d; j++)
        A[j][0] = 8 * nb_rng_normal(&r), A[j][1] = 8 * nb_rng_normal(&r);
    for (int64_t i = 0; i < n; i++) {
        double u0 = nb_rng_normal(&r), u1 = nb_rng_normal(&r);
        for (int j = 0; j < d; j++)
            nb_set(x, i * d + j, 200.0 / (1 + exp(-(A[j][0] * u0 + A[j][1] * u1))));
    }
    nb_norm norm;
    assert_int_equal(nb_norm_fit(ctx, x, NULL, 0, NB_NORM_RANGE, &norm), NB_OK);
    assert_true(nb_numel(norm.mean) == 1 && nb_get(norm.mean, 0) >= 0 && nb_get(norm.std, 0) <= 200);
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = 32;
    lo.shuffle = true;
    nb_loader *l = nb_loader_new(ctx, x, NULL, NULL, 0, &norm, &lo);
    assert_non_null(l);
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_linear(ctx, "enc", d, 32, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    nb_sequential_add(ctx, m, nb_gaussian_layer(ctx, "latent", 32, 2, 1.0));
    nb_sequential_add(ctx, m, nb_linear(ctx, "dec1", 2, 32, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    assert_int_equal(nb_sequential_add(ctx, m, nb_linear(ctx, "dec2", 32, d, true)), NB_OK);
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    oo.lr = 3e-3;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    assert_int_equal(nb_optim_add_module(ctx, opt, m, false), NB_OK);
    nb_eval_result e0, e1;
    assert_int_equal(nb_evaluate(ctx, m, l, NB_LOSS_BCE_SUM, 0, &e0), NB_OK);
    /* cross-entropy needs targets */
    assert_int_equal(nb_evaluate(ctx, m, l, NB_LOSS_CROSS_ENTROPY, 0, &e1), NB_ERR_ARG);
    nb_clear_error(ctx);
    nb_train_opts to = nb_train_opts_default();
    to.epochs = 200;
    to.loss = NB_LOSS_BCE_SUM;
    nb_train_result res;
    assert_int_equal(nb_train(ctx, m, opt, NULL, l, NULL, &norm, &to, &res), NB_OK);
    assert_int_equal(nb_evaluate(ctx, m, l, NB_LOSS_BCE_SUM, 0, &e1), NB_OK);
    /* the loss of an untrained model is ~ d ln 2 = 11.1 nats plus the KL */
    /* BCE against soft targets cannot go below their entropy */
    double floor = 0, x0 = nb_get(norm.mean, 0), sd = nb_get(norm.std, 0);
    for (int64_t i = 0; i < n * d; i++) {
        double p = (nb_get(x, i) - x0) / sd;
        floor += p > 0 && p < 1 ? -(p * log(p) + (1 - p) * log(1 - p)) : 0;
    }
    floor /= (double)n;
    printf("negative ELBO: %.3f before, %.3f after training (nats per row; floor %.3f)\n",
           e0.loss, e1.loss, floor);
    assert_true(e0.loss > floor + 1.0);
    assert_true(e1.loss - floor < 0.5 * (e0.loss - floor));
    assert_true(isnan(e1.acc));
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, m);
    nb_loader_free(ctx, l);
    nb_norm_free(ctx, &norm);
    nb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ste_surrogates),   cmocka_unit_test(test_gaussian_sample),
        cmocka_unit_test(test_kl_known),         cmocka_unit_test(test_gumbel_draws),
        cmocka_unit_test(test_add_loss_and_layers), cmocka_unit_test(test_vae_training),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
