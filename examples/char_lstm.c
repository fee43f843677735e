/* A byte-level LSTM language model, trained by truncated backpropagation
 * through time, then sampled.
 *
 *   embedding 256 x 64 -> LSTM 64 -> 256 -> linear 256 -> 256 logits
 *   batches of 32 streams x 64 bytes; each batch continues the streams of the
 *   previous one and starts from its final (detached) LSTM state
 *   Adam 3e-3, gradient norm clipped at 1
 *
 *   ./build/examples/char_lstm [steps] [file]
 *
 * The file (default /usr/share/common-licenses/GPL-3, on every Debian
 * machine) is split 90/10; the held-out part's loss in nats per byte is
 * printed against the unigram entropy of the bytes (the best a model without
 * context can do), then 400 bytes are generated (temperature 0.8, top-k 20).
 * The last line is machine-readable:
 *   char_lstm steps=N val_loss=L unigram=U tokens_per_s=R
 * Exit 1 when the validation loss does not beat the unigram entropy. */
#include <nabla.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EMB 64
#define HID 256
#define T 64
#define B 32

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    nb_module *emb, *lstm, *head;
} lm;

/* logits [b, t, 256] for ids [b, t] from state (h, c) [1, b, HID]; the new
 * state in *hn, *cn (step tensors) */
static nb_tensor *forward(nb_ctx *ctx, const lm *m, nb_tensor *ids, nb_tensor *h, nb_tensor *c,
                          nb_tensor **hn, nb_tensor **cn)
{
    nb_tensor *e = nb_module_forward(ctx, m->emb, ids);
    nb_tensor *o = nb_rnn_forward(ctx, m->lstm, e, h, c, NULL, hn, cn);
    return nb_module_forward(ctx, m->head, o);
}

/* Mean next-byte loss over tokens[begin, end), streaming with the state. */
static double evaluate(nb_ctx *ctx, const lm *m, const nb_tensor *tok, int64_t begin, int64_t end)
{
    nb_text_loader *l = nb_text_loader_new(ctx, tok, begin, end, T, 4, false, 0);
    if (!l)
        return NAN;
    bool grad = nb_set_grad_enabled(ctx, false);
    nb_tensor *h = nb_buffer(ctx, NB_F32, 3, (int64_t[]){1, 4, HID});
    nb_tensor *c = nb_buffer(ctx, NB_F32, 3, (int64_t[]){1, 4, HID});
    double sum = 0;
    int64_t n = nb_text_loader_batches(l);
    for (int64_t i = 0; i < n; i++) {
        nb_arena_reset(ctx);
        nb_tensor *x, *y, *hn, *cn;
        nb_text_loader_next(ctx, l, &x, &y);
        nb_tensor *lg = forward(ctx, m, x, h, c, &hn, &cn);
        nb_tensor *loss = nb_cross_entropy(ctx, nb_reshape(ctx, lg, 2, (int64_t[]){4 * T, 256}),
                                           nb_reshape(ctx, y, 1, (int64_t[]){4 * T}), NULL);
        if (!loss)
            break;
        sum += nb_get(loss, 0);
        nb_assign(ctx, h, hn);
        nb_assign(ctx, c, cn);
    }
    nb_set_grad_enabled(ctx, grad);
    nb_text_loader_free(ctx, l);
    nb_tensor_free(ctx, h);
    nb_tensor_free(ctx, c);
    return n ? sum / (double)n : NAN;
}

