/* One LSTM step as one op (torch.nn.LSTM's cell):
 *   p = a + b  [N, 4H]   (a = x W_ih^T + b_ih, b = h W_hh^T + b_hh), chunks i, f, g, o
 *   c' = sigmoid(f) c + sigmoid(i) tanh(g),  h' = sigmoid(o) tanh(c')
 *   y = [h', c']  [N, 2H]  (the layer takes the halves as views)
 * backward, with dh, dc the halves of dy and the saved activations S = [i, f,
 * g, o, tanh c'] (after their sigmoid / tanh):
 *   dc_t = dc + dh o (1 - tanh(c')^2)
 *   dp = [dc_t g i (1 - i), dc_t c f (1 - f), dc_t i (1 - g^2), dh tanh(c') o (1 - o)]
 *   da = db = dp,  dc_prev = dc_t f
 * Why one op: composed, a step was ten elementwise ops, each a pass over
 * memory with its own zeroed gradient buffer (about 14% of the benchmark
 * LSTM's step at one thread). float32 uses the vectorised sigmoid / tanh of
 * kernels/vmath.h, float64 libm. */
#include "core/internal.h"
#include "kernels/parallel.h"
#include "kernels/vmath.h"

#include <math.h>
#include <stdio.h>

typedef struct {
    nb_dtype dt;
    int64_t H;
    const char *a, *b, *c;  /* rows at a + n ra, ... (unit column stride) */
    int64_t ra, rb, rc;     /* row strides in elements */
    char *y, *S;            /* forward: [N, 2H], [N, 5H] */
    const char *gy;         /* backward: [N, 2H] */
    char *da, *db, *dc;     /* backward: [N, 4H], [N, 4H], [N, H] or NULL */
    bool wa, wb, wc;        /* store (=) into a fresh gradient instead of += */
} cell_job;

#define CELL_KERNS(T, SUF, SIGMOID_N, TANH_N)                                            \
    static void fwd_rows_##SUF(int64_t r0, int64_t r1, void *arg)                        \
    {                                                                                    \
        const cell_job *J = arg;                                                         \
        int64_t H = J->H;                                                                \
        for (int64_t n = r0; n < r1; n++) {                                              \
            const T *a = (const T *)J->a + n * J->ra, *b = (const T *)J->b + n * J->rb;  \
            const T *c = (const T *)J->c + n * J->rc;                                    \
            T *S = (T *)J->S + n * 5 * H, *y = (T *)J->y + n * 2 * H;                    \
            for (int64_t j = 0; j < 4 * H; j++)                                          \
                S[j] = a[j] + b[j];                                                      \
            SIGMOID_N(2 * H, S, S);         /* i, f */                                   \
            TANH_N(H, S + 2 * H, S + 2 * H); /* g */                                     \
            SIGMOID_N(H, S + 3 * H, S + 3 * H); /* o */                                  \
            const T *i = S, *f = S + H, *g = S + 2 * H;                                  \
            T *cn = y + H;                                                               \
            for (int64_t j = 0; j < H; j++)                                              \
                cn[j] = f[j] * c[j] + i[j] * g[j];                                       \
            TANH_N(H, S + 4 * H, cn);                                                    \
            const T *o = S + 3 * H, *tc = S + 4 * H;                                     \
            for (int64_t j = 0; j < H; j++)                                              \
                y[j] = o[j] * tc[j];                                                     \
        }                                                                                \
    }                                                                                    \
    static void bwd_rows_##SUF(int64_t r0, int64_t r1, void *arg)                        \
    {                                                                                    \
        const cell_job *J = arg;                                                         \
        int64_t H = J->H;                                                                \
        for (int64_t n = r0; n < r1; n++) {                                              \
            const T *S = (const T *)J->S + n * 5 * H, *gy = (const T *)J->gy + n * 2 * H; \
            const T *c = (const T *)J->c + n * J->rc;                                    \
            const T *i = S, *f = S + H, *g = S + 2 * H, *o = S + 3 * H, *tc = S + 4 * H; \
            const T *dh = gy, *dcn = gy + H;                                             \
            T *da = J->da ? (T *)J->da + n * 4 * H : NULL;                               \
            T *db = J->db ? (T *)J->db + n * 4 * H : NULL;                               \
            T *dc = J->dc ? (T *)J->dc + n * H : NULL;                                   \
            for (int64_t j = 0; j < H; j++) {                                            \
                T dct = dcn[j] + dh[j] * o[j] * ((T)1 - tc[j] * tc[j]);                  \
                T pi = dct * g[j] * i[j] * ((T)1 - i[j]);                                \
                T pf = dct * c[j] * f[j] * ((T)1 - f[j]);                                \
                T pg = dct * i[j] * ((T)1 - g[j] * g[j]);                                \
                T po = dh[j] * tc[j] * o[j] * ((T)1 - o[j]);                             \
                if (da) {                                                                \
                    if (J->wa) {                                                         \
                        da[j] = pi, da[H + j] = pf, da[2 * H + j] = pg, da[3 * H + j] = po; \
                    } else {                                                             \
                        da[j] += pi, da[H + j] += pf, da[2 * H + j] += pg, da[3 * H + j] += po; \
                    }                                                                    \
                }                                                                        \
                if (db) {                                                                \
                    if (J->wb) {                                                         \
                        db[j] = pi, db[H + j] = pf, db[2 * H + j] = pg, db[3 * H + j] = po; \
                    } else {                                                             \
                        db[j] += pi, db[H + j] += pf, db[2 * H + j] += pg, db[3 * H + j] += po; \
                    }                                                                    \
                }                                                                        \
                if (dc)                                                                  \
                    dc[j] = J->wc ? dct * f[j] : dc[j] + dct * f[j];                     \
            }                                                                            \
        }                                                                                \
    }

