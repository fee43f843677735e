/* Tiny GPT training throughput: byte vocabulary, 4 layers, 4 heads, width
 * 128, context 128, batch 16, AdamW (lr 1e-3, weight decay 0.1 on matrices),
 * dropout 0, tied output layer (842,496 parameters); bench_gpt.py is the same
 * model in PyTorch. Random windows of /usr/share/common-licenses. Prints
 * tokens/s (median of three rounds), peak RSS, and the step arena's size
 * after the forward and after the backward (all activations, gradients and
 * scratch of one step).
 * Usage: bench_gpt [steps] [threads] */
#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>

#include "train_loop.h"

#define CTX 128
#define B 16

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 10;
    nb_ctx_opts co = nb_ctx_opts_default();
    co.seed = 1;
    co.num_threads = argc > 2 ? atoi(argv[2]) : 1;
    nb_ctx *ctx = nb_ctx_new(&co);
    nb_tensor *tok = nb_text_read(ctx, "/usr/share/common-licenses");
    nb_module *gpt = tok ? nb_gpt(ctx, "gpt", 256, CTX, 4, 4, 128, 0.0) : NULL;
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAMW);
    oo.lr = 1e-3;
    oo.weight_decay = 0.1;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    nb_text_loader *l = gpt ? nb_text_loader_new(ctx, tok, 0, tok->shape[0], CTX, B, true, 1) : NULL;
    if (!l || !opt || nb_optim_add_module(ctx, opt, gpt, true) != NB_OK) {
        fprintf(stderr, "bench_gpt: %s\n", nb_last_error(ctx));
        return 1;
    }
    double rounds[3], t0 = 0, fwd_mb = 0, step_mb = 0;
    const int warm = 3;
    for (int s = -warm; s < 3 * steps; s++) {
        if (s >= 0 && s % steps == 0) {
            double t1 = bench_now();
            if (s > 0)
                rounds[s / steps - 1] = t1 - t0;
            t0 = t1;
        }
        nb_arena_reset(ctx);
        nb_tensor *x, *y;
        nb_text_loader_next(ctx, l, &x, &y);
        nb_tensor *lg = nb_module_forward(ctx, gpt, x);
        nb_tensor *loss = nb_cross_entropy(ctx, nb_reshape(ctx, lg, NB_SHAPE(B * CTX, 256)),
                                           nb_reshape(ctx, y, NB_SHAPE(B * CTX)), NULL);
        fwd_mb = (double)nb_arena_used(ctx) / (1 << 20);
        if (!loss || nb_backward(ctx, loss) != NB_OK || nb_optim_step(ctx, opt) != NB_OK) {
            fprintf(stderr, "bench_gpt: %s\n", nb_last_error(ctx));
            return 1;
        }
        step_mb = (double)nb_arena_used(ctx) / (1 << 20);
        nb_optim_zero_grad(opt);
    }
    rounds[2] = bench_now() - t0;
    double t = bench_median3(rounds);
    printf("gpt steps=%d seconds=%.4f tokens_per_s=%.0f rss_mb=%.1f arena_fwd_mb=%.1f "
           "arena_step_mb=%.1f params=%lld\n", steps, t, steps * B * CTX / t, bench_rss_mb(), fwd_mb,
           step_mb, (long long)nb_module_param_count(gpt));
    nb_text_loader_free(ctx, l);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, gpt);
    nb_ctx_free(ctx);
    return 0;
}
