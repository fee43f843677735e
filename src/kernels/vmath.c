/* Array forms of kernels/vmath.h's float32 exp, tanh, sigmoid and GELU (and
 * the GELU's backward), for the ops' contiguous fast paths. On x86-64 with gcc
 * or clang, CPUs with AVX2 and FMA (picked at each call: __builtin_cpu_supports
 * reads a flag set at load time) run the hand-vectorised loops below; others,
 * and other architectures, run plain loops over the inline functions, which
 * the compilers vectorise at the baseline width (SSE2 on x86-64). Both give
 * the same bits: the same IEEE operations in the same order, fused only where
 * vmath.h calls fmaf, and -ffp-contract=off keeps the compilers from fusing
 * anything else (tests/test_vmath.c compares every swept input with the
 * inline functions). */
#include "kernels/vmath.h"

/* The plain forms, loops over the inline functions: what CPUs without AVX2
 * and FMA run, and the hand-written loops' tails. */
#define NB__VMATH_PLAIN(name, f)                                                        \
    static void name(int64_t n, float *y, const float *x)                               \
    {                                                                                   \
        for (int64_t i = 0; i < n; i++)                                                 \
            y[i] = f(x[i]);                                                             \
    }
NB__VMATH_PLAIN(exp_plain, nb__vexpf)
NB__VMATH_PLAIN(tanh_plain, nb__vtanhf)
NB__VMATH_PLAIN(sigmoid_plain, nb__vsigmoidf)
NB__VMATH_PLAIN(gelu_plain, nb__vgeluf)

static void gelu_bwd_plain(int64_t n, float *dx, const float *g, const float *x, const float *y,
                           int acc)
{
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] * nb__vgelu_grad_yf(x[i], y[i]);
        dx[i] = acc ? dx[i] + d : d;
    }
}

void nb__exp_n_f64(int64_t n, double *y, const double *x)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = exp(x[i]);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NB_NO_AVX2)
/* exp, tanh, sigmoid, the GELU and its backward, hand-vectorised with IL vectors in flight,
 * each statement done for all IL before the next. Why: these are long
 * dependency chains (the GELU's: a division, 9 multiply-adds, the exp's 15
 * steps), and the compilers' loops, one vector per iteration and unrolled in
 * sequence if at all, leave the out-of-order core waiting on them. Written
 * interleaved (ns per element, in cache, gcc, 2026-12-01, against the
 * compiler-vectorised loops): GELU 1.46-1.52 (2.35-2.59), its backward 1.09
 * (1.44), sigmoid 0.90 (1.24-1.35), tanh 1.40-1.58 (1.64-1.70), exp 0.89-0.93
 * (1.00-1.15). -funroll-loops and gcc's scheduling flags changed nothing.
 * The operations are vmath.h's, in its order and with its roundings (the only
 * fused multiply-adds are its fmaf calls), so the bits are the inline
 * functions' (tests/test_vmath.c checks every swept input); the tails use
 * the inline functions themselves. */
#include <immintrin.h>

enum { IL = 4 };
#define EACH for (int u = 0; u < IL; u++)
#define IL_FN __attribute__((target("avx2,fma"), always_inline)) static inline
#define SET1 _mm256_set1_ps

/* c ? a : b, as nb__selectf (a NaN compares false) */
IL_FN __m256 sel(__m256 c, __m256 a, __m256 b) { return _mm256_blendv_ps(b, a, c); }

/* v = exp(v), nb__vexpf's steps */
IL_FN void exp_il(__m256 *v)
{
    const __m256 shift = SET1(12582912.0f), one = SET1(1.0f);
    const __m256i b127 = _mm256_set1_epi32(127);
    __m256 t[IL], k[IL], r[IL], p[IL];
    __m256i ki[IL], k1[IL];
    EACH v[u] = sel(_mm256_cmp_ps(v[u], SET1(89.0f), _CMP_GT_OQ), SET1(89.0f), v[u]);
    EACH v[u] = sel(_mm256_cmp_ps(v[u], SET1(-104.0f), _CMP_LT_OQ), SET1(-104.0f), v[u]);
    EACH t[u] = _mm256_add_ps(_mm256_mul_ps(v[u], SET1(1.44269504088896341f)), shift);
    EACH k[u] = _mm256_sub_ps(t[u], shift);
    EACH ki[u] = _mm256_sub_epi32(_mm256_castps_si256(t[u]), _mm256_castps_si256(shift));
    EACH r[u] = _mm256_sub_ps(v[u], _mm256_mul_ps(k[u], SET1(0.693359375f)));
    EACH r[u] = _mm256_sub_ps(r[u], _mm256_mul_ps(k[u], SET1(-2.12194440e-4f)));
    EACH p[u] = SET1(1.9875691500e-4f);
#define EXP_STEP(c) EACH p[u] = _mm256_add_ps(_mm256_mul_ps(p[u], r[u]), SET1(c));
    EXP_STEP(1.3981999507e-3f)
    EXP_STEP(8.3334519073e-3f)
    EXP_STEP(4.1665795894e-2f)
    EXP_STEP(1.6666665459e-1f)
    EXP_STEP(5.0000001201e-1f)
#undef EXP_STEP
    EACH p[u] = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p[u], _mm256_mul_ps(r[u], r[u])), r[u]),
                              one);
    /* k1 = ki / 2 rounded toward 0 as C's division, k2 = ki - k1 */
    EACH k1[u] = _mm256_srai_epi32(_mm256_add_epi32(ki[u], _mm256_srli_epi32(ki[u], 31)), 1);
    EACH {
        __m256i k2 = _mm256_sub_epi32(ki[u], k1[u]);
        __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1[u], b127), 23));
        __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, b127), 23));
        v[u] = _mm256_mul_ps(_mm256_mul_ps(p[u], s1), s2);
    }
}

