/* The elementwise framework: shape rule, forward and backward drivers shared
 * by unary, scalar and binary ops. An op supplies only its kernels (one per
 * dtype) through the macros below, so its formulas sit side by side.
 *
 * Kernel operands (byte pointers p[], byte strides s[] for one row of n):
 *   unary forward   p0 = y, p1 = x
 *   unary backward  p0 = dx (+=), p1 = dy, p2 = x, p3 = y
 *   binary forward  p0 = y, p1 = a, p2 = b
 *   binary backward p0 = da or db (+=), p1 = dy, p2 = a, p3 = b, p4 = y
 * The arg pointer is the op's nb__attrs. */
#ifndef NB_EW_H
#define NB_EW_H

#include "core/internal.h"
#include "kernels/iter.h"

#include <tgmath.h>

typedef struct nb__ew_def {
    nb__op_id op;
    nb__kern fwd[2];     /* [0] f32, [1] f64 */
    nb__kern bwd[2][2];  /* [input][dtype]; NULL: no gradient to that input */
    /* which of a (1), b (2), y (4) each binary backward kernel reads; the
     * others are not passed, so a broadcast operand that is not read does
     * not push the iteration off the contiguous fast path. 0 means all. */
    unsigned char uses[2];
    /* nonzero: that input's backward is just d += acc[i] * dy (add, sub),
     * done by the accumulation helper without the kernel */
    double acc[2];
} nb__ew_def;

nb_tensor *nb__unary(nb_ctx *ctx, const nb__ew_def *d, nb_tensor *a, const nb__attrs *at);
nb_status nb__unary_backward(nb_ctx *ctx, nb__node *n, const nb__ew_def *d);
nb_tensor *nb__binary(nb_ctx *ctx, const nb__ew_def *d, nb_tensor *a, nb_tensor *b,
                      const nb__attrs *at);
nb_status nb__binary_backward(nb_ctx *ctx, nb__node *n, const nb__ew_def *d);
/* The broadcast shape of a and b into shape (returns its rank), or -1 with
 * the shape error recorded for op. */
int nb__broadcast_or_err(nb_ctx *ctx, const char *op, const nb_tensor *a, const nb_tensor *b,
                         int64_t *shape);
/* Shared input checks: non-NULL (already), float, equal dtypes. */
bool nb__check_float(nb_ctx *ctx, const char *op, const nb_tensor *a, const nb_tensor *b);

#define NB__DTI(dt) ((dt) == NB_F64 ? 1 : 0)

/* One kernel per dtype from one expression. Within EXPR: x (and for
 * backward g, y) are of type E (float or double); A is the nb__attrs
 * pointer. Write constants as (E)0.5 so float kernels stay in float. */
