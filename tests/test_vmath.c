/* The vectorisable float32 exp, tanh, sigmoid and GELU (src/kernels/vmath.h)
 * against double-precision libm, over every 97th float32 bit pattern (every
 * 1009th in an unoptimised build): error bounds in ulps of the correctly
 * rounded result and absolute, special values (NaN, +-inf, +-0, overflow,
 * underflow to subnormals and 0), and the ops (nb_exp, nb_tanh, nb_sigmoid
 * on float32) giving the same bits on contiguous and strided inputs, and the
 * array forms (AVX2 or SSE2, chosen at run time) the same bits as the inline
 * functions on every swept input. */
#include "core/internal.h"
#include "kernels/vmath.h"

#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#ifdef __OPTIMIZE__
#define STRIDE 97u
#else
#define STRIDE 1009u
#endif

/* the spacing of float32 numbers at |r| (a subnormal's below FLT_MIN) */
static double ulp_of(double r)
{
    r = fabs(r);
    if (r < FLT_MIN)
        return 0x1p-149;
    int e;
    frexp(r, &e); /* r in [2^(e-1), 2^e) */
    return ldexp(1.0, e - 24);
}

typedef struct {
    double ulps, abs; /* largest error in ulps (normal results) and absolute */
    float at;
} err_t;

static void track(err_t *e, float x, float y, double ref)
{
    double d = fabs((double)y - ref);
    if (d > e->abs)
        e->abs = d;
    if (fabs(ref) >= FLT_MIN && fabs(ref) <= FLT_MAX && d / ulp_of(ref) > e->ulps) {
        e->ulps = d / ulp_of(ref);
        e->at = x;
    }
}

/* the array forms against the inline functions, bit for bit, on n inputs
 * (n not a multiple of the vector width, so the tails run too) */
static void check_arrays(int64_t n, const float *x)
{
    static float y[3][1031];
    nb__vexp_n(n, y[0], x);
    nb__vtanh_n(n, y[1], x);
    nb__vsigmoid_n(n, y[2], x);
    for (int64_t i = 0; i < n; i++) {
        float want[3] = {nb__vexpf(x[i]), nb__vtanhf(x[i]), nb__vsigmoidf(x[i])};
        for (int k = 0; k < 3; k++)
            if (nb__f2u(y[k][i]) != nb__f2u(want[k]))
                fail_msg("array form %d of %a: %a, inline %a", k, x[i], y[k][i], want[k]);
    }
}

static void test_sweep(void **state)
{
    (void)state;
    err_t ee = {0, 0, 0}, et = {0, 0, 0}, es = {0, 0, 0};
    static float chunk[1031];
    int64_t nc = 0;
    for (uint64_t b = 0; b < (1ull << 32); b += STRIDE) {
        float x = nb__u2f((uint32_t)b);
        chunk[nc++] = x;
        if (nc == 1031) {
            check_arrays(nc, chunk);
            nc = 0;
        }
        float e = nb__vexpf(x), t = nb__vtanhf(x), s = nb__vsigmoidf(x);
        if (isnan(x)) {
            if (!isnan(e) || !isnan(t) || !isnan(s))
                fail_msg("NaN %a did not propagate: %a %a %a", x, e, t, s);
            continue;
        }
        double xd = x, re = exp(xd), rt = tanh(xd), rs = 1.0 / (1.0 + exp(-xd));
        /* exp: inf exactly where the rounded result is, subnormals within
         * one subnormal step, normal results tracked in ulps */
        if (isinf((float)re) != isinf(e))
            fail_msg("exp(%a) = %a, libm %a", x, e, re);
        if (!isinf(e)) {
            if (re < FLT_MIN && fabs(e - re) > 0x1p-149)
                fail_msg("exp(%a) = %a, libm %a (subnormal)", x, e, re);
            track(&ee, x, e, re);
        }
        track(&et, x, t, rt);
        if (!(fabs(t) <= 1) || signbit(t) != signbit(x) || nb__vtanhf(-x) != -t)
            fail_msg("tanh(%a) = %a is not odd or not in [-1, 1]", x, t);
        track(&es, x, s, rs);
        if (!(s >= 0 && s <= 1))
            fail_msg("sigmoid(%a) = %a is outside [0, 1]", x, s);
    }
    check_arrays(nc, chunk);
    printf("exp      %.2f ulp (at %a) over normal results\n", ee.ulps, ee.at);
    printf("tanh     %.2f ulp (at %a), abs %.3g\n", et.ulps, et.at, et.abs);
    printf("sigmoid  %.2f ulp (at %a), abs %.3g\n", es.ulps, es.at, es.abs);
    /* measured (gcc and clang, x86-64): 0.96, 1.50, 2.28 ulp; abs 8.9e-8 */
    assert_true(ee.ulps <= 1.5);
    assert_true(et.ulps <= 2.5);
    assert_true(es.ulps <= 3.0);
    assert_true(et.abs < 1e-7);
    assert_true(es.abs < 1e-7);
}

