/* Attention layers, composed from ops (nb_attention itself is a fused op:
 * src/ops/attention.c).
 *   MHA (torch.nn.MultiheadAttention, batch_first, self-attention):
 *     [q k v] = x W_in^T + b_in   (one linear [N, T, 3E])
 *     attention per head by nb_attention_qkv, which reads the heads in place
 *     and writes [N, T, E] (head h in columns [h D, (h + 1) D)), then
 *     out_proj (a child linear).
 *   positional: y = x + PE[:T], PE sinusoidal (a buffer) or learned.
 */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>

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
    if (nb__null_in(ctx, nb__label(m), 1, x))
        return NULL;
    const int64_t E = m->i[0], H = m->i[1];
    char b[NB__SHAPE_BUF];
    if (x->ndim != 3 || x->shape[2] != E || x->shape[0] < 1 || x->shape[1] < 1) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s should be [batch, time, %lld]", nb__label(m),
                nb_shape_str(x, b, sizeof b), (long long)E);
        return NULL;
    }
    if (x->dtype != m->t[0]->dtype) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: input is %s, the layer is %s", nb__label(m),
                nb_dtype_name(x->dtype), nb_dtype_name(m->t[0]->dtype));
        return NULL;
    }
    const int64_t N = x->shape[0], T = x->shape[1];
    if (key_pad && (key_pad->ndim != 2 || key_pad->shape[0] != N || key_pad->shape[1] != T)) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: key_pad %s should be [%lld,%lld] (batch, time)", nb__label(m),
                nb_shape_str(key_pad, b, sizeof b), (long long)N, (long long)T);
        return NULL;
    }
    if (key_pad && key_pad->dtype != NB_U8 && key_pad->dtype != NB_I32 &&
        key_pad->dtype != NB_I64) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: key_pad is %s, it should be u8, i32 or i64", nb__label(m),
                nb_dtype_name(key_pad->dtype));
        return NULL;
    }
    nb_tensor *qkv = nb_linear_op(ctx, x, m->t[0], m->t[1]); /* [N, T, 3E] */
    /* the heads addressed in place: [N, T, E], head h in columns [h D, (h + 1) D) */
    nb_tensor *a = nb_attention_qkv(ctx, qkv, (int)H, causal, key_pad);
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
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s should be [batch, time, %lld]", nb__label(m),
                nb_shape_str(x, b, sizeof b), (long long)E);
        return NULL;
    }
    if (x->shape[1] > L) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s has %lld steps, max_len is %lld", nb__label(m),
                nb_shape_str(x, b, sizeof b), (long long)x->shape[1], (long long)L);
        return NULL;
    }
    if (x->dtype != m->t[0]->dtype) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: input is %s, the layer is %s", nb__label(m),
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
