/* A byte-level GPT: a decoder-only transformer trained to predict the next
 * byte, then sampled.
 *
 *   bytes -> embedding 256 x 128 + learned positions (context 128)
 *         -> 4 pre-LayerNorm blocks (4 heads, causal, MLP 512, dropout 0.1)
 *         -> LayerNorm -> linear 128 -> 256 logits          (842,496 parameters)
 *   batches of 16 random windows of 128 bytes; every position is a prediction
 *   AdamW (lr 1e-3, weight decay 0.1 on matrices only), warm-up 100 steps then
 *   cosine to 1e-4, gradient norm clipped at 1
 *
 *   ./build/examples/tiny_gpt [steps] [path] [lr] [smoke]
 *
 * path (default /usr/share/common-licenses, a directory on every Debian
 * machine: its 15 licence texts, 237 KB of English, concatenated in name
 * order) is split 90/10 and the held-out part's loss in nats per byte is
 * printed against the unigram entropy of its bytes (the best a model without
 * context can do). Then 300 bytes are generated (temperature 0.8, top-k 20),
 * each from the last 128 bytes. The last line is machine-readable:
 *   tiny_gpt steps=N val_loss=L unigram=U tokens_per_s=R
 * Exit 1 when the validation loss does not beat the unigram entropy (with
 * "smoke": only on errors, for the sanitizer build's short run). */
#include <nabla.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VOCAB 256
#define CTX 128
#define LAYERS 4
#define HEADS 4
#define WIDTH 128
#define B 16

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* mean next-byte loss over logits [n, t, V] and targets [n, t] */
static nb_tensor *lm_loss(nb_ctx *ctx, nb_tensor *logits, nb_tensor *y)
{
    int64_t rows = nb_numel(y);
    return nb_cross_entropy(ctx, nb_reshape(ctx, logits, 2, (int64_t[]){rows, VOCAB}),
                            nb_reshape(ctx, y, 1, &rows), NULL);
}

/* Mean loss over the held-out span, in windows of CTX (each position sees
 * the window before it). */
static double evaluate(nb_ctx *ctx, nb_module *gpt, const nb_tensor *tok, int64_t begin,
                       int64_t end)
{
    nb_text_loader *l = nb_text_loader_new(ctx, tok, begin, end, CTX, B, false, 0);
    if (!l)
        return NAN;
    bool grad = nb_set_grad_enabled(ctx, false);
    nb_module_train(gpt, false);
    double sum = 0;
    int64_t n = nb_text_loader_batches(l);
    for (int64_t i = 0; i < n; i++) {
        nb_arena_reset(ctx);
        nb_tensor *x, *y;
        nb_tensor *loss = nb_text_loader_next(ctx, l, &x, &y) == NB_OK
                              ? lm_loss(ctx, nb_module_forward(ctx, gpt, x), y)
                              : NULL;
        if (!loss) {
            sum = NAN;
            break;
        }
        sum += nb_get(loss, 0);
    }
    nb_module_train(gpt, true);
    nb_set_grad_enabled(ctx, grad);
    nb_text_loader_free(ctx, l);
    return n ? sum / (double)n : NAN;
}

