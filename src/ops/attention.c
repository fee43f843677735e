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
#include "kernels/vmath.h"

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
    void *tr;                    /* per slot: k^T forward, v^T backward ([D or Dv, Tk]) */
    bool wq, wk, wv;             /* store (beta 0) instead of accumulate */
    int nslots;
    /* 0: y, dy, dq, dk, dv are contiguous [nmat, T, width]; H > 0: the packed
     * layout of attention_qkv, batch matrix b = (n, h): y and dy rows of
     * [N, Tq, H Dv] (head h at column h Dv), dq, dk, dv rows of [N, T, 3 H D] */
    int64_t heads;
} job_t;

/* element offset and row stride of batch matrix b in y / dy */
static int64_t y_off(const job_t *J, int64_t b)
{
    return J->heads ? (b / J->heads) * J->Tq * J->heads * J->Dv + (b % J->heads) * J->Dv
                    : b * J->Tq * J->Dv;
}
static int64_t y_ld(const job_t *J) { return J->heads ? J->heads * J->Dv : J->Dv; }
/* the same for a gradient of q, k or v ([T, W] per matrix) */
static int64_t in_off(const job_t *J, int64_t b, int64_t T, int64_t W)
{
    return J->heads ? (b / J->heads) * T * 3 * J->heads * W + (b % J->heads) * W : b * T * W;
}
static int64_t in_ld(const job_t *J, int64_t W) { return J->heads ? 3 * J->heads * W : W; }

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

/* Row i's softmax over its visible keys (in place on S -> P), for rows of a
 * block that sees keys [0, kb): columns from kb on are never read (forward
 * or backward), so they are not written either */
#define ATTN_KERNS(T, SUF, EXP, EXP_N)                                                       \
    static void softmax_rows_##SUF(const job_t *J, T *P, const uint8_t *hide, int64_t i0,    \
                                   int64_t i1, int64_t kb)                                   \
    {                                                                                        \
        const int64_t Tq = J->Tq, Tk = J->Tk;                                                \
        for (int64_t i = i0; i < i1; i++) {                                                  \
            T *r = P + i * Tk;                                                               \
            int64_t last = J->causal ? i + Tk - Tq : Tk - 1; /* visible j <= last */         \
            if (last > Tk - 1)                                                               \
                last = Tk - 1;                                                               \
            T m = -INFINITY, s = 0;                                                          \
            if (hide) {                                                                      \
                for (int64_t j = 0; j <= last; j++)                                          \
                    if (!hide[j] && (r[j] > m || r[j] != r[j]))                              \
                        m = r[j];                                                            \
                for (int64_t j = 0; j <= last; j++) {                                        \
                    T e = hide[j] ? (T)0 : EXP(r[j] - m);                                    \
                    r[j] = e;                                                                \
                    s += e;                                                                  \
                }                                                                            \
            } else if (last >= 0) { /* vector max, exp and sum */                            \
                m = rmax_##SUF(r, last + 1);                                                 \
                for (int64_t j = 0; j <= last; j++)                                          \
                    r[j] -= m;                                                               \
                EXP_N(last + 1, r, r);                                                       \
                s = rdot_##SUF(r, NULL, last + 1);                                           \
            }                                                                                \
            /* no visible key: a row of zeros; a NaN or inf score: a row of NaN */           \
            T inv = s > 0 ? (T)1 / s : s != s ? s : (T)0;                                    \
            for (int64_t j = 0; j <= last; j++)                                              \
                r[j] *= inv;                                                                 \
            for (int64_t j = last + 1 > 0 ? last + 1 : 0; j < kb; j++)                       \
                r[j] = 0;                                                                    \
        }                                                                                    \
    }                                                                                        \
    /* dS = P (dP - rowsum(dP P)), in place on dP, rows [i0, i1), keys [0, kb) */            \
    static void softmax_bwd_##SUF(const job_t *J, const T *P, T *dP, int64_t i0, int64_t i1, \
                                  int64_t kb)                                                \
    {                                                                                        \
        const int64_t Tk = J->Tk;                                                            \
        for (int64_t i = i0; i < i1; i++) {                                                  \
            const T *p = P + i * Tk;                                                         \
            T *d = dP + i * Tk, s = rdot_##SUF(d, p, kb);                                    \
            for (int64_t j = 0; j < kb; j++)                                                 \
                d[j] = p[j] * (d[j] - s);                                                    \
        }                                                                                    \
    }
