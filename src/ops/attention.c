/* Scaled dot-product attention, fused: one op instead of matmul, scale,
 * mask, softmax and matmul.
 *   per batch matrix (q [Tq, D], k [Tk, D], v [Tk, Dv]), c = 1 / sqrt(D):
 *     S = c q k^T;  P = softmax over the visible keys of each row (0 on the
 *     hidden ones; a row with no visible key is all 0);  y = P v
 *   visible: j <= i + (Tk - Tq) when causal, and key j of batch row n not
 *   padding (key_pad[n, j] == 0)
 *   backward:  dv += P^T g;  dP = g v^T;  dS = P (dP - rowsum(dP P));
 *              dq += c dS k;  dk += c dS^T q
 * Saved: P only ([..., Tq, Tk], the one score-sized buffer the backward
 * needs). The composition kept four of them alive until the step ended (S,
 * c S, S + mask, P) and made three more in backward; here backward needs one
 * Tq x Tk scratch per thread. Work is split over the batch matrices (B x H),
 * each thread running its GEMMs single-threaded.
 * q, k, v must have the same batch dims (nb_attention expands broadcast ones
 * first, so their gradients are summed by expand's backward). */
#include "core/internal.h"
#include "kernels/gemm.h"
#include "kernels/parallel.h"

#include <math.h>
#include <stdio.h>

typedef struct {
    nb_dtype dt;
    int nbatch;
    int64_t bshape[NB_MAX_DIMS];
    int64_t nmat, Tq, Tk, D, Dv, kp_rows; /* kp_rows: batch matrices per key_pad row */
    const nb_tensor *q, *k, *v, *kp;
    bool causal;
    double scale;
    void *y, *P;                 /* contiguous [nmat, Tq, Dv], [nmat, Tq, Tk] */
    const void *g;               /* backward: dy, contiguous */
    void *dq, *dk, *dv, *work;   /* grads (contiguous, may be NULL), per-slot scratch */
    bool wq, wk, wv;             /* store (beta 0) instead of accumulate */
    int nslots;
} job_t;

/* element offset of batch matrix b in t (batch dims row-major over bshape) */
static int64_t boff(const job_t *J, const nb_tensor *t, int64_t b)
{
    int64_t off = 0;
    for (int d = J->nbatch - 1; d >= 0; d--) {
        off += (b % J->bshape[d]) * t->strides[d];
        b /= J->bshape[d];
    }
    return off;
}

static nb__mat mat(const job_t *J, const nb_tensor *t, int64_t b, bool trans)
{
    nb__mat M;
    M.p = (const char *)t->data + boff(J, t, b) * (int64_t)nb__esize(t->dtype);
    M.rs = t->strides[t->ndim - 2];
    M.cs = t->strides[t->ndim - 1];
    if (trans) {
        int64_t r = M.rs;
        M.rs = M.cs;
        M.cs = r;
    }
    return M;
}

static nb__mat cmat(const void *p, int64_t off, int64_t rs, int64_t cs, size_t es)
{
    nb__mat M = {(const char *)p + off * (int64_t)es, rs, cs};
    return M;
}

/* Key j of matrix b is hidden by padding */
static bool padded(const job_t *J, int64_t b, int64_t j)
{
    return J->kp && nb_get(J->kp, (b / J->kp_rows) * J->Tk + j) != 0;
}

/* Row i's softmax over its visible keys (in place on S -> P) */
#define ATTN_KERNS(T, SUF, EXP)                                                              \
    static void softmax_rows_##SUF(const job_t *J, T *P, const uint8_t *hide)     \
    {                                                                                        \
        const int64_t Tq = J->Tq, Tk = J->Tk;                                                \
        for (int64_t i = 0; i < Tq; i++) {                                                   \
            T *r = P + i * Tk;                                                               \
            int64_t last = J->causal ? i + Tk - Tq : Tk - 1; /* visible j <= last */         \
            if (last > Tk - 1)                                                               \
                last = Tk - 1;                                                               \
            T m = -INFINITY;                                                                 \
            for (int64_t j = 0; j <= last; j++)                                              \
                if (!(hide && hide[j]) && (r[j] > m || r[j] != r[j]))                        \
                    m = r[j];                                                                \
            T s = 0;                                                                         \
            for (int64_t j = 0; j <= last; j++) {                                            \
                T e = (hide && hide[j]) ? (T)0 : EXP(r[j] - m);                              \
                r[j] = e;                                                                    \
                s += e;                                                                      \
            }                                                                                \
            T inv = s > 0 ? (T)1 / s : (T)0; /* no visible key: a row of zeros */            \
            for (int64_t j = 0; j <= last; j++)                                              \
                r[j] *= inv;                                                                 \
            for (int64_t j = last + 1 > 0 ? last + 1 : 0; j < Tk; j++)                       \
                r[j] = 0;                                                                    \
        }                                                                                    \
    }                                                                                        \
    /* dS = P (dP - rowsum(dP P)), in place on dP */                                         \
    static void softmax_bwd_##SUF(const job_t *J, const T *P, T *dP)                         \
    {                                                                                        \
        const int64_t Tq = J->Tq, Tk = J->Tk;                                                \
        for (int64_t i = 0; i < Tq; i++) {                                                   \
            const T *p = P + i * Tk;                                                         \
            T *d = dP + i * Tk, s = 0;                                                       \
            for (int64_t j = 0; j < Tk; j++)                                                 \
                s += d[j] * p[j];                                                            \
            for (int64_t j = 0; j < Tk; j++)                                                 \
                d[j] = p[j] * (d[j] - s);                                                    \
        }                                                                                    \
    }
