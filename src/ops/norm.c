/* Normalisation: being written (stubs until then). */
#include "core/internal.h"

static nb_tensor *todo(nb_ctx *ctx, const char *op)
{
    if (ctx)
        nb__err(ctx, NB_ERR_ARG, "%s: not available yet", op);
    return NULL;
}

nb_tensor *nb_batch_norm(nb_ctx *ctx, nb_tensor *x, nb_tensor *gamma, nb_tensor *beta,
                         nb_tensor *running_mean, nb_tensor *running_var, bool training,
                         double momentum, double eps)
{
    (void)x; (void)gamma; (void)beta; (void)running_mean; (void)running_var; (void)training;
    (void)momentum; (void)eps;
    return todo(ctx, "batch_norm");
}
nb_tensor *nb_layer_norm(nb_ctx *ctx, nb_tensor *x, int ndims, nb_tensor *gamma, nb_tensor *beta, double eps)
{
    (void)x; (void)ndims; (void)gamma; (void)beta; (void)eps;
    return todo(ctx, "layer_norm");
}
nb_tensor *nb_group_norm(nb_ctx *ctx, nb_tensor *x, int groups, nb_tensor *gamma, nb_tensor *beta, double eps)
{
    (void)x; (void)groups; (void)gamma; (void)beta; (void)eps;
    return todo(ctx, "group_norm");
}
nb_status nb__batch_norm_backward(nb_ctx *ctx, nb__node *n) { (void)n; return nb__err(ctx, NB_ERR_ARG, "todo"); }
nb_status nb__layer_norm_backward(nb_ctx *ctx, nb__node *n) { (void)n; return nb__err(ctx, NB_ERR_ARG, "todo"); }
nb_status nb__group_norm_backward(nb_ctx *ctx, nb__node *n) { (void)n; return nb__err(ctx, NB_ERR_ARG, "todo"); }
