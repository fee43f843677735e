/* Array forms of kernels/vmath.h's float32 exp, tanh and sigmoid, for the
 * ops' contiguous fast paths. On x86-64 with gcc or clang each loop is
 * compiled twice, for AVX2 (8 lanes) and for the baseline SSE2 (4 lanes), and
 * the CPU picks one at each call (__builtin_cpu_supports reads a flag set at
 * load time). The AVX2 loops are built with FMA only so that vmath.h's fmaf
 * calls become one instruction; nothing else is fused (-ffp-contract=off), so
 * both give the same IEEE operations in the same order and the same bits
 * (tests/test_vmath.c compares them with the inline functions). Measured: sigmoid 0.8 ns per element with AVX2 against 2.0 with
 * SSE2 (in cache; libm's expf-based loop: 4.0). */
#include "kernels/vmath.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NB_NO_AVX2)
#define NB__VMATH_N(name, f)                                                            \
    __attribute__((target("avx2,fma"))) static void name##_avx2(int64_t n, float *y,       \
                                                            const float *x)             \
    {                                                                                   \
        for (int64_t i = 0; i < n; i++)                                                 \
            y[i] = f(x[i]);                                                             \
    }                                                                                   \
    static void name##_base(int64_t n, float *y, const float *x)                        \
    {                                                                                   \
        for (int64_t i = 0; i < n; i++)                                                 \
            y[i] = f(x[i]);                                                             \
    }                                                                                   \
    void name(int64_t n, float *y, const float *x)                                      \
    {                                                                                   \
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))            \
            name##_avx2(n, y, x);                                                       \
        else                                                                            \
            name##_base(n, y, x);                                                       \
    }
#else
#define NB__VMATH_N(name, f)                                                            \
    void name(int64_t n, float *y, const float *x)                                      \
    {                                                                                   \
        for (int64_t i = 0; i < n; i++)                                                 \
            y[i] = f(x[i]);                                                             \
    }
#endif

NB__VMATH_N(nb__vexp_n, nb__vexpf)
NB__VMATH_N(nb__vtanh_n, nb__vtanhf)
NB__VMATH_N(nb__vsigmoid_n, nb__vsigmoidf)
NB__VMATH_N(nb__vgelu_n, nb__vgeluf)

/* the GELU's backward: dx[i] = g[i] gelu'(x[i], y[i]), or += with accumulate */
#define NB__VGELU_BWD_LOOP                                                              \
    if (acc)                                                                            \
        for (int64_t i = 0; i < n; i++)                                                 \
            dx[i] += g[i] * nb__vgelu_grad_yf(x[i], y[i]);                              \
    else                                                                                \
        for (int64_t i = 0; i < n; i++)                                                 \
            dx[i] = g[i] * nb__vgelu_grad_yf(x[i], y[i]);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NB_NO_AVX2)
__attribute__((target("avx2"))) static void gelu_bwd_avx2(int64_t n, float *dx, const float *g,
                                                          const float *x, const float *y, int acc)
{
    NB__VGELU_BWD_LOOP
}
static void gelu_bwd_base(int64_t n, float *dx, const float *g, const float *x, const float *y,
                          int acc)
{
    NB__VGELU_BWD_LOOP
}
void nb__vgelu_bwd_n(int64_t n, float *dx, const float *g, const float *x, const float *y,
                     int acc)
{
    if (__builtin_cpu_supports("avx2"))
        gelu_bwd_avx2(n, dx, g, x, y, acc);
    else
        gelu_bwd_base(n, dx, g, x, y, acc);
}
#else
void nb__vgelu_bwd_n(int64_t n, float *dx, const float *g, const float *x, const float *y,
                     int acc)
{
    NB__VGELU_BWD_LOOP
}
#endif
