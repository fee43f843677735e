/* Training throughput of the small CNN of the convolution issue:
 * conv 1->32 3x3 pad 1, ReLU, max-pool 2, conv 32->64 3x3 pad 1, ReLU,
 * max-pool 2, linear 3136->128, ReLU, linear 128->10; batch 64; Adam; the
 * same model as bench_cnn.py, through the real pipeline (u8 images, the
 * shuffling loader with prefetch). 5 warm-up steps, then the median of three
 * rounds of `steps` steps.
 * Usage: bench_cnn [steps] [threads]
 * Prints: "cnn steps=N seconds=S samples_per_s=R rss_mb=M". */
#include "train_loop.h"

#include <stdlib.h>

static nb_status add(nb_ctx *ctx, nb_module *m, nb_module *c) { return nb_sequential_add(ctx, m, c); }

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 50;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = 1;
    o.num_threads = argc > 2 ? atoi(argv[2]) : 1;
    nb_ctx *ctx = nb_ctx_new(&o);
    const int64_t N = 6400;
    nb_norm norm;
    nb_loader *L = bench_loader(ctx, N, 3, (const int64_t[]){1, 28, 28}, 64, &norm);
    nb_conv_opts co = nb_conv_opts_default();
    co.padding[0] = co.padding[1] = 1;
    /* conv + ReLU + 2x2 max pool as one op, as `nabla train` builds "conv:32:3:p=1, relu,
     * maxpool:2": the same function as torch's Conv2d, ReLU, MaxPool2d(2) */
    co.relu = true;
    co.max_pool = true;
    nb_module *m = nb_sequential(ctx, NULL);
    add(ctx, m, nb_conv2d_layer(ctx, "conv1", 1, 32, 3, 3, &co, true));
    add(ctx, m, nb_conv2d_layer(ctx, "conv2", 32, 64, 3, 3, &co, true));
    add(ctx, m, nb_flatten_layer(ctx, NULL));
    add(ctx, m, nb_linear(ctx, "fc1", 3136, 128, true));
    add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    add(ctx, m, nb_linear(ctx, "fc2", 128, 10, true));
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    nb_optim *opt = nb_optim_new(ctx, &oo);
    if (!L || !opt || nb_optim_add_module(ctx, opt, m, false) != NB_OK) {
        fprintf(stderr, "bench_cnn: %s\n", nb_last_error(ctx));
        return 1;
    }
    double t = bench_train(ctx, m, L, opt, 5, steps);
    if (t < 0)
        return 1;
    printf("cnn steps=%d seconds=%.4f samples_per_s=%.0f rss_mb=%.1f\n", steps, t, steps * 64.0 / t,
           bench_rss_mb());
    nb_loader_free(ctx, L);
    nb_ctx_free(ctx);
    return 0;
}
