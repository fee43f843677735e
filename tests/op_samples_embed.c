/* Samples of the embedding op (see op_samples.h). The ids are an integer
 * input that does not require grad; PyTorch replays them as x1.long()
 * (F.embedding needs int64, the dump keeps i32/u8 as such). Variants: 1-D
 * ids; 2-D ids with certain repeats (their gradients must add); padding_idx
 * set and used; a transposed (non-contiguous) weight with u8 ids.
 * s->keep = 1 passes x0 transposed; s->f[0] = padding_idx. The padding
 * sample is marked surrogate (see there). */
#include "op_samples.h"

#include <stdio.h>

#define MK(kind, ...) sample_input(ctx, r, kind, NB_SHAPE(__VA_ARGS__))
#define S ((const op_sample *)user)
#define EXPR(...) snprintf(s->expr, sizeof s->expr, __VA_ARGS__)

static nb_tensor *ids_of(nb_ctx *ctx, nb_rng *r, int64_t limit, nb_dtype dt, int ndim,
                         const int64_t *shape)
{
    nb_tensor *t = nb_empty(ctx, dt, ndim, shape);
    for (int64_t i = 0; t && i < nb_numel(t); i++)
        nb_set(t, i, (double)nb_rng_below(r, (uint32_t)limit));
    return t;
}
#define IDS(limit, dt, ...) ids_of(ctx, r, limit, dt, NB_SHAPE(__VA_ARGS__))

static nb_tensor *fn_embedding(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    nb_tensor *w = S->keep ? nb_transpose(ctx, x[0], 0, 1) : x[0];
    return nb_embedding_op(ctx, w, x[1], (int64_t)S->f[0]);
}

bool gen_embedding(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    s->n_in = 2;
    s->fn = fn_embedding;
    s->f[0] = -1;
    switch (v) {
    case 0: /* 1-D ids */
        s->in[0] = MK(V_NORMAL, 5, 3);
        s->in[1] = IDS(5, NB_I64, 4);
        break;
    case 1: /* 2-D ids, 10 draws from 3 rows: repeats are certain */
        s->in[0] = MK(V_NORMAL, 6, 4);
        s->in[1] = IDS(3, NB_I32, 2, 5);
        break;
    case 2: /* padding row 2, looked up at least once */
        s->in[0] = MK(V_NORMAL, 5, 3);
        s->in[1] = IDS(5, NB_I64, 3, 4);
        s->f[0] = 2;
        /* the padding row gets no gradient by contract although the output
         * depends on it: no finite differences, the PyTorch replay checks it */
        s->surrogate = true;
        if (s->in[1]) {
            nb_set(s->in[1], 1, 2.0);
            nb_set(s->in[1], 6, 2.0);
        }
        break;
    case 3: /* transposed weight [3, 5]^T, u8 ids */
        s->keep = 1;
        s->in[0] = MK(V_NORMAL, 3, 5);
        s->in[1] = IDS(5, NB_U8, 7);
        break;
    default: return false;
    }
    if (s->f[0] >= 0)
        EXPR("F.embedding(x1.long(), %s, padding_idx=%d)", s->keep ? "x0.t()" : "x0", (int)s->f[0]);
    else
        EXPR("F.embedding(x1.long(), %s)", s->keep ? "x0.t()" : "x0");
    return true;
}