#define NB__UNARY_FWD(NAME, EXPR) \
    NB__UNARY_FWD_T(NAME##_f32, float, EXPR) NB__UNARY_FWD_T(NAME##_f64, double, EXPR)
#define NB__UNARY_FWD_T(NAME, T, EXPR)                                                   \
    static void NAME(int64_t n, char *const *p, const int64_t *s, const void *arg)       \
    {                                                                                    \
        const nb__attrs *A = (const nb__attrs *)arg;                                     \
        typedef T E; /* the element type, for casts inside EXPR */                       \
        (void)A;                                                                         \
        (void)sizeof(E);                                                                 \
        if (NB__CONTIG2(s, T)) {                                                         \
            T *yp = (T *)p[0];                                                           \
            const T *xp = (const T *)p[1];                                               \
            for (int64_t i = 0; i < n; i++) {                                            \
                const T x = xp[i];                                                       \
                yp[i] = (T)(EXPR);                                                       \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        for (int64_t i = 0; i < n; i++) {                                                \
            const T x = *(const T *)(p[1] + i * s[1]);                                   \
            *(T *)(p[0] + i * s[0]) = (T)(EXPR);                                         \
        }                                                                                \
    }

#define NB__UNARY_BWD(NAME, EXPR) \
    NB__UNARY_BWD_T(NAME##_f32, float, EXPR) NB__UNARY_BWD_T(NAME##_f64, double, EXPR)
#define NB__UNARY_BWD_T(NAME, T, EXPR)                                                   \
    static void NAME(int64_t n, char *const *p, const int64_t *s, const void *arg)       \
    {                                                                                    \
        const nb__attrs *A = (const nb__attrs *)arg;                                     \
        typedef T E; /* the element type, for casts inside EXPR */                       \
        (void)A;                                                                         \
        (void)sizeof(E);                                                                 \
        if (NB__CONTIG4(s, T)) {                                                         \
            T *dx = (T *)p[0];                                                           \
            const T *gp = (const T *)p[1], *xp = (const T *)p[2], *yp = (const T *)p[3]; \
            if (A->write) { /* a fresh gradient buffer: store */                        \
                for (int64_t i = 0; i < n; i++) {                                        \
                    const T g = gp[i], x = xp[i], y = yp[i];                             \
                    (void)x;                                                             \
                    (void)y;                                                             \
                    dx[i] = (T)(EXPR);                                                   \
                }                                                                        \
                return;                                                                  \
            }                                                                            \
            for (int64_t i = 0; i < n; i++) {                                            \
                const T g = gp[i], x = xp[i], y = yp[i];                                 \
                (void)x;                                                                 \
                (void)y;                                                                 \
                dx[i] += (T)(EXPR);                                                      \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        for (int64_t i = 0; i < n; i++) {                                                \
            const T g = *(const T *)(p[1] + i * s[1]);                                   \
            const T x = *(const T *)(p[2] + i * s[2]);                                   \
            const T y = *(const T *)(p[3] + i * s[3]);                                   \
            (void)x;                                                                     \
            (void)y;                                                                     \
            T *d_ = (T *)(p[0] + i * s[0]);                                              \
            *d_ = (A->write ? (T)0 : *d_) + (T)(EXPR);                                   \
        }                                                                                \
    }

#define NB__BINARY_FWD(NAME, EXPR) \
    NB__BINARY_FWD_T(NAME##_f32, float, EXPR) NB__BINARY_FWD_T(NAME##_f64, double, EXPR)
#define NB__BINARY_FWD_T(NAME, T, EXPR)                                                  \
    static void NAME(int64_t n, char *const *p, const int64_t *s, const void *arg)       \
    {                                                                                    \
        const nb__attrs *A = (const nb__attrs *)arg;                                     \
        typedef T E; /* the element type, for casts inside EXPR */                       \
        (void)A;                                                                         \
        (void)sizeof(E);                                                                 \
        if (NB__CONTIG3(s, T)) {                                                         \
            T *yp = (T *)p[0];                                                           \
            const T *ap = (const T *)p[1], *bp = (const T *)p[2];                        \
            for (int64_t i = 0; i < n; i++) {                                            \
                const T a = ap[i], b = bp[i];                                            \
                yp[i] = (T)(EXPR);                                                       \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        for (int64_t i = 0; i < n; i++) {                                                \
            const T a = *(const T *)(p[1] + i * s[1]);                                   \
            const T b = *(const T *)(p[2] + i * s[2]);                                   \
            *(T *)(p[0] + i * s[0]) = (T)(EXPR);                                         \
        }                                                                                \
    }

#define NB__BINARY_BWD(NAME, EXPR) \
    NB__BINARY_BWD_T(NAME##_f32, float, EXPR) NB__BINARY_BWD_T(NAME##_f64, double, EXPR)
#define NB__BINARY_BWD_T(NAME, T, EXPR)                                                  \
    static void NAME(int64_t n, char *const *p, const int64_t *s, const void *arg)       \
    {                                                                                    \
        const nb__attrs *A = (const nb__attrs *)arg;                                     \
        typedef T E; /* the element type, for casts inside EXPR */                       \
        (void)A;                                                                         \
        (void)sizeof(E);                                                                 \
        if (NB__CONTIG4(s, T) && s[4] == (int64_t)sizeof(T)) { /* vectorisable */        \
            T *dx = (T *)p[0];                                                           \
            const T *gp = (const T *)p[1], *ap = (const T *)p[2], *bp = (const T *)p[3]; \
            const T *yp = (const T *)p[4];                                               \
            if (A->write) { /* 0 + e as below: the same bits (a -0 stored as +0) */      \
                for (int64_t i = 0; i < n; i++) {                                        \
                    const T g = gp[i], a = ap[i], b = bp[i], y = yp[i];                  \
                    (void)a;                                                             \
                    (void)b;                                                             \
                    (void)y;                                                             \
                    dx[i] = (T)0 + (T)(EXPR);                                            \
                }                                                                        \
                return;                                                                  \
            }                                                                            \
            for (int64_t i = 0; i < n; i++) {                                            \
                const T g = gp[i], a = ap[i], b = bp[i], y = yp[i];                      \
                (void)a;                                                                 \
                (void)b;                                                                 \
                (void)y;                                                                 \
                dx[i] += (T)(EXPR);                                                      \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        for (int64_t i = 0; i < n; i++) {                                                \
            const T g = *(const T *)(p[1] + i * s[1]);                                   \
            const T a = *(const T *)(p[2] + i * s[2]);                                   \
            const T b = *(const T *)(p[3] + i * s[3]);                                   \
            const T y = *(const T *)(p[4] + i * s[4]);                                   \
            (void)a;                                                                     \
            (void)b;                                                                     \
            (void)y;                                                                     \
            T *d_ = (T *)(p[0] + i * s[0]);                                              \
            *d_ = (A->write ? (T)0 : *d_) + (T)(EXPR);                                   \
        }                                                                                \
    }

#define NB__KERNS(NAME) { NAME##_f32, NAME##_f64 }

/* A whole unary op from its two expressions: kernels, the nb__ew_def
 * `name##_def`, and nb__<name>_backward. */
#define NB__UNARY_OP(name, ID, FWD, BWD)                                                \
    NB__UNARY_FWD(name##_fwd, FWD)                                                      \
    NB__UNARY_BWD(name##_bwd, BWD)                                                      \
    static const nb__ew_def name##_def = {.op = NB__OP_##ID,                            \
                                          .fwd = NB__KERNS(name##_fwd),                 \
                                          .bwd = {NB__KERNS(name##_bwd), {0, 0}}};      \
    nb_status nb__##name##_backward(nb_ctx *ctx, nb__node *n)                           \
    {                                                                                   \
        return nb__unary_backward(ctx, n, &name##_def);                                 \
    }

#endif
