/* A 3-layer MLP on a random batch, for parity with PyTorch (parity_mlp.py):
 *   h1 = relu(x W1^T + b1), h2 = tanh(h1 W2^T + b2), z = h2 W3^T + b3
 *   loss = cross_entropy(z, y)
 * Weights are stored as torch.nn.Linear does ([out, in]) and used through a
 * transposed view. Writes the weights, the batch, the loss and every
 * parameter gradient. Usage: test_mlp OUT_FILE */
#include "dump.h"

#include <stdio.h>

static const char *names[6] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight",
                               "fc3.bias"};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_mlp OUT_FILE\n");
        return 2;
    }
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = 2026;
    nb_ctx *ctx = nb_ctx_new(&o);
    if (!ctx)
        return 1;
    const int64_t dims[4] = {20, 64, 32, 7}, N = 48;
    nb_tensor *p[6];
    for (int l = 0; l < 3; l++) {
        p[2 * l] = nb_param(ctx, NB_F32, NB_SHAPE(dims[l + 1], dims[l]));
        p[2 * l + 1] = nb_param(ctx, NB_F32, NB_SHAPE(dims[l + 1]));
        nb_fill_normal(ctx, p[2 * l], 0, 0.3);
        nb_fill_normal(ctx, p[2 * l + 1], 0, 0.1);
    }
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(N, dims[0]));
    nb_fill_normal(ctx, x, 0, 1);
    nb_tensor *y = nb_zeros(ctx, NB_I64, NB_SHAPE(N));
    for (int64_t i = 0; i < N; i++)
        nb_set(y, i, nb_rng_below(nb_ctx_rng(ctx), (uint32_t)dims[3]));

    nb_tensor *h = x;
    for (int l = 0; l < 3; l++) {
        h = nb_add(ctx, nb_matmul(ctx, h, nb_transpose(ctx, p[2 * l], 0, 1)), p[2 * l + 1]);
        if (l == 0)
            h = nb_relu(ctx, h);
        else if (l == 1)
            h = nb_tanh(ctx, h);
    }
    nb_tensor *loss = nb_cross_entropy(ctx, h, y, NULL);
    if (!loss || nb_backward(ctx, loss) != NB_OK) {
        fprintf(stderr, "test_mlp: %s\n", nb_last_error(ctx));
        return 1;
    }
    FILE *f = fopen(argv[1], "wb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    dump_tensor(f, x);
    dump_tensor(f, y);
    dump_tensor(f, loss);
    for (int i = 0; i < 6; i++) {
        dump_str(f, names[i]);
        dump_tensor(f, p[i]);
        dump_tensor(f, p[i]->grad);
    }
    fclose(f);
    printf("loss %.6f; wrote %s\n", nb_get(loss, 0), argv[1]);
    nb_ctx_free(ctx);
    return 0;
}