__attribute__((target("avx2,fma"))) static void exp_avx2(int64_t n, float *y, const float *x)
{
    int64_t i = 0;
    for (; i + 8 * IL <= n; i += 8 * IL) {
        __m256 v[IL];
        EACH v[u] = _mm256_loadu_ps(x + i + 8 * u);
        exp_il(v);
        EACH _mm256_storeu_ps(y + i + 8 * u, v[u]);
    }
    exp_plain(n - i, y + i, x + i);
}

/* y = x Phi(x), nb__vgeluf's steps */
__attribute__((target("avx2,fma"))) static void gelu_avx2(int64_t n, float *y, const float *x)
{
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 one = SET1(1.0f), half = SET1(0.5f);
    int64_t i = 0;
    for (; i + 8 * IL <= n; i += 8 * IL) {
        __m256 v[IL], z[IL], t[IL], p[IL];
        EACH v[u] = _mm256_loadu_ps(x + i + 8 * u);
        EACH z[u] = _mm256_mul_ps(_mm256_and_ps(v[u], absm), SET1(0.70710678118654752f));
        EACH t[u] = _mm256_div_ps(one, _mm256_add_ps(one, _mm256_mul_ps(half, z[u])));
        EACH p[u] = SET1(0.17087277f);
#define PHI_STEP(c) EACH p[u] = _mm256_fmadd_ps(p[u], t[u], SET1(c));
        PHI_STEP(-0.82215223f)
        PHI_STEP(1.48851587f)
        PHI_STEP(-1.13520398f)
        PHI_STEP(0.27886807f)
        PHI_STEP(-0.18628806f)
        PHI_STEP(0.09678418f)
        PHI_STEP(0.37409196f)
        PHI_STEP(1.00002368f)
        PHI_STEP(-1.26551223f)
#undef PHI_STEP
        EACH p[u] = _mm256_sub_ps(p[u], _mm256_mul_ps(z[u], z[u]));
        exp_il(p);
        EACH {
            __m256 q = _mm256_mul_ps(_mm256_mul_ps(half, t[u]), p[u]); /* Phi(-|x|) */
            q = sel(_mm256_cmp_ps(v[u], _mm256_setzero_ps(), _CMP_GE_OQ), _mm256_sub_ps(one, q), q);
            _mm256_storeu_ps(y + i + 8 * u, _mm256_mul_ps(v[u], q));
        }
    }
    gelu_plain(n - i, y + i, x + i);
}

