/* nabla: the command-line trainer.
 *   nabla train CONFIG [--set section.key=value ...]
 *   nabla eval CONFIG CHECKPOINT [--set ...]
 *   nabla predict CONFIG CHECKPOINT INPUT [--set ...]
 *   nabla info CHECKPOINT
 *   nabla check CONFIG, nabla lr-find CONFIG (lrfind.c)
 *   nabla report RUN_FOLDER (report.c), nabla tune CONFIG (tune.c)
 * The last line `nabla train` prints is machine-readable:
 *   final epochs=E train_loss=... val_loss=... test_acc=... samples_per_s=... */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  nabla train CONFIG [--set section.key=value ...]\n"
               "  nabla eval CONFIG CHECKPOINT [--set ...]\n"
               "  nabla predict CONFIG CHECKPOINT INPUT [--set ...]   (INPUT: .npy, IDX or CSV)\n"
               "  nabla info CHECKPOINT\n"
               "  nabla check CONFIG [--set ...]                 (initial loss, overfit one batch, memory)\n"
               "  nabla lr-find CONFIG [--start A] [--end B] [--steps N] [--out DIR] [--set ...]\n"
               "  nabla report RUN_FOLDER [--out FILE]\n"
               "  nabla tune CONFIG [--set ...]\n");
}

/* ---- progress ---------------------------------------------------------------- */
#define CURVE_MAX 60
typedef struct {
    bool bar;      /* live bar on a terminal */
    bool lines;    /* one line per epoch */
    double last;   /* time of the last bar update */
    bool curve;    /* a loss curve after each epoch ([diag] curve) */
    int n;         /* epochs in the curve */
    double tr[CURVE_MAX], va[CURVE_MAX];
} progress;

