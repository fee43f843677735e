/* A small Gaussian process for `nabla tune` (method = bayes): Matern 5/2
 * kernel with one length scale on points in the unit cube, targets
 * standardised (mean 0, sd 1) inside, the length scale and the noise picked
 * from small grids by maximum log marginal likelihood, a Cholesky solve, and
 * expected improvement for minimisation. Plain C, no dependencies beyond
 * libm; tested by tests/test_gp.c. */
#ifndef NABLA_TOOLS_GP_H
#define NABLA_TOOLS_GP_H

#include <stdbool.h>

typedef struct gp {
    int n, d;
    double *X;        /* n x d training points */
    double *L;        /* n x n lower Cholesky factor of K + noise I (standardised units) */
    double *alpha;    /* (K + noise I)^-1 y_standardised */
    double ell;       /* length scale */
    double noise;     /* noise variance, standardised units (signal variance 1) */
    double ymean, ystd;
    double lml;       /* log marginal likelihood of the chosen hyperparameters */
} gp;

/* In-place Cholesky of the n x n symmetric matrix A (row-major, lower
 * triangle read): A = L L^T with L in the lower triangle, upper set to 0.
 * Returns false when A is not positive definite. */
bool gp_cholesky(double *A, int n);
/* Solves L L^T x = b given the factor; b is overwritten with x. */
void gp_cho_solve(const double *L, int n, double *b);

/* Matern 5/2 correlation at distance r with length scale ell (1 at r = 0). */
double gp_matern52(double r, double ell);

/* Fits with fixed hyperparameters. Returns false on allocation failure or
 * when the matrix is not positive definite even with jitter. */
bool gp_fit_fixed(gp *g, const double *X, const double *y, int n, int d, double ell, double noise);
/* Fits, choosing (ell, noise) from the two grids by the largest log
 * marginal likelihood. */
bool gp_fit(gp *g, const double *X, const double *y, int n, int d, const double *ells, int n_ells,
            const double *noises, int n_noises);
/* Posterior mean and variance of the latent function at x (target units).
 * The variance does not include the noise. */
void gp_predict(const gp *g, const double *x, double *mean, double *var);
void gp_free(gp *g);

/* Expected improvement below `best` (minimisation) of a normal N(mean, var),
 * with margin xi >= 0: E[max(best - xi - f, 0)]. With var = 0 it is
 * max(best - xi - mean, 0). */
double gp_ei(double mean, double var, double best, double xi);

#endif
