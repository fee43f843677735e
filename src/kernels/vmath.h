/* Vectorisable float32 exp, tanh and sigmoid for the elementwise kernels.
 *
 * glibc's expf/tanhf are scalar calls, so a loop over them does not
 * vectorise (libmvec would need -ffast-math). These are branch-free inline
 * functions of plain float arithmetic, integer bit operations and selects,
 * which gcc -O3 and clang vectorise in the ops' contiguous loops (SSE2: 4
 * lanes). ISO C11 (no FMA contraction), so the results are the same at every
 * optimisation level and on every x86-64 machine. The one fused multiply-add
 * (the GELU's Phi fit, evaluated with fmaf) keeps that: C11 defines fmaf as
 * one rounding, so the AVX2+FMA loop's vfmadd and any other path's libm call
 * give the same bits. Why there: its Horner chain of 9 multiply-adds is the
 * GELU's critical path (2.85 -> 2.42 ns per element, in cache, 2026-12-01);
 * the price is a libm call per step where a loop is not built for FMA (x86-64
 * CPUs without FMA, the strided fallback).
 *
 * exp:  x clamped to [-104, 89] (beyond, the result rounds to 0 or inf),
 *       k = round(x / ln 2) by adding 1.5 * 2^23, r = x - k ln 2 in two parts
 *       (Cody-Waite: k C1 is exact), e^r = 1 + r + r^2 P(r) on [-ln2/2, ln2/2]
 *       with Cephes' degree-5 P, times 2^k as two powers of two built from
 *       exponent bits (2^k1 2^k2: a subnormal result is rounded once, and
 *       2^128 overflows to inf).
 * tanh: |x| < 0.5625: |x| + |x| u P(u), u = x^2, P of degree 4 (a weighted
 *       least-squares fit for relative error); else (1 - e) / (1 + e) with
 *       e = exp(-2|x|) <= 1 (no overflow; e -> 0 gives 1); the sign copied
 *       back, so tanh(-0) = -0.
 * sigmoid: e = exp(-|x|), y = (x >= 0 ? 1 : e) / (1 + e): no overflow, and
 *       results below FLT_MIN (x < -87) go down through the subnormals.
 * NaN propagates through the arithmetic (the clamps are selects that a NaN
 * compares false in). Selects are written as bit masks (nb__selectf): gcc
 * does not if-convert a select whose arm may trap under the default
 * -ftrapping-math, and a loop with a branch does not vectorise.
 * Measured against double-precision libm over every 97th float32 bit pattern
 * (tests/test_vmath.c; gcc and clang, x86-64), in ulps of the correctly
 * rounded result:
 *   exp      0.96 ulp (relative 8.0e-8) for normal results; subnormal results
 *            within one subnormal step; inf exactly where libm's rounds to inf
 *   tanh     1.50 ulp (relative 1.5e-7), absolute 8.9e-8
 *   sigmoid  2.28 ulp (relative 1.7e-7) for normal results, absolute 8.9e-8
 * Speed (one core, in cache, 2026-11-30 host): exp 1.45, tanh 2.56, sigmoid
 * 1.98 ns per element with SSE2 (0.62, 1.07, 0.80 with AVX2, compiler-
 * vectorised; kernels/vmath.c now interleaves its AVX2 loops by hand, with its
 * own figures) against glibc's scalar tanhf 14.3 and an expf-based sigmoid 4.0.
 * float64 stays on libm. */
#ifndef NB_VMATH_H
#define NB_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t nb__f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float nb__u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* c ? a : b by bit masks: gcc will not if-convert a select whose arm may
 * trap (a division, an overflowing product it propagated a constant into)
 * under the default -ftrapping-math, so such selects are written this way. */
static inline float nb__selectf(int c, float a, float b)
{
    uint32_t m = -(uint32_t)(c != 0);
    return nb__u2f((nb__f2u(a) & m) | (nb__f2u(b) & ~m));
}

static inline float nb__vexpf(float x)
{
    const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = nb__selectf(x > 89.0f, 89.0f, x); /* NaN compares false and stays */
    x = nb__selectf(x < -104.0f, -104.0f, x);
    float t = x * 1.44269504088896341f + shift;
    float k = t - shift;                                   /* round(x / ln 2), exact */
    int32_t ki = (int32_t)(nb__f2u(t) - nb__f2u(shift)); /* the same k as an integer */
    float r = x - k * 0.693359375f;                        /* C1 has 9 bits: exact */
    r = r - k * -2.12194440e-4f;                           /* C1 + C2 = ln 2 */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t k1 = ki / 2, k2 = ki - k1; /* each in [-75, 64]: normal powers of two */
    float s1 = nb__u2f((uint32_t)(k1 + 127) << 23), s2 = nb__u2f((uint32_t)(k2 + 127) << 23);
    return p * s1 * s2;
}

