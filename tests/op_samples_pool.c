/* Samples of the pooling ops (see op_samples.h). */
#include "op_samples.h"

bool gen_max_pool2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { (void)ctx; (void)r; (void)v; (void)s; return false; }
bool gen_avg_pool2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { (void)ctx; (void)r; (void)v; (void)s; return false; }
bool gen_adaptive_avg_pool2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { (void)ctx; (void)r; (void)v; (void)s; return false; }
bool gen_upsample_nearest2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { (void)ctx; (void)r; (void)v; (void)s; return false; }