/* Phi and the GELU against libm's erfc/exp in double: Phi within 3e-7
 * absolute, and relatively accurate in the lower tail (no cancellation);
 * the GELU and its derivative likewise; the array form gives the inline bits */
static void test_gelu(void **state)
{
    (void)state;
    double phi_abs = 0, phi_rel = 0, gelu_rel = 0, grad_abs = 0, grady_abs = 0;
    float at_rel = 0;
    static float xs[1031], ys[1031], gs[1031], ds[1031], ds2[1031];
    int64_t nc = 0;
    for (uint64_t b = 0; b < (1ull << 32); b += STRIDE) {
        float x = nb__u2f((uint32_t)b);
        if (isnan(x)) {
            if (!isnan(nb__vgeluf(x)) || !isnan(nb__vgelu_gradf(x)))
                fail_msg("gelu(NaN) is not NaN");
            continue;
        }
        xs[nc++] = x;
        if (nc == 1031) {
            nb__vgelu_n(nc, ys, xs);
            for (int64_t i = 0; i < nc; i++)
                if (nb__f2u(ys[i]) != nb__f2u(nb__vgeluf(xs[i])))
                    fail_msg("gelu array form of %a: %a, inline %a", xs[i], ys[i], nb__vgeluf(xs[i]));
            /* the backward's array form, storing and accumulating */
            for (int64_t i = 0; i < nc; i++) {
                gs[i] = 1.5f - 0.003f * (float)i;
                ds[i] = 0.25f * (float)(i % 7) - 0.5f;
            }
            nb__vgelu_bwd_n(nc, ds, gs, xs, ys, 1);
            nb__vgelu_bwd_n(nc, ds2, gs, xs, ys, 0);
            for (int64_t i = 0; i < nc; i++) {
                float d = gs[i] * nb__vgelu_grad_yf(xs[i], ys[i]);
                float da = (0.25f * (float)(i % 7) - 0.5f) + d;
                if (nb__f2u(ds2[i]) != nb__f2u(d) || nb__f2u(ds[i]) != nb__f2u(da))
                    fail_msg("gelu backward array form of %a: %a and %a (+=), inline %a and %a",
                             xs[i], ds2[i], ds[i], d, da);
            }
            nc = 0;
        }
        if (fabsf(x) > 30.0f || isinf(x))
            continue; /* Phi is 0 or 1 in float there; checked in specials */
        double xd = x, rp = 0.5 * erfc(-xd / sqrt(2.0)), rpdf = exp(-0.5 * xd * xd) * 0.39894228040143267794;
        float p = nb__vphif(x), g = nb__vgeluf(x), d = nb__vgelu_gradf(x);
        phi_abs = fmax(phi_abs, fabs(p - rp));
        if (rp > 1e-30 && fabs(p - rp) / rp > phi_rel) {
            phi_rel = fabs(p - rp) / rp;
            at_rel = x;
        }
        if (fabs(xd * rp) > 1e-30)
            gelu_rel = fmax(gelu_rel, fabs(g - xd * rp) / fabs(xd * rp));
        grad_abs = fmax(grad_abs, fabs(d - (rp + xd * rpdf)));
        /* the backward's form, from the forward's output */
        grady_abs = fmax(grady_abs, fabs(nb__vgelu_grad_yf(x, g) - (rp + xd * rpdf)));
    }
    printf("Phi      abs %.3g, rel %.3g (at %a) where Phi > 1e-30\n", phi_abs, phi_rel, at_rel);
    printf("gelu     rel %.3g where |gelu| > 1e-30; gradient abs %.3g, from y %.3g\n", gelu_rel,
           grad_abs, grady_abs);
    /* measured: Phi abs 2.0e-7 (about 3 ulp at 0.5: the float polynomial, by
     * fmaf; 2.5e-7 by separate multiply and add), rel 1.7e-5 at x = -11.4 (z^2
     * rounded inside the exponent); gradient abs 2.3e-7 */
    assert_true(phi_abs < 3e-7);
    assert_true(phi_rel < 3e-5);
    assert_true(gelu_rel < 3e-5);
    assert_true(grad_abs < 4e-7);
    assert_true(grady_abs < 4e-7);
    assert_true(nb__vgelu_grad_yf(0.0f, 0.0f) == 0.5f);
    assert_true(nb__vgelu_grad_yf(40.0f, 40.0f) == 1.0f && nb__vgelu_grad_yf(-40.0f, -0.0f) == 0.0f);
    assert_true(isnan(nb__vgelu_grad_yf(NAN, NAN)));
    assert_true(nb__vphif(INFINITY) == 1.0f && nb__vphif(-INFINITY) == 0.0f);
    assert_true(nb__vgeluf(INFINITY) == INFINITY && nb__vgeluf(0.0f) == 0.0f);
    assert_true(nb__vgeluf(-40.0f) == 0.0f && nb__vgeluf(40.0f) == 40.0f);
    assert_true(nb__vgelu_gradf(40.0f) == 1.0f && nb__vgelu_gradf(-40.0f) == 0.0f);
}

