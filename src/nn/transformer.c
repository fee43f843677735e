/* The pre-LayerNorm transformer block and a GPT builder, composed of layers.
 *
 *   block (torch.nn.TransformerEncoderLayer, norm_first=True, batch_first,
 *          activation gelu (exact), the same parameter names):
 *     x = x + drop(self_attn(norm1(x)))
 *     x = x + drop(linear2(drop(gelu(linear1(norm2(x))))))
 *   Differences from torch's layer: no dropout on the attention weights (the
 *   fused attention kernel keeps one [T, T] matrix per head and dropping out of
 *   it would need a second), and `causal` is a setting of the block so that
 *   nb_module_forward (and a sequential, and the CLI) can run it.
 *
 *   gpt: ids [N, T] -> emb (vocab x width) -> pos (learned, context) ->
 *        block0 .. block{L-1} (causal, hidden 4 x width) -> ln_f -> logits
 *        h emb.weight^T [N, T, vocab]: the output layer is the embedding table
 *        (tied, as GPT-2: one matrix fewer, and the rare bytes' rows learn from
 *        both ends)
 * Pre-LN is chosen because it trains without warm-up at the learning rates a
 * small model wants (Xiong et al. 2020); the final LayerNorm is then needed,
 * as the residual stream itself is never normalised. */
#include "nn/nn.h"

#include <stdio.h>

/* m->i[0] embed, i[1] causal; f[0] dropout; children: self_attn, linear1,
 * linear2, norm1, norm2 (torch's state_dict order). */
enum { SELF_ATTN, LINEAR1, LINEAR2, NORM1, NORM2, BLOCK_CHILDREN };

static nb_tensor *block_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    return nb_transformer_forward(ctx, m, x, NULL);
}

nb_module *nb_transformer_block(nb_ctx *ctx, const char *name, int64_t embed, int heads,
                                int64_t hidden, double dropout, bool causal)
{
    if (!ctx)
        return NULL;
    if (embed < 1 || heads < 1 || embed % heads != 0 || hidden < 1) {
        nb__err(ctx, NB_ERR_ARG, "transformer_block: embed %lld must be a positive multiple of "
                "heads %d, hidden %lld positive", (long long)embed, heads, (long long)hidden);
        return NULL;
    }
    if (!(dropout >= 0 && dropout < 1)) {
        nb__err(ctx, NB_ERR_ARG, "transformer_block: dropout %g is not in [0, 1)", dropout);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "transformer_block", name, block_fwd);
    if (!m)
        return NULL;
    m->i[0] = embed;
    m->i[1] = causal;
    m->f[0] = dropout;
    nb_module *c[BLOCK_CHILDREN] = {
        nb_mha_layer(ctx, "self_attn", embed, heads),
        nb_linear(ctx, "linear1", embed, hidden, true),
        nb_linear(ctx, "linear2", hidden, embed, true),
        nb_layer_norm_layer(ctx, "norm1", 1, &embed, 1e-5, true),
        nb_layer_norm_layer(ctx, "norm2", 1, &embed, 1e-5, true),
    };
    bool ok = true;
    for (int i = 0; i < BLOCK_CHILDREN; i++) /* add takes each child, also on failure */
        ok = nb_sequential_add(ctx, m, c[i]) == NB_OK && ok;
    if (!ok) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

nb_tensor *nb_transformer_forward(nb_ctx *ctx, nb_module *m, nb_tensor *x, nb_tensor *key_pad)
{
    if (!ctx)
        return NULL;
    if (!m || m->forward != block_fwd) {
        nb__err(ctx, NB_ERR_ARG, "transformer_forward: %s is not a transformer block",
                m ? m->kind : "NULL module");
        return NULL;
    }
    if (nb__null_in(ctx, nb__label(m), 1, x))
        return NULL;
    char b[NB__SHAPE_BUF];
    if (x->ndim != 3 || x->shape[2] != m->i[0]) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s should be [batch, time, %lld]", nb__label(m),
                nb_shape_str(x, b, sizeof b), (long long)m->i[0]);
        return NULL;
    }
    nb_module **c = m->children;
    const double p = m->f[0];
    const bool tr = m->training;
    nb_tensor *a = nb_module_forward(ctx, c[NORM1], x);
    a = nb_mha_forward(ctx, c[SELF_ATTN], a, m->i[1] != 0, key_pad);
    if (p > 0)
        a = nb_dropout(ctx, a, p, tr);
    x = nb_add(ctx, x, a);
    nb_tensor *h = nb_module_forward(ctx, c[NORM2], x);
    h = nb_gelu(ctx, nb_module_forward(ctx, c[LINEAR1], h));
    if (p > 0)
        h = nb_dropout(ctx, h, p, tr);
    h = nb_module_forward(ctx, c[LINEAR2], h);
    if (p > 0)
        h = nb_dropout(ctx, h, p, tr);
    return nb_add(ctx, x, h);
}

/* gpt: children emb, pos, block0.., ln_f; the head is emb's weight (tied) */
static nb_tensor *gpt_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    x = nb__seq_run(ctx, m, x);
    return x ? nb_linear_op(ctx, x, m->children[0]->t[0], NULL) : NULL;
}

nb_module *nb_gpt(nb_ctx *ctx, const char *name, int64_t vocab, int64_t context, int layers,
                  int heads, int64_t width, double dropout)
{
    if (!ctx)
        return NULL;
    if (vocab < 1 || context < 1 || layers < 0 || layers > 1000) {
        nb__err(ctx, NB_ERR_ARG, "gpt: vocab %lld, context %lld, layers %d: need vocab and "
                "context >= 1 and 0 <= layers <= 1000", (long long)vocab, (long long)context,
                layers);
        return NULL;
    }
    nb_module *g = nb__module_new(ctx, "gpt", name, gpt_fwd);
    if (!g)
        return NULL;
    nb_status st = nb_sequential_add(ctx, g, nb_embedding(ctx, "emb", vocab, width, -1));
    if (st == NB_OK)
        st = nb_sequential_add(ctx, g, nb_positional_layer(ctx, "pos", context, width, true));
    for (int l = 0; l < layers && st == NB_OK; l++) {
        char nm[32];
        snprintf(nm, sizeof nm, "block%d", l);
        st = nb_sequential_add(ctx, g, nb_transformer_block(ctx, nm, width, heads, 4 * width,
                                                            dropout, true));
    }
    if (st == NB_OK)
        st = nb_sequential_add(ctx, g, nb_layer_norm_layer(ctx, "ln_f", 1, &width, 1e-5, true));
    if (st != NB_OK) {
        nb_module_free(ctx, g);
        return NULL;
    }
    /* GPT-2's init of the tied table: N(0, 0.02^2) (torch's N(0, 1) for an
     * embedding would make the initial logits of size sqrt(width)) */
    nb_init nw = nb_init_default(NB_INIT_NORMAL);
    nw.a = 0;
    nw.b = 0.02;
    if (nb_init_tensor(ctx, g->children[0]->t[0], &nw) != NB_OK) {
        nb_module_free(ctx, g);
        return NULL;
    }
    return g;
}
