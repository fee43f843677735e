/* Attention, composed from ops (no op and no backward code of its own).
 *   attention(q, k, v) = softmax(q k^T / sqrt(D) + mask) v
 *     mask: 0 where query i may see key j, -inf where not: causal hides
 *     j > i + (Tk - Tq), key_pad hides the padded keys of each batch row.
 *     A query row with no key left would be softmax of all -inf (nan): its
 *     mask row is 0 instead and its probabilities are multiplied by 0, so it
 *     outputs zeros and passes zero (finite) gradients.
 *   MHA (torch.nn.MultiheadAttention, batch_first, self-attention):
 *     [q k v] = x W_in^T + b_in   (one linear [N, T, 3E])
 *     heads: [N, T, 3, H, D] -> [3, N, H, T, D], attention per head,
 *     back to [N, T, E], then out_proj (a child linear).
 *   positional: y = x + PE[:T], PE sinusoidal (a buffer) or learned.
 * The masks are step tensors built here without gradient. */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>

static const char *label(const nb_module *m) { return m->name ? m->name : m->kind; }

/* Checks that the batch dims (all but the last two) of a and b broadcast. */
static bool batch_ok(const nb_tensor *a, const nb_tensor *b)
{
    int na = a->ndim - 2, nb = b->ndim - 2;
    for (int i = 1; i <= na && i <= nb; i++) {
        int64_t x = a->shape[na - i], y = b->shape[nb - i];
        if (x != y && x != 1 && y != 1)
            return false;
    }
    return true;
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
    const int64_t Tk = k->shape[k->ndim - 2];
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
    if (!batch_ok(q, k) || !batch_ok(q, v) || !batch_ok(k, v)) {
        nb__err(ctx, NB_ERR_SHAPE, "attention: the batch dimensions of q %s, k %s, v %s do not "
                "broadcast", nb_shape_str(q, b1, sizeof b1), nb_shape_str(k, b2, sizeof b2),
                nb_shape_str(v, b3, sizeof b3));
        return NULL;
    }
    if (Tq < 1 || Tk < 1 || D < 1) {
        nb__err(ctx, NB_ERR_SHAPE, "attention: q %s, k %s: no queries, keys or features",
                nb_shape_str(q, b1, sizeof b1), nb_shape_str(k, b2, sizeof b2));
        return NULL;
    }
    int64_t N = 1;
    if (key_pad) {
        if (q->ndim < 3) {
            nb__err(ctx, NB_ERR_SHAPE, "attention: key_pad needs a batch dimension, q is %s",
                    nb_shape_str(q, b1, sizeof b1));
            return NULL;
        }
        N = q->shape[0];
        if (key_pad->ndim != 2 || key_pad->shape[0] != N || key_pad->shape[1] != Tk) {
            nb__err(ctx, NB_ERR_SHAPE, "attention: key_pad %s should be [%lld,%lld] (batch, keys)",
                    nb_shape_str(key_pad, b1, sizeof b1), (long long)N, (long long)Tk);
            return NULL;
        }
        if (key_pad->dtype != NB_U8 && key_pad->dtype != NB_I32 && key_pad->dtype != NB_I64) {
            nb__err(ctx, NB_ERR_DTYPE, "attention: key_pad is %s, it should be u8, i32 or i64",
                    nb_dtype_name(key_pad->dtype));
            return NULL;
        }
    }

    nb_tensor *kt = nb_transpose(ctx, k, k->ndim - 2, k->ndim - 1);
    nb_tensor *s = nb_mul_scalar(ctx, nb_matmul(ctx, q, kt), 1.0 / sqrt((double)D));
    if (!s)
        return NULL;
    if (causal || key_pad) {
        /* mask [N, 1.., Tq, Tk] (or [Tq, Tk] without key_pad), rows [.., Tq, 1] */
        int nd = key_pad ? q->ndim : 2;
        int64_t ms[NB_MAX_DIMS], rs[NB_MAX_DIMS];
        for (int i = 0; i < nd; i++)
            ms[i] = rs[i] = 1;
        if (key_pad)
            ms[0] = rs[0] = N;
        ms[nd - 2] = rs[nd - 2] = Tq;
        ms[nd - 1] = Tk;
        nb_tensor *mask = nb_empty(ctx, q->dtype, nd, ms);
        nb_tensor *rows = nb_empty(ctx, q->dtype, nd, rs);
        if (!mask || !rows)
            return NULL;
        bool empty_row = false;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < Tq; i++) {
                int64_t base = (n * Tq + i) * Tk, seen = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    bool hide = (causal && j > i + (Tk - Tq)) ||
                                (key_pad && nb_get(key_pad, n * Tk + j) != 0);
                    nb_set(mask, base + j, hide ? -INFINITY : 0.0);
                    seen += !hide;
                }
                if (!seen) {
                    empty_row = true;
                    for (int64_t j = 0; j < Tk; j++)
                        nb_set(mask, base + j, 0.0);
                }
                nb_set(rows, n * Tq + i, seen ? 1.0 : 0.0);
            }
        nb_tensor *p = nb_softmax(ctx, nb_add(ctx, s, mask), -1);
        if (empty_row)
            p = nb_mul(ctx, p, rows);
        return nb_matmul(ctx, p, v);
    }
    return nb_matmul(ctx, nb_softmax(ctx, s, -1), v);
}

