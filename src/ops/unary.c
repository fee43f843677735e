/* Unary math, activations and the scalar forms. Each op: forward y = f(x),
 * backward dx += g * f'(x) written from x and/or the saved output y.
 * Nothing extra is saved: x and y are the node's input and output.
 *
 *   exp        y = e^x                              dx = g y
 *   log        y = ln x                             dx = g / x
 *   sqrt       y = sqrt x                           dx = g / (2 y)
 *   abs        y = |x|                              dx = g sign(x)   (0 at 0)
 *   square     y = x^2                              dx = 2 g x
 *   relu       y = max(x, 0)                        dx = g [x > 0]
 *   leaky_relu y = x > 0 ? x : s x                  dx = g (x > 0 ? 1 : s)
 *   elu        y = x > 0 ? x : a (e^x - 1)          dx = g (x > 0 ? 1 : y + a)
 *   sigmoid    y = 1 / (1 + e^-x)                   dx = g y (1 - y)
 *   tanh       y = tanh x                           dx = g (1 - y^2)
 *   gelu       y = x Phi(x)                         dx = g (Phi(x) + x phi(x))
 *   gelu_tanh  y = x (1 + tanh u) / 2, u = c (x + k x^3), c = sqrt(2/pi), k = 0.044715
 *                                                   dx = g ((1 + t)/2 + x (1 - t^2) c (1 + 3k x^2)/2)
 *   silu       y = x sigmoid(x)                     dx = g (s + x s (1 - s))
 *   softplus   y = ln(1 + e^(b x)) / b, or x when b x > threshold
 *                                                   dx = g sigmoid(b x), or g
 *   affine     y = alpha x + beta (add/sub/mul/div by scalars, neg, rsub)
 *                                                   dx = g alpha
 *   rdiv       y = s / x                            dx = -g y / x
 *   pow_scalar y = x^p                              dx = g p x^(p-1)   (0 when p = 0)
 *   clamp      y = min(max(x, lo), hi)              dx = g [lo <= x <= hi]
 */
#include "ops/ew.h"
#include "kernels/vmath.h"

#define UNARY_OP NB__UNARY_OP

/* float32 exp, tanh and sigmoid are kernels/vmath.h's vectorisable ones
 * (about 1-2 ulp); float64 uses libm */
#define SIGM_D(v) ((v) >= 0 ? (E)1 / ((E)1 + exp(-(v))) : exp(v) / ((E)1 + exp(v)))
#define SIGM(v) _Generic((E)0, float: nb__vsigmoidf((float)(v)), default: SIGM_D(v))
#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT2PI 0.39894228040143267794
#define SQRT_2_OVER_PI 0.79788456080286535588
#define GELU_K 0.044715

/* exp, sigmoid and tanh: the float32 forward's contiguous path calls the
 * array function (AVX2 where the CPU has it), the strided path the inline
 * function of the same bits */
