/* Samples of the sparse-times-dense op spmm (see op_samples.h). The CSR
 * travels as three inputs: x0 row_ptr (I64 [M+1]), x1 col (I64 [nnz]), x2
 * values ([nnz]; float, requiring grad or a constant), then x3 the dense
 * x [K, F]. PyTorch replays it as a dense matmul with A built from the CSR by
 * index_put (accumulate, so repeated columns add as in nabla):
 *   A = zeros(M, K).index_put((arange(M).repeat_interleave(diff(x0)), x1), x2)
 * Variants: values requiring grad with an empty row; constant values, a
 * repeated column and a transposed (non-contiguous) x; random sizes and
 * density; no nonzeros at all. s->keep = 1 passes x3 transposed. */
#include "op_samples.h"

#include <stdio.h>

#define MK(kind, ...) sample_input(ctx, r, kind, NB_SHAPE(__VA_ARGS__))
#define S ((const op_sample *)user)
#define EXPR(...) snprintf(s->expr, sizeof s->expr, __VA_ARGS__)

static nb_tensor *fn_spmm(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    nb_tensor *d = S->keep ? nb_transpose(ctx, x[3], 0, 1) : x[3];
    return nb_spmm_csr(ctx, x[0], x[1], x[2], d);
}

/* A random CSR [M, K]: each entry present with probability density (row
 * `empty` kept empty when >= 0); dup repeats row 0's first column once. */
static void random_csr(nb_ctx *ctx, nb_rng *r, op_sample *s, int64_t M, int64_t K, double density,
                       int64_t empty, bool dup)
{
    int64_t rows[64], cols[64], nnz = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++)
            if (i != empty && nnz < 63 && nb_rng_uniform(r) < density) {
                rows[nnz] = i;
                cols[nnz++] = k;
            }
    if (dup) { /* a second entry at row 0's first column (or at (0, 0)) */
        int64_t c0 = nnz > 0 && rows[0] == 0 ? cols[0] : 0;
        for (int64_t p = nnz; p > 0; p--) {
            rows[p] = rows[p - 1];
            cols[p] = cols[p - 1];
        }
        rows[0] = 0;
        cols[0] = c0;
        nnz++;
    }
    nb_tensor *rp = nb_empty(ctx, NB_I64, 1, (const int64_t[]){M + 1});
    nb_tensor *c = nb_empty(ctx, NB_I64, 1, &nnz);
    if (!rp || !c)
        return;
    int64_t *rpd = rp->data;
    for (int64_t i = 0; i <= M; i++)
        rpd[i] = 0;
    for (int64_t p = 0; p < nnz; p++) {
        rpd[rows[p] + 1]++;
        ((int64_t *)c->data)[p] = cols[p];
    }
    for (int64_t i = 0; i < M; i++)
        rpd[i + 1] += rpd[i];
    s->in[0] = rp;
    s->in[1] = c;
    s->in[2] = MK(V_NORMAL, nnz);
}

bool gen_spmm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    int64_t M, K, F;
    switch (v) {
    case 0: /* values require grad, row 2 empty */
        M = 4, K = 5, F = 3;
        random_csr(ctx, r, s, M, K, 0.5, 2, false);
        break;
    case 1: /* constant values (as an nb_csr's), a repeated column, x transposed */
        M = 5, K = 4, F = 3;
        random_csr(ctx, r, s, M, K, 0.4, -1, true);
        if (s->in[2])
            nb_set_requires_grad(ctx, s->in[2], false);
        s->keep = 1;
        break;
    case 2: /* random sizes and density */
        M = 1 + nb_rng_below(r, 6), K = 1 + nb_rng_below(r, 6), F = 1 + nb_rng_below(r, 4);
        random_csr(ctx, r, s, M, K, 0.2 + 0.6 * nb_rng_uniform(r), -1, false);
        break;
    case 3: /* no nonzeros: y = 0, no gradient reaches x */
        M = 3, K = 2, F = 2;
        random_csr(ctx, r, s, M, K, 0.0, -1, false);
        break;
    default: return false;
    }
    s->in[3] = s->keep ? MK(V_NORMAL, F, K) : MK(V_NORMAL, K, F);
    s->n_in = 4;
    s->fn = fn_spmm;
    EXPR("torch.zeros(%d, %d, dtype=x3.dtype).index_put((torch.arange(%d).repeat_interleave("
         "x0.diff()), x1), x2, accumulate=True) @ %s",
         (int)M, (int)K, (int)M, s->keep ? "x3.t()" : "x3");
    return true;
}