static void sigmoid_n_f64(int64_t n, double *y, const double *x)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = 1.0 / (1.0 + exp(-x[i]));
}

static void tanh_n_f64(int64_t n, double *y, const double *x)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = tanh(x[i]);
}

CELL_KERNS(float, f32, nb__vsigmoid_n, nb__vtanh_n)
CELL_KERNS(double, f64, sigmoid_n_f64, tanh_n_f64)

/* a row-strided [N, K] view with unit column stride, else a contiguous copy */
static nb_tensor *rows_of(nb_ctx *ctx, nb_tensor *t)
{
    return t->strides[1] == 1 ? t : nb_contiguous(ctx, t);
}

nb_tensor *nb_lstm_cell(nb_ctx *ctx, nb_tensor *a, nb_tensor *b, nb_tensor *c)
{
    if (!ctx || nb__null_in(ctx, "lstm_cell", 3, a, b, c))
        return NULL;
    char sa[NB__SHAPE_BUF], sb[NB__SHAPE_BUF], sc[NB__SHAPE_BUF];
    if (!nb__is_float(a->dtype) || b->dtype != a->dtype || c->dtype != a->dtype) {
        nb__err(ctx, NB_ERR_DTYPE, "lstm_cell: needs float tensors of one dtype, got %s, %s, %s",
                nb_dtype_name(a->dtype), nb_dtype_name(b->dtype), nb_dtype_name(c->dtype));
        return NULL;
    }
    if (a->ndim != 2 || b->ndim != 2 || c->ndim != 2 || a->shape[0] != b->shape[0] ||
        a->shape[1] != b->shape[1] || c->shape[0] != a->shape[0] || a->shape[1] != 4 * c->shape[1] ||
        c->shape[1] < 1) {
        nb__err(ctx, NB_ERR_SHAPE, "lstm_cell: expects gates [N, 4H], [N, 4H] and state [N, H], got %s, %s, %s",
                nb_shape_str(a, sa, sizeof sa), nb_shape_str(b, sb, sizeof sb),
                nb_shape_str(c, sc, sizeof sc));
        return NULL;
    }
    if (!(a = rows_of(ctx, a)) || !(b = rows_of(ctx, b)) || !(c = rows_of(ctx, c)))
        return NULL;
    int64_t N = a->shape[0], H = c->shape[1];
    nb_tensor *y = nb__new_step(ctx, a->dtype, NB_SHAPE(N, 2 * H));
    nb_tensor *S = y ? nb__new_step(ctx, a->dtype, NB_SHAPE(N, 5 * H)) : NULL;
    if (!S)
        return NULL;
    cell_job J = {.dt = a->dtype, .H = H, .a = a->data, .b = b->data, .c = c->data,
                  .ra = N > 1 ? a->strides[0] : 4 * H, .rb = N > 1 ? b->strides[0] : 4 * H,
                  .rc = N > 1 ? c->strides[0] : H, .y = y->data, .S = S->data};
    nb__parallel_for(ctx->nthreads, N, 40 * H, J.dt == NB_F32 ? fwd_rows_f32 : fwd_rows_f64, &J);
    nb_tensor *in[3] = {a, b, c};
    if (nb__needs_grad(ctx, 3, in)) {
        nb__node *nd = nb__record(ctx, NB__OP_LSTM_CELL, y, 3, in);
        if (!nd)
            return NULL;
        nd->saved[0] = S;
    }
    return y;
}

nb_status nb__lstm_cell_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *a = n->in[0], *b = n->in[1], *c = n->in[2], *g = n->out->grad;
    nb_tensor *da = NULL, *db = NULL, *dc = NULL;
    if (!nb_is_contiguous(g) && !(g = nb_contiguous(ctx, g)))
        return ctx->err;
    cell_job J = {.dt = a->dtype, .H = c->shape[1], .c = c->data,
                  .rc = c->shape[0] > 1 ? c->strides[0] : c->shape[1], .S = n->saved[0]->data,
                  .gy = g->data};
    nb_status st = NB_OK;
    if (nb_requires_grad(a) && (st = nb__grad_of_w(ctx, a, &da, &J.wa)) != NB_OK)
        return st;
    if (nb_requires_grad(b) && (st = nb__grad_of_w(ctx, b, &db, &J.wb)) != NB_OK)
        return st;
    if (nb_requires_grad(c) && (st = nb__grad_of_w(ctx, c, &dc, &J.wc)) != NB_OK)
        return st;
    J.da = da ? da->data : NULL;
    J.db = db ? db->data : NULL;
    J.dc = dc ? dc->data : NULL;
    nb__parallel_for(ctx->nthreads, a->shape[0], 30 * J.H,
                     J.dt == NB_F32 ? bwd_rows_f32 : bwd_rows_f64, &J);
    return NB_OK;
}