/* ---- multi-head attention ------------------------------------------------- */
/* m->i[0] embed, i[1] heads; t[0] in_proj_weight [3E, E], t[1] in_proj_bias
 * [3E]; children[0] out_proj (linear E -> E). */
static nb_tensor *mha_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    return nb_mha_forward(ctx, m, x, false, NULL);
}

static nb_status mha_reset(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    /* torch: xavier_uniform_(in_proj_weight), in_proj_bias 0 */
    nb_init xw = nb_init_default(NB_INIT_XAVIER_UNIFORM), z = nb_init_default(NB_INIT_CONSTANT);
    z.a = 0;
    nb_status st = nb_init_tensor(ctx, m->t[0], w ? w : &xw);
    return st != NB_OK ? st : nb_init_tensor(ctx, m->t[1], b ? b : &z);
}

/* out_proj: torch.nn.Linear's weight init, bias 0 (torch's MHA resets it) */
static nb_status out_proj_reset(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    nb_init lw = nb_init_default(NB_INIT_TORCH_LINEAR), z = nb_init_default(NB_INIT_CONSTANT);
    z.a = 0;
    nb_status st = nb_init_tensor(ctx, m->t[0], w ? w : &lw);
    return st != NB_OK ? st : nb_init_tensor(ctx, m->t[1], b ? b : &z);
}

nb_module *nb_mha_layer(nb_ctx *ctx, const char *name, int64_t embed, int heads)
{
    if (!ctx)
        return NULL;
    if (embed < 1 || heads < 1 || embed % heads != 0) {
        nb__err(ctx, NB_ERR_ARG, "mha_layer: embed %lld must be a positive multiple of heads %d",
                (long long)embed, heads);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "mha", name, mha_fwd);
    if (!m)
        return NULL;
    m->reset = mha_reset;
    m->i[0] = embed;
    m->i[1] = heads;
    if (!nb__module_add(ctx, m, "in_proj_weight", false, NB_F32, NB_SHAPE(3 * embed, embed)) ||
        !nb__module_add(ctx, m, "in_proj_bias", false, NB_F32, NB_SHAPE(3 * embed)) ||
        mha_reset(ctx, m, NULL, NULL) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    nb_module *out = nb_linear(ctx, "out_proj", embed, embed, true);
    if (out) {
        out->reset = out_proj_reset;
        if (out_proj_reset(ctx, out, NULL, NULL) != NB_OK) {
            nb_module_free(ctx, out);
            out = NULL;
        }
    }
    if (!out || nb_sequential_add(ctx, m, out) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

nb_tensor *nb_mha_forward(nb_ctx *ctx, nb_module *m, nb_tensor *x, bool causal, nb_tensor *key_pad)
{
    if (!ctx)
        return NULL;
    if (!m || m->forward != mha_fwd) {
        nb__err(ctx, NB_ERR_ARG, "mha_forward: %s is not a multi-head attention layer",
                m ? m->kind : "NULL module");
        return NULL;
    }
    if (nb__null_in(ctx, label(m), 1, x))
        return NULL;
    const int64_t E = m->i[0], H = m->i[1], D = E / H;
    char b[NB__SHAPE_BUF];
    if (x->ndim != 3 || x->shape[2] != E || x->shape[0] < 1 || x->shape[1] < 1) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s should be [batch, time, %lld]", label(m),
                nb_shape_str(x, b, sizeof b), (long long)E);
        return NULL;
    }
    if (x->dtype != m->t[0]->dtype) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: input is %s, the layer is %s", label(m),
                nb_dtype_name(x->dtype), nb_dtype_name(m->t[0]->dtype));
        return NULL;
    }
    const int64_t N = x->shape[0], T = x->shape[1];
    if (key_pad && (key_pad->ndim != 2 || key_pad->shape[0] != N || key_pad->shape[1] != T)) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: key_pad %s should be [%lld,%lld] (batch, time)", label(m),
                nb_shape_str(key_pad, b, sizeof b), (long long)N, (long long)T);
        return NULL;
    }
    if (key_pad && key_pad->dtype != NB_U8 && key_pad->dtype != NB_I32 &&
        key_pad->dtype != NB_I64) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: key_pad is %s, it should be u8, i32 or i64", label(m),
                nb_dtype_name(key_pad->dtype));
        return NULL;
    }
    nb_tensor *qkv = nb_linear_op(ctx, x, m->t[0], m->t[1]); /* [N, T, 3E] */
    qkv = nb_reshape(ctx, qkv, NB_SHAPE(N, T, 3, H, D));
    qkv = nb_permute(ctx, qkv, NB_AXES(2, 0, 3, 1, 4)); /* [3, N, H, T, D] */
    if (!qkv)
        return NULL;
    nb_tensor *p[3];
    for (int i = 0; i < 3; i++)
        if (!(p[i] = nb_squeeze(ctx, nb_slice(ctx, qkv, 0, i, i + 1, 1), 0)))
            return NULL;
    nb_tensor *a = nb_attention(ctx, p[0], p[1], p[2], causal, key_pad); /* [N, H, T, D] */
    if (!a)
        return NULL;
    a = nb_contiguous(ctx, nb_permute(ctx, a, NB_AXES(0, 2, 1, 3))); /* [N, T, H, D] */
    a = nb_reshape(ctx, a, NB_SHAPE(N, T, E));
    if (!a)
        return NULL;
    return nb_module_forward(ctx, m->children[0], a);
}

