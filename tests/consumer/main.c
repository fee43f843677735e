/* Uses an installed nabla: y = sum(w * w), dy/dw = 2w. */
#include <nabla.h>
#include <stdio.h>

int main(void)
{
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_tensor *w = nb_param(ctx, NB_F32, NB_SHAPE(3));
    nb_fill(ctx, w, 1.5);
    nb_tensor *y = nb_sum(ctx, nb_mul(ctx, w, w), 0, NULL, false);
    if (!y || nb_backward(ctx, y) != NB_OK || nb_get(w->grad, 2) != 3.0) {
        fprintf(stderr, "consumer: %s\n", nb_last_error(ctx));
        return 1;
    }
    printf("consumer: nabla %s works (grad %g)\n", NB_VERSION_STRING, nb_get(w->grad, 2));
    nb_ctx_free(ctx);
    return 0;
}
