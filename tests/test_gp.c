/* The Gaussian process behind `nabla tune` (method = bayes), tools/gp.c:
 * Cholesky and its solve on known matrices, the kernel, interpolation and
 * variance at and away from the data, the marginal likelihood against a
 * direct computation, hyperparameter choice, and expected improvement. */
#include "gp.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static void assert_close(double a, double b, double tol)
{
    if (!(fabs(a - b) <= tol * (1 + fabs(b))))
        fail_msg("%.17g != %.17g (tol %g)", a, b, tol);
}

static void test_cholesky_known(void **state)
{
    (void)state;
    /* the textbook example: L = [[2,0,0],[6,1,0],[-8,5,3]] */
    double A[9] = {4, 12, -16, 12, 37, -43, -16, -43, 98};
    const double L[9] = {2, 0, 0, 6, 1, 0, -8, 5, 3};
    assert_true(gp_cholesky(A, 3));
    for (int i = 0; i < 9; i++)
        assert_close(A[i], L[i], 1e-14);
    /* solve A x = b with x = (1, -2, 0.5) */
    double b[3] = {4 * 1 + 12 * -2 + -16 * 0.5, 12 * 1 + 37 * -2 + -43 * 0.5, -16 * 1 + -43 * -2 + 98 * 0.5};
    gp_cho_solve(A, 3, b);
    assert_close(b[0], 1, 1e-12);
    assert_close(b[1], -2, 1e-12);
    assert_close(b[2], 0.5, 1e-12);
    /* not positive definite: refused */
    double B[4] = {1, 2, 2, 1};
    assert_false(gp_cholesky(B, 2));
    double Z[4] = {0, 0, 0, 0};
    assert_false(gp_cholesky(Z, 2));
}

static void test_kernel(void **state)
{
    (void)state;
    assert_close(gp_matern52(0, 0.3), 1, 0);
    /* (1 + a + a^2/3) e^-a with a = sqrt(5) r / ell */
    double a = sqrt(5.0) * 0.2 / 0.5;
    assert_close(gp_matern52(0.2, 0.5), (1 + a + a * a / 3) * exp(-a), 1e-15);
    double prev = 1;
    for (double r = 0.05; r < 3; r += 0.05) { /* decreasing in r */
        double k = gp_matern52(r, 0.4);
        assert_true(k < prev && k > 0);
        prev = k;
    }
}

static double f1(double x) { return sin(6 * x) + 0.5 * x; }

static void test_interpolates(void **state)
{
    (void)state;
    double X[12], y[6];
    for (int i = 0; i < 6; i++) { /* 2-D points, y depends on both */
        X[2 * i] = i / 5.0;
        X[2 * i + 1] = fmod(0.37 * i, 1.0);
        y[i] = 3 + f1(X[2 * i]) - X[2 * i + 1];
    }
    gp g;
    assert_true(gp_fit_fixed(&g, X, y, 6, 2, 0.3, 1e-8));
    for (int i = 0; i < 6; i++) {
        double m, v;
        gp_predict(&g, X + 2 * i, &m, &v);
        assert_close(m, y[i], 1e-5);  /* the mean goes through the data */
        assert_true(v >= 0 && v < 1e-6); /* and is certain there */
    }
    /* away from the data the variance grows, monotonically along a ray */
    double prev = -1;
    for (int s = 0; s <= 20; s++) {
        double x[2] = {1 + 0.1 * s, 1 + 0.1 * s}, m, v;
        gp_predict(&g, x, &m, &v);
        assert_true(v > prev);
        prev = v;
    }
    /* far away: the prior (mean of y, variance of y) */
    double far[2] = {50, 50}, m, v, ym = 0, yv = 0;
    for (int i = 0; i < 6; i++)
        ym += y[i] / 6;
    for (int i = 0; i < 6; i++)
        yv += (y[i] - ym) * (y[i] - ym) / 6;
    gp_predict(&g, far, &m, &v);
    assert_close(m, ym, 1e-9);
    assert_close(v, yv, 1e-9);
    gp_free(&g);
}

/* Between the points of a smooth 1-D function the mean is close to it. */
static void test_predicts_smooth(void **state)
{
    (void)state;
    double X[11], y[11];
    for (int i = 0; i < 11; i++) {
        X[i] = i / 10.0;
        y[i] = f1(X[i]);
    }
    static const double ells[] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2};
    static const double noises[] = {1e-6, 1e-4, 1e-2};
    gp g;
    assert_true(gp_fit(&g, X, y, 11, 1, ells, 7, noises, 3));
    for (double x = 0.05; x < 1; x += 0.1) {
        double m, v;
        gp_predict(&g, &x, &m, &v);
        assert_close(m, f1(x), 0.02);
        assert_true(v > 0);
    }
    /* the chosen hyperparameters have the largest marginal likelihood */
    double best = g.lml;
    for (int a = 0; a < 7; a++)
        for (int b = 0; b < 3; b++) {
            gp h;
            assert_true(gp_fit_fixed(&h, X, y, 11, 1, ells[a], noises[b]));
            assert_true(h.lml <= best + 1e-9);
            gp_free(&h);
        }
    assert_true(g.noise <= 1e-4); /* noiseless data */
    gp_free(&g);
}