/* One line of block characters per series, on one scale for both. */
static void print_curve(const progress *p)
{
    static const char *const bars[8] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                        "\u2585", "\u2586", "\u2587", "\u2588"};
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < p->n; i++)
        for (int k = 0; k < 2; k++) {
            double v = k ? p->va[i] : p->tr[i];
            if (isfinite(v))
                lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        }
    for (int k = 0; k < 2; k++) {
        const double *v = k ? p->va : p->tr;
        if (!isfinite(v[p->n - 1]))
            continue;
        printf("  %s loss ", k ? "val  " : "train");
        for (int i = 0; i < p->n; i++) {
            int b = hi > lo && isfinite(v[i]) ? (int)((v[i] - lo) / (hi - lo) * 7.999) : 0;
            printf("%s", isfinite(v[i]) ? bars[b] : " ");
        }
        printf(" %.4g\n", v[p->n - 1]);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_step(const nb_step_info *s, void *user)
{
    progress *p = user;
    if (!p->bar)
        return;
    double t = now();
    if (t - p->last < 0.1 && s->batch != s->batches)
        return;
    p->last = t;
    int width = 24, done = (int)(width * s->batch / (s->batches ? s->batches : 1));
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < done ? '=' : (i == done ? '>' : ' ');
    bar[width] = '\0';
    double eta = s->batch ? s->seconds * (double)(s->batches - s->batch) / (double)s->batch : 0;
    fprintf(stderr, "\r  epoch %d/%d [%s] %lld/%lld  loss %.4f  %.0f samples/s  ETA %d:%02d   ",
            s->epoch, s->epochs, bar, (long long)s->batch, (long long)s->batches, s->loss, s->samples_per_s,
            (int)eta / 60, (int)eta % 60);
    fflush(stderr);
}

static void on_epoch(const nb_epoch_info *e, void *user)
{
    progress *p = user;
    if (p->bar)
        fprintf(stderr, "\r%100s\r", "");
    if (!p->lines && !p->bar)
        return;
    printf("epoch %d/%d  train_loss %.4f  train_acc %.4f  val_loss %.4f  val_acc %.4f  lr %.3g  "
           "%.1fs  %.0f samples/s%s\n",
           e->epoch, e->epochs, e->train_loss, e->train_acc, e->val_loss, e->val_acc, e->lr,
           e->seconds, e->samples_per_s, e->improved ? "  *" : "");
    if (p->curve) {
        if (p->n == CURVE_MAX) { /* keep the latest epochs */
            memmove(p->tr, p->tr + 1, sizeof(double) * (CURVE_MAX - 1));
            memmove(p->va, p->va + 1, sizeof(double) * (CURVE_MAX - 1));
            p->n--;
        }
        p->tr[p->n] = e->train_loss;
        p->va[p->n++] = e->val_loss;
        print_curve(p);
    }
    fflush(stdout);
}

/* ---- a VAE's pictures ---------------------------------------------------------- */
/* For a model with a gaussian (VAE latent) layer trained on images, writes
 * OUT/reconstructions.png (rows of 8 inputs above their reconstructions) and
 * OUT/samples.png (64 decodings of z ~ N(0, 1)). Outputs are logits for the
 * bce losses (shown through a sigmoid), values otherwise; shown over [0, 1]. */
static nb_status write_vae_grids(nb_ctx *ctx, const cfg *c, nb_module *model, nb_loader *l,
                                 const nb_tensor *x_all)
{
    int gi = -1;
    for (int i = 0; i < nb_module_child_count(model); i++)
        if (!strcmp(nb_module_kind(nb_module_child(model, i)), "gaussian"))
            gi = i;
    if (gi < 0 || !c->out[0] || x_all->ndim < 3)
        return NB_OK;
    int64_t H = x_all->shape[x_all->ndim - 2], W = x_all->shape[x_all->ndim - 1];
    int64_t C = x_all->ndim == 4 ? x_all->shape[1] : 1;
    bool logits = loss_kind(c) != NB_LOSS_MSE;
    bool grad = nb_set_grad_enabled(ctx, false);
    nb_module_train(model, false);
    nb_arena_reset(ctx);
    nb_tensor *x = NULL;
    nb_status st = nb_loader_start(ctx, l, 0);
    if (st == NB_OK)
        st = nb_loader_next(ctx, l, &x, NULL);
    char path[CFG_PATH + 32];
    if (st == NB_OK && x && x->shape[0] >= 32) {
        int64_t four[4] = {32, C, H, W};
        nb_tensor *in = nb_slice(ctx, nb_reshape(ctx, x, 4, (int64_t[]){x->shape[0], C, H, W}), 0, 0, 32, 1);
        nb_tensor *rec = nb_module_forward(ctx, model, in);
        nb_take_added_loss(ctx);
        rec = logits ? nb_sigmoid(ctx, rec) : rec;
        rec = rec ? nb_reshape(ctx, rec, 4, four) : NULL;
        nb_tensor *rows[8];
        for (int r = 0; r < 4 && rec; r++) { /* inputs, then their reconstructions */
            rows[2 * r] = nb_slice(ctx, in, 0, 8 * r, 8 * r + 8, 1);
            rows[2 * r + 1] = nb_slice(ctx, rec, 0, 8 * r, 8 * r + 8, 1);
        }
        nb_tensor *grid = rec ? nb_concat(ctx, 8, rows, 0) : NULL;
        snprintf(path, sizeof path, "%s/reconstructions.png", c->out);
        st = grid ? nb_save_image_grid(ctx, path, grid, 8, 0, 1) : nb_last_status(ctx);
    }
    if (st == NB_OK) {
        nb_module *g = nb_module_child(model, gi);
        nb_tensor *mu = nb_module_find(ctx, g, "mu.bias");
        int64_t zs[2] = {64, mu ? nb_numel(mu) : 0};
        nb_tensor *z = nb_empty(ctx, NB_F32, 2, zs);
        st = z ? nb_fill_normal(ctx, z, 0, 1) : nb_last_status(ctx);
        for (int i = gi + 1; st == NB_OK && i < nb_module_child_count(model); i++)
            z = nb_module_forward(ctx, nb_module_child(model, i), z);
        z = logits && z ? nb_sigmoid(ctx, z) : z;
        z = z ? nb_reshape(ctx, z, 4, (int64_t[]){64, C, H, W}) : NULL;
        snprintf(path, sizeof path, "%s/samples.png", c->out);
        if (st == NB_OK)
            st = z ? nb_save_image_grid(ctx, path, z, 8, 0, 1) : nb_last_status(ctx);
    }
    nb_set_grad_enabled(ctx, grad);
    if (st == NB_OK)
        printf("wrote %s/reconstructions.png and %s/samples.png\n", c->out, c->out);
    return st;
}

/* ---- commands ---------------------------------------------------------------- */
static bool apply_sets(cfg *c, int argc, char **argv, int from, char *err, size_t cap)
{
    for (int i = from; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            if (!cfg_set(c, argv[++i], err, cap))
                return false;
        } else if (!strncmp(argv[i], "--set=", 6)) {
            if (!cfg_set(c, argv[i] + 6, err, cap))
                return false;
        } else {
            snprintf(err, cap, "unexpected argument '%s'", argv[i]);
            return false;
        }
    }
    return cfg_check(c, err, cap);
}