/* Row reductions in 8 partial results, so that they vectorise (a single
 * running max or sum is a serial chain the compiler must keep in order). The
 * max ignores NaN; a NaN then shows in the sum, which the softmax checks. */
#define ROW_REDS(T, SUF)                                                                 \
    static T rmax_##SUF(const T *r, int64_t n)                                           \
    {                                                                                    \
        T m[8], mm = -INFINITY;                                                          \
        for (int l = 0; l < 8; l++)                                                      \
            m[l] = -INFINITY;                                                            \
        int64_t j = 0;                                                                   \
        for (; j + 8 <= n; j += 8)                                                       \
            for (int l = 0; l < 8; l++)                                                  \
                m[l] = r[j + l] > m[l] ? r[j + l] : m[l];                                \
        for (; j < n; j++)                                                               \
            mm = r[j] > mm ? r[j] : mm;                                                  \
        for (int l = 0; l < 8; l++)                                                      \
            mm = m[l] > mm ? m[l] : mm;                                                  \
        return mm;                                                                       \
    }                                                                                    \
    /* sum of a[j] b[j] (b NULL: of a[j]) */                                             \
    static T rdot_##SUF(const T *a, const T *b, int64_t n)                               \
    {                                                                                    \
        T acc[8] = {0}, s = 0;                                                           \
        int64_t j = 0;                                                                   \
        if (b)                                                                           \
            for (; j + 8 <= n; j += 8)                                                   \
                for (int l = 0; l < 8; l++)                                              \
                    acc[l] += a[j + l] * b[j + l];                                       \
        else                                                                             \
            for (; j + 8 <= n; j += 8)                                                   \
                for (int l = 0; l < 8; l++)                                              \
                    acc[l] += a[j + l];                                                  \
        for (; j < n; j++)                                                               \
            s += b ? a[j] * b[j] : a[j];                                                 \
        for (int l = 0; l < 8; l++)                                                      \
            s += acc[l];                                                                 \
        return s;                                                                        \
    }
ROW_REDS(float, f32)
ROW_REDS(double, f64)

ATTN_KERNS(float, f32, expf, nb__vexp_n)
ATTN_KERNS(double, f64, exp, nb__exp_n_f64)

/* Causal attention in blocks of query rows: block [i0, i1) sees keys
 * [0, kb(i1)) only, so its products skip the hidden upper triangle (for
 * 128 x 128 in blocks of 32, 62.5% of the full products' work). Without
 * causality one block holds every row and key. */
enum { ROW_BLOCK = 32 };

static int64_t row_block(const job_t *J) { return J->causal ? ROW_BLOCK : J->Tq; }

static int64_t keys_seen(const job_t *J, int64_t i1) /* keys visible to rows < i1 */
{
    if (!J->causal)
        return J->Tk;
    int64_t kb = i1 + J->Tk - J->Tq;
    return kb < 0 ? 0 : kb > J->Tk ? J->Tk : kb;
}

/* rows r0.. of a matrix (its rows are M.rs apart) */
static nb__mat from_row(nb__mat M, int64_t r0, size_t es)
{
    M.p = (const char *)M.p + r0 * M.rs * (int64_t)es;
    return M;
}

/* M [rows, cols] (any strides) -> dst [cols, rows], contiguous. Why: the
 * products with k^T and v^T then read rows of contiguous keys, which the
 * small float32 kernel needs (kernels/sgemm_small.c: it reads B in place),
 * and one copy serves every row block of the batch matrix. */
#define TRANSPOSE(T, M, rows, cols, dst)                                                 \
    for (int64_t c = 0; c < (cols); c++) {                                               \
        const T *src = (const T *)(M).p + c * (M).cs;                                    \
        T *d = (T *)(dst) + c * (rows);                                                  \
        for (int64_t r = 0; r < (rows); r++)                                             \
            d[r] = src[r * (M).rs];                                                      \
    }
static nb__mat transposed(nb__mat M, int64_t rows, int64_t cols, void *dst, size_t es)
{
    if (es == sizeof(float))
        TRANSPOSE(float, M, rows, cols, dst)
    else
        TRANSPOSE(double, M, rows, cols, dst)
    return cmat(dst, 0, rows, 1, es);
}

