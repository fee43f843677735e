/* XOR with a 2-4-1 multilayer perceptron, trained by plain gradient descent.
 *
 *   h = tanh(x W1 + b1)        x [4, 2], W1 [2, 4], b1 [4]
 *   z = h W2 + b2              W2 [4, 1], b2 [1]
 *   loss = mean BCE(sigmoid(z), y), computed from the logits z
 *
 * Run: ./build/examples/xor [seed]. Prints the loss as it trains and the four
 * predictions at the end; exits 1 if the loss does not fall below 0.01. */
#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>

#define CHECK(expr)                                                                     \
    do {                                                                                \
        if (!(expr)) {                                                                  \
            fprintf(stderr, "xor: %s\n", nb_last_error(ctx));                           \
            nb_ctx_free(ctx);                                                           \
            return 1;                                                                   \
        }                                                                               \
    } while (0)

int main(int argc, char **argv)
{
    nb_ctx_opts opts = nb_ctx_opts_default();
    opts.seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    opts.num_threads = 1; /* four samples: threads would only add overhead */
    nb_ctx *ctx = nb_ctx_new(&opts);
    if (!ctx) {
        fprintf(stderr, "xor: out of memory\n");
        return 1;
    }

    nb_tensor *W1 = nb_param(ctx, NB_F32, NB_SHAPE(2, 4));
    nb_tensor *b1 = nb_param(ctx, NB_F32, NB_SHAPE(4));
    nb_tensor *W2 = nb_param(ctx, NB_F32, NB_SHAPE(4, 1));
    nb_tensor *b2 = nb_param(ctx, NB_F32, NB_SHAPE(1));
    CHECK(W1 && b1 && W2 && b2);
    CHECK(nb_fill_uniform(ctx, W1, -1, 1) == NB_OK && nb_fill_uniform(ctx, W2, -1, 1) == NB_OK);
    nb_tensor *params[] = {W1, b1, W2, b2};

    static const float X[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    static const float Y[4][1] = {{0}, {1}, {1}, {0}};
    const double lr = 0.5;
    double loss_v = 1.0;
    int step;
    for (step = 1; step <= 20000; step++) {
        nb_arena_reset(ctx); /* everything of the last step goes */
        nb_tensor *x = nb_from_data(ctx, NB_F32, NB_SHAPE(4, 2), X);
        nb_tensor *y = nb_from_data(ctx, NB_F32, NB_SHAPE(4, 1), Y);
        nb_tensor *h = nb_tanh(ctx, nb_add(ctx, nb_matmul(ctx, x, W1), b1));
        nb_tensor *z = nb_add(ctx, nb_matmul(ctx, h, W2), b2);
        nb_tensor *loss = nb_bce_with_logits(ctx, z, y, NB_REDUCE_MEAN);
        CHECK(loss); /* one check for the whole expression */
        CHECK(nb_backward(ctx, loss) == NB_OK);
        for (int i = 0; i < 4; i++) {
            CHECK(nb_axpy(ctx, params[i], -lr, params[i]->grad) == NB_OK);
            nb_zero_grad(params[i]);
        }
        loss_v = nb_get(loss, 0);
        if (step % 500 == 0 || step == 1)
            printf("step %5d  loss %.6f\n", step, loss_v);
        if (loss_v < 0.01)
            break;
    }
    printf("stopped after %d steps, loss %.6f\n", step, loss_v);

    nb_arena_reset(ctx);
    nb_set_grad_enabled(ctx, false);
    nb_tensor *x = nb_from_data(ctx, NB_F32, NB_SHAPE(4, 2), X);
    nb_tensor *p = nb_sigmoid(ctx, nb_add(ctx, nb_matmul(ctx, nb_tanh(ctx, nb_add(ctx,
                                 nb_matmul(ctx, x, W1), b1)), W2), b2));
    CHECK(p);
    for (int i = 0; i < 4; i++)
        printf("%g xor %g -> %.4f (want %g)\n", X[i][0], X[i][1], nb_get(p, i), Y[i][0]);
    nb_ctx_free(ctx);
    return loss_v < 0.01 ? 0 : 1;
}