bool load_config(cfg *c, int argc, char **argv, int from, char *err, size_t cap)
{
    return cfg_load(c, argv[2], err, cap) && apply_sets(c, argc, argv, from, err, cap);
}

/* format = text: n bytes generated after `prompt` (temperature 0.8, top-k
 * 20), each from the last `context` bytes (the model is run over the window
 * again: no carried state, so LSTMs and transformers alike); printed and
 * written to OUT/sample.txt. */
static nb_status text_sample(nb_ctx *ctx, const cfg *c, nb_module *model, const char *prompt, int n)
{
    bool grad = nb_set_grad_enabled(ctx, false), was = nb_module_training(model);
    nb_module_train(model, false);
    int64_t len = (int64_t)strlen(prompt), cap = len + n, T = c->context;
    unsigned char *buf = malloc((size_t)cap);
    nb_status st = buf ? NB_OK : NB_ERR_NOMEM;
    if (buf)
        memcpy(buf, prompt, (size_t)len);
    while (st == NB_OK && len < cap) {
        nb_arena_mark m = nb_arena_mark_get(ctx);
        int64_t t = len < T ? len : T;
        nb_tensor *ids = nb_empty(ctx, NB_I64, NB_SHAPE(1, t));
        for (int64_t i = 0; ids && i < t; i++)
            nb_set(ids, i, buf[len - t + i]);
        nb_tensor *lg = ids ? nb_module_forward(ctx, model, ids) : NULL;
        int64_t next = lg ? nb_sample_token(ctx, lg, 0.8, 20) : -1;
        if (next < 0)
            st = nb_last_status(ctx) != NB_OK ? nb_last_status(ctx) : NB_ERR_ARG;
        else
            buf[len++] = (unsigned char)next;
        nb_arena_rewind(ctx, m);
    }
    if (st == NB_OK) {
        printf("sample (temperature 0.8, top-k 20):\n%.*s\n", (int)len, (const char *)buf);
        char path[CFG_PATH + 16];
        snprintf(path, sizeof path, "%s/sample.txt", c->out);
        FILE *f = c->out[0] ? fopen(path, "wb") : NULL;
        if (f) {
            fwrite(buf, 1, (size_t)len, f);
            fclose(f);
        }
    }
    free(buf);
    nb_module_train(model, was);
    nb_set_grad_enabled(ctx, grad);
    return st;
}

