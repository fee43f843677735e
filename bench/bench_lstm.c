/* Training throughput of a byte-level LSTM language model: embedding 256 x 64
 * -> LSTM 64 -> 256 (one layer, batch_first) -> linear 256 -> 256 logits,
 * cross-entropy over the next bytes, Adam lr 1e-3; batches of 32 random
 * windows of 64 bytes of /usr/share/common-licenses/GPL-3 (or a file given),
 * zero initial state. The same model as bench_lstm.py. 5 warm-up steps, then
 * `steps` timed steps (median of three rounds); a token is one of the
 * 32 x 64 predicted bytes of a step.
 * Usage: bench_lstm [steps] [threads] [file]
 * Prints: "lstm steps=N seconds=S tokens_per_s=R rss_mb=M tokens_per_cpu_s=C"; C
 * counts process CPU time instead of wall time (at one thread, the rate on
 * a machine shared with other jobs; at more threads it counts spinning). */
#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>

#include "train_loop.h"

#define EMB 64
#define HID 256
#define T 64
#define B 32

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 20;
    const char *path = argc > 3 ? argv[3] : "/usr/share/common-licenses/GPL-3";
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = 1;
    o.num_threads = argc > 2 ? atoi(argv[2]) : 1;
    nb_ctx *ctx = nb_ctx_new(&o);
    nb_tensor *tok = nb_text_read(ctx, path);
    nb_rnn_opts ro = nb_rnn_opts_default(NB_LSTM, EMB, HID);
    ro.batch_first = true;
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_embedding(ctx, "emb", 256, EMB, -1));
    nb_sequential_add(ctx, m, nb_rnn_layer(ctx, "lstm", &ro));
    nb_sequential_add(ctx, m, nb_linear(ctx, "head", HID, 256, true));
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    oo.lr = 1e-3;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    nb_text_loader *l = tok ? nb_text_loader_new(ctx, tok, 0, tok->shape[0], T, B, true, 1) : NULL;
    if (!l || !opt || nb_optim_add_module(ctx, opt, m, false) != NB_OK) {
        fprintf(stderr, "bench_lstm: %s\n", nb_last_error(ctx));
        return 1;
    }
    const int warm = 5;
    double t0 = 0, c0 = 0, rounds[3], cpu[3];
    for (int s = -warm; s < 3 * steps; s++) {
        if (s >= 0 && s % steps == 0) {
            double t1 = bench_clock(CLOCK_MONOTONIC), c1 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
            if (s > 0) {
                rounds[s / steps - 1] = t1 - t0;
                cpu[s / steps - 1] = c1 - c0;
            }
            t0 = t1;
            c0 = c1;
        }
        nb_arena_reset(ctx);
        nb_tensor *x, *y;
        nb_text_loader_next(ctx, l, &x, &y);
        nb_tensor *lg = nb_module_forward(ctx, m, x);
        nb_tensor *loss = nb_cross_entropy(ctx, nb_reshape(ctx, lg, 2, (int64_t[]){B * T, 256}),
                                           nb_reshape(ctx, y, 1, (int64_t[]){B * T}), NULL);
        if (!loss || nb_backward(ctx, loss) != NB_OK || nb_optim_step(ctx, opt) != NB_OK) {
            fprintf(stderr, "bench_lstm: %s\n", nb_last_error(ctx));
            return 1;
        }
        nb_optim_zero_grad(opt);
    }
    rounds[2] = bench_clock(CLOCK_MONOTONIC) - t0;
    cpu[2] = bench_clock(CLOCK_PROCESS_CPUTIME_ID) - c0;
    double t = bench_median3(rounds), c = bench_median3(cpu);
    printf("lstm steps=%d seconds=%.4f tokens_per_s=%.0f rss_mb=%.1f tokens_per_cpu_s=%.0f\n", steps,
           t, (double)steps * B * T / t, bench_rss_mb(), (double)steps * B * T / c);
    nb_text_loader_free(ctx, l);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
    return 0;
}
