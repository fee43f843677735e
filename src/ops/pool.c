/* Pooling and resampling over the last two dims of x [N, C, H, W] (NCHW), as
 * torch.nn.functional 1.13. Each of the P = N C planes is independent, so the
 * kernels split planes over threads and no two threads write one element.
 *   max_pool2d  y[p,i,j] = max of x[p] over window (i,j) (the padding is -inf)
 *               dx[p, a(p,i,j)] += g[p,i,j]
 *               saves a, the argmax of each output as a flat index into its
 *               plane (i32, or i64 for planes of 2^31 elements or more):
 *               ties go to the first in row-major window order, NaN wins
 *               (the last NaN of a window, as torch's `v > m || isnan(v)`)
 *   avg_pool2d  y = (sum of x over the window clipped to the input) / d
 *               dx[window] += g / d
 *               d = the window's size clipped to the padded input
 *               (count_include_pad) or to the input
 *   adaptive_avg_pool2d  rows [floor(i H / oh), ceil((i+1) H / oh)), columns
 *               alike; y = mean over the window, dx[window] += g / |window|
 *   upsample_nearest2d   y[p,i,j] = x[p, i / sh, j / sw] (integer factors)
 *               dx[p,a,b] += sum of g over its sh x sw block
 *   global_avg_pool2d    nb_mean over axes 2 and 3 (composed, no node)
 * Window geometry, per axis of input size n, kernel k, stride s, padding p:
 * window i starts at i s - p; the output size is
 * floor((n + 2p - k) / s) + 1, or in ceil mode ceil((n + 2p - k) / s) + 1
 * less one when the last window would start at or past n + p (torch's rule,
 * so every window starts inside the input or the left padding).
 * avg/adaptive save nothing; the geometry is rebuilt from the node's
 * attributes and the input and output shapes. */
#include "core/internal.h"
#include "kernels/parallel.h"

#include <math.h>
#include <stdio.h>

nb_pool_opts nb_pool_opts_default(int kh, int kw)
{
    nb_pool_opts o;
    memset(&o, 0, sizeof o);
    o.kernel[0] = kh;
    o.kernel[1] = kw;
    o.count_include_pad = true;
    return o;
}

/* One spatial axis: input size n, output size m, and how output i maps to
 * its window. */
typedef struct {
    int64_t n, m;
    int64_t k, s, p;
    bool adaptive;    /* window [floor(i n / m), ceil((i + 1) n / m)) */
    bool include_pad; /* avg: the divisor counts the padding */
} axis_t;

/* Input range [*a, *b) of output i, and the divisor's factor *len (avg). */
static inline void span(const axis_t *A, int64_t i, int64_t *a, int64_t *b, int64_t *len)
{
    if (A->adaptive) {
        *a = i * A->n / A->m;
        *b = ((i + 1) * A->n + A->m - 1) / A->m;
        *len = *b - *a;
        return;
    }
    int64_t lo = i * A->s - A->p, hi = lo + A->k;
    if (hi > A->n + A->p)
        hi = A->n + A->p; /* ceil mode's last window stops at the right padding */
    int64_t padded = hi - lo;
    *a = lo < 0 ? 0 : lo;
    *b = hi > A->n ? A->n : hi;
    *len = A->include_pad ? padded : *b - *a;
}

typedef struct {
    axis_t h, w;
    const void *x; /* forward: x; backward: g (output-shaped) */
    void *y;       /* forward: y; backward: dx (+=) */
    void *idx;     /* max_pool2d's argmax (i32 or i64), or NULL */
    bool idx64;
    bool fast2x2;  /* max_pool2d 2x2 / 2, no padding, windows inside the input */
} job_t;

#define PLANE_PTRS(T, in_sz, out_sz)                                                     \
    const T *xp = (const T *)J->x + p * (in_sz);                                         \
    T *yp = (T *)J->y + p * (out_sz)

/* One output row of a 2x2 / 2 max pool: rows r0, r1 of the input, the
 * argmax as a plane index (at0, at1: the rows' offsets). Branch-free with
 * restrict parameters so it vectorises (stride-2 loads, selects); NaN wins
 * and ties keep the first, as torch. */
