/* nabla: the command-line trainer.
 *   nabla train CONFIG [--set section.key=value ...]
 *   nabla eval CONFIG CHECKPOINT [--set ...]
 *   nabla predict CONFIG CHECKPOINT INPUT [--set ...]
 *   nabla info CHECKPOINT
 * The last line `nabla train` prints is machine-readable:
 *   final epochs=E train_loss=... val_loss=... test_acc=... samples_per_s=... */
#include "config.h"

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
               "  nabla info CHECKPOINT\n");
}

static int fail(nb_ctx *ctx, const char *what)
{
    fprintf(stderr, "nabla: %s%s%s\n", what ? what : "", what && ctx ? ": " : "",
            ctx ? nb_last_error(ctx) : "");
    return 1;
}

/* ---- data ----------------------------------------------------------------- */
typedef struct {
    nb_tensor *x, *y;
} data;

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static nb_tensor *read_any(nb_ctx *ctx, const cfg *c, const char *path)
{
    if (!strcmp(c->format, "npy") || ends_with(path, ".npy"))
        return nb_npy_read(ctx, path);
    return nb_idx_read(ctx, path);
}

static bool csv_opts_from(const cfg *c, nb_csv_opts *o)
{
    *o = nb_csv_opts_default();
    o->header = c->header;
    o->label_float = strcmp(c->loss, "cross_entropy") != 0;
    if (c->label[0]) {
        char *end;
        long v = strtol(c->label, &end, 10);
        if (*end == '\0')
            o->label_index = (int)v;
        else
            o->label_name = c->label;
    }
    return true;
}

static bool autoencoder(const cfg *c) { return !strcmp(c->target, "input"); }

static bool load_split(nb_ctx *ctx, const cfg *c, bool test, data *d)
{
    d->x = d->y = NULL;
    if (!strcmp(c->format, "csv")) {
        const char *p = test ? c->test_csv : c->train_csv;
        nb_csv_opts o;
        csv_opts_from(c, &o);
        return nb_csv_read(ctx, p, &o, &d->x, &d->y) == NB_OK;
    }
    d->x = read_any(ctx, c, test ? c->test_images : c->train_images);
    if (autoencoder(c)) /* the input is the target */
        return d->x != NULL;
    d->y = d->x ? read_any(ctx, c, test ? c->test_labels : c->train_labels) : NULL;
    if (d->x && d->y && d->y->shape[0] != d->x->shape[0]) {
        fprintf(stderr, "nabla: data: %s has %lld rows but %s has %lld\n",
                test ? c->test_images : c->train_images, (long long)d->x->shape[0],
                test ? c->test_labels : c->train_labels, (long long)d->y->shape[0]);
        return false;
    }
    return d->x && d->y;
}

static bool has_test(const cfg *c)
{
    return !strcmp(c->format, "csv") ? c->test_csv[0] != 0
                                     : (c->test_images[0] && (c->test_labels[0] || autoencoder(c)));
}

/* ---- the model: tools/model.c ---------------------------------------------------- */
nb_module *build_model(nb_ctx *ctx, const cfg *c, const nb_tensor *x, int64_t *out_dim);

static int64_t features(const nb_tensor *x) { return x->shape[0] ? nb_numel(x) / x->shape[0] : 0; }

static nb_loss_kind loss_kind(const cfg *c)
{
    return !strcmp(c->loss, "mse")       ? NB_LOSS_MSE
           : !strcmp(c->loss, "bce")     ? NB_LOSS_BCE
           : !strcmp(c->loss, "bce_sum") ? NB_LOSS_BCE_SUM
                                         : NB_LOSS_CROSS_ENTROPY;
}

static nb_norm_kind norm_kind(const cfg *c)
{
    return !strcmp(c->normalize, "global") ? NB_NORM_GLOBAL
           : !strcmp(c->normalize, "feature") ? NB_NORM_FEATURE
           : !strcmp(c->normalize, "range") ? NB_NORM_RANGE : NB_NORM_NONE;
}

/* Class ids must fit the model's outputs. */
static bool labels_ok(const cfg *c, const nb_tensor *y, int64_t classes, const char *what)
{
    if (loss_kind(c) != NB_LOSS_CROSS_ENTROPY || !y)
        return true;
    for (int64_t i = 0; i < nb_numel(y); i++) {
        double v = nb_get(y, i);
        if (v < 0 || v >= (double)classes || v != floor(v)) {
            fprintf(stderr, "nabla: data: %s: label %g of row %lld is outside the model's %lld "
                    "classes [0, %lld)\n", what, v, (long long)i, (long long)classes,
                    (long long)classes);
            return false;
        }
    }
    return true;
}