/* ---- positional encodings -------------------------------------------------- */
/* m->i[0] max_len, i[1] embed, i[2] learned; t[0] "weight" (learned) or the
 * buffer "pe" [max_len, E]. */
static nb_status pos_reset(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    (void)b;
    nb_tensor *t = m->t[0];
    if (m->i[2]) {
        nb_init nw = nb_init_default(NB_INIT_NORMAL);
        nw.a = 0;
        nw.b = 0.02;
        return nb_init_tensor(ctx, t, w ? w : &nw);
    }
    const int64_t L = m->i[0], E = m->i[1];
    for (int64_t pos = 0; pos < L; pos++)
        for (int64_t j = 0; j < E; j++) {
            int64_t i2 = j - (j & 1); /* 2i */
            double ang = (double)pos / pow(10000.0, (double)i2 / (double)E);
            nb_set(t, pos * E + j, (j & 1) ? cos(ang) : sin(ang));
        }
    return NB_OK;
}

static nb_tensor *pos_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    const int64_t L = m->i[0], E = m->i[1];
    char b[NB__SHAPE_BUF];
    if (x->ndim != 3 || x->shape[2] != E) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s should be [batch, time, %lld]", label(m),
                nb_shape_str(x, b, sizeof b), (long long)E);
        return NULL;
    }
    if (x->shape[1] > L) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s has %lld steps, max_len is %lld", label(m),
                nb_shape_str(x, b, sizeof b), (long long)x->shape[1], (long long)L);
        return NULL;
    }
    if (x->dtype != m->t[0]->dtype) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: input is %s, the layer is %s", label(m),
                nb_dtype_name(x->dtype), nb_dtype_name(m->t[0]->dtype));
        return NULL;
    }
    return nb_add(ctx, x, nb_slice(ctx, m->t[0], 0, 0, x->shape[1], 1));
}

nb_module *nb_positional_layer(nb_ctx *ctx, const char *name, int64_t max_len, int64_t embed,
                               bool learned)
{
    if (!ctx)
        return NULL;
    if (max_len < 1 || embed < 1) {
        nb__err(ctx, NB_ERR_ARG, "positional_layer: max_len %lld and embed %lld must be positive",
                (long long)max_len, (long long)embed);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "positional", name, pos_fwd);
    if (!m)
        return NULL;
    m->reset = pos_reset;
    m->i[0] = max_len;
    m->i[1] = embed;
    m->i[2] = learned;
    if (!nb__module_add(ctx, m, learned ? "weight" : "pe", !learned, NB_F32,
                        NB_SHAPE(max_len, embed)) ||
        pos_reset(ctx, m, NULL, NULL) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}
