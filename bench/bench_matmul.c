/* 1024 x 1024 x 1024 float32 matmul, forward and backward (dA and dB):
 * 3 GEMMs of 2 n^3 flops each per iteration. Prints GFLOP/s.
 * Usage: bench_matmul [n] [iterations] [threads] */
#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 1024;
    int iters = argc > 2 ? atoi(argv[2]) : 10;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.num_threads = argc > 3 ? atoi(argv[3]) : 1;
    nb_ctx *ctx = nb_ctx_new(&o);
    nb_tensor *A = nb_param(ctx, NB_F32, NB_SHAPE(n, n)), *B = nb_param(ctx, NB_F32, NB_SHAPE(n, n));
    nb_fill_normal(ctx, A, 0, 1);
    nb_fill_normal(ctx, B, 0, 1);
    double t0 = 0;
    for (int it = -1; it < iters; it++) { /* one warm-up */
        if (it == 0)
            t0 = now();
        nb_arena_reset(ctx);
        nb_tensor *C = nb_matmul(ctx, A, B);
        nb_tensor *G = nb_full(ctx, NB_F32, NB_SHAPE(n, n), 1.0);
        if (!C || !G || nb_backward_with(ctx, C, G) != NB_OK) {
            fprintf(stderr, "bench_matmul: %s\n", nb_last_error(ctx));
            return 1;
        }
        nb_zero_grads(ctx);
    }
    double t = now() - t0, flops = 6.0 * (double)n * (double)n * (double)n * iters;
    printf("matmul n=%lld iters=%d seconds=%.4f gflops=%.2f\n", (long long)n, iters, t, flops / t * 1e-9);
    nb_ctx_free(ctx);
    return 0;
}
