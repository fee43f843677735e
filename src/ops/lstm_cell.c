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
#include "kernels/gemm.h"
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

/* The cell from the gates' sum S[0, 4H) of one row: S becomes [i, f, g, o,
 * tanh c'] after their sigmoid / tanh, y = [h', c'] from c (the old state). */
#define CELL_ACT(T, SUF, SIGMOID_N, TANH_N)                                              \
    static void act_##SUF(int64_t H, T *S, const T *c, T *y)                             \
    {                                                                                    \
        SIGMOID_N(2 * H, S, S);             /* i, f */                                   \
        TANH_N(H, S + 2 * H, S + 2 * H);     /* g */                                     \
        SIGMOID_N(H, S + 3 * H, S + 3 * H); /* o */                                      \
        const T *i = S, *f = S + H, *g = S + 2 * H;                                      \
        T *cn = y + H;                                                                   \
        for (int64_t j = 0; j < H; j++)                                                  \
            cn[j] = f[j] * c[j] + i[j] * g[j];                                           \
        TANH_N(H, S + 4 * H, cn);                                                        \
        const T *o = S + 3 * H, *tc = S + 4 * H;                                         \
        for (int64_t j = 0; j < H; j++)                                                  \
            y[j] = o[j] * tc[j];                                                         \
    }
CELL_ACT(float, f32, nb__vsigmoid_n, nb__vtanh_n)
CELL_ACT(double, f64, sigmoid_n_f64, tanh_n_f64)

#define CELL_KERNS(T, SUF)                                                               \
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
            act_##SUF(H, S, c, y);                                                       \
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

CELL_KERNS(float, f32)
CELL_KERNS(double, f64)

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

/* ---- the whole sequence as one op ---------------------------------------
 * lstm_seq(xw [T, N, 4H], W_hh [4H, H], b_hh [4H] or NULL, h0, c0 [N, H],
 * reverse) -> Y [T, N, 2H], Y[t] = [h_t, c_t], steps taken in order t = 0..T-1
 * (or T-1..0). Per step: S_t = h_prev W_hh^T (one GEMM into the saved
 * activations), then the cell above with a = xw[t] + b_hh added in its pass.
 * Backward, steps in reverse order, carries dh, dc [N, H]:
 *   dgates_t = cell backward (dh_carry + dY_t.h, dc_carry + dY_t.c)
 *   dh_carry = dgates_t W_hh        (the only GEMM left per step)
 * and after the loop, over all steps at once:
 *   dxw = dgates,  dW_hh += dgates^T [h_prev],  db_hh += column sums.
 * Why: composed per step, BPTT ran dW_hh as T products of depth N (32 in the
 * benchmark) and copied h, its gradient and xw's slices on every step; here
 * dW_hh is one product of depth T N and nothing is copied per step. */
typedef struct {
    int64_t H;
    const char *xw, *b, *cp; /* xw_t rows of 4H, bias or NULL, c_prev rows at rcp */
    int64_t rcp;
    char *S, *y;             /* S_t rows of 5H (gates preloaded with h W^T), Y_t rows of 2H */
    const char *gy;          /* backward: dY_t rows of 2H */
    char *P, *dh, *dc;       /* backward: dgates_t rows of 4H; carries [N, H] */
} seq_job;