ATTN_KERNS(float, f32, expf)
ATTN_KERNS(double, f64, exp)

static void fwd_slots(int64_t s0, int64_t s1, void *arg)
{
    const job_t *J = arg;
    const size_t es = nb__esize(J->dt);
    const int64_t Tq = J->Tq, Tk = J->Tk;
    for (int64_t s = s0; s < s1; s++) {
        uint8_t *hide = J->kp ? (uint8_t *)J->work + s * Tk : NULL;
        for (int64_t b = J->nmat * s / J->nslots; b < J->nmat * (s + 1) / J->nslots; b++) {
            char *P = (char *)J->P + b * Tq * Tk * (int64_t)es;
            /* S = c q k^T */
            nb__gemm(J->dt, Tq, Tk, J->D, J->scale, mat(J, J->q, b, false), mat(J, J->k, b, true),
                     0.0, P, Tk, 1);
            for (int64_t j = 0; hide && j < Tk; j++)
                hide[j] = padded(J, b, j);
            if (J->dt == NB_F32)
                softmax_rows_f32(J, (float *)P, hide);
            else
                softmax_rows_f64(J, (double *)P, hide);
            /* y = P v */
            nb__gemm(J->dt, Tq, J->Dv, Tk, 1.0, cmat(P, 0, Tk, 1, es), mat(J, J->v, b, false), 0.0,
                     (char *)J->y + b * Tq * J->Dv * (int64_t)es, J->Dv, 1);
        }
    }
}

static void bwd_slots(int64_t s0, int64_t s1, void *arg)
{
    const job_t *J = arg;
    const size_t es = nb__esize(J->dt);
    const int64_t Tq = J->Tq, Tk = J->Tk, D = J->D, Dv = J->Dv;
    for (int64_t s = s0; s < s1; s++) {
        char *dP = (char *)J->work + s * Tq * Tk * (int64_t)es;
        for (int64_t b = J->nmat * s / J->nslots; b < J->nmat * (s + 1) / J->nslots; b++) {
            nb__mat P = cmat(J->P, b * Tq * Tk, Tk, 1, es), Pt = cmat(J->P, b * Tq * Tk, 1, Tk, es);
            nb__mat g = cmat(J->g, b * Tq * Dv, Dv, 1, es);
            if (J->dv) /* dv += P^T g */
                nb__gemm(J->dt, Tk, Dv, Tq, 1.0, Pt, g, J->wv ? 0.0 : 1.0,
                         (char *)J->dv + b * Tk * Dv * (int64_t)es, Dv, 1);
            if (!J->dq && !J->dk)
                continue;
            /* dP = g v^T, then dS in place */
            nb__gemm(J->dt, Tq, Tk, Dv, 1.0, g, mat(J, J->v, b, true), 0.0, dP, Tk, 1);
            if (J->dt == NB_F32)
                softmax_bwd_f32(J, (const float *)P.p, (float *)dP);
            else
                softmax_bwd_f64(J, (const double *)P.p, (double *)dP);
            if (J->dq) /* dq += c dS k */
                nb__gemm(J->dt, Tq, D, Tk, J->scale, cmat(dP, 0, Tk, 1, es),
                         mat(J, J->k, b, false), J->wq ? 0.0 : 1.0,
                         (char *)J->dq + b * Tq * D * (int64_t)es, D, 1);
            if (J->dk) /* dk += c dS^T q */
                nb__gemm(J->dt, Tk, D, Tq, J->scale, cmat(dP, 0, 1, Tk, es),
                         mat(J, J->q, b, false), J->wk ? 0.0 : 1.0,
                         (char *)J->dk + b * Tk * D * (int64_t)es, D, 1);
        }
    }
}