static void generate(nb_ctx *ctx, nb_module *gpt, const char *prompt, int n)
{
    bool grad = nb_set_grad_enabled(ctx, false);
    nb_module_train(gpt, false);
    int64_t len = (int64_t)strlen(prompt), cap = len + n;
    unsigned char *buf = malloc((size_t)cap);
    if (!buf)
        return;
    memcpy(buf, prompt, (size_t)len);
    printf("--- sample (temperature 0.8, top-k 20) ---\n%s", prompt);
    while (len < cap) {
        nb_arena_reset(ctx);
        int64_t t = len < CTX ? len : CTX;
        nb_tensor *ids = nb_empty(ctx, NB_I64, 2, (int64_t[]){1, t});
        if (!ids)
            break;
        for (int64_t i = 0; i < t; i++)
            nb_set(ids, i, buf[len - t + i]);
        nb_tensor *lg = nb_module_forward(ctx, gpt, ids); /* [1, t, V]: the last row is next */
        int64_t next = lg ? nb_sample_token(ctx, lg, 0.8, 20) : -1;
        if (next < 0)
            break;
        buf[len++] = (unsigned char)next;
        putchar((int)next);
    }
    printf("\n---\n");
    free(buf);
    nb_module_train(gpt, true);
    nb_set_grad_enabled(ctx, grad);
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 2000;
    const char *path = argc > 2 ? argv[2] : "/usr/share/common-licenses";
    nb_ctx_opts co = nb_ctx_opts_default();
    co.seed = 1;
    nb_ctx *ctx = nb_ctx_new(&co);
    nb_tensor *tok = nb_text_read(ctx, path);
    if (!tok || steps < 1) {
        fprintf(stderr, "tiny_gpt: %s\n", tok ? "steps must be positive" : nb_last_error(ctx));
        return 1;
    }
    int64_t n = tok->shape[0], split = n * 9 / 10;
    nb_module *gpt = nb_gpt(ctx, "gpt", VOCAB, CTX, LAYERS, HEADS, WIDTH, 0.1);
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAMW);
    oo.lr = argc > 3 ? atof(argv[3]) : 1e-3;
    oo.weight_decay = 0.1;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    nb_sched_opts so = nb_sched_opts_default(NB_SCHED_WARMUP_COSINE);
    so.warmup = steps < 1000 ? steps / 10 : 100;
    so.total = steps;
    so.eta_min = 1e-4;
    nb_sched *sched = NULL;
    /* no_decay_1d: biases, norms stay undecayed, as in GPT-2's recipe */
    if (gpt && opt && nb_optim_add_module(ctx, opt, gpt, true) == NB_OK)
        sched = nb_sched_new(ctx, opt, &so);
    nb_text_loader *l = nb_text_loader_new(ctx, tok, 0, split, CTX, B, true, 1);
    nb_param_list pl = {0, NULL};
    if (!sched || !l || nb_module_params(ctx, gpt, &pl) != NB_OK) {
        fprintf(stderr, "tiny_gpt: %s\n", nb_last_error(ctx));
        return 1;
    }
    nb_tensor **ps = malloc((size_t)pl.n * sizeof *ps);
    int np = 0;
    for (int i = 0; ps && i < pl.n; i++)
        if (!pl.items[i].is_buffer)
            ps[np++] = pl.items[i].tensor;
    double unigram = nb_unigram_entropy(tok, split, n);
    printf("tiny_gpt: %s, %lld bytes (train %lld, validation %lld); unigram entropy of the "
           "validation bytes %.3f nats\n", path, (long long)n, (long long)split,
           (long long)(n - split), unigram);
    printf("model: %lld parameters, %d layers, %d heads, width %d, context %d\n",
           (long long)nb_module_param_count(gpt), LAYERS, HEADS, WIDTH, CTX);
    double t0 = now(), run = 0;
    for (int s = 1; s <= steps && ps; s++) {
        nb_arena_reset(ctx);
        nb_tensor *x, *y;
        nb_tensor *loss = nb_text_loader_next(ctx, l, &x, &y) == NB_OK
                              ? lm_loss(ctx, nb_module_forward(ctx, gpt, x), y)
                              : NULL;
        if (!loss || nb_backward(ctx, loss) != NB_OK ||
            nb_clip_grad_norm(ctx, np, ps, 1.0, NULL) != NB_OK || nb_optim_step(ctx, opt) != NB_OK ||
            nb_sched_step(ctx, sched, 0) != NB_OK) {
            fprintf(stderr, "tiny_gpt: step %d: %s\n", s, nb_last_error(ctx));
            return 1;
        }
        nb_optim_zero_grad(opt);
        run = s == 1 ? nb_get(loss, 0) : 0.95 * run + 0.05 * nb_get(loss, 0);
        if (s % 100 == 0 || s == steps)
            printf("step %d: train loss %.3f nats/byte, %.0f tokens/s\n", s, run,
                   (double)s * B * CTX / (now() - t0));
    }
    double secs = now() - t0;
    double val = evaluate(ctx, gpt, tok, split, n);
    printf("validation loss %.3f nats/byte (unigram entropy %.3f)\n", val, unigram);
    generate(ctx, gpt, "The licensee ", 300);
    printf("tiny_gpt steps=%d val_loss=%.4f unigram=%.4f tokens_per_s=%.0f\n", steps, val, unigram,
           (double)steps * B * CTX / secs);
    free(ps);
    nb_param_list_free(ctx, &pl);
    nb_module_free(ctx, gpt);
    nb_text_loader_free(ctx, l);
    nb_sched_free(ctx, sched);
    nb_optim_free(ctx, opt);
    nb_ctx_free(ctx);
    bool smoke = argc > 4 && !strcmp(argv[4], "smoke");
    return val < unigram || (smoke && isfinite(val)) ? 0 : 1; /* it must beat the model without context */
}