#define SEQ_KERNS(T, SUF)                                                                \
    static void seq_fwd_##SUF(int64_t r0, int64_t r1, void *arg)                         \
    {                                                                                    \
        const seq_job *J = arg;                                                          \
        int64_t H = J->H;                                                                \
        for (int64_t n = r0; n < r1; n++) {                                              \
            const T *a = (const T *)J->xw + n * 4 * H, *b = (const T *)J->b;             \
            const T *c = (const T *)J->cp + n * J->rcp;                                  \
            T *S = (T *)J->S + n * 5 * H, *y = (T *)J->y + n * 2 * H;                    \
            if (b)                                                                       \
                for (int64_t j = 0; j < 4 * H; j++)                                      \
                    S[j] += a[j] + b[j];                                                 \
            else                                                                         \
                for (int64_t j = 0; j < 4 * H; j++)                                      \
                    S[j] += a[j];                                                        \
            act_##SUF(H, S, c, y);                                                       \
        }                                                                                \
    }                                                                                    \
    static void seq_bwd_##SUF(int64_t r0, int64_t r1, void *arg)                         \
    {                                                                                    \
        const seq_job *J = arg;                                                          \
        int64_t H = J->H;                                                                \
        for (int64_t n = r0; n < r1; n++) {                                              \
            const T *S = (const T *)J->S + n * 5 * H, *gy = (const T *)J->gy + n * 2 * H; \
            const T *c = (const T *)J->cp + n * J->rcp;                                  \
            const T *i = S, *f = S + H, *g = S + 2 * H, *o = S + 3 * H, *tc = S + 4 * H; \
            T *P = (T *)J->P + n * 4 * H, *dhc = (T *)J->dh + n * H, *dcc = (T *)J->dc + n * H; \
            for (int64_t j = 0; j < H; j++) {                                            \
                T dh = gy[j] + dhc[j];                                                   \
                T dct = gy[H + j] + dcc[j] + dh * o[j] * ((T)1 - tc[j] * tc[j]);         \
                P[j] = dct * g[j] * i[j] * ((T)1 - i[j]);                                \
                P[H + j] = dct * c[j] * f[j] * ((T)1 - f[j]);                            \
                P[2 * H + j] = dct * i[j] * ((T)1 - g[j] * g[j]);                        \
                P[3 * H + j] = dh * tc[j] * o[j] * ((T)1 - o[j]);                        \
                dcc[j] = dct * f[j];                                                     \
            }                                                                            \
        }                                                                                \
    }

SEQ_KERNS(float, f32)
SEQ_KERNS(double, f64)

