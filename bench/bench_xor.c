/* XOR 2-4-1 MLP, full batch (4 samples), plain SGD, a fixed number of steps:
 * the per-step overhead of the engine (the same model as bench_xor.py).
 *   h = tanh(x W1 + b1); z = h W2 + b2; loss = mean BCE-with-logits(z, y)
 * Both this and bench_xor.py first run 2000 untimed warm-up steps, then time
 * three rounds of N steps and report the median round: 10,000 steps take
 * nabla about 12 ms, short enough for a burst of host noise on this shared
 * machine to spoil one round.
 * Usage: bench_xor [steps] [threads]
 * Prints one line: "xor steps=N seconds=S steps_per_s=R final_loss=L". */
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
    int steps = argc > 1 ? atoi(argv[1]) : 10000;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = 1;
    o.num_threads = argc > 2 ? atoi(argv[2]) : 1;
    nb_ctx *ctx = nb_ctx_new(&o);
    if (!ctx)
        return 1;
    nb_tensor *W1 = nb_param(ctx, NB_F32, NB_SHAPE(2, 4)), *b1 = nb_param(ctx, NB_F32, NB_SHAPE(4));
    nb_tensor *W2 = nb_param(ctx, NB_F32, NB_SHAPE(4, 1)), *b2 = nb_param(ctx, NB_F32, NB_SHAPE(1));
    nb_fill_uniform(ctx, W1, -1, 1);
    nb_fill_uniform(ctx, W2, -1, 1);
    nb_tensor *P[4] = {W1, b1, W2, b2};
    static const float X[8] = {0, 0, 0, 1, 1, 0, 1, 1}, Y[4] = {0, 1, 1, 0};
    double loss = 0, t0 = 0, round_s[3];
    const int warm = 2000, rounds = 3;
    for (int s = -warm; s < rounds * steps; s++) {
        if (s >= 0 && s % steps == 0) {
            double t1 = now();
            if (s > 0)
                round_s[s / steps - 1] = t1 - t0;
            t0 = t1;
        }
        nb_arena_reset(ctx);
        nb_tensor *x = nb_from_data(ctx, NB_F32, NB_SHAPE(4, 2), X);
        nb_tensor *y = nb_from_data(ctx, NB_F32, NB_SHAPE(4, 1), Y);
        nb_tensor *z = nb_add(ctx, nb_matmul(ctx, nb_tanh(ctx, nb_add(ctx, nb_matmul(ctx, x, W1), b1)), W2), b2);
        nb_tensor *l = nb_bce_with_logits(ctx, z, y, NB_REDUCE_MEAN);
        if (!l || nb_backward(ctx, l) != NB_OK) {
            fprintf(stderr, "bench_xor: %s\n", nb_last_error(ctx));
            return 1;
        }
        for (int i = 0; i < 4; i++) {
            nb_axpy(ctx, P[i], -0.5, P[i]->grad);
            nb_zero_grad(P[i]);
        }
        if (s == rounds * steps - 1)
            loss = nb_get(l, 0);
    }
    round_s[rounds - 1] = now() - t0;
    for (int i = 0; i < rounds; i++) /* sort three */
        for (int j = i + 1; j < rounds; j++)
            if (round_s[j] < round_s[i]) {
                double x = round_s[i];
                round_s[i] = round_s[j];
                round_s[j] = x;
            }
    double t = round_s[rounds / 2];
    printf("xor steps=%d seconds=%.4f steps_per_s=%.0f final_loss=%.5f\n", steps, t, steps / t, loss);
    nb_ctx_free(ctx);
    return 0;
}
