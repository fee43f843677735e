/* Binary elementwise ops with NumPy broadcasting. Backward writes each
 * input's gradient over the output's shape; where the input was broadcast
 * its gradient has stride 0 there, so the += sums over the broadcast dims.
 *
 *   add      y = a + b      da = g            db = g
 *   sub      y = a - b      da = g            db = -g
 *   mul      y = a b        da = g b          db = g a
 *   div      y = a / b      da = g / b        db = -g y / b
 *   pow      y = a^b        da = g b a^(b-1)  (0 where b = 0)
 *                           db = g y ln a     (0 where a = 0 and b >= 0)
 *   maximum  y = max(a, b)  da = g [a > b] + g/2 [a = b]   (torch's tie rule)
 *   minimum  y = min(a, b)  da = g [a < b] + g/2 [a = b]
 *   where    y = m ? a : b  da = g [m]        db = g [!m]   (m: any dtype, != 0)
 *   compare  y = a OP b as a U8 mask; no gradient
 */
#include "ops/ew.h"

#include <stdio.h>

#define BINARY_OP(name, ID, USES_A, USES_B, FWD, BWD_A, BWD_B)                           \
    BINARY_OP_ACC(name, ID, USES_A, USES_B, 0, 0, FWD, BWD_A, BWD_B)