static void fwd_slots(int64_t s0, int64_t s1, void *arg)
{
    const job_t *J = arg;
    const size_t es = nb__esize(J->dt);
    const int64_t Tq = J->Tq, Tk = J->Tk, Dv = J->Dv, RB = row_block(J);
    for (int64_t s = s0; s < s1; s++) {
        uint8_t *hide = J->kp ? (uint8_t *)J->work + s * Tk : NULL;
        for (int64_t b = J->nmat * s / J->nslots; b < J->nmat * (s + 1) / J->nslots; b++) {
            char *P = (char *)J->P + b * Tq * Tk * (int64_t)es;
            char *y = (char *)J->y + y_off(J, b) * (int64_t)es;
            const int64_t ly = y_ld(J);
            for (int64_t j = 0; hide && j < Tk; j++)
                hide[j] = padded(J, b, j);
            nb__mat q = mat(J, J->q, b, false), v = mat(J, J->v, b, false);
            nb__mat kt = transposed(mat(J, J->k, b, false), Tk, J->D,
                                    (char *)J->tr + s * J->D * Tk * (int64_t)es, es);
            for (int64_t i0 = 0; i0 < Tq; i0 += RB) {
                int64_t i1 = i0 + RB < Tq ? i0 + RB : Tq, kb = keys_seen(J, i1);
                if (kb > 0) /* S = c q k^T */
                    nb__gemm(J->dt, i1 - i0, kb, J->D, J->scale, from_row(q, i0, es), kt, 0.0,
                             P + i0 * Tk * (int64_t)es, Tk, 1);
                if (J->dt == NB_F32)
                    softmax_rows_f32(J, (float *)P, hide, i0, i1, kb);
                else
                    softmax_rows_f64(J, (double *)P, hide, i0, i1, kb);
                if (kb > 0) /* y = P v */
                    nb__gemm(J->dt, i1 - i0, Dv, kb, 1.0, cmat(P, i0 * Tk, Tk, 1, es), v, 0.0,
                             y + i0 * ly * (int64_t)es, ly, 1);
                else
                    for (int64_t i = i0; i < i1; i++)
                        memset(y + i * ly * (int64_t)es, 0, (size_t)Dv * es);
            }
        }
    }
}