/* dx = g gelu'(x) from y (acc: +=), nb__vgelu_grad_yf's steps */
__attribute__((target("avx2,fma"))) static void gelu_bwd_avx2(int64_t n, float *dx, const float *g,
                                                              const float *x, const float *y,
                                                              int acc)
{
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 c = SET1(0.39894228040143268f);
    int64_t i = 0;
    for (; i + 8 * IL <= n; i += 8 * IL) {
        __m256 v[IL], Phi[IL], e[IL];
        EACH v[u] = _mm256_loadu_ps(x + i + 8 * u);
        EACH {
            __m256 small = _mm256_cmp_ps(_mm256_and_ps(v[u], absm), SET1(0x1p-10f), _CMP_LT_OQ);
            Phi[u] = sel(small, _mm256_add_ps(SET1(0.5f), _mm256_mul_ps(v[u], c)),
                         _mm256_div_ps(_mm256_loadu_ps(y + i + 8 * u), v[u]));
        }
        EACH e[u] = _mm256_mul_ps(_mm256_mul_ps(SET1(-0.5f), v[u]), v[u]);
        exp_il(e);
        EACH {
            __m256 d = _mm256_add_ps(Phi[u], _mm256_mul_ps(v[u], _mm256_mul_ps(c, e[u])));
            d = _mm256_mul_ps(_mm256_loadu_ps(g + i + 8 * u), d);
            if (acc)
                d = _mm256_add_ps(_mm256_loadu_ps(dx + i + 8 * u), d);
            _mm256_storeu_ps(dx + i + 8 * u, d);
        }
    }
    gelu_bwd_plain(n - i, dx + i, g + i, x + i, y + i, acc);
}
/* nb__vtanhf's steps */
__attribute__((target("avx2,fma"))) static void tanh_avx2(int64_t n, float *y, const float *x)
{
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), one = SET1(1.0f);
    int64_t i = 0;
    for (; i + 8 * IL <= n; i += 8 * IL) {
        __m256 v[IL], a[IL], w[IL], p[IL], e[IL];
        EACH v[u] = _mm256_loadu_ps(x + i + 8 * u);
        EACH a[u] = _mm256_and_ps(v[u], absm);
        EACH w[u] = _mm256_mul_ps(a[u], a[u]);
        EACH p[u] = SET1(-6.179871503263712e-3f);
#define TANH_STEP(c) EACH p[u] = _mm256_add_ps(_mm256_mul_ps(p[u], w[u]), SET1(c));
        TANH_STEP(2.100750431418419e-2f)
        TANH_STEP(-5.383744090795517e-2f)
        TANH_STEP(1.333245187997818e-1f)
        TANH_STEP(-3.333331346511841e-1f)
#undef TANH_STEP
        EACH p[u] = _mm256_add_ps(a[u], _mm256_mul_ps(a[u], _mm256_mul_ps(w[u], p[u]))); /* small */
        EACH e[u] = _mm256_mul_ps(SET1(-2.0f), a[u]);
        exp_il(e);
        EACH {
            __m256 large = _mm256_div_ps(_mm256_sub_ps(one, e[u]), _mm256_add_ps(one, e[u]));
            __m256 r = sel(_mm256_cmp_ps(a[u], SET1(0.5625f), _CMP_LT_OQ), p[u], large);
            __m256 sign = _mm256_andnot_ps(absm, v[u]);
            _mm256_storeu_ps(y + i + 8 * u, _mm256_or_ps(r, sign));
        }
    }
    tanh_plain(n - i, y + i, x + i);
}

/* nb__vsigmoidf's steps */
__attribute__((target("avx2,fma"))) static void sigmoid_avx2(int64_t n, float *y, const float *x)
{
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), one = SET1(1.0f);
    const __m256 signm = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    int64_t i = 0;
    for (; i + 8 * IL <= n; i += 8 * IL) {
        __m256 v[IL], e[IL];
        EACH v[u] = _mm256_loadu_ps(x + i + 8 * u);
        EACH e[u] = _mm256_xor_ps(_mm256_and_ps(v[u], absm), signm); /* -|x| */
        exp_il(e);
        EACH {
            __m256 num = sel(_mm256_cmp_ps(v[u], _mm256_setzero_ps(), _CMP_GE_OQ), one, e[u]);
            _mm256_storeu_ps(y + i + 8 * u, _mm256_div_ps(num, _mm256_add_ps(one, e[u])));
        }
    }
    sigmoid_plain(n - i, y + i, x + i);
}
#undef EACH
#undef SET1

static int have_avx2_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* the hand-written loop where the CPU has it, else the plain one */
#define NB__VMATH_PICK(name, avx2, plain)                                               \
    void name(int64_t n, float *y, const float *x)                                      \
    {                                                                                   \
        if (have_avx2_fma())                                                            \
            avx2(n, y, x);                                                              \
        else                                                                            \
            plain(n, y, x);                                                             \
    }
#else
#define NB__VMATH_PICK(name, avx2, plain)                                               \
    void name(int64_t n, float *y, const float *x) { plain(n, y, x); }
#endif
NB__VMATH_PICK(nb__vexp_n, exp_avx2, exp_plain)
NB__VMATH_PICK(nb__vtanh_n, tanh_avx2, tanh_plain)
NB__VMATH_PICK(nb__vsigmoid_n, sigmoid_avx2, sigmoid_plain)
NB__VMATH_PICK(nb__vgelu_n, gelu_avx2, gelu_plain)

void nb__vgelu_bwd_n(int64_t n, float *dx, const float *g, const float *x, const float *y,
                     int acc)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NB_NO_AVX2)
    if (have_avx2_fma()) {
        gelu_bwd_avx2(n, dx, g, x, y, acc);
        return;
    }
#endif
    gelu_bwd_plain(n, dx, g, x, y, acc);
}