#define BINARY_OP_ACC(name, ID, USES_A, USES_B, ACC_A, ACC_B, FWD, BWD_A, BWD_B)         \
    NB__BINARY_FWD(name##_fwd, FWD)                                                      \
    NB__BINARY_BWD(name##_bwd_a, BWD_A)                                                  \
    NB__BINARY_BWD(name##_bwd_b, BWD_B)                                                  \
    static const nb__ew_def name##_def = {                                               \
        .op = NB__OP_##ID,                                                               \
        .fwd = NB__KERNS(name##_fwd),                                                    \
        .bwd = {NB__KERNS(name##_bwd_a), NB__KERNS(name##_bwd_b)},                       \
        .uses = {USES_A, USES_B},                                                        \
        .acc = {ACC_A, ACC_B}};                                                          \
    nb_status nb__##name##_backward(nb_ctx *ctx, nb__node *n)                            \
    {                                                                                    \
        return nb__binary_backward(ctx, n, &name##_def);                                 \
    }                                                                                    \
    nb_tensor *nb_##name(nb_ctx *ctx, nb_tensor *a, nb_tensor *b)                        \
    {                                                                                    \
        return nb__binary(ctx, &name##_def, a, b, NULL);                                 \
    }

/* operands a backward kernel reads (U_NONE: only the upstream gradient) */
#define U_A 1
#define U_B 2
#define U_Y 4
#define U_NONE 8 /* nonzero, reads none of a, b, y */

BINARY_OP_ACC(add, ADD, U_NONE, U_NONE, 1, 1, a + b, g, g)
BINARY_OP_ACC(sub, SUB, U_NONE, U_NONE, 1, -1, a - b, g, -g)
BINARY_OP(mul, MUL, U_B, U_A, a * b, g * b, g * a)
BINARY_OP(div, DIV, U_B, U_B | U_Y, a / b, g / b, -g * y / b)
BINARY_OP(pow, POW, U_A | U_B, U_A | U_B | U_Y, pow(a, b), b == 0 ? (E)0 : g * b * pow(a, b - (E)1),
          (a == 0 && b >= 0) ? (E)0 : g * y * log(a))
BINARY_OP(maximum, MAXIMUM, U_A | U_B, U_A | U_B, a > b ? a : b, a > b ? g : (a == b ? g / (E)2 : (E)0),
          b > a ? g : (a == b ? g / (E)2 : (E)0))
BINARY_OP(minimum, MINIMUM, U_A | U_B, U_A | U_B, a < b ? a : b, a < b ? g : (a == b ? g / (E)2 : (E)0),
          b < a ? g : (a == b ? g / (E)2 : (E)0))

/* ---- where ------------------------------------------------------------- */
/* p0 = y, p1 = mask (u8), p2 = a, p3 = b */
#define WHERE_KERNS(T, SUF)                                                              \
    static void where_fwd_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg) \
    {                                                                                    \
        (void)arg;                                                                       \
        for (int64_t i = 0; i < n; i++)                                                  \
            *(T *)(p[0] + i * s[0]) = *(const uint8_t *)(p[1] + i * s[1])               \
                                          ? *(const T *)(p[2] + i * s[2])               \
                                          : *(const T *)(p[3] + i * s[3]);              \
    }                                                                                    \
    /* p0 = d (+=), p1 = g, p2 = mask; arg: pointer to int "take when mask is" */         \
    static void where_bwd_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg) \
    {                                                                                    \
        const int want = *(const int *)arg;                                              \
        for (int64_t i = 0; i < n; i++)                                                  \
            if ((*(const uint8_t *)(p[2] + i * s[2]) != 0) == want)                      \
                *(T *)(p[0] + i * s[0]) += *(const T *)(p[1] + i * s[1]);                \
    }
WHERE_KERNS(float, f32)
WHERE_KERNS(double, f64)

static void to_mask(int64_t n, char *const *p, const int64_t *s, const void *arg)
{
    nb_dtype dt = *(const nb_dtype *)arg;
    for (int64_t i = 0; i < n; i++)
        *(uint8_t *)(p[0] + i * s[0]) = nb__load(dt, p[1] + i * s[1]) != 0.0;
}

nb_tensor *nb_where(nb_ctx *ctx, nb_tensor *mask, nb_tensor *a, nb_tensor *b)
{
    if (!ctx || nb__null_in(ctx, "where", 3, mask, a, b) || !nb__check_float(ctx, "where", a, b))
        return NULL;
    int64_t s1[NB_MAX_DIMS], shape[NB_MAX_DIMS];
    int n1 = nb__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, s1);
    int nd = n1 < 0 ? -1 : nb__broadcast_shape(mask->ndim, mask->shape, n1, s1, shape);
    if (nd < 0) {
        char sm[NB__SHAPE_BUF], sa[NB__SHAPE_BUF], sb[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_SHAPE, "where: shapes do not broadcast: mask %s, a %s, b %s",
                nb_shape_str(mask, sm, sizeof sm), nb_shape_str(a, sa, sizeof sa),
                nb_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    nb_tensor *m = mask;
    if (mask->dtype != NB_U8) {
        m = nb__new_step(ctx, NB_U8, mask->ndim, mask->shape);
        if (!m)
            return NULL;
        nb__iter it;
        nb__iter_init(&it, m->ndim, m->shape);
        nb__iter_add_t(&it, m);
        nb__iter_add_t(&it, mask);
        nb__iter_run(&it, to_mask, &mask->dtype, ctx);
    }
    nb_tensor *y = nb__new_step(ctx, a->dtype, nd, shape);
    if (!y)
        return NULL;
    nb__iter it;
    nb__iter_init(&it, nd, shape);
    nb__iter_add_t(&it, y);
    nb__iter_add_t(&it, m);
    nb__iter_add_t(&it, a);
    nb__iter_add_t(&it, b);
    nb__iter_run(&it, a->dtype == NB_F32 ? where_fwd_f32 : where_fwd_f64, NULL, ctx);
    nb_tensor *in[3] = {m, a, b};
    if (nb__needs_grad(ctx, 3, in) && !nb__record(ctx, NB__OP_WHERE, y, 3, in))
        return NULL;
    return y;
}

nb_status nb__where_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *y = n->out;
    for (int i = 1; i <= 2; i++) {
        nb_tensor *d;
        nb_status st = nb__grad_of(ctx, n->in[i], &d);
        if (st != NB_OK)
            return st;
        if (!d)
            continue;
        int want = i == 1;
        nb__iter it;
        nb__iter_init(&it, y->ndim, y->shape);
        nb__iter_add_t(&it, d);
        nb__iter_add_t(&it, y->grad);
        nb__iter_add_t(&it, n->in[0]);
        nb__iter_run(&it, y->dtype == NB_F32 ? where_bwd_f32 : where_bwd_f64, &want, ctx);
    }
    return NB_OK;
}

/* ---- comparisons ------------------------------------------------------- */
enum { CMP_GT, CMP_LT, CMP_GE, CMP_LE, CMP_EQ };

#define CMP_KERN(T, SUF)                                                                 \
    static void cmp_##SUF(int64_t n, char *const *p, const int64_t *s, const void *arg)  \
    {                                                                                    \
        const int op = *(const int *)arg;                                                \
        for (int64_t i = 0; i < n; i++) {                                                \
            T a = *(const T *)(p[1] + i * s[1]), b = *(const T *)(p[2] + i * s[2]);      \
            int r = op == CMP_GT ? a > b : op == CMP_LT ? a < b : op == CMP_GE ? a >= b  \
                  : op == CMP_LE ? a <= b : a == b;                                      \
            *(uint8_t *)(p[0] + i * s[0]) = (uint8_t)r;                                  \
        }                                                                                \
    }
CMP_KERN(float, f32)
CMP_KERN(double, f64)
CMP_KERN(int32_t, i32)
CMP_KERN(int64_t, i64)
CMP_KERN(uint8_t, u8)

static nb_tensor *compare(nb_ctx *ctx, const char *name, int op, nb_tensor *a, nb_tensor *b)
{
    if (!ctx || nb__null_in(ctx, name, 2, a, b))
        return NULL;
    if (a->dtype != b->dtype || a->dtype == NB_F16 || a->dtype == NB_BF16) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: dtypes %s and %s cannot be compared", name,
                nb_dtype_name(a->dtype), nb_dtype_name(b->dtype));
        return NULL;
    }
    int64_t shape[NB_MAX_DIMS];
    int nd = nb__broadcast_or_err(ctx, name, a, b, shape);
    if (nd < 0)
        return NULL;
    nb_tensor *y = nb__new_step(ctx, NB_U8, nd, shape);
    if (!y)
        return NULL;
    static const nb__kern k[] = {[NB_F32] = cmp_f32, [NB_F64] = cmp_f64, [NB_I32] = cmp_i32,
                                 [NB_I64] = cmp_i64, [NB_U8] = cmp_u8};
    nb__iter it;
    nb__iter_init(&it, nd, shape);
    nb__iter_add_t(&it, y);
    nb__iter_add_t(&it, a);
    nb__iter_add_t(&it, b);
    nb__iter_run(&it, k[a->dtype], &op, ctx);
    return y; /* a mask carries no gradient and is never recorded */
}

nb_status nb__compare_backward(nb_ctx *ctx, nb__node *n)
{
    (void)ctx;
    (void)n;
    return NB_OK;
}

nb_tensor *nb_gt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return compare(ctx, "gt", CMP_GT, a, b); }
nb_tensor *nb_lt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return compare(ctx, "lt", CMP_LT, a, b); }
nb_tensor *nb_ge(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return compare(ctx, "ge", CMP_GE, a, b); }
nb_tensor *nb_le(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return compare(ctx, "le", CMP_LE, a, b); }
nb_tensor *nb_eq(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) { return compare(ctx, "eq", CMP_EQ, a, b); }