static void bwd_slots(int64_t s0, int64_t s1, void *arg)
{
    const job_t *J = arg;
    const size_t es = nb__esize(J->dt);
    const int64_t Tq = J->Tq, Tk = J->Tk, D = J->D, Dv = J->Dv, RB = row_block(J);
    for (int64_t s = s0; s < s1; s++) {
        char *dP = (char *)J->work + s * Tq * Tk * (int64_t)es;
        for (int64_t b = J->nmat * s / J->nslots; b < J->nmat * (s + 1) / J->nslots; b++) {
            const char *P = (const char *)J->P + b * Tq * Tk * (int64_t)es;
            const char *g = (const char *)J->g + y_off(J, b) * (int64_t)es;
            char *dq = J->dq ? (char *)J->dq + in_off(J, b, Tq, D) * (int64_t)es : NULL;
            char *dk = J->dk ? (char *)J->dk + in_off(J, b, Tk, D) * (int64_t)es : NULL;
            char *dv = J->dv ? (char *)J->dv + in_off(J, b, Tk, Dv) * (int64_t)es : NULL;
            const int64_t lg = y_ld(J), lq = in_ld(J, D), lv = in_ld(J, Dv);
            nb__mat q = mat(J, J->q, b, false), k = mat(J, J->k, b, false), vt = {0};
            if (dq || dk)
                vt = transposed(mat(J, J->v, b, false), Tk, Dv,
                                (char *)J->tr + s * Dv * Tk * (int64_t)es, es);
            /* the last block sees every key, so it goes first: a store (beta
             * 0) into dk and dv covers them, the others add */
            bool first = true;
            for (int64_t i0 = (Tq - 1) / RB * RB; i0 >= 0; i0 -= RB, first = false) {
                int64_t i1 = i0 + RB < Tq ? i0 + RB : Tq, kb = keys_seen(J, i1), m = i1 - i0;
                if (kb == 0) { /* these rows saw nothing: no gradient */
                    for (int64_t i = i0; dq && J->wq && i < i1; i++)
                        memset(dq + i * lq * (int64_t)es, 0, (size_t)D * es);
                    continue;
                }
                nb__mat gi = cmat(g, i0 * lg, lg, 1, es);
                if (dv) /* dv += P^T g */
                    nb__gemm(J->dt, kb, Dv, m, 1.0, cmat(P, i0 * Tk, 1, Tk, es), gi,
                             J->wv && first ? 0.0 : 1.0, dv, lv, 1);
                if (!dq && !dk)
                    continue;
                /* dP = g v^T, then dS in place */
                char *dPi = dP + i0 * Tk * (int64_t)es;
                nb__gemm(J->dt, m, kb, Dv, 1.0, gi, vt, 0.0, dPi, Tk, 1);
                if (J->dt == NB_F32)
                    softmax_bwd_f32(J, (const float *)P, (float *)dP, i0, i1, kb);
                else
                    softmax_bwd_f64(J, (const double *)P, (double *)dP, i0, i1, kb);
                if (dq) /* dq += c dS k */
                    nb__gemm(J->dt, m, D, kb, J->scale, cmat(dPi, 0, Tk, 1, es), k,
                             J->wq ? 0.0 : 1.0, dq + i0 * lq * (int64_t)es, lq, 1);
                if (dk) /* dk += c dS^T q */
                    nb__gemm(J->dt, kb, D, m, J->scale, cmat(dPi, 0, 1, Tk, es),
                             from_row(q, i0, es), J->wk && first ? 0.0 : 1.0, dk, lq, 1);
            }
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
    if (!(J.tr = nb_arena_alloc(ctx, (size_t)(J.nslots * D * Tk) * nb__esize(J.dt))))
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
        (!(J.work = nb_arena_alloc(ctx, (size_t)(J.nslots * J.Tq * J.Tk) * nb__esize(J.dt))) ||
         !(J.tr = nb_arena_alloc(ctx, (size_t)(J.nslots * J.Dv * J.Tk) * nb__esize(J.dt)))))
        return ctx->err;
    nb__parallel_for(J.nslots, J.nslots, 1 << 20, bwd_slots, &J);
    return NB_OK;
}

/* ---- packed: q, k, v of every head in one tensor ---------------------------
 * attention_qkv(qkv [N, T, 3E], H) -> [N, T, E], E = H D: q, k, v are the
 * thirds of the last dim, head h columns [h D, (h + 1) D) of each, and head
 * h's output lands in columns [h D, (h + 1) D) of y: the layout of
 * torch.nn.MultiheadAttention's in_proj and out_proj. The same kernels as
 * above, addressing the heads in place. Why: split into heads by
 * reshape / permute / slice and merged back, the layer copied the output
 * once forward and three gradients and the output's gradient through strided
 * accumulations backward (5% of the benchmark GPT's step); here backward
 * writes dq, dk, dv straight into qkv's gradient. */

/* q, k or v (which = 0, 1, 2) of qkv as an [N, H, T, D] view */
static nb_tensor *head_view(nb_ctx *ctx, nb_tensor *qkv, int64_t H, int which)
{
    nb_tensor *t = nb__new_view(ctx, qkv);
    if (!t)
        return NULL;
    int64_t N = qkv->shape[0], T = qkv->shape[1], W = qkv->shape[2], D = W / (3 * H);
    t->ndim = 4;
    int64_t sh[4] = {N, H, T, D}, st[4] = {T * W, D, W, 1};
    memcpy(t->shape, sh, sizeof sh);
    memcpy(t->strides, st, sizeof st);
    t->data = (char *)qkv->data + which * H * D * (int64_t)nb__esize(qkv->dtype);
    t->node_ = NULL;
    t->grad = NULL;
    t->flags = 0;
    return t;
}

static void qkv_job(job_t *J, nb_tensor *const v[3], int64_t H, bool causal)
{
    const nb_tensor *q = v[0];
    *J = (job_t){.dt = q->dtype, .nbatch = 2, .nmat = q->shape[0] * H, .Tq = q->shape[2],
                 .Tk = q->shape[2], .D = q->shape[3], .Dv = q->shape[3], .q = v[0], .k = v[1],
                 .v = v[2], .causal = causal, .scale = 1.0 / sqrt((double)q->shape[3]),
                 .heads = H};
    J->bshape[0] = q->shape[0];
    J->bshape[1] = H;
    J->kp_rows = H;
}

nb_tensor *nb_attention_qkv(nb_ctx *ctx, nb_tensor *qkv, int heads, bool causal, nb_tensor *key_pad)
{
    if (!ctx || nb__null_in(ctx, "attention_qkv", 1, qkv))
        return NULL;
    char b1[NB__SHAPE_BUF], b2[NB__SHAPE_BUF];
    if (qkv->dtype != NB_F32 && qkv->dtype != NB_F64) {
        nb__err(ctx, NB_ERR_DTYPE, "attention_qkv: qkv is %s, it needs a float dtype",
                nb_dtype_name(qkv->dtype));
        return NULL;
    }
    if (heads < 1 || qkv->ndim != 3 || qkv->shape[0] < 1 || qkv->shape[1] < 1 ||
        qkv->shape[2] < 1 || qkv->shape[2] % (3 * (int64_t)heads) != 0) {
        nb__err(ctx, NB_ERR_SHAPE, "attention_qkv: qkv %s should be [N, T, 3 x heads x D] with "
                "%d heads", nb_shape_str(qkv, b1, sizeof b1), heads);
        return NULL;
    }
    const int64_t N = qkv->shape[0], T = qkv->shape[1], E = qkv->shape[2] / 3, H = heads;
    if (key_pad) {
        if (key_pad->ndim != 2 || key_pad->shape[0] != N || key_pad->shape[1] != T) {
            nb__err(ctx, NB_ERR_SHAPE, "attention_qkv: key_pad %s should be [%lld,%lld] (batch, "
                    "keys); qkv is %s", nb_shape_str(key_pad, b1, sizeof b1), (long long)N,
                    (long long)T, nb_shape_str(qkv, b2, sizeof b2));
            return NULL;
        }
        if (key_pad->dtype != NB_U8 && key_pad->dtype != NB_I32 && key_pad->dtype != NB_I64) {
            nb__err(ctx, NB_ERR_DTYPE, "attention_qkv: key_pad is %s, it should be u8, i32 or i64",
                    nb_dtype_name(key_pad->dtype));
            return NULL;
        }
    }
    if (!(qkv = nb_contiguous(ctx, qkv)))
        return NULL;
    nb_tensor *v[3];
    for (int i = 0; i < 3; i++)
        if (!(v[i] = head_view(ctx, qkv, H, i)))
            return NULL;
    nb_tensor *y = nb__new_step(ctx, qkv->dtype, NB_SHAPE(N, T, E));
    nb_tensor *P = y ? nb__new_step(ctx, qkv->dtype, NB_SHAPE(N, H, T, T)) : NULL;
    if (!P)
        return NULL;
    job_t J;
    qkv_job(&J, v, H, causal);
    J.kp = key_pad;
    J.y = y->data;
    J.P = P->data;
    J.nslots = slots(ctx, J.nmat, T * T * 2 * J.D);
    if (key_pad && !(J.work = nb_arena_alloc(ctx, (size_t)(J.nslots * T))))
        return NULL;
    if (!(J.tr = nb_arena_alloc(ctx, (size_t)(J.nslots * J.D * T) * nb__esize(J.dt))))
        return NULL;
    nb__parallel_for(J.nslots, J.nslots, 1 << 20, fwd_slots, &J);
    nb_tensor *in[2] = {qkv, key_pad};
    if (nb__needs_grad(ctx, 1, in)) {
        nb__node *nd = nb__record(ctx, NB__OP_ATTENTION_QKV, y, key_pad ? 2 : 1, in);
        if (!nd)
            return NULL;
        nd->saved[0] = P;
        nd->a.flag = causal;
        nd->a.i[0] = H;
    }
    return y;
}

nb_status nb__attention_qkv_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *qkv = n->in[0], *g = n->out->grad, *dqkv = NULL, *v[3];
    if (!nb_is_contiguous(g) && !(g = nb_contiguous(ctx, g)))
        return ctx->err;
    for (int i = 0; i < 3; i++)
        if (!(v[i] = head_view(ctx, qkv, n->a.i[0], i)))
            return ctx->err;
    job_t J;
    qkv_job(&J, v, n->a.i[0], n->a.flag != 0);
    J.P = n->saved[0]->data;
    J.g = g->data;
    bool fresh = false;
    nb_status st = nb__grad_of_w(ctx, qkv, &dqkv, &fresh);
    if (st != NB_OK || !dqkv)
        return st;
    size_t es = nb__esize(J.dt);
    int64_t E = qkv->shape[2] / 3;
    J.dq = dqkv->data;
    J.dk = (char *)dqkv->data + E * (int64_t)es;
    J.dv = (char *)dqkv->data + 2 * E * (int64_t)es;
    J.wq = J.wk = J.wv = fresh; /* the three cover every element */
    J.nslots = slots(ctx, J.nmat, J.Tq * J.Tk * 4 * J.D);
    if (!(J.work = nb_arena_alloc(ctx, (size_t)(J.nslots * J.Tq * J.Tk) * es)) ||
        !(J.tr = nb_arena_alloc(ctx, (size_t)(J.nslots * J.Dv * J.Tk) * es)))
        return ctx->err;
    nb__parallel_for(J.nslots, J.nslots, 1 << 20, bwd_slots, &J);
    return NB_OK;
}