/* The log marginal likelihood for two points, computed by hand:
 * K = [[1+s, k], [k, 1+s]], -0.5 y^T K^-1 y - 0.5 log|K| - log(2 pi). */
static void test_marginal_likelihood(void **state)
{
    (void)state;
    double X[2] = {0.1, 0.6}, y[2] = {5, 7}; /* standardised: -1, 1 */
    double ell = 0.4, s = 0.01;
    gp g;
    assert_true(gp_fit_fixed(&g, X, y, 2, 1, ell, s));
    double k = gp_matern52(0.5, ell), a = 1 + s;
    double det = a * a - k * k;
    double quad = (a * 1 + a * 1 - 2 * k * (-1) * 1) / det; /* y^T adj(K) y / det with y = (-1, 1) */
    double lml = -0.5 * quad - 0.5 * log(det) - log(2 * 3.14159265358979323846);
    assert_close(g.lml, lml, 1e-12);
    assert_close(g.ymean, 6, 1e-15);
    assert_close(g.ystd, 1, 1e-15);
    gp_free(&g);
    /* one point (no spread): standardised by 1, mean through it */
    double x1 = 0.3, y1 = 2.5, m, v;
    assert_true(gp_fit_fixed(&g, &x1, &y1, 1, 1, 0.3, 1e-8));
    gp_predict(&g, &x1, &m, &v);
    assert_close(m, 2.5, 1e-7);
    assert_true(v < 1e-6);
    gp_free(&g);
}

static void test_expected_improvement(void **state)
{
    (void)state;
    /* no variance: the improvement itself, 0 when none is possible */
    assert_close(gp_ei(1.0, 0, 0.5, 0), 0, 0);
    assert_close(gp_ei(0.5, 0, 0.5, 0), 0, 0);
    assert_close(gp_ei(0.2, 0, 0.5, 0), 0.3, 1e-15);
    assert_close(gp_ei(0.2, 0, 0.5, 0.1), 0.2, 1e-15);
    /* at the incumbent: sigma * phi(0) */
    assert_close(gp_ei(0.5, 4, 0.5, 0), 2 / sqrt(2 * 3.14159265358979323846), 1e-12);
    /* positive with uncertainty even when the mean is worse; grows with the
     * variance and as the mean improves; tiny far into the bad side */
    assert_true(gp_ei(1.0, 0.01, 0.5, 0) > 0);
    assert_true(gp_ei(1.0, 0.04, 0.5, 0) > gp_ei(1.0, 0.01, 0.5, 0));
    assert_true(gp_ei(0.4, 0.01, 0.5, 0) > gp_ei(0.6, 0.01, 0.5, 0));
    assert_true(gp_ei(10, 0.01, 0.5, 0) < 1e-100);
    /* a numerical check against the integral E[max(best - f, 0)] */
    double mean = 0.3, var = 0.09, best = 0.4, sum = 0, h = 1e-4;
    for (double f = mean - 10 * 0.3; f < best; f += h) {
        double z = (f - mean) / 0.3;
        sum += (best - f) * exp(-0.5 * z * z) / (0.3 * sqrt(2 * 3.14159265358979323846)) * h;
    }
    assert_close(gp_ei(mean, var, best, 0), sum, 1e-3);
}

/* On a 1-D function with its minimum inside, maximising EI over a grid
 * after a few points proposes a point near the minimum. */
static void test_ei_finds_minimum(void **state)
{
    (void)state;
    double X[8] = {0.0, 0.3, 0.6, 0.9}, y[8];
    int n = 4;
    for (int i = 0; i < n; i++)
        y[i] = (X[i] - 0.47) * (X[i] - 0.47);
    static const double ells[] = {0.1, 0.2, 0.3, 0.5, 0.8};
    static const double noises[] = {1e-6, 1e-4};
    for (; n < 8; n++) {
        gp g;
        assert_true(gp_fit(&g, X, y, n, 1, ells, 5, noises, 2));
        double best = y[0], arg = 0, top = -1;
        for (int i = 1; i < n; i++)
            best = fmin(best, y[i]);
        for (int k = 0; k <= 1000; k++) {
            double x = k / 1000.0, m, v;
            gp_predict(&g, &x, &m, &v);
            double ei = gp_ei(m, v, best, 0);
            if (ei > top) {
                top = ei;
                arg = x;
            }
        }
        gp_free(&g);
        X[n] = arg;
        y[n] = (arg - 0.47) * (arg - 0.47);
    }
    assert_close(X[7], 0.47, 0.03);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cholesky_known),
        cmocka_unit_test(test_kernel),
        cmocka_unit_test(test_interpolates),
        cmocka_unit_test(test_predicts_smooth),
        cmocka_unit_test(test_marginal_likelihood),
        cmocka_unit_test(test_expected_improvement),
        cmocka_unit_test(test_ei_finds_minimum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