/* ---- progress ---------------------------------------------------------------- */
typedef struct {
    bool bar;      /* live bar on a terminal */
    bool lines;    /* one line per epoch */
    double last;   /* time of the last bar update */
} progress;

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

static nb_ctx *make_ctx(const cfg *c)
{
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = c->seed;
    o.num_threads = (int)c->threads;
    return nb_ctx_new(&o);
}

static nb_optim *make_optim(nb_ctx *ctx, const cfg *c, nb_module *m)
{
    nb_optim_opts o = nb_optim_opts_default(nb_optim_from_name(c->optim));
    if (c->lr_set)
        o.lr = c->lr;
    if (c->wd_set)
        o.weight_decay = c->weight_decay;
    if (c->eps_set)
        o.eps = c->eps;
    o.momentum = c->momentum;
    o.dampening = c->dampening;
    o.nesterov = c->nesterov;
    o.beta1 = c->beta1;
    o.beta2 = c->beta2;
    o.amsgrad = c->amsgrad;
    o.alpha = c->alpha;
    o.centered = c->centered;
    o.lr_decay = c->lr_decay;
    o.initial_accumulator = c->initial_accumulator;
    nb_optim *opt = nb_optim_new(ctx, &o);
    if (opt && nb_optim_add_module(ctx, opt, m, c->no_decay_1d) != NB_OK) {
        nb_optim_free(ctx, opt);
        return NULL;
    }
    return opt;
}

