/* Convolution: being written (stubs until then). */
#include "core/internal.h"

nb_conv_opts nb_conv_opts_default(void)
{
    nb_conv_opts o;
    memset(&o, 0, sizeof o);
    o.stride[0] = o.stride[1] = 1;
    o.dilation[0] = o.dilation[1] = 1;
    o.groups = 1;
    return o;
}
nb_tensor *nb_conv2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *o)
{
    (void)x; (void)w; (void)b; (void)o;
    if (ctx) nb__err(ctx, NB_ERR_ARG, "conv2d: not available yet");
    return NULL;
}
nb_tensor *nb_conv1d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *o)
{
    return nb_conv2d(ctx, x, w, b, o);
}
nb_tensor *nb_conv_transpose2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *o)
{
    return nb_conv2d(ctx, x, w, b, o);
}
nb_status nb__conv2d_backward(nb_ctx *ctx, nb__node *n) { (void)n; return nb__err(ctx, NB_ERR_ARG, "todo"); }
nb_status nb__conv_transpose2d_backward(nb_ctx *ctx, nb__node *n) { (void)n; return nb__err(ctx, NB_ERR_ARG, "todo"); }
