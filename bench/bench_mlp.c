/* Training throughput of the Fashion-MNIST MLP (784-512-256-10, ReLU,
 * cross-entropy, Adam lr 1e-3, batch 128) through the real pipeline: u8
 * images in memory, the shuffling loader with normalisation and prefetch, the
 * module, backward and the fused Adam step. The same model as bench_mlp.py.
 * 20 warm-up steps, then `steps` timed steps (median of three rounds).
 * Usage: bench_mlp [steps] [threads]
 * Prints: "mlp steps=N seconds=S samples_per_s=R rss_mb=M". */
#include "train_loop.h"

#include <stdlib.h>

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 200;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = 1;
    o.num_threads = argc > 2 ? atoi(argv[2]) : 1;
    nb_ctx *ctx = nb_ctx_new(&o);
    const int64_t N = 60000;
    nb_norm norm;
    nb_loader *L = bench_loader(ctx, N, 1, (const int64_t[]){784}, 128, &norm);
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc1", 784, 512, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc2", 512, 256, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc3", 256, 10, true));
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    nb_optim *opt = nb_optim_new(ctx, &oo);
    if (!L || !opt || nb_optim_add_module(ctx, opt, m, false) != NB_OK) {
        fprintf(stderr, "bench_mlp: %s\n", nb_last_error(ctx));
        return 1;
    }
    double t = bench_train(ctx, m, L, opt, 20, steps);
    if (t < 0)
        return 1;
    printf("mlp steps=%d seconds=%.4f samples_per_s=%.0f rss_mb=%.1f\n", steps, t, steps * 128.0 / t,
           bench_rss_mb());
    nb_loader_free(ctx, L);
    nb_ctx_free(ctx);
    return 0;
}