nb_tensor *nb_lstm_seq(nb_ctx *ctx, nb_tensor *xw, nb_tensor *w_hh, nb_tensor *b_hh, nb_tensor *h0,
                       nb_tensor *c0, bool reverse)
{
    if (!ctx || nb__null_in(ctx, "lstm_seq", 4, xw, w_hh, h0, c0))
        return NULL;
    char s1[NB__SHAPE_BUF], s2[NB__SHAPE_BUF], s3[NB__SHAPE_BUF], s4[NB__SHAPE_BUF],
        s5[NB__SHAPE_BUF];
    nb_dtype dt = xw->dtype;
    if (!nb__is_float(dt) || w_hh->dtype != dt || h0->dtype != dt || c0->dtype != dt ||
        (b_hh && b_hh->dtype != dt)) {
        nb__err(ctx, NB_ERR_DTYPE, "lstm_seq: needs float tensors of one dtype, got xw %s, w_hh %s, "
                "h0 %s, c0 %s%s%s", nb_dtype_name(dt), nb_dtype_name(w_hh->dtype),
                nb_dtype_name(h0->dtype), nb_dtype_name(c0->dtype), b_hh ? ", b_hh " : "",
                b_hh ? nb_dtype_name(b_hh->dtype) : "");
        return NULL;
    }
    int64_t H = w_hh->ndim == 2 ? w_hh->shape[1] : 0;
    if (xw->ndim != 3 || w_hh->ndim != 2 || H < 1 || w_hh->shape[0] != 4 * H ||
        xw->shape[2] != 4 * H || xw->shape[0] < 1 || xw->shape[1] < 1 || h0->ndim != 2 ||
        c0->ndim != 2 || h0->shape[0] != xw->shape[1] || h0->shape[1] != H ||
        c0->shape[0] != xw->shape[1] || c0->shape[1] != H ||
        (b_hh && (b_hh->ndim != 1 || b_hh->shape[0] != 4 * H))) {
        nb__err(ctx, NB_ERR_SHAPE, "lstm_seq: expects xw [T, N, 4H], w_hh [4H, H], h0 and c0 "
                "[N, H], b_hh [4H], got %s, %s, %s, %s, %s", nb_shape_str(xw, s1, sizeof s1),
                nb_shape_str(w_hh, s2, sizeof s2), nb_shape_str(h0, s3, sizeof s3),
                nb_shape_str(c0, s4, sizeof s4), b_hh ? nb_shape_str(b_hh, s5, sizeof s5) : "none");
        return NULL;
    }
    if (!(xw = nb_contiguous(ctx, xw)) || !(w_hh = nb_contiguous(ctx, w_hh)) ||
        !(h0 = rows_of(ctx, h0)) || !(c0 = rows_of(ctx, c0)) ||
        (b_hh && !(b_hh = nb_contiguous(ctx, b_hh))))
        return NULL;
    int64_t T = xw->shape[0], N = xw->shape[1];
    nb_tensor *in[5] = {xw, w_hh, h0, c0, b_hh};
    int n_in = b_hh ? 5 : 4;
    bool rec = nb__needs_grad(ctx, n_in, in);
    nb_tensor *y = nb__new_step(ctx, dt, NB_SHAPE(T, N, 2 * H));
    /* without a tape one step's activations suffice */
    nb_tensor *S = y ? nb__new_step(ctx, dt, NB_SHAPE(rec ? T : 1, N, 5 * H)) : NULL;
    if (!S)
        return NULL;
    size_t es = nb__esize(dt);
    seq_job J = {.H = H, .b = b_hh ? b_hh->data : NULL};
    nb__mat W = {w_hh->data, 1, H}; /* W_hh^T */
    for (int64_t j = 0; j < T; j++) {
        int64_t t = reverse ? T - 1 - j : j, tp = reverse ? t + 1 : t - 1;
        const char *hp = j ? (char *)y->data + tp * N * 2 * H * (int64_t)es : h0->data;
        J.cp = j ? hp + H * (int64_t)es : c0->data;
        J.rcp = j ? 2 * H : (N > 1 ? c0->strides[0] : H);
        nb__mat Hp = {hp, j ? 2 * H : (N > 1 ? h0->strides[0] : H), 1};
        J.S = (char *)S->data + (rec ? t : 0) * N * 5 * H * (int64_t)es;
        J.xw = (char *)xw->data + t * N * 4 * H * (int64_t)es;
        J.y = (char *)y->data + t * N * 2 * H * (int64_t)es;
        nb__gemm(dt, N, 4 * H, H, 1.0, Hp, W, 0.0, J.S, 5 * H, ctx->nthreads);
        nb__parallel_for(ctx->nthreads, N, 40 * H, dt == NB_F32 ? seq_fwd_f32 : seq_fwd_f64, &J);
    }
    if (rec) {
        nb__node *nd = nb__record(ctx, NB__OP_LSTM_SEQ, y, n_in, in);
        if (!nd)
            return NULL;
        nd->saved[0] = S;
        nd->a.flag = reverse;
    }
    return y;
}