static nb_sched *make_sched(nb_ctx *ctx, const cfg *c, nb_optim *opt, int64_t steps_per_epoch)
{
    nb_sched_kind k = nb_sched_from_name(c->schedule);
    if (k == NB_SCHED_CONSTANT)
        return NULL;
    nb_sched_opts o = nb_sched_opts_default(k);
    int64_t steps = c->per_batch ? c->epochs * steps_per_epoch : c->epochs;
    o.step_size = c->step_size;
    o.gamma = c->gamma;
    o.t_max = c->t_max ? c->t_max : steps;
    o.eta_min = c->eta_min;
    o.warmup = c->warmup;
    o.total = c->total ? c->total : steps;
    o.max_lr = c->max_lr;
    o.pct_start = c->pct_start;
    o.div_factor = c->div_factor;
    o.final_div_factor = c->final_div_factor;
    o.mode_max = !strcmp(c->mode, "max");
    o.factor = c->factor;
    o.patience = (int)c->patience;
    o.threshold = c->threshold;
    o.cooldown = (int)c->cooldown;
    o.min_lr = c->min_lr;
    char ms[256];
    snprintf(ms, sizeof ms, "%s", c->milestones);
    for (char *save = NULL, *t = strtok_r(ms, ",", &save); t && o.n_milestones < 16;
         t = strtok_r(NULL, ",", &save))
        o.milestones[o.n_milestones++] = strtoll(t, NULL, 10);
    return nb_sched_new(ctx, opt, &o);
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
    if (!cfg_load(&c, argv[2], err, sizeof err) || !apply_sets(&c, argc, argv, 3, err, sizeof err)) {
        fprintf(stderr, "nabla: %s\n", err);
        cfg_free(&c);
        return 2;
    }
    nb_ctx *ctx = make_ctx(&c);
    if (!ctx)
        return fail(NULL, "out of memory");
    int rc = 1;
    data tr = {0}, te = {0};
    nb_split sp = {0};
    nb_norm norm = {0};
    nb_module *model = NULL;
    nb_optim *opt = NULL;
    nb_sched *sched = NULL;
    nb_loader *ltr = NULL, *lval = NULL, *lte = NULL;
    int64_t classes = 0;
    if (!load_split(ctx, &c, false, &tr) || (has_test(&c) && !load_split(ctx, &c, true, &te))) {
        if (nb_last_status(ctx) != NB_OK)
            fail(ctx, "data");
        goto out;
    }
    model = build_model(ctx, &c, tr.x, &classes);
    if (!model) {
        if (nb_last_status(ctx) != NB_OK)
            fail(ctx, "model");
        goto out;
    }
    if (!labels_ok(&c, tr.y, classes, c.train_labels[0] ? c.train_labels : c.train_csv) ||
        (te.y && !labels_ok(&c, te.y, classes, c.test_labels[0] ? c.test_labels : c.test_csv)))
        goto out;
    if (nb_split_make(ctx, tr.x->shape[0], c.val_fraction, c.seed, &sp) != NB_OK ||
        nb_norm_fit(ctx, tr.x, sp.train, sp.n_train, norm_kind(&c), &norm) != NB_OK) {
        fail(ctx, "data");
        goto out;
    }
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = c.batch_size;
    lo.shuffle = c.shuffle;
    lo.drop_last = c.drop_last;
    lo.prefetch = c.prefetch;
    lo.seed = c.seed;
    lo.crop_pad = (int)c.crop_pad;
    lo.hflip = c.hflip;
    lo.erase_p = c.erase_p;
    ltr = nb_loader_new(ctx, tr.x, tr.y, sp.train, sp.n_train, &norm, &lo);
    nb_loader_opts le = lo;
    le.crop_pad = 0; /* evaluation sees the images as they are */
    le.hflip = false;
    le.erase_p = 0;
    le.shuffle = le.drop_last = false;
    le.batch_size = 256;
    le.prefetch = false;
    if (ltr && sp.n_val > 0)
        lval = nb_loader_new(ctx, tr.x, tr.y, sp.val, sp.n_val, &norm, &le);
    if (ltr && te.x)
        lte = nb_loader_new(ctx, te.x, te.y, NULL, 0, &norm, &le);
    if (!ltr || (sp.n_val > 0 && !lval) || (te.x && !lte)) {
        fail(ctx, "data");
        goto out;
    }
    opt = make_optim(ctx, &c, model);
    int64_t steps_per_epoch = (nb_loader_batches(ltr) + c.accum_steps - 1) / c.accum_steps;
    sched = opt ? make_sched(ctx, &c, opt, steps_per_epoch) : NULL;
    if (!opt || (strcmp(c.schedule, "constant") && !sched)) {
        fail(ctx, "config");
        goto out;
    }
    progress pr = {false, false, 0};
    bool tty = isatty(STDERR_FILENO);
    pr.bar = !strcmp(c.progress, "bar") || (!strcmp(c.progress, "auto") && tty);
    pr.lines = strcmp(c.progress, "none") != 0;
    printf("nabla %s: %lld parameters, %lld train / %lld val / %lld test rows, %d threads\n",
           NB_VERSION_STRING, (long long)nb_module_param_count(model), (long long)sp.n_train,
           (long long)sp.n_val, te.x ? (long long)te.x->shape[0] : 0LL, nb_get_num_threads(ctx));
    nb_train_opts to = nb_train_opts_default();
    to.epochs = (int)c.epochs;
    to.loss = loss_kind(&c);
    to.accum_steps = (int)c.accum_steps;
    to.clip_norm = c.clip_norm;
    to.clip_value = c.clip_value;
    to.sched_per_batch = c.per_batch;
    to.patience = (int)c.early_stopping;
    to.min_delta = c.min_delta;
    to.monitor_acc = !strcmp(c.monitor, "val_acc");
    to.restore_best = c.restore_best;
    to.top_k = (int)c.top_k;
    to.out_dir = c.out[0] ? c.out : NULL;
    to.config_text = c.text;
    to.resume = c.resume[0] ? c.resume : NULL;
    to.on_step = on_step;
    to.on_epoch = on_epoch;
    to.user = &pr;
    nb_train_result res;
    if (nb_train(ctx, model, opt, sched, ltr, lval, &norm, &to, &res) != NB_OK) {
        if (pr.bar)
            fprintf(stderr, "\n");
        fail(ctx, "train");
        goto out;
    }
    nb_eval_result ev = {NAN, NAN, NAN, 0};
    if (lte && nb_evaluate(ctx, model, lte, to.loss, to.top_k, &ev) != NB_OK) {
        fail(ctx, "test");
        goto out;
    }
    if (write_vae_grids(ctx, &c, model, lte ? lte : (lval ? lval : ltr), te.x ? te.x : tr.x) != NB_OK) {
        fail(ctx, "images");
        goto out;
    }
    if (res.stopped_early)
        printf("early stop after epoch %d (best epoch %d)\n", res.epochs_run, res.best_epoch);
    if (lte)
        printf("test_loss %.4f  test_acc %.4f%s\n", ev.loss, ev.acc, to.top_k > 1 ? "" : "");
    printf("final epochs=%d train_loss=%.6f val_loss=%.6f test_acc=%.4f samples_per_s=%.0f\n",
           res.epochs_run, res.train_loss, res.val_loss, ev.acc, res.samples_per_s);
    rc = 0;
out:
    nb_loader_free(ctx, ltr);
    nb_loader_free(ctx, lval);
    nb_loader_free(ctx, lte);
    nb_sched_free(ctx, sched);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, model);
    nb_norm_free(ctx, &norm);
    nb_split_free(ctx, &sp);
    nb_ctx_free(ctx);
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
    if (!cfg_load(&c, argv[2], err, sizeof err) || !apply_sets(&c, argc, argv, need, err, sizeof err)) {
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
    fprintf(stderr, "nabla: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
