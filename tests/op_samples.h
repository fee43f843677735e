/* Sample invocations of every op, keyed by the op table's ids. test_ops.c
 * walks the op table and fails for an op without samples, so a new op is
 * checked (gradient check, backward twice, PyTorch parity) once it has one. */
#ifndef NB_OP_SAMPLES_H
#define NB_OP_SAMPLES_H

#include "core/internal.h"

#define SAMPLE_MAX_IN 6

typedef struct op_sample {
    char label[64];
    int n_in;
    nb_tensor *in[SAMPLE_MAX_IN]; /* f64 leaves (float ones require grad) or indices */
    nb_gradcheck_fn fn;           /* builds the output from in[]; user = this sample */
    /* parameters fn reads */
    int axes[NB_MAX_DIMS], naxes, keep, axis;
    double f[4];
    int64_t shape[NB_MAX_DIMS];
    int ndim;
    /* the same computation in PyTorch: x0..x5 are the inputs, OUT is nabla's
     * output (for random ops), F is torch.nn.functional */
    char expr[320];
    bool no_grad;     /* the op has no gradient (comparisons) */
    bool surrogate;   /* the backward is a documented surrogate (STE): no gradient check */
    double gc_eps;    /* 0: gradcheck's default */
    double gc_tol;    /* 0: gradcheck's default */
} op_sample;

/* Fills s for the given variant; returns false when the op has no such
 * variant. Inputs come from the context's arena, values from r. */
typedef bool (*sample_gen)(nb_ctx *ctx, nb_rng *r, int variant, op_sample *s);

extern const sample_gen op_samples[NB__OP_COUNT];

/* generators defined in the per-family files (op_samples_*.c) */
bool gen_conv2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_conv_transpose2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_max_pool2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_avg_pool2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_adaptive_avg_pool2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_upsample_nearest2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_batch_norm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_layer_norm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_group_norm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_reparameterize(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_kl_normal(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_gumbel_softmax(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_sign_ste(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_round_ste(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_quantize_ste(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_embedding(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_spmm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_attention(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_attention_qkv(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_lstm_cell(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);
bool gen_lstm_seq(nb_ctx *ctx, nb_rng *r, int v, op_sample *s);

/* input makers shared by the sample files: kind V_NORMAL (N(0,1)), V_POS
 * ([0.5, 2)), V_AWAY0 (|x| in [0.1, 1.5)), V_WIDE (N(0, 4)); F64 leaves
 * requiring grad */
enum { V_NORMAL, V_POS, V_AWAY0, V_WIDE };
nb_tensor *sample_input(nb_ctx *ctx, nb_rng *r, int kind, int ndim, const int64_t *shape);

#endif
