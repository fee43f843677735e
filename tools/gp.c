/* Gaussian process regression and expected improvement (see gp.h). */
#include "gp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

bool gp_cholesky(double *A, int n)
{
    for (int j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (int k = 0; k < j; k++)
            s -= A[j * n + k] * A[j * n + k];
        if (!(s > 0) || !isfinite(s))
            return false;
        double ljj = sqrt(s);
        A[j * n + j] = ljj;
        for (int i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (int k = 0; k < j; k++)
                t -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = t / ljj;
        }
        for (int k = j + 1; k < n; k++)
            A[j * n + k] = 0;
    }
    return true;
}

/* L z = b (forward substitution), in place */
static void solve_lower(const double *L, int n, double *b)
{
    for (int i = 0; i < n; i++) {
        double s = b[i];
        for (int k = 0; k < i; k++)
            s -= L[i * n + k] * b[k];
        b[i] = s / L[i * n + i];
    }
}

void gp_cho_solve(const double *L, int n, double *b)
{
    solve_lower(L, n, b);
    for (int i = n - 1; i >= 0; i--) { /* L^T x = z */
        double s = b[i];
        for (int k = i + 1; k < n; k++)
            s -= L[k * n + i] * b[k];
        b[i] = s / L[i * n + i];
    }
}

double gp_matern52(double r, double ell)
{
    double a = sqrt(5.0) * r / ell;
    return (1 + a + a * a / 3) * exp(-a);
}

static double dist(const double *a, const double *b, int d)
{
    double s = 0;
    for (int k = 0; k < d; k++)
        s += (a[k] - b[k]) * (a[k] - b[k]);
    return sqrt(s);
}

void gp_free(gp *g)
{
    free(g->X);
    free(g->L);
    free(g->alpha);
    memset(g, 0, sizeof *g);
}

/* Factor and solve for the given hyperparameters into g (buffers already
 * allocated); ys is the standardised target. */
static bool factor(gp *g, const double *ys, double ell, double noise)
{
    int n = g->n;
    static const double jitter[] = {0, 1e-10, 1e-8, 1e-6};
    for (size_t t = 0; t < sizeof jitter / sizeof *jitter; t++) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) {
                double k = gp_matern52(dist(g->X + i * g->d, g->X + j * g->d, g->d), ell);
                g->L[i * n + j] = k + (i == j ? noise + jitter[t] : 0);
                g->L[j * n + i] = g->L[i * n + j];
            }
        if (gp_cholesky(g->L, n)) {
            memcpy(g->alpha, ys, sizeof(double) * (size_t)n);
            gp_cho_solve(g->L, n, g->alpha);
            double lml = -0.5 * n * log(2 * PI);
            for (int i = 0; i < n; i++)
                lml += -0.5 * ys[i] * g->alpha[i] - log(g->L[i * n + i]);
            g->ell = ell;
            g->noise = noise;
            g->lml = lml;
            return true;
        }
    }
    return false;
}

static bool setup(gp *g, const double *X, const double *y, int n, int d, double **ys)
{
    memset(g, 0, sizeof *g);
    if (n < 1 || d < 1)
        return false;
    g->n = n;
    g->d = d;
    g->X = malloc(sizeof(double) * (size_t)n * (size_t)d);
    g->L = malloc(sizeof(double) * (size_t)n * (size_t)n);
    g->alpha = malloc(sizeof(double) * (size_t)n);
    *ys = malloc(sizeof(double) * (size_t)n);
    if (!g->X || !g->L || !g->alpha || !*ys) {
        free(*ys);
        gp_free(g);
        return false;
    }
    memcpy(g->X, X, sizeof(double) * (size_t)n * (size_t)d);
    double m = 0, v = 0;
    for (int i = 0; i < n; i++)
        m += y[i];
    m /= n;
    for (int i = 0; i < n; i++)
        v += (y[i] - m) * (y[i] - m);
    v = n > 1 ? sqrt(v / n) : 0;
    g->ymean = m;
    g->ystd = v > 1e-12 * (1 + fabs(m)) ? v : 1;
    for (int i = 0; i < n; i++)
        (*ys)[i] = (y[i] - g->ymean) / g->ystd;
    return true;
}

bool gp_fit_fixed(gp *g, const double *X, const double *y, int n, int d, double ell, double noise)
{
    double *ys;
    if (!setup(g, X, y, n, d, &ys))
        return false;
    bool ok = factor(g, ys, ell, noise);
    free(ys);
    if (!ok)
        gp_free(g);
    return ok;
}

bool gp_fit(gp *g, const double *X, const double *y, int n, int d, const double *ells, int n_ells,
            const double *noises, int n_noises)
{
    double *ys;
    if (!setup(g, X, y, n, d, &ys))
        return false;
    double best = -INFINITY, best_ell = 0, best_noise = 0;
    for (int a = 0; a < n_ells; a++)
        for (int b = 0; b < n_noises; b++)
            if (factor(g, ys, ells[a], noises[b]) && g->lml > best) {
                best = g->lml;
                best_ell = ells[a];
                best_noise = noises[b];
            }
    bool ok = best > -INFINITY && factor(g, ys, best_ell, best_noise);
    free(ys);
    if (!ok)
        gp_free(g);
    return ok;
}

void gp_predict(const gp *g, const double *x, double *mean, double *var)
{
    int n = g->n;
    double kbuf[64], *k = n <= 64 ? kbuf : malloc(sizeof(double) * (size_t)n);
    if (!k) {
        *mean = g->ymean;
        *var = g->ystd * g->ystd;
        return;
    }
    double m = 0;
    for (int i = 0; i < n; i++) {
        k[i] = gp_matern52(dist(x, g->X + i * g->d, g->d), g->ell);
        m += k[i] * g->alpha[i];
    }
    solve_lower(g->L, n, k);
    double v = 1;
    for (int i = 0; i < n; i++)
        v -= k[i] * k[i];
    *mean = g->ymean + g->ystd * m;
    *var = v > 0 ? v * g->ystd * g->ystd : 0;
    if (k != kbuf)
        free(k);
}

double gp_ei(double mean, double var, double best, double xi)
{
    double imp = best - xi - mean;
    double s = var > 0 ? sqrt(var) : 0;
    if (!(s > 1e-300))
        return imp > 0 ? imp : 0;
    double z = imp / s;
    double pdf = exp(-0.5 * z * z) / sqrt(2 * PI);
    double cdf = 0.5 * erfc(-z / sqrt(2.0));
    double ei = imp * cdf + s * pdf;
    return ei > 0 ? ei : 0;
}