int run_train(const cfg *c0, bool quiet, run_result *r)
{
    cfg cc = *c0; /* shallow: the text stays c0's */
    const cfg *c = &cc;
    r->test = (nb_eval_result){NAN, NAN, NAN, 0};
    if (c0->memory_limit_mb > 0) {
        int64_t b, a;
        if (plan_memory(c0, &b, &a))
            return 1;
        if (b != cc.batch_size && !quiet)
            printf("memory: batch_size %lld with accum_steps %lld\n", (long long)b, (long long)a);
        cc.batch_size = b;
        cc.accum_steps = a;
    }
    session S;
    int rc = session_open(c, &S);
    nb_ctx *ctx = S.ctx;
    if (rc)
        goto out;
    rc = 1;
    progress pr = {0};
    bool tty = isatty(STDERR_FILENO);
    pr.bar = !quiet && (!strcmp(c->progress, "bar") || (!strcmp(c->progress, "auto") && tty));
    pr.lines = !quiet && strcmp(c->progress, "none") != 0;
    bool text = !strcmp(c->format, "text");
    if (!quiet && text)
        printf("text %s: %lld bytes; windows of %lld bytes (each predicts the next byte at every "
               "position); unigram entropy of the validation bytes %.4f nats\n", c->text_path,
               (long long)S.text_bytes, (long long)c->context, S.unigram);
    if (!quiet)
        printf("nabla %s: %lld parameters, %lld train / %lld val / %lld test rows, %d threads\n",
               NB_VERSION_STRING, (long long)nb_module_param_count(S.model), (long long)S.sp.n_train,
               (long long)S.sp.n_val, S.te.x ? (long long)S.te.x->shape[0] : 0LL,
               nb_get_num_threads(ctx));
    nb_train_opts to = nb_train_opts_default();
    to.epochs = (int)c->epochs;
    to.loss = loss_kind(c);
    to.accum_steps = (int)c->accum_steps;
    to.clip_norm = c->clip_norm;
    to.clip_value = c->clip_value;
    to.sched_per_batch = c->per_batch;
    to.patience = (int)c->early_stopping;
    to.min_delta = c->min_delta;
    to.monitor_acc = !strcmp(c->monitor, "val_acc");
    to.restore_best = c->restore_best;
    to.top_k = (int)c->top_k;
    to.out_dir = c->out[0] ? c->out : NULL;
    to.config_text = c->text;
    to.resume = c->resume[0] ? c->resume : NULL;
    to.diag.every = c->diag_every;
    to.diag.hist_every = c->hist_every;
    to.diag.hist_bins = (int)c->hist_bins;
    to.diag.vanish_ratio = c->vanish_ratio;
    to.diag.vanish_patience = (int)c->vanish_patience;
    to.diag.explode_norm = c->explode_norm;
    to.diag.explode_growth = c->explode_growth;
    to.diag.spike_z = c->spike_z;
    to.diag.spike_window = (int)c->spike_window;
    to.diag.trace_nonfinite = c->trace_nonfinite;
    to.diag.echo = !quiet;
    to.diag.action[NB_ALARM_NONFINITE] = nb_alarm_action_from_name(c->on_nonfinite);
    to.diag.action[NB_ALARM_VANISHING] = nb_alarm_action_from_name(c->on_vanishing);
    to.diag.action[NB_ALARM_EXPLODING] = nb_alarm_action_from_name(c->on_exploding);
    to.diag.action[NB_ALARM_LOSS_SPIKE] = nb_alarm_action_from_name(c->on_loss_spike);
    pr.curve = c->curve && pr.lines;
    to.on_step = on_step;
    to.on_epoch = on_epoch;
    to.user = &pr;
    if (nb_train(ctx, S.model, S.opt, S.sched, S.ltr, S.lval, &S.norm, &to, &r->train) != NB_OK) {
        if (pr.bar)
            fprintf(stderr, "\n");
        fail(ctx, "train");
        goto out;
    }
    if (S.lte && nb_evaluate(ctx, S.model, S.lte, to.loss, to.top_k, &r->test) != NB_OK) {
        fail(ctx, "test");
        goto out;
    }
    if (!quiet && write_vae_grids(ctx, c, S.model, S.lte ? S.lte : (S.lval ? S.lval : S.ltr),
                                  S.te.x ? S.te.x : S.tr.x) != NB_OK) {
        fail(ctx, "images");
        goto out;
    }
    if (!quiet && text) {
        /* the weights in hand: the best epoch's when restored */
        bool best = c->restore_best && strcmp(c->monitor, "val_acc") && isfinite(r->train.best_metric);
        printf("validation loss %.4f nats/byte%s (unigram entropy of the validation bytes %.4f)\n",
               best ? r->train.best_metric : r->train.val_loss, best ? " (best epoch, restored)" : "",
               S.unigram);
        if (text_sample(ctx, c, S.model, "The ", 300) != NB_OK) {
            fail(ctx, "sample");
            goto out;
        }
    }
    rc = 0;
out:
    session_close(&S);
    return rc;
}

