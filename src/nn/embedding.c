/* The embedding layer (torch.nn.Embedding).
 *   embedding   y = W[ids], W [num, dim] ~ N(0, 1), by the embedding op
 *               (src/ops/embedding.c); padding_idx >= 0: that row of W is
 *               zeroed at every (re)initialisation and gets no gradient.
 * m->i[0] = num, m->i[1] = dim, m->i[2] = padding_idx (-1: none). */
#include "nn/nn.h"

static nb_tensor *embedding_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    return nb_embedding_op(ctx, m->t[0], x, m->i[2]);
}

bool nb__is_embedding(const nb_module *m) { return m && m->forward == embedding_fwd; }

/* w NULL: N(0, 1) (torch's default); b is unused (no bias). Then the padding
 * row is zeroed, as torch's reset_parameters does. */
static nb_status embedding_reset(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    (void)b;
    nb_tensor *W = m->t[0];
    nb_status st = w ? nb_init_tensor(ctx, W, w) : nb_fill_normal(ctx, W, 0.0, 1.0);
    if (st != NB_OK)
        return st;
    int64_t pad = m->i[2], dim = m->i[1];
    if (pad >= 0)
        memset((char *)W->data + pad * dim * (int64_t)nb__esize(W->dtype), 0,
               (size_t)dim * nb__esize(W->dtype));
    return NB_OK;
}

nb_module *nb_embedding(nb_ctx *ctx, const char *name, int64_t num, int64_t dim, int64_t padding_idx)
{
    if (ctx && (num < 1 || dim < 1)) {
        nb__err(ctx, NB_ERR_ARG, "embedding: sizes must be positive, got num %lld, dim %lld",
                (long long)num, (long long)dim);
        return NULL;
    }
    if (ctx && (padding_idx < -1 || padding_idx >= num)) {
        nb__err(ctx, NB_ERR_ARG, "embedding: padding_idx %lld is outside [-1, %lld)",
                (long long)padding_idx, (long long)num);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "embedding", name, embedding_fwd);
    if (!m)
        return NULL;
    m->reset = embedding_reset;
    m->i[0] = num;
    m->i[1] = dim;
    m->i[2] = padding_idx;
    if (!nb__module_add(ctx, m, "weight", false, NB_F32, NB_SHAPE(num, dim)) ||
        embedding_reset(ctx, m, NULL, NULL) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}