static void test_specials(void **state)
{
    (void)state;
    const float inf = INFINITY;
    assert_true(nb__vexpf(0.0f) == 1.0f && nb__vexpf(-0.0f) == 1.0f);
    assert_true(nb__vexpf(inf) == inf && nb__vexpf(-inf) == 0.0f);
    assert_true(nb__vexpf(88.72f) < inf && nb__vexpf(88.73f) == inf && nb__vexpf(1e30f) == inf);
    assert_true(nb__vexpf(-105.0f) == 0.0f && nb__vexpf(-1e30f) == 0.0f);
    assert_true(nb__vexpf(-100.0f) > 0.0f); /* e^-100 = 3.7e-44, a subnormal */
    assert_true(fabsf(nb__vexpf(1.0f) - 2.71828182845904523536f) <= 0x1p-22f);
    float t0 = nb__vtanhf(0.0f), tm0 = nb__vtanhf(-0.0f);
    assert_true(t0 == 0.0f && !signbit(t0) && tm0 == 0.0f && signbit(tm0));
    assert_true(nb__vtanhf(inf) == 1.0f && nb__vtanhf(-inf) == -1.0f);
    assert_true(nb__vtanhf(20.0f) == 1.0f && nb__vtanhf(-1e30f) == -1.0f);
    assert_true(nb__vtanhf(1e-30f) == 1e-30f); /* tanh x = x for tiny x */
    assert_true(nb__vsigmoidf(0.0f) == 0.5f && nb__vsigmoidf(-0.0f) == 0.5f);
    assert_true(nb__vsigmoidf(inf) == 1.0f && nb__vsigmoidf(-inf) == 0.0f);
    assert_true(nb__vsigmoidf(100.0f) == 1.0f && nb__vsigmoidf(-100.0f) > 0.0f);
    float nan = NAN;
    assert_true(isnan(nb__vexpf(nan)) && isnan(nb__vtanhf(nan)) && isnan(nb__vsigmoidf(nan)));
    assert_true(isnan(nb__vexpf(-nan)) && isnan(nb__vtanhf(-nan)) && isnan(nb__vsigmoidf(-nan)));
}

/* The ops use these functions on both the contiguous fast path and the
 * strided path: the same input gives the same bits either way. */
static void test_ops_contiguous_and_strided(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    assert_non_null(ctx);
    nb_set_num_threads(ctx, 1);
    const int64_t R = 37, C = 29;
    nb_tensor *a = nb_empty(ctx, NB_F32, NB_SHAPE(R, C));
    assert_non_null(a);
    float *ad = a->data;
    for (int64_t i = 0; i < R * C; i++)
        ad[i] = (float)((double)(i * 7919 % 2003) / 40.0 - 25.0); /* [-25, 25] */
    ad[0] = NAN;
    ad[1] = -0.0f;
    ad[2] = INFINITY;
    ad[3] = -INFINITY;
    nb_tensor *at = nb_contiguous(ctx, nb_transpose(ctx, a, 0, 1)); /* [C, R] */
    nb_tensor *(*const f[4])(nb_ctx *, nb_tensor *) = {nb_exp, nb_tanh, nb_sigmoid, nb_gelu};
    float (*const g[4])(float) = {nb__vexpf, nb__vtanhf, nb__vsigmoidf, nb__vgeluf};
    for (int k = 0; k < 4; k++) {
        nb_tensor *y = f[k](ctx, a);                            /* contiguous */
        nb_tensor *ys = f[k](ctx, nb_transpose(ctx, at, 0, 1)); /* strided view of the same values */
        assert_non_null(y);
        assert_non_null(ys);
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) {
                float want = g[k](ad[r * C + c]);
                float u = nb_get(y, r * C + c), v = (float)nb_get(ys, r * C + c);
                assert_memory_equal(&u, &want, sizeof u);
                assert_memory_equal(&v, &want, sizeof v);
            }
    }
    nb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_specials),
        cmocka_unit_test(test_ops_contiguous_and_strided),
    };
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