static int cmd_train(int argc, char **argv)
{
    if (argc < 3) {
        usage(stderr);
        return 2;
    }
    cfg c;
    cfg_defaults(&c);
    char err[1024];
    if (!load_config(&c, argc, argv, 3, err, sizeof err)) {
        fprintf(stderr, "nabla: %s\n", err);
        cfg_free(&c);
        return 2;
    }
    run_result r;
    int rc = run_train(&c, false, &r);
    if (rc == 0) {
        if (r.train.stopped_early)
            printf("early stop after epoch %d (best epoch %d)\n", r.train.epochs_run, r.train.best_epoch);
        if (r.test.rows)
            printf("test_loss %.4f  test_acc %.4f\n", r.test.loss, r.test.acc);
        printf("final epochs=%d train_loss=%.6f val_loss=%.6f test_acc=%.4f samples_per_s=%.0f\n",
               r.train.epochs_run, r.train.train_loss, r.train.val_loss, r.test.acc,
               r.train.samples_per_s);
    }
    cfg_free(&c);
    return rc;
}

/* eval and predict: the model from the config, weights and normalisation
 * from the checkpoint. */
static int cmd_eval_predict(int argc, char **argv, bool predict)
{
    int need = predict ? 5 : 4;
    if (argc < need) {
        usage(stderr);
        return 2;
    }
    cfg c;
    cfg_defaults(&c);
    char err[1024];
    if (!load_config(&c, argc, argv, need, err, sizeof err)) {
        fprintf(stderr, "nabla: %s\n", err);
        cfg_free(&c);
        return 2;
    }
    nb_ctx *ctx = make_ctx(&c);
    if (!ctx)
        return fail(NULL, "out of memory");
    int rc = 1;
    data d = {0};
    nb_module *model = NULL;
    nb_loader *l = NULL;
    nb_norm norm = {norm_kind(&c), NULL, NULL};
    int64_t classes = 0;
    if (predict) {
        const char *in = argv[4];
        if (ends_with(in, ".csv")) {
            nb_csv_opts o;
            csv_opts_from(&c, &o);
            o.no_label = true; /* features only */
            o.label_name = NULL;
            o.label_index = -1;
            nb_csv_read(ctx, in, &o, &d.x, NULL);
        } else {
            d.x = ends_with(in, ".npy") ? nb_npy_read(ctx, in) : nb_idx_read(ctx, in);
        }
        if (!d.x) {
            fail(ctx, "input");
            goto out;
        }
    } else if (!has_test(&c) || !load_split(ctx, &c, true, &d)) {
        if (!has_test(&c))
            fprintf(stderr, "nabla: config: %s: no test data ([data] test_images/test_labels or test)\n",
                    c.path);
        else
            fail(ctx, "data");
        goto out;
    }
    model = build_model(ctx, &c, d.x, &classes);
    if (!model) {
        fail(ctx, "model");
        goto out;
    }
    if (norm.kind != NB_NORM_NONE) {
        int64_t k = norm.kind == NB_NORM_FEATURE ? features(d.x) : 1;
        norm.mean = nb_buffer(ctx, NB_F32, 1, &k);
        norm.std = nb_buffer(ctx, NB_F32, 1, &k);
    }
    if (nb_checkpoint_load(ctx, argv[3], model, NULL, NULL, &norm, NULL, false, NULL) != NB_OK) {
        fail(ctx, "checkpoint");
        goto out;
    }
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = 256;
    lo.shuffle = false;
    l = nb_loader_new(ctx, d.x, d.y, NULL, 0, &norm, &lo);
    if (!l) {
        fail(ctx, "data");
        goto out;
    }
    if (!predict) {
        if (!labels_ok(&c, d.y, classes, c.test_labels[0] ? c.test_labels : c.test_csv))
            goto out;
        nb_eval_result ev;
        if (nb_evaluate(ctx, model, l, loss_kind(&c), (int)c.top_k, &ev) != NB_OK) {
            fail(ctx, "eval");
            goto out;
        }
        printf("eval rows=%lld test_loss=%.6f test_acc=%.4f", (long long)ev.rows, ev.loss, ev.acc);
        if (c.top_k > 1)
            printf(" test_top%lld=%.4f", (long long)c.top_k, ev.topk);
        printf("\n");
    } else {
        nb_module_train(model, false);
        nb_set_grad_enabled(ctx, false);
        int64_t row = 0;
        printf("row,prediction,score\n");
        for (;;) {
            nb_arena_reset(ctx);
            nb_tensor *x;
            if (nb_loader_next(ctx, l, &x, NULL) != NB_OK) {
                fail(ctx, "predict");
                goto out;
            }
            if (!x)
                break;
            nb_tensor *out = nb_module_forward(ctx, model, x);
            bool cls = loss_kind(&c) == NB_LOSS_CROSS_ENTROPY;
            nb_tensor *p = cls ? nb_softmax(ctx, out, -1) : out;
            if (!p) {
                fail(ctx, "predict");
                goto out;
            }
            int64_t B = p->shape[0], C = nb_numel(p) / B;
            for (int64_t i = 0; i < B; i++, row++) {
                int64_t best = 0;
                for (int64_t k = 1; k < C; k++)
                    if (nb_get(p, i * C + k) > nb_get(p, i * C + best))
                        best = k;
                if (cls)
                    printf("%lld,%lld,%.6f\n", (long long)row, (long long)best, nb_get(p, i * C + best));
                else
                    printf("%lld,%.6g,\n", (long long)row, nb_get(p, i * C));
            }
        }
    }
    rc = 0;
out:
    nb_loader_free(ctx, l);
    nb_module_free(ctx, model);
    nb_norm_free(ctx, &norm);
    nb_ctx_free(ctx);
    cfg_free(&c);
    return rc;
}