#define MAX2X2_ROW(T, SUF)                                                               \
    static inline void max2x2_row_##SUF(int64_t m, const T *restrict r0, const T *restrict r1, \
                                        T *restrict yo, int32_t *restrict ip, int32_t at0, \
                                        int32_t at1)                                     \
    {                                                                                    \
        if (!ip) {                                                                       \
            for (int64_t j = 0; j < m; j++) {                                            \
                T a = r0[2 * j], v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1]; \
                a = ((v1 > a) | (v1 != v1)) ? v1 : a;                                    \
                a = ((v2 > a) | (v2 != v2)) ? v2 : a;                                    \
                yo[j] = ((v3 > a) | (v3 != v3)) ? v3 : a;                                \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        for (int64_t j = 0; j < m; j++) {                                                \
            T a = r0[2 * j], v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1];     \
            int32_t at = at0 + 2 * (int32_t)j;                                           \
            bool t1 = (v1 > a) | (v1 != v1);                                             \
            a = t1 ? v1 : a;                                                             \
            at = t1 ? at0 + 2 * (int32_t)j + 1 : at;                                     \
            bool t2 = (v2 > a) | (v2 != v2);                                             \
            a = t2 ? v2 : a;                                                             \
            at = t2 ? at1 + 2 * (int32_t)j : at;                                         \
            bool t3 = (v3 > a) | (v3 != v3);                                             \
            a = t3 ? v3 : a;                                                             \
            at = t3 ? at1 + 2 * (int32_t)j + 1 : at;                                     \
            yo[j] = a;                                                                   \
            ip[j] = at;                                                                  \
        }                                                                                \
    }
MAX2X2_ROW(float, f32)
MAX2X2_ROW(double, f64)

/* Forward kernels read x planes of n_h n_w and write y planes of m_h m_w;
 * backward kernels read g planes of m_h m_w and add into dx planes of n_h n_w
 * (the names xp/yp then stand for g and dx). */