#define VUNARY_OP(name, ID, ARRAY, FWD, BWD)                                            \
    NB__UNARY_FWD_T(name##_fwd_f32_any, float, FWD)                                     \
    NB__UNARY_FWD_T(name##_fwd_f64, double, FWD)                                        \
    static void name##_fwd_f32(int64_t n, char *const *p, const int64_t *s,             \
                               const void *arg)                                         \
    {                                                                                   \
        if (NB__CONTIG2(s, float))                                                      \
            ARRAY(n, (float *)p[0], (const float *)p[1]);                               \
        else                                                                            \
            name##_fwd_f32_any(n, p, s, arg);                                           \
    }                                                                                   \
    NB__UNARY_BWD(name##_bwd, BWD)                                                      \
    static const nb__ew_def name##_def = {.op = NB__OP_##ID,                            \
                                          .fwd = NB__KERNS(name##_fwd),                 \
                                          .bwd = {NB__KERNS(name##_bwd), {0, 0}}};      \
    nb_status nb__##name##_backward(nb_ctx *ctx, nb__node *n)                           \
    {                                                                                   \
        return nb__unary_backward(ctx, n, &name##_def);                                 \
    }

VUNARY_OP(exp, EXP, nb__vexp_n, NB__VEXP(x), g * y)
UNARY_OP(log, LOG, log(x), g / x)
UNARY_OP(sqrt, SQRT, sqrt(x), g / ((E)2 * y))
UNARY_OP(abs, ABS, fabs(x), x > 0 ? g : (x < 0 ? -g : (E)0))
UNARY_OP(square, SQUARE, x * x, (E)2 * g * x)
UNARY_OP(relu, RELU, x > 0 ? x : (E)0, x > 0 ? g : (E)0)
UNARY_OP(leaky_relu, LEAKY_RELU, x > 0 ? x : (E)A->f[0] * x, x > 0 ? g : (E)A->f[0] * g)
UNARY_OP(elu, ELU, x > 0 ? x : (E)A->f[0] * expm1(x), x > 0 ? g : g * (y + (E)A->f[0]))
VUNARY_OP(sigmoid, SIGMOID, nb__vsigmoid_n, SIGM(x), g * y * ((E)1 - y))
VUNARY_OP(tanh, TANH, nb__vtanh_n, NB__VTANH(x), g * ((E)1 - y * y))
/* gelu: float32 through vmath.h's Phi (erfc by Abramowitz-Stegun, about
 * 1e-7); float64 through libm's erf */
#define GELU_D(v) ((E)0.5 * (v) * ((E)1 + erf((v) * (E)INV_SQRT2)))
#define GELU_GRAD_D(v) \
    ((E)0.5 * ((E)1 + erf((v) * (E)INV_SQRT2)) + (v) * (E)INV_SQRT2PI * exp((E)-0.5 * (v) * (v)))
#define GELU(v) _Generic((E)0, float: nb__vgeluf((float)(v)), default: GELU_D(v))
#define GELU_GRAD(v) _Generic((E)0, float: nb__vgelu_gradf((float)(v)), default: GELU_GRAD_D(v))
/* like VUNARY_OP, and the float32 backward's contiguous path is an array
 * function too (the scalar loop spent 12% of a transformer step here) */
NB__UNARY_FWD_T(gelu_fwd_f32_any, float, GELU(x))
NB__UNARY_FWD_T(gelu_fwd_f64, double, GELU(x))
NB__UNARY_BWD_T(gelu_bwd_f32_any, float, g * GELU_GRAD(x))
NB__UNARY_BWD_T(gelu_bwd_f64, double, g * GELU_GRAD(x))
static void gelu_fwd_f32(int64_t n, char *const *p, const int64_t *s, const void *arg)
{
    if (NB__CONTIG2(s, float))
        nb__vgelu_n(n, (float *)p[0], (const float *)p[1]);
    else
        gelu_fwd_f32_any(n, p, s, arg);
}
static void gelu_bwd_f32(int64_t n, char *const *p, const int64_t *s, const void *arg)
{
    if (NB__CONTIG4(s, float))
        nb__vgelu_bwd_n(n, (float *)p[0], (const float *)p[1], (const float *)p[2],
                        (const float *)p[3], !((const nb__attrs *)arg)->write);
    else
        gelu_bwd_f32_any(n, p, s, arg);
}
static const nb__ew_def gelu_def = {.op = NB__OP_GELU,
                                    .fwd = NB__KERNS(gelu_fwd),
                                    .bwd = {NB__KERNS(gelu_bwd), {0, 0}}};
nb_status nb__gelu_backward(nb_ctx *ctx, nb__node *n) { return nb__unary_backward(ctx, n, &gelu_def); }
#define GELU_T(x) NB__VTANH((E)SQRT_2_OVER_PI * ((x) + (E)GELU_K * (x) * (x) * (x)))
UNARY_OP(gelu_tanh, GELU_TANH, (E)0.5 * x * ((E)1 + GELU_T(x)),
         g * ((E)0.5 * ((E)1 + GELU_T(x)) +
              (E)0.5 * x * ((E)1 - GELU_T(x) * GELU_T(x)) * (E)SQRT_2_OVER_PI *
                  ((E)1 + (E)(3 * GELU_K) * x * x)))
UNARY_OP(silu, SILU, x * SIGM(x), g * (SIGM(x) * ((E)1 + x * ((E)1 - SIGM(x)))))
UNARY_OP(softplus, SOFTPLUS,
         (E)A->f[0] * x > (E)A->f[1] ? x : log1p(exp((E)A->f[0] * x)) / (E)A->f[0],
         (E)A->f[0] * x > (E)A->f[1] ? g : g * SIGM((E)A->f[0] * x))
UNARY_OP(affine, AFFINE, (E)A->f[0] * x + (E)A->f[1], g * (E)A->f[0])
UNARY_OP(rdiv_scalar, RDIV_SCALAR, (E)A->f[0] / x, -g * y / x)
UNARY_OP(pow_scalar, POW_SCALAR, pow(x, (E)A->f[0]),
         A->f[0] == 0 ? (E)0 : g * (E)A->f[0] * pow(x, (E)(A->f[0] - 1)))
UNARY_OP(clamp, CLAMP, x < (E)A->f[0] ? (E)A->f[0] : (x > (E)A->f[1] ? (E)A->f[1] : x),
         (x >= (E)A->f[0] && x <= (E)A->f[1]) ? g : (E)0)

static nb_tensor *run(nb_ctx *ctx, const nb__ew_def *d, nb_tensor *a, double f0, double f1)
{
    nb__attrs at;
    memset(&at, 0, sizeof at);
    at.f[0] = f0;
    at.f[1] = f1;
    return nb__unary(ctx, d, a, &at);
}

#define PLAIN(name) \
    nb_tensor *nb_##name(nb_ctx *ctx, nb_tensor *a) { return run(ctx, &name##_def, a, 0, 0); }
PLAIN(exp)
PLAIN(log)
PLAIN(sqrt)
PLAIN(abs)
PLAIN(square)
PLAIN(relu)
PLAIN(sigmoid)
PLAIN(tanh)
PLAIN(gelu)
PLAIN(gelu_tanh)
PLAIN(silu)

static bool finite_arg(nb_ctx *ctx, const char *op, const char *what, double v)
{
    if (ctx && !isfinite(v)) {
        nb__err(ctx, NB_ERR_ARG, "%s: %s must be finite, got %g", op, what, v);
        return false;
    }
    return true;
}

nb_tensor *nb_leaky_relu(nb_ctx *ctx, nb_tensor *a, double slope)
{
    if (!finite_arg(ctx, "leaky_relu", "slope", slope))
        return NULL;
    return run(ctx, &leaky_relu_def, a, slope, 0);
}

nb_tensor *nb_elu(nb_ctx *ctx, nb_tensor *a, double alpha)
{
    if (!finite_arg(ctx, "elu", "alpha", alpha))
        return NULL;
    return run(ctx, &elu_def, a, alpha, 0);
}

nb_tensor *nb_softplus(nb_ctx *ctx, nb_tensor *a, double beta, double threshold)
{
    if (ctx && !(beta > 0 && isfinite(beta))) {
        nb__err(ctx, NB_ERR_ARG, "softplus: beta must be positive and finite, got %g", beta);
        return NULL;
    }
    return run(ctx, &softplus_def, a, beta, threshold);
}

static nb_tensor *affine(nb_ctx *ctx, const char *op, nb_tensor *a, double alpha, double beta,
                         double s)
{
    if (!finite_arg(ctx, op, "the scalar", s))
        return NULL;
    return run(ctx, &affine_def, a, alpha, beta);
}

nb_tensor *nb_neg(nb_ctx *ctx, nb_tensor *a) { return affine(ctx, "neg", a, -1, 0, 0); }
nb_tensor *nb_add_scalar(nb_ctx *ctx, nb_tensor *a, double s) { return affine(ctx, "add_scalar", a, 1, s, s); }
nb_tensor *nb_sub_scalar(nb_ctx *ctx, nb_tensor *a, double s) { return affine(ctx, "sub_scalar", a, 1, -s, s); }
nb_tensor *nb_rsub_scalar(nb_ctx *ctx, nb_tensor *a, double s) { return affine(ctx, "rsub_scalar", a, -1, s, s); }
nb_tensor *nb_mul_scalar(nb_ctx *ctx, nb_tensor *a, double s) { return affine(ctx, "mul_scalar", a, s, 0, s); }

nb_tensor *nb_div_scalar(nb_ctx *ctx, nb_tensor *a, double s)
{
    if (ctx && s == 0) {
        nb__err(ctx, NB_ERR_ARG, "div_scalar: division by zero");
        return NULL;
    }
    return affine(ctx, "div_scalar", a, 1.0 / s, 0, s);
}

nb_tensor *nb_rdiv_scalar(nb_ctx *ctx, nb_tensor *a, double s)
{
    if (!finite_arg(ctx, "rdiv_scalar", "the scalar", s))
        return NULL;
    return run(ctx, &rdiv_scalar_def, a, s, 0);
}

nb_tensor *nb_pow_scalar(nb_ctx *ctx, nb_tensor *a, double p)
{
    if (!finite_arg(ctx, "pow_scalar", "exponent", p))
        return NULL;
    return run(ctx, &pow_scalar_def, a, p, 0);
}

nb_tensor *nb_clamp(nb_ctx *ctx, nb_tensor *a, double lo, double hi)
{
    if (ctx && (isnan(lo) || isnan(hi) || lo > hi)) {
        nb__err(ctx, NB_ERR_ARG, "clamp: bounds [%g, %g] are not an interval", lo, hi);
        return NULL;
    }
    return run(ctx, &clamp_def, a, lo, hi);
}