static int cmd_info(int argc, char **argv)
{
    if (argc != 3) {
        usage(stderr);
        return 2;
    }
    nb_ctx *ctx = nb_ctx_new(NULL);
    if (!ctx)
        return fail(NULL, "out of memory");
    nb_safetensors *f = nb_safetensors_open(ctx, argv[2]);
    if (!f) {
        int rc = fail(ctx, "info");
        nb_ctx_free(ctx);
        return rc;
    }
    int64_t params = 0, other = 0;
    printf("%-40s %-6s %s\n", "tensor", "dtype", "shape");
    for (int i = 0; i < nb_safetensors_count(f); i++) {
        const char *name = nb_safetensors_name(f, i);
        nb_dtype dt;
        int nd;
        int64_t sh[NB_MAX_DIMS], n = 1;
        if (nb_safetensors_info(f, name, &dt, &nd, sh) != NB_OK)
            continue;
        char shape[128];
        int k = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < nd; d++) {
            k += snprintf(shape + k, sizeof shape - (size_t)k, d ? ",%lld" : "%lld", (long long)sh[d]);
            n *= sh[d];
        }
        snprintf(shape + k, sizeof shape - (size_t)k, "]");
        printf("%-40s %-6s %s\n", name, dt == NB_DTYPE_COUNT ? "other" : nb_dtype_name(dt), shape);
        if (!strncmp(name, "optim.", 6) || !strncmp(name, "norm.", 5))
            other += n;
        else
            params += n;
    }
    static const char *keys[] = {"epoch", "step", "best_epoch", "best_metric"};
    printf("model tensors: %lld elements; optimizer and normalisation: %lld elements\n",
           (long long)params, (long long)other);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *v = nb_safetensors_meta(f, keys[i]);
        if (v)
            printf("%s: %s\n", keys[i], v);
    }
    nb_safetensors_close(ctx, f);
    nb_ctx_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train"))
        return cmd_train(argc, argv);
    if (!strcmp(argv[1], "eval"))
        return cmd_eval_predict(argc, argv, false);
    if (!strcmp(argv[1], "predict"))
        return cmd_eval_predict(argc, argv, true);
    if (!strcmp(argv[1], "info"))
        return cmd_info(argc, argv);
    if (!strcmp(argv[1], "lr-find"))
        return cmd_lr_find(argc, argv);
    if (!strcmp(argv[1], "check"))
        return cmd_check(argc, argv);
    if (!strcmp(argv[1], "report"))
        return cmd_report(argc, argv);
    if (!strcmp(argv[1], "tune"))
        return cmd_tune(argc, argv);
    fprintf(stderr, "nabla: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