#define POOL_KERNS(T, SUF)                                                               \
    static void max_fwd_##SUF(int64_t p0, int64_t p1, void *arg)                         \
    {                                                                                    \
        const job_t *J = arg;                                                            \
        const int64_t W = J->w.n, M = J->h.m * J->w.m;                                   \
        if (J->fast2x2) { /* 2x2, stride 2, no padding: the common case, branch-free */ \
            for (int64_t p = p0; p < p1; p++) {                                          \
                PLANE_PTRS(T, J->h.n * W, M);                                            \
                int32_t *ip = (int32_t *)J->idx + (J->idx ? p * M : 0);                  \
                for (int64_t i = 0; i < J->h.m; i++)                                     \
                    max2x2_row_##SUF(J->w.m, xp + 2 * i * W, xp + (2 * i + 1) * W,       \
                                     yp + i * J->w.m, J->idx ? ip + i * J->w.m : NULL,   \
                                     (int32_t)(2 * i * W), (int32_t)((2 * i + 1) * W));  \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        for (int64_t p = p0; p < p1; p++) {                                              \
            PLANE_PTRS(T, J->h.n * W, M);                                                \
            for (int64_t i = 0; i < J->h.m; i++) {                                       \
                int64_t a0, a1, b0, b1, unused;                                          \
                span(&J->h, i, &a0, &a1, &unused);                                       \
                for (int64_t j = 0; j < J->w.m; j++) {                                   \
                    span(&J->w, j, &b0, &b1, &unused);                                   \
                    T m = -(T)INFINITY;                                                  \
                    int64_t at = a0 * W + b0;                                            \
                    for (int64_t r = a0; r < a1; r++)                                    \
                        for (int64_t c = b0; c < b1; c++) {                              \
                            T v = xp[r * W + c];                                         \
                            if (v > m || v != v) {                                       \
                                m = v;                                                   \
                                at = r * W + c;                                          \
                            }                                                            \
                        }                                                                \
                    int64_t o = i * J->w.m + j;                                          \
                    yp[o] = m;                                                           \
                    if (J->idx64)                                                        \
                        ((int64_t *)J->idx)[p * M + o] = at;                             \
                    else if (J->idx)                                                     \
                        ((int32_t *)J->idx)[p * M + o] = (int32_t)at;                    \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    static void max_bwd_##SUF(int64_t p0, int64_t p1, void *arg)                         \
    {                                                                                    \
        const job_t *J = arg;                                                            \
        const int64_t M = J->h.m * J->w.m;                                               \
        for (int64_t p = p0; p < p1; p++) {                                              \
            PLANE_PTRS(T, M, J->h.n * J->w.n);                                           \
            if (J->idx64) {                                                              \
                const int64_t *ip = (const int64_t *)J->idx + p * M;                     \
                for (int64_t o = 0; o < M; o++)                                          \
                    yp[ip[o]] += xp[o];                                                  \
            } else {                                                                     \
                const int32_t *ip = (const int32_t *)J->idx + p * M;                     \
                for (int64_t o = 0; o < M; o++)                                          \
                    yp[ip[o]] += xp[o];                                                  \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    /* avg_pool2d and adaptive_avg_pool2d; float32 sums in double */                     \
    static void avg_fwd_##SUF(int64_t p0, int64_t p1, void *arg)                         \
    {                                                                                    \
        const job_t *J = arg;                                                            \
        const int64_t W = J->w.n;                                                        \
        for (int64_t p = p0; p < p1; p++) {                                              \
            PLANE_PTRS(T, J->h.n * W, J->h.m * J->w.m);                                  \
            for (int64_t i = 0; i < J->h.m; i++) {                                       \
                int64_t a0, a1, b0, b1, lh, lw;                                          \
                span(&J->h, i, &a0, &a1, &lh);                                           \
                for (int64_t j = 0; j < J->w.m; j++) {                                   \
                    span(&J->w, j, &b0, &b1, &lw);                                       \
                    double s = 0;                                                        \
                    for (int64_t r = a0; r < a1; r++)                                    \
                        for (int64_t c = b0; c < b1; c++)                                \
                            s += xp[r * W + c];                                          \
                    /* an empty window (never, with torch's sizes) gives 0 as torch */   \
                    yp[i * J->w.m + j] = a0 < a1 && b0 < b1 ? (T)(s / (double)(lh * lw)) \
                                                            : (T)0;                      \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    static void avg_bwd_##SUF(int64_t p0, int64_t p1, void *arg)                         \
    {                                                                                    \
        const job_t *J = arg;                                                            \
        const int64_t W = J->w.n;                                                        \
        for (int64_t p = p0; p < p1; p++) {                                              \
            PLANE_PTRS(T, J->h.m * J->w.m, J->h.n * W);                                  \
            for (int64_t i = 0; i < J->h.m; i++) {                                       \
                int64_t a0, a1, b0, b1, lh, lw;                                          \
                span(&J->h, i, &a0, &a1, &lh);                                           \
                for (int64_t j = 0; j < J->w.m; j++) {                                   \
                    span(&J->w, j, &b0, &b1, &lw);                                       \
                    if (a0 >= a1 || b0 >= b1)                                            \
                        continue;                                                        \
                    T gv = xp[i * J->w.m + j] / (T)(lh * lw);                            \
                    for (int64_t r = a0; r < a1; r++)                                    \
                        for (int64_t c = b0; c < b1; c++)                                \
                            yp[r * W + c] += gv;                                         \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    /* upsample: h.s, w.s are the factors; n input, m = n s output */                    \
    static void up_fwd_##SUF(int64_t p0, int64_t p1, void *arg)                          \
    {                                                                                    \
        const job_t *J = arg;                                                            \
        const int64_t W = J->w.n, OW = J->w.m, fw = J->w.s;                              \
        for (int64_t p = p0; p < p1; p++) {                                              \
            PLANE_PTRS(T, J->h.n * W, J->h.m * OW);                                      \
            for (int64_t a = 0; a < J->h.n; a++) {                                       \
                T *row = yp + a * J->h.s * OW;                                           \
                for (int64_t c = 0; c < OW; c++)                                         \
                    row[c] = xp[a * W + c / fw];                                         \
                for (int64_t k = 1; k < J->h.s; k++)                                     \
                    memcpy(row + k * OW, row, sizeof(T) * (size_t)OW);                   \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    static void up_bwd_##SUF(int64_t p0, int64_t p1, void *arg)                          \
    {                                                                                    \
        const job_t *J = arg;                                                            \
        const int64_t W = J->w.n, OW = J->w.m, fh = J->h.s, fw = J->w.s;                 \
        for (int64_t p = p0; p < p1; p++) {                                              \
            PLANE_PTRS(T, J->h.m * OW, J->h.n * W);                                      \
            for (int64_t r = 0; r < J->h.m; r++) {                                       \
                T *drow = yp + (r / fh) * W;                                             \
                for (int64_t c = 0; c < OW; c++)                                         \
                    drow[c / fw] += xp[r * OW + c];                                      \
            }                                                                            \
        }                                                                                \
    }
POOL_KERNS(float, f32)
POOL_KERNS(double, f64)

#define PICK(name, dt) ((dt) == NB_F32 ? name##_f32 : name##_f64)

/* ---- checks and geometry ------------------------------------------------- */
/* x is a float [N, C, H, W] with H, W >= 1 (N or C may be 0). */
static bool check_input(nb_ctx *ctx, const char *op, const nb_tensor *x)
{
    char b[NB__SHAPE_BUF];
    if (!nb__is_float(x->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: needs a float tensor, got %s", op, nb_dtype_name(x->dtype));
        return false;
    }
    if (x->ndim != 4) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: expects a 4-D input [N, C, H, W], got %s", op,
                nb_shape_str(x, b, sizeof b));
        return false;
    }
    if (x->shape[2] < 1 || x->shape[3] < 1) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s has an empty plane (H and W must be at least 1)",
                op, nb_shape_str(x, b, sizeof b));
        return false;
    }
    return true;
}

static int64_t floor_div(int64_t a, int64_t b) /* b > 0 */
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* torch's pooling_output_shape (dilation 1) */
static int64_t pool_out(int64_t n, int64_t k, int64_t s, int64_t p, bool ceil_mode)
{
    int64_t m = floor_div(n + 2 * p - k + (ceil_mode ? s - 1 : 0), s) + 1;
    if (ceil_mode && (m - 1) * s >= n + p)
        m--;
    return m;
}

/* Validates o against x and fills the two axes; the error names op. */
static bool pool_geom(nb_ctx *ctx, const char *op, const nb_tensor *x, const nb_pool_opts *o,
                      axis_t *h, axis_t *w)
{
    if (!o) {
        nb__err(ctx, NB_ERR_NULL, "%s: options are NULL", op);
        return false;
    }
    const int *k = o->kernel, *s = o->stride, *p = o->padding;
    if (k[0] < 1 || k[1] < 1) {
        nb__err(ctx, NB_ERR_ARG, "%s: kernel %dx%d must be positive", op, k[0], k[1]);
        return false;
    }
    if (s[0] < 0 || s[1] < 0) {
        nb__err(ctx, NB_ERR_ARG, "%s: stride %dx%d must be positive (0: the kernel size)", op,
                s[0], s[1]);
        return false;
    }
    if (p[0] < 0 || p[1] < 0) {
        nb__err(ctx, NB_ERR_ARG, "%s: padding %dx%d is negative", op, p[0], p[1]);
        return false;
    }
    if (p[0] > k[0] / 2 || p[1] > k[1] / 2) {
        nb__err(ctx, NB_ERR_ARG, "%s: padding %dx%d is more than half the kernel %dx%d", op, p[0],
                p[1], k[0], k[1]);
        return false;
    }
    if (!check_input(ctx, op, x))
        return false;
    axis_t *ax[2] = {h, w};
    for (int d = 0; d < 2; d++) {
        axis_t *A = ax[d];
        memset(A, 0, sizeof *A);
        A->n = x->shape[2 + d];
        A->k = k[d];
        A->s = s[d] ? s[d] : k[d];
        A->p = p[d];
        A->include_pad = o->count_include_pad;
        A->m = pool_out(A->n, A->k, A->s, A->p, o->ceil_mode);
    }
    if (h->m < 1 || w->m < 1) {
        char pad[32];
        if (p[0] == p[1])
            snprintf(pad, sizeof pad, "%d", p[0]);
        else
            snprintf(pad, sizeof pad, "%dx%d", p[0], p[1]);
        nb__err(ctx, NB_ERR_SHAPE, "%s: kernel %dx%d larger than the padded input %lldx%lld "
                "(padding %s)", op, k[0], k[1], (long long)(h->n + 2 * (int64_t)p[0]),
                (long long)(w->n + 2 * (int64_t)p[1]), pad);
        return false;
    }
    return true;
}

static nb_tensor *new_out(nb_ctx *ctx, const nb_tensor *x, int64_t oh, int64_t ow)
{
    return nb__new_step(ctx, x->dtype, NB_SHAPE(x->shape[0], x->shape[1], oh, ow));
}

static int64_t planes(const nb_tensor *x) { return x->shape[0] * x->shape[1]; }

/* Pool attributes for backward: kernel, stride, padding, count_include_pad. */
static void put_axes(nb__attrs *at, const axis_t *h, const axis_t *w)
{
    at->i[0] = h->k;
    at->i[1] = w->k;
    at->i[2] = h->s;
    at->i[3] = w->s;
    at->axes[0] = (int)h->p;
    at->axes[1] = (int)w->p;
    at->flag = h->include_pad;
}

static void get_axes(const nb__node *n, axis_t *h, axis_t *w)
{
    const nb__attrs *at = &n->a;
    memset(h, 0, sizeof *h);
    memset(w, 0, sizeof *w);
    h->n = n->in[0]->shape[2];
    w->n = n->in[0]->shape[3];
    h->m = n->out->shape[2];
    w->m = n->out->shape[3];
    h->k = at->i[0];
    w->k = at->i[1];
    h->s = at->i[2];
    w->s = at->i[3];
    h->p = at->axes[0];
    w->p = at->axes[1];
    h->include_pad = w->include_pad = at->flag != 0;
}

/* ---- max_pool2d ------------------------------------------------------------ */
nb_tensor *nb_max_pool2d(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *o)
{
    const char *op = "max_pool2d";
    if (!ctx || nb__null_in(ctx, op, 1, x))
        return NULL;
    job_t J;
    memset(&J, 0, sizeof J);
    if (!pool_geom(ctx, op, x, o, &J.h, &J.w))
        return NULL;
    x = nb_contiguous(ctx, x);
    nb_tensor *y = x ? new_out(ctx, x, J.h.m, J.w.m) : NULL;
    if (!y)
        return NULL;
    bool grad = nb__needs_grad(ctx, 1, &x);
    nb_tensor *idx = NULL;
    if (grad) { /* argmax per output, flat within its plane */
        J.idx64 = J.h.n * J.w.n > INT32_MAX;
        idx = nb__new_step(ctx, J.idx64 ? NB_I64 : NB_I32, 4, y->shape);
        if (!idx)
            return NULL;
        J.idx = idx->data;
    }
    J.x = x->data;
    J.y = y->data;
    J.fast2x2 = !J.idx64 && J.h.k == 2 && J.w.k == 2 && J.h.s == 2 && J.w.s == 2 && J.h.p == 0 &&
                J.w.p == 0 && 2 * J.h.m <= J.h.n && 2 * J.w.m <= J.w.n;
    nb__parallel_for(ctx->nthreads, planes(x), J.h.m * J.w.m * (J.h.k * J.w.k + 2),
                     PICK(max_fwd, x->dtype), &J);
    if (grad) {
        nb__node *n = nb__record(ctx, NB__OP_MAX_POOL2D, y, 1, &x);
        if (!n)
            return NULL;
        put_axes(&n->a, &J.h, &J.w);
        n->saved[0] = idx;
    }
    return y;
}

nb_status nb__max_pool2d_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    job_t J;
    memset(&J, 0, sizeof J);
    get_axes(n, &J.h, &J.w);
    J.x = n->out->grad->data;
    J.y = dx->data;
    J.idx = n->saved[0]->data;
    J.idx64 = n->saved[0]->dtype == NB_I64;
    nb__parallel_for(ctx->nthreads, planes(x), 2 * J.h.m * J.w.m, PICK(max_bwd, x->dtype), &J);
    return NB_OK;
}

/* ---- avg_pool2d and adaptive_avg_pool2d ------------------------------------ */
static nb_tensor *avg_run(nb_ctx *ctx, nb_tensor *x, job_t *J, nb__op_id id)
{
    x = nb_contiguous(ctx, x);
    nb_tensor *y = x ? new_out(ctx, x, J->h.m, J->w.m) : NULL;
    if (!y)
        return NULL;
    J->x = x->data;
    J->y = y->data;
    /* adaptive windows are about n / m wide, plus one */
    int64_t win = id == NB__OP_ADAPTIVE_AVG_POOL2D
                      ? (J->h.n / J->h.m + 2) * (J->w.n / J->w.m + 2)
                      : J->h.k * J->w.k;
    nb__parallel_for(ctx->nthreads, planes(x), J->h.m * J->w.m * (win + 2),
                     PICK(avg_fwd, x->dtype), J);
    if (nb__needs_grad(ctx, 1, &x)) {
        nb__node *n = nb__record(ctx, id, y, 1, &x);
        if (!n)
            return NULL;
        put_axes(&n->a, &J->h, &J->w);
    }
    return y;
}

static nb_status avg_backward(nb_ctx *ctx, nb__node *n, bool adaptive)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    job_t J;
    memset(&J, 0, sizeof J);
    get_axes(n, &J.h, &J.w);
    J.h.adaptive = J.w.adaptive = adaptive;
    J.x = n->out->grad->data;
    J.y = dx->data;
    nb__parallel_for(ctx->nthreads, planes(x), 2 * (J.h.m * J.w.m + J.h.n * J.w.n),
                     PICK(avg_bwd, x->dtype), &J);
    return NB_OK;
}

nb_tensor *nb_avg_pool2d(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *o)
{
    if (!ctx || nb__null_in(ctx, "avg_pool2d", 1, x))
        return NULL;
    job_t J;
    memset(&J, 0, sizeof J);
    if (!pool_geom(ctx, "avg_pool2d", x, o, &J.h, &J.w))
        return NULL;
    return avg_run(ctx, x, &J, NB__OP_AVG_POOL2D);
}

nb_status nb__avg_pool2d_backward(nb_ctx *ctx, nb__node *n) { return avg_backward(ctx, n, false); }

nb_tensor *nb_adaptive_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int oh, int ow)
{
    const char *op = "adaptive_avg_pool2d";
    if (!ctx || nb__null_in(ctx, op, 1, x))
        return NULL;
    if (oh < 1 || ow < 1) {
        nb__err(ctx, NB_ERR_ARG, "%s: output size %dx%d must be positive", op, oh, ow);
        return NULL;
    }
    if (!check_input(ctx, op, x))
        return NULL;
    job_t J;
    memset(&J, 0, sizeof J);
    J.h.n = x->shape[2];
    J.w.n = x->shape[3];
    J.h.m = oh;
    J.w.m = ow;
    J.h.adaptive = J.w.adaptive = true;
    return avg_run(ctx, x, &J, NB__OP_ADAPTIVE_AVG_POOL2D);
}

nb_status nb__adaptive_avg_pool2d_backward(nb_ctx *ctx, nb__node *n)
{
    return avg_backward(ctx, n, true);
}

/* ---- global_avg_pool2d (composed) ------------------------------------------- */
nb_tensor *nb_global_avg_pool2d(nb_ctx *ctx, nb_tensor *x)
{
    if (!ctx || nb__null_in(ctx, "global_avg_pool2d", 1, x) ||
        !check_input(ctx, "global_avg_pool2d", x))
        return NULL;
    return nb_mean(ctx, x, NB_AXES(2, 3), false);
}

/* ---- upsample_nearest2d ------------------------------------------------------ */
nb_tensor *nb_upsample_nearest2d(nb_ctx *ctx, nb_tensor *x, int sh, int sw)
{
    const char *op = "upsample_nearest2d";
    if (!ctx || nb__null_in(ctx, op, 1, x))
        return NULL;
    if (sh < 1 || sw < 1) {
        nb__err(ctx, NB_ERR_ARG, "%s: factors %dx%d must be positive", op, sh, sw);
        return NULL;
    }
    if (!check_input(ctx, op, x))
        return NULL;
    if (x->shape[2] > INT64_MAX / sh || x->shape[3] > INT64_MAX / sw) {
        char b[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_SHAPE, "%s: %s upsampled by %dx%d is too large", op,
                nb_shape_str(x, b, sizeof b), sh, sw);
        return NULL;
    }
    x = nb_contiguous(ctx, x);
    nb_tensor *y = x ? new_out(ctx, x, x->shape[2] * sh, x->shape[3] * sw) : NULL;
    if (!y)
        return NULL;
    job_t J;
    memset(&J, 0, sizeof J);
    J.h.n = x->shape[2];
    J.w.n = x->shape[3];
    J.h.s = sh;
    J.w.s = sw;
    J.h.m = y->shape[2];
    J.w.m = y->shape[3];
    J.x = x->data;
    J.y = y->data;
    nb__parallel_for(ctx->nthreads, planes(x), J.h.m * J.w.m, PICK(up_fwd, x->dtype), &J);
    if (nb__needs_grad(ctx, 1, &x) && !nb__record(ctx, NB__OP_UPSAMPLE_NEAREST2D, y, 1, &x))
        return NULL;
    return y;
}

nb_status nb__upsample_nearest2d_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    job_t J;
    memset(&J, 0, sizeof J);
    J.h.n = x->shape[2];
    J.w.n = x->shape[3];
    J.h.m = n->out->shape[2];
    J.w.m = n->out->shape[3];
    J.h.s = J.h.m / J.h.n;
    J.w.s = J.w.m / J.w.n;
    J.x = n->out->grad->data;
    J.y = dx->data;
    nb__parallel_for(ctx->nthreads, planes(x), 2 * J.h.m * J.w.m, PICK(up_bwd, x->dtype), &J);
    return NB_OK;
}
