/* Samples of the normalisation ops (see op_samples.h). */
#include "op_samples.h"

bool gen_batch_norm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { (void)ctx; (void)r; (void)v; (void)s; return false; }
bool gen_layer_norm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { (void)ctx; (void)r; (void)v; (void)s; return false; }
bool gen_group_norm(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { (void)ctx; (void)r; (void)v; (void)s; return false; }