static void generate(nb_ctx *ctx, const lm *m, const char *prompt, int n)
{
    bool grad = nb_set_grad_enabled(ctx, false);
    nb_tensor *h = nb_buffer(ctx, NB_F32, 3, (int64_t[]){1, 1, HID});
    nb_tensor *c = nb_buffer(ctx, NB_F32, 3, (int64_t[]){1, 1, HID});
    nb_tensor *id = nb_buffer(ctx, NB_I64, 2, (int64_t[]){1, 1});
    printf("--- sample (temperature 0.8, top-k 20) ---\n%s", prompt);
    int64_t next = -1;
    for (size_t i = 0; i + 1 < strlen(prompt) + (size_t)n; i++) {
        nb_arena_reset(ctx);
        nb_set(id, 0, i < strlen(prompt) ? (unsigned char)prompt[i] : (double)next);
        nb_tensor *hn, *cn, *lg = forward(ctx, m, id, h, c, &hn, &cn);
        if (!lg)
            break;
        nb_assign(ctx, h, hn);
        nb_assign(ctx, c, cn);
        next = nb_sample_token(ctx, lg, 0.8, 20);
        if (i + 1 >= strlen(prompt))
            putchar(next >= 0 ? (int)next : '?');
    }
    printf("\n---\n");
    nb_set_grad_enabled(ctx, grad);
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 600;
    const char *path = argc > 2 ? argv[2] : "/usr/share/common-licenses/GPL-3";
    nb_ctx_opts co = nb_ctx_opts_default();
    co.seed = 1;
    nb_ctx *ctx = nb_ctx_new(&co);
    nb_tensor *tok = nb_text_read(ctx, path);
    if (!tok) {
        fprintf(stderr, "char_lstm: %s\n", nb_last_error(ctx));
        return 1;
    }
    int64_t n = tok->shape[0], split = n * 9 / 10;
    nb_rnn_opts ro = nb_rnn_opts_default(NB_LSTM, EMB, HID);
    ro.batch_first = true;
    lm m = {nb_embedding(ctx, "emb", 256, EMB, -1), nb_rnn_layer(ctx, "lstm", &ro),
            nb_linear(ctx, "head", HID, 256, true)};
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    oo.lr = 3e-3;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    nb_text_loader *l = nb_text_loader_new(ctx, tok, 0, split, T, B, false, 1);
    nb_tensor *h = nb_buffer(ctx, NB_F32, 3, (int64_t[]){1, B, HID});
    nb_tensor *c = nb_buffer(ctx, NB_F32, 3, (int64_t[]){1, B, HID});
    nb_module *all[3] = {m.emb, m.lstm, m.head};
    for (int i = 0; i < 3 && opt; i++)
        if (!all[i] || nb_optim_add_module(ctx, opt, all[i], false) != NB_OK)
            opt = NULL;
    if (!opt || !l || !h || !c) {
        fprintf(stderr, "char_lstm: %s\n", nb_last_error(ctx));
        return 1;
    }
    nb_param_list pl[3];
    nb_tensor *ps[16];
    int np = 0;
    for (int i = 0; i < 3; i++) {
        nb_module_params(ctx, all[i], &pl[i]);
        for (int k = 0; k < pl[i].n && np < 16; k++)
            ps[np++] = pl[i].items[k].tensor;
    }
    double unigram = nb_unigram_entropy(tok, split, n);
    printf("char_lstm: %s, %lld bytes (train %lld, validation %lld); unigram entropy of the validation "
           "bytes %.3f nats\n", path, (long long)n, (long long)split, (long long)(n - split), unigram);
    double t0 = now(), run = 0;
    int64_t per = nb_text_loader_batches(l);
    for (int s = 1; s <= steps; s++) {
        if ((s - 1) % per == 0) { /* the streams wrap to their starts: fresh state */
            nb_fill(ctx, h, 0);
            nb_fill(ctx, c, 0);
        }
        nb_arena_reset(ctx);
        nb_tensor *x, *y, *hn, *cn;
        nb_text_loader_next(ctx, l, &x, &y);
        nb_tensor *lg = forward(ctx, &m, x, h, c, &hn, &cn);
        nb_tensor *loss = nb_cross_entropy(ctx, nb_reshape(ctx, lg, 2, (int64_t[]){B * T, 256}),
                                           nb_reshape(ctx, y, 1, (int64_t[]){B * T}), NULL);
        if (!loss || nb_backward(ctx, loss) != NB_OK ||
            nb_clip_grad_norm(ctx, np, ps, 1.0, NULL) != NB_OK || nb_optim_step(ctx, opt) != NB_OK) {
            fprintf(stderr, "char_lstm: %s\n", nb_last_error(ctx));
            return 1;
        }
        nb_optim_zero_grad(opt);
        /* truncated BPTT: the next batch starts from this state, without its history */
        nb_assign(ctx, h, hn);
        nb_assign(ctx, c, cn);
        run = s == 1 ? nb_get(loss, 0) : 0.95 * run + 0.05 * nb_get(loss, 0);
        if (s % 100 == 0 || s == steps)
            printf("step %d: train loss %.3f nats/byte, %.0f tokens/s\n", s, run,
                   (double)s * B * T / (now() - t0));
    }
    double secs = now() - t0;
    double val = evaluate(ctx, &m, tok, split, n);
    printf("validation loss %.3f nats/byte (unigram entropy %.3f)\n", val, unigram);
    generate(ctx, &m, "The ", 400);
    printf("char_lstm steps=%d val_loss=%.4f unigram=%.4f tokens_per_s=%.0f\n", steps, val, unigram,
           (double)steps * B * T / secs);
    for (int i = 0; i < 3; i++) {
        nb_param_list_free(ctx, &pl[i]);
        nb_module_free(ctx, all[i]);
    }
    nb_text_loader_free(ctx, l);
    nb_optim_free(ctx, opt);
    nb_ctx_free(ctx);
    return val < unigram ? 0 : 1; /* it must beat the model without context */
}
