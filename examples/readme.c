#include <nabla.h>
#include <stdio.h>

int main(void)
{
    nb_ctx *ctx = nb_ctx_new(NULL);                       /* defaults: seed 0, all cores */
    nb_tensor *W = nb_param(ctx, NB_F32, NB_SHAPE(2, 1)); /* persistent, requires grad */
    nb_tensor *b = nb_param(ctx, NB_F32, NB_SHAPE(1));
    static const float X[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}}, Y[4][1] = {{0}, {1}, {1}, {2}};
    for (int step = 0; step < 500; step++) {
        nb_arena_reset(ctx);                              /* frees the last step's tensors */
        nb_tensor *x = nb_from_data(ctx, NB_F32, NB_SHAPE(4, 2), X);
        nb_tensor *y = nb_from_data(ctx, NB_F32, NB_SHAPE(4, 1), Y);
        nb_tensor *loss = nb_mse_loss(ctx, nb_add(ctx, nb_matmul(ctx, x, W), b), y, NB_REDUCE_MEAN);
        if (!loss || nb_backward(ctx, loss) != NB_OK) {  /* one check for the whole expression */
            fprintf(stderr, "%s\n", nb_last_error(ctx));
            return 1;
        }
        nb_axpy(ctx, W, -0.1, W->grad);                   /* plain gradient descent */
        nb_axpy(ctx, b, -0.1, b->grad);
        nb_zero_grads(ctx);
    }
    printf("W = [%.3f %.3f], b = %.3f\n", nb_get(W, 0), nb_get(W, 1), nb_get(b, 0)); /* 1 1 0 */
    nb_ctx_free(ctx);
    return 0;
}
