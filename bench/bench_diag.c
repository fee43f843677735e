/* What the diagnostics cost: the Fashion-MNIST-shaped MLP (784-512-256-10,
 * Adam, batch 128, 60,000 synthetic rows through the real loader) trained by
 * nb_train for one epoch at a time in three settings, interleaved so they
 * see the same machine:
 *   off     nb_diag_opts.off: no checks, no files
 *   alarms  the defaults: the per-step gradient norm (which also detects
 *           NaN/Inf), loss and gradient-norm spike windows, exploding checks
 *   full    alarms + per-layer statistics every 50 steps, histograms every
 *           200, and the run folder's files (steps, params, acts, hist)
 * Usage: bench_diag [rounds] [threads]
 * Prints per setting the median samples/s over the rounds, then
 * "diag off=R alarms=R full=R overhead_alarms=P% overhead_full=P%". */
#include "train_loop.h"

#include <stdlib.h>
#include <unistd.h>

static double epoch_rate(nb_ctx *ctx, nb_module *m, nb_optim *opt, nb_loader *L, int mode,
                         const char *dir)
{
    nb_train_opts to = nb_train_opts_default();
    to.epochs = 1;
    to.restore_best = false;
    to.diag.off = mode == 0;
    to.diag.echo = false;
    if (mode == 2) {
        to.diag.every = 50;
        to.diag.hist_every = 200;
        to.out_dir = dir;
    }
    nb_train_result r;
    if (nb_train(ctx, m, opt, NULL, L, NULL, NULL, &to, &r) != NB_OK) {
        fprintf(stderr, "bench_diag: %s\n", nb_last_error(ctx));
        return -1;
    }
    return r.samples_per_s;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = 1;
    o.num_threads = argc > 2 ? atoi(argv[2]) : 1;
    nb_ctx *ctx = nb_ctx_new(&o);
    nb_norm norm;
    nb_loader *L = bench_loader(ctx, 60000, 1, (const int64_t[]){784}, 128, &norm);
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc1", 784, 512, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc2", 512, 256, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc3", 256, 10, true));
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    nb_optim *opt = nb_optim_new(ctx, &oo);
    char dir[] = "/tmp/nb_bench_diag_XXXXXX";
    if (!L || !opt || nb_optim_add_module(ctx, opt, m, false) != NB_OK || !mkdtemp(dir)) {
        fprintf(stderr, "bench_diag: %s\n", nb_last_error(ctx));
        return 1;
    }
    double rate[3][64];
    rounds = rounds < 1 ? 1 : rounds > 64 ? 64 : rounds;
    if (epoch_rate(ctx, m, opt, L, 0, dir) < 0) /* warm-up */
        return 1;
    for (int r = 0; r < rounds; r++)
        for (int mode = 0; mode < 3; mode++)
            if ((rate[mode][r] = epoch_rate(ctx, m, opt, L, mode, dir)) < 0)
                return 1;
    static const char *const names[3] = {"off", "alarms", "full"};
    double med[3];
    for (int mode = 0; mode < 3; mode++) {
        qsort(rate[mode], (size_t)rounds, sizeof(double), cmp);
        med[mode] = rounds % 2 ? rate[mode][rounds / 2]
                               : 0.5 * (rate[mode][rounds / 2 - 1] + rate[mode][rounds / 2]);
        printf("diag %-6s samples_per_s=%.0f (median of %d epochs)\n", names[mode], med[mode], rounds);
    }
    printf("diag off=%.0f alarms=%.0f full=%.0f overhead_alarms=%.1f%% overhead_full=%.1f%%\n", med[0],
           med[1], med[2], 100 * (med[0] / med[1] - 1), 100 * (med[0] / med[2] - 1));
    const char *files[] = {"steps.csv", "params.csv", "acts.csv", "hist.csv", "alarms.csv",
                           "log.csv", "last.safetensors", "best.safetensors", "manifest.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[64];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    nb_loader_free(ctx, L);
    nb_ctx_free(ctx);
    return 0;
}