/* t expanded to batch shape bs (n dims) + its own last two dims */
static nb_tensor *expand_to(nb_ctx *ctx, nb_tensor *t, int n, const int64_t *bs)
{
    int64_t s[NB_MAX_DIMS];
    for (int i = 0; i < n; i++)
        s[i] = bs[i];
    s[n] = t->shape[t->ndim - 2];
    s[n + 1] = t->shape[t->ndim - 1];
    bool same = t->ndim == n + 2;
    for (int i = 0; same && i < n; i++)
        same = t->shape[i] == bs[i];
    return same ? t : nb_expand(ctx, t, n + 2, s);
}

static int slots(const nb_ctx *ctx, int64_t nmat, int64_t work)
{
    int nt = ctx->nthreads < 1 ? 1 : ctx->nthreads;
    if (nt > nmat)
        nt = (int)nmat;
    return nmat * work < 32768 ? 1 : nt;
}

nb_tensor *nb_attention(nb_ctx *ctx, nb_tensor *q, nb_tensor *k, nb_tensor *v, bool causal,
                        nb_tensor *key_pad)
{
    if (!ctx || nb__null_in(ctx, "attention", 3, q, k, v))
        return NULL;
    char b1[NB__SHAPE_BUF], b2[NB__SHAPE_BUF], b3[NB__SHAPE_BUF];
    if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2) {
        nb__err(ctx, NB_ERR_SHAPE, "attention: q %s, k %s, v %s need at least 2 dimensions "
                "([..., T, D])", nb_shape_str(q, b1, sizeof b1), nb_shape_str(k, b2, sizeof b2),
                nb_shape_str(v, b3, sizeof b3));
        return NULL;
    }
    if (q->dtype != k->dtype || q->dtype != v->dtype ||
        (q->dtype != NB_F32 && q->dtype != NB_F64)) {
        nb__err(ctx, NB_ERR_DTYPE, "attention: q, k, v are %s, %s, %s; they need one float dtype",
                nb_dtype_name(q->dtype), nb_dtype_name(k->dtype), nb_dtype_name(v->dtype));
        return NULL;
    }
    const int64_t Tq = q->shape[q->ndim - 2], D = q->shape[q->ndim - 1];
    const int64_t Tk = k->shape[k->ndim - 2], Dv = v->shape[v->ndim - 1];
    if (k->shape[k->ndim - 1] != D) {
        nb__err(ctx, NB_ERR_SHAPE, "attention: q %s and k %s differ in the last dimension",
                nb_shape_str(q, b1, sizeof b1), nb_shape_str(k, b2, sizeof b2));
        return NULL;
    }
    if (v->shape[v->ndim - 2] != Tk) {
        nb__err(ctx, NB_ERR_SHAPE, "attention: k %s and v %s have different numbers of keys",
                nb_shape_str(k, b1, sizeof b1), nb_shape_str(v, b2, sizeof b2));
        return NULL;
    }
    /* the broadcast batch shape (all but the last two dims) */
    int64_t bs[NB_MAX_DIMS], t1[NB_MAX_DIMS];
    int nb1 = nb__broadcast_shape(q->ndim - 2, q->shape, k->ndim - 2, k->shape, t1);
    int nbatch = nb1 < 0 ? -1 : nb__broadcast_shape(nb1, t1, v->ndim - 2, v->shape, bs);
    if (nbatch < 0) {
        nb__err(ctx, NB_ERR_SHAPE, "attention: the batch dimensions of q %s, k %s, v %s do not "
                "broadcast", nb_shape_str(q, b1, sizeof b1), nb_shape_str(k, b2, sizeof b2),
                nb_shape_str(v, b3, sizeof b3));
        return NULL;
    }
    if (Tq < 1 || Tk < 1 || D < 1 || Dv < 1) {
        nb__err(ctx, NB_ERR_SHAPE, "attention: q %s, k %s, v %s: no queries, keys or features",
                nb_shape_str(q, b1, sizeof b1), nb_shape_str(k, b2, sizeof b2),
                nb_shape_str(v, b3, sizeof b3));
        return NULL;
    }
    if (key_pad) {
        if (nbatch < 1) {
            nb__err(ctx, NB_ERR_SHAPE, "attention: key_pad needs a batch dimension, q is %s",
                    nb_shape_str(q, b1, sizeof b1));
            return NULL;
        }
        if (key_pad->ndim != 2 || key_pad->shape[0] != bs[0] || key_pad->shape[1] != Tk) {
            nb__err(ctx, NB_ERR_SHAPE, "attention: key_pad %s should be [%lld,%lld] (batch, keys)",
                    nb_shape_str(key_pad, b1, sizeof b1), (long long)bs[0], (long long)Tk);
            return NULL;
        }
        if (key_pad->dtype != NB_U8 && key_pad->dtype != NB_I32 && key_pad->dtype != NB_I64) {
            nb__err(ctx, NB_ERR_DTYPE, "attention: key_pad is %s, it should be u8, i32 or i64",
                    nb_dtype_name(key_pad->dtype));
            return NULL;
        }
    }
    nb_tensor *in[4] = {expand_to(ctx, q, nbatch, bs), expand_to(ctx, k, nbatch, bs),
                        expand_to(ctx, v, nbatch, bs), key_pad};
    if (!in[0] || !in[1] || !in[2])
        return NULL;
    int64_t ys[NB_MAX_DIMS], ps[NB_MAX_DIMS];
    for (int i = 0; i < nbatch; i++)
        ys[i] = ps[i] = bs[i];
    ys[nbatch] = ps[nbatch] = Tq;
    ys[nbatch + 1] = Dv;
    ps[nbatch + 1] = Tk;
    nb_tensor *y = nb__new_step(ctx, q->dtype, nbatch + 2, ys);
    nb_tensor *P = y ? nb__new_step(ctx, q->dtype, nbatch + 2, ps) : NULL;
    if (!P)
        return NULL;
    job_t J = {.dt = q->dtype, .nbatch = nbatch, .nmat = nb__prod(nbatch, bs), .Tq = Tq, .Tk = Tk,
               .D = D, .Dv = Dv, .q = in[0], .k = in[1], .v = in[2], .kp = key_pad,
               .causal = causal, .scale = 1.0 / sqrt((double)D), .y = y->data, .P = P->data};
    for (int i = 0; i < nbatch; i++)
        J.bshape[i] = bs[i];
    J.kp_rows = nbatch ? J.nmat / bs[0] : 1;
    J.nslots = slots(ctx, J.nmat, Tq * Tk * (D + Dv));
    if (key_pad && !(J.work = nb_arena_alloc(ctx, (size_t)(J.nslots * Tk))))
        return NULL;
    nb__parallel_for(J.nslots, J.nslots, 1 << 20, fwd_slots, &J);
    if (nb__needs_grad(ctx, 3, in)) {
        nb__node *nd = nb__record(ctx, NB__OP_ATTENTION, y, key_pad ? 4 : 3, in);
        if (!nd)
            return NULL;
        nd->saved[0] = P;
        nd->a.flag = causal;
    }
    return y;
}

