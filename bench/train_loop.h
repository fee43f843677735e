/* The timed training loop shared by the training benchmarks: `warm`
 * untimed steps, then three rounds of `steps` steps; returns the median
 * round's seconds (or a negative value with the error printed). The loader
 * starts a new epoch when it runs out. */
#ifndef NABLA_BENCH_TRAIN_LOOP_H
#define NABLA_BENCH_TRAIN_LOOP_H

#include <nabla.h>

#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double bench_train(nb_ctx *ctx, nb_module *m, nb_loader *l, nb_optim *opt, int warm, int steps)
{
    double t0 = 0, rounds[3];
    int64_t epoch = 0;
    for (int s = -warm; s < 3 * steps; s++) {
        if (s >= 0 && s % steps == 0) {
            double t1 = bench_now();
            if (s > 0)
                rounds[s / steps - 1] = t1 - t0;
            t0 = t1;
        }
        nb_arena_reset(ctx);
        nb_tensor *xb, *yb;
        nb_loader_next(ctx, l, &xb, &yb);
        if (!xb) {
            nb_loader_start(ctx, l, ++epoch);
            nb_loader_next(ctx, l, &xb, &yb);
        }
        nb_tensor *loss = nb_cross_entropy(ctx, nb_module_forward(ctx, m, xb), yb, NULL);
        if (!loss || nb_backward(ctx, loss) != NB_OK || nb_optim_step(ctx, opt) != NB_OK) {
            fprintf(stderr, "bench: %s\n", nb_last_error(ctx));
            return -1;
        }
        nb_optim_zero_grad(opt);
    }
    rounds[2] = bench_now() - t0;
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (rounds[j] < rounds[i]) {
                double t = rounds[i];
                rounds[i] = rounds[j];
                rounds[j] = t;
            }
    return rounds[1];
}

static double bench_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

#endif
