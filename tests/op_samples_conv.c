/* Samples of the convolution ops (see op_samples.h). */
#include "op_samples.h"

bool gen_conv2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { (void)ctx; (void)r; (void)v; (void)s; return false; }
bool gen_conv_transpose2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s) { (void)ctx; (void)r; (void)v; (void)s; return false; }