static inline float nb__vtanhf(float x)
{
    uint32_t sign = nb__f2u(x) & 0x80000000u;
    float a = nb__u2f(nb__f2u(x) & 0x7fffffffu);
    float u = a * a;
    float p = -6.179871503263712e-3f;
    p = p * u + 2.100750431418419e-2f;
    p = p * u + -5.383744090795517e-2f;
    p = p * u + 1.333245187997818e-1f;
    p = p * u + -3.333331346511841e-1f;
    float small = a + a * (u * p);
    float e = nb__vexpf(-2.0f * a);
    float large = (1.0f - e) / (1.0f + e);
    float y = nb__selectf(a < 0.5625f, small, large); /* NaN: large, which is NaN */
    return nb__u2f(nb__f2u(y) | sign);
}

static inline float nb__vsigmoidf(float x)
{
    float a = nb__u2f(nb__f2u(x) & 0x7fffffffu);
    float e = nb__vexpf(-a);
    return nb__selectf(x >= 0.0f, 1.0f, e) / (1.0f + e); /* NaN: e is NaN */
}

/* Phi(x), the standard normal CDF, for the exact GELU x Phi(x):
 * Phi(-|x|) = erfc(z) / 2, z = |x| / sqrt 2, with the Chebyshev fit
 * erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2), P of degree 9 (the
 * "erfcc" of Numerical Recipes: relative error below 1.2e-7 for every z >= 0),
 * so the lower tail keeps its relative accuracy, and Phi(x) = 1 - Phi(-x) above
 * 0 (no 1 - (1 - q) cancellation below). Measured against libm's erfc in
 * double (tests/test_vmath.c): Phi absolute error 2.0e-7 (the polynomial in
 * float), relative 1.7e-5 at worst down to Phi = 1e-30 (at x = -11.4: the
 * float rounding of z^2 inside the exponent); the GELU likewise. 3.6x libm's
 * erff per element (1.15 against 4.1 ms per million, one thread). */
static inline float nb__vphif(float x)
{
    float z = nb__u2f(nb__f2u(x) & 0x7fffffffu) * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = fmaf(p, t, -0.82215223f);
    p = fmaf(p, t, 1.48851587f);
    p = fmaf(p, t, -1.13520398f);
    p = fmaf(p, t, 0.27886807f);
    p = fmaf(p, t, -0.18628806f);
    p = fmaf(p, t, 0.09678418f);
    p = fmaf(p, t, 0.37409196f);
    p = fmaf(p, t, 1.00002368f);
    p = fmaf(p, t, -1.26551223f);
    float q = 0.5f * t * nb__vexpf(p - z * z); /* Phi(-|x|) */
    return nb__selectf(x >= 0.0f, 1.0f - q, q); /* NaN: q, which is NaN */
}

static inline float nb__vgeluf(float x) { return x * nb__vphif(x); }

/* the GELU's derivative Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi) */
static inline float nb__vgelu_gradf(float x)
{
    return nb__vphif(x) + x * (0.39894228040143268f * nb__vexpf(-0.5f * x * x));
}

/* The same derivative given y = x Phi(x) from the forward: Phi(x) = y / x,
 * whose two roundings (y's and the division's) cost at most 2 ulp, and near 0
 * Phi(x) = 1/2 + x / sqrt(2 pi) (the next term, x^3 / (6 sqrt(2 pi)), is below
 * 1.6e-11 there). Why: it saves the erfc fit, an exp and a division per
 * element, about half the backward's time (the GELU's backward was 6% of the
 * benchmark GPT's step). */
static inline float nb__vgelu_grad_yf(float x, float y)
{
    float ax = nb__u2f(nb__f2u(x) & 0x7fffffffu);
    float Phi = nb__selectf(ax < 0x1p-10f, 0.5f + x * 0.39894228040143268f, y / x);
    return Phi + x * (0.39894228040143268f * nb__vexpf(-0.5f * x * x));
}

/* y[i] = f(x[i]) for i < n, the same bits as the functions above, in
 * kernels/vmath.c (a runtime choice of AVX2 or SSE2 on x86-64). */
void nb__vexp_n(int64_t n, float *y, const float *x);
void nb__vtanh_n(int64_t n, float *y, const float *x);
void nb__vsigmoid_n(int64_t n, float *y, const float *x);
void nb__vgelu_n(int64_t n, float *y, const float *x);
/* dx[i] = g[i] gelu'(x[i]) (acc: +=), given the forward's y = gelu(x) */
void nb__vgelu_bwd_n(int64_t n, float *dx, const float *g, const float *x, const float *y,
                     int acc);

/* y[i] = exp(x[i]) in float64 (libm), for kernels written once for both */
void nb__exp_n_f64(int64_t n, double *y, const double *x);

/* Type-generic forms for kernels written once for float and double: float
 * takes the functions above, double stays on libm. */
#define NB__VEXP(v) _Generic((v), float: nb__vexpf, default: exp)(v)
#define NB__VTANH(v) _Generic((v), float: nb__vtanhf, default: tanh)(v)

#endif
