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

static inline double bench_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline double bench_now(void) { return bench_clock(CLOCK_MONOTONIC); }

/* the median of three rounds (sorts r) */
static inline double bench_median3(double *r)
{
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (r[j] < r[i]) {
                double t = r[i];
                r[i] = r[j];
                r[j] = t;
            }
    return r[1];
}

static inline double bench_train(nb_ctx *ctx, nb_module *m, nb_loader *l, nb_optim *opt, int warm, int steps)
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
    return bench_median3(rounds);
}

/* N random u8 images of row shape `row` (ndim dims) with labels 0..9, their
 * global normalisation, and a shuffling, prefetching loader: the data side of
 * the training benchmarks. */
static inline nb_loader *bench_loader(nb_ctx *ctx, int64_t N, int ndim, const int64_t *row, int64_t batch,
                               nb_norm *norm)
{
    int64_t shape[NB_MAX_DIMS] = {N};
    for (int d = 0; d < ndim; d++)
        shape[d + 1] = row[d];
    nb_tensor *x = nb_buffer(ctx, NB_U8, ndim + 1, shape);
    nb_tensor *y = nb_buffer(ctx, NB_U8, 1, &N);
    if (!x || !y)
        return NULL;
    nb_rng r;
    nb_rng_seed(&r, 9, 0);
    for (int64_t i = 0; i < nb_numel(x); i++)
        ((uint8_t *)x->data)[i] = (uint8_t)nb_rng_below(&r, 256);
    for (int64_t i = 0; i < N; i++)
        ((uint8_t *)y->data)[i] = (uint8_t)nb_rng_below(&r, 10);
    if (nb_norm_fit(ctx, x, NULL, 0, NB_NORM_GLOBAL, norm) != NB_OK)
        return NULL;
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = batch;
    lo.prefetch = true;
    return nb_loader_new(ctx, x, y, NULL, 0, norm, &lo);
}

static inline double bench_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

#endif