nb_status nb__attention_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *P = n->saved[0];
    nb_tensor *g = n->out->grad, *dq = NULL, *dk = NULL, *dv = NULL;
    if (!nb_is_contiguous(g) && !(g = nb_contiguous(ctx, g)))
        return ctx->err;
    job_t J = {.dt = q->dtype, .nbatch = q->ndim - 2, .Tq = q->shape[q->ndim - 2],
               .Tk = k->shape[k->ndim - 2], .D = q->shape[q->ndim - 1],
               .Dv = v->shape[v->ndim - 1], .q = q, .k = k, .v = v, .causal = n->a.flag != 0,
               .P = P->data, .g = g->data};
    for (int i = 0; i < J.nbatch; i++)
        J.bshape[i] = q->shape[i];
    J.nmat = nb__prod(J.nbatch, J.bshape);
    J.scale = 1.0 / sqrt((double)J.D);
    nb_status st = NB_OK;
    if (nb_requires_grad(q) && (st = nb__grad_of_w(ctx, q, &dq, &J.wq)) != NB_OK)
        return st;
    if (nb_requires_grad(k) && (st = nb__grad_of_w(ctx, k, &dk, &J.wk)) != NB_OK)
        return st;
    if (nb_requires_grad(v) && (st = nb__grad_of_w(ctx, v, &dv, &J.wv)) != NB_OK)
        return st;
    J.dq = dq ? dq->data : NULL;
    J.dk = dk ? dk->data : NULL;
    J.dv = dv ? dv->data : NULL;
    J.nslots = slots(ctx, J.nmat, J.Tq * J.Tk * (2 * J.D + 2 * J.Dv));
    if ((dq || dk) &&
        !(J.work = nb_arena_alloc(ctx, (size_t)(J.nslots * J.Tq * J.Tk) * nb__esize(J.dt))))
        return ctx->err;
    nb__parallel_for(J.nslots, J.nslots, 1 << 20, bwd_slots, &J);
    return NB_OK;
}