nb_status nb__lstm_seq_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *xw = n->in[0], *w = n->in[1], *h0 = n->in[2], *c0 = n->in[3];
    nb_tensor *b = n->n_in > 4 ? n->in[4] : NULL, *y = n->out, *g = y->grad;
    bool reverse = n->a.flag != 0;
    nb_dtype dt = xw->dtype;
    size_t es = nb__esize(dt);
    int64_t T = xw->shape[0], N = xw->shape[1], H = w->shape[1];
    if (!nb_is_contiguous(g) && !(g = nb_contiguous(ctx, g)))
        return ctx->err;
    nb_tensor *dxw = NULL, *dw = NULL, *db = NULL, *dh0 = NULL, *dc0 = NULL;
    bool fresh = false;
    nb_status st = nb__grad_of_w(ctx, xw, &dxw, &fresh);
    if (st == NB_OK)
        st = nb__grad_of(ctx, w, &dw);
    if (st == NB_OK && b)
        st = nb__grad_of(ctx, b, &db);
    if (st == NB_OK)
        st = nb__grad_of(ctx, h0, &dh0);
    if (st == NB_OK)
        st = nb__grad_of(ctx, c0, &dc0);
    if (st != NB_OK)
        return st;
    /* the gates' gradients: straight into a fresh dxw, else scratch */
    nb_tensor *P = dxw && fresh ? dxw : nb__new_step(ctx, dt, NB_SHAPE(T, N, 4 * H));
    nb_tensor *carry = P ? nb_zeros(ctx, dt, NB_SHAPE(2, N, H)) : NULL;
    if (!carry)
        return ctx->err;
    seq_job J = {.H = H, .dh = carry->data, .dc = (char *)carry->data + N * H * (int64_t)es};
    nb__mat W = {w->data, H, 1};
    for (int64_t j = T - 1; j >= 0; j--) {
        int64_t t = reverse ? T - 1 - j : j, tp = reverse ? t + 1 : t - 1;
        J.cp = j ? (char *)y->data + (tp * N * 2 + 1) * H * (int64_t)es : c0->data;
        J.rcp = j ? 2 * H : (N > 1 ? c0->strides[0] : H);
        J.S = (char *)n->saved[0]->data + t * N * 5 * H * (int64_t)es;
        J.gy = (char *)g->data + t * N * 2 * H * (int64_t)es;
        J.P = (char *)P->data + t * N * 4 * H * (int64_t)es;
        nb__parallel_for(ctx->nthreads, N, 30 * H, dt == NB_F32 ? seq_bwd_f32 : seq_bwd_f64, &J);
        if (j || dh0) {
            nb__mat Pt = {J.P, 4 * H, 1};
            nb__gemm(dt, N, H, 4 * H, 1.0, Pt, W, 0.0, J.dh, H, ctx->nthreads);
        }
    }
    nb_tensor dhv = *carry, dcv = *carry; /* the carries as [N, H] views */
    dhv.ndim = dcv.ndim = 2;
    dhv.shape[0] = dcv.shape[0] = N;
    dhv.shape[1] = dcv.shape[1] = H;
    dhv.strides[0] = dcv.strides[0] = H;
    dhv.strides[1] = dcv.strides[1] = 1;
    dcv.data = J.dc;
    if (dh0 && (st = nb__acc_grad(ctx, dh0, &dhv, 1.0)) != NB_OK)
        return st;
    if (dc0 && (st = nb__acc_grad(ctx, dc0, &dcv, 1.0)) != NB_OK)
        return st;
    if (dw) { /* [4H, H] += sum over steps of dgates_t^T h_prev */
        int64_t t0 = reverse ? T - 1 : 0, rows = 4 * H * (int64_t)es;
        nb__mat P0 = {(char *)P->data + t0 * N * rows, 1, 4 * H};
        nb__mat H0 = {h0->data, N > 1 ? h0->strides[0] : H, 1};
        nb__gemm(dt, 4 * H, H, N, 1.0, P0, H0, 1.0, dw->data, H, ctx->nthreads);
        if (T > 1) {
            nb__mat Pr = {(char *)P->data + (reverse ? 0 : N * rows), 1, 4 * H};
            nb__mat Hr = {(char *)y->data + (reverse ? N * 2 * H * (int64_t)es : 0), 2 * H, 1};
            nb__gemm(dt, 4 * H, H, (T - 1) * N, 1.0, Pr, Hr, 1.0, dw->data, H, ctx->nthreads);
        }
    }
    if (db) {
        nb_tensor pv = *P; /* P as [T N, 4H], summed over rows */
        pv.ndim = 2;
        pv.shape[0] = T * N;
        pv.shape[1] = 4 * H;
        pv.strides[0] = 4 * H;
        pv.strides[1] = 1;
        if ((st = nb__acc_grad(ctx, db, &pv, 1.0)) != NB_OK)
            return st;
    }
    if (dxw && P != dxw)
        return nb__acc_grad(ctx, dxw, P, 1.0);
    return NB_OK;
}
