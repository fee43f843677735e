/* Pooling and resampling: being written (stubs until then). */
#include "core/internal.h"

nb_pool_opts nb_pool_opts_default(int kh, int kw)
{
    nb_pool_opts o;
    memset(&o, 0, sizeof o);
    o.kernel[0] = kh;
    o.kernel[1] = kw;
    o.count_include_pad = true;
    return o;
}

static nb_tensor *todo(nb_ctx *ctx, const char *op)
{
    if (ctx)
        nb__err(ctx, NB_ERR_ARG, "%s: not available yet", op);
    return NULL;
}

nb_tensor *nb_max_pool2d(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *o) { (void)x; (void)o; return todo(ctx, "max_pool2d"); }
nb_tensor *nb_avg_pool2d(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *o) { (void)x; (void)o; return todo(ctx, "avg_pool2d"); }
nb_tensor *nb_adaptive_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int oh, int ow) { (void)x; (void)oh; (void)ow; return todo(ctx, "adaptive_avg_pool2d"); }
nb_tensor *nb_global_avg_pool2d(nb_ctx *ctx, nb_tensor *x) { (void)x; return todo(ctx, "global_avg_pool2d"); }
nb_tensor *nb_upsample_nearest2d(nb_ctx *ctx, nb_tensor *x, int sh, int sw) { (void)x; (void)sh; (void)sw; return todo(ctx, "upsample_nearest2d"); }
nb_status nb__max_pool2d_backward(nb_ctx *ctx, nb__node *n) { (void)n; return nb__err(ctx, NB_ERR_ARG, "todo"); }
nb_status nb__avg_pool2d_backward(nb_ctx *ctx, nb__node *n) { (void)n; return nb__err(ctx, NB_ERR_ARG, "todo"); }
nb_status nb__adaptive_avg_pool2d_backward(nb_ctx *ctx, nb__node *n) { (void)n; return nb__err(ctx, NB_ERR_ARG, "todo"); }
nb_status nb__upsample_nearest2d_backward(nb_ctx *ctx, nb__node *n) { (void)n; return nb__err(ctx, NB_ERR_ARG, "todo"); }
