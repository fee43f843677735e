/* What the commands share: data loading, the model, optimizer and schedule
 * from a config, and a "session" holding all of it for one run. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fail(nb_ctx *ctx, const char *what)
{
    fprintf(stderr, "nabla: %s%s%s\n", what ? what : "", what && ctx ? ": " : "",
            ctx ? nb_last_error(ctx) : "");
    return 1;
}


/* ---- data ----------------------------------------------------------------- */
bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

nb_tensor *read_any(nb_ctx *ctx, const cfg *c, const char *path)
{
    if (!strcmp(c->format, "npy") || ends_with(path, ".npy"))
        return nb_npy_read(ctx, path);
    return nb_idx_read(ctx, path);
}

bool csv_opts_from(const cfg *c, nb_csv_opts *o)
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

bool autoencoder(const cfg *c) { return !strcmp(c->target, "input"); }

bool load_split(nb_ctx *ctx, const cfg *c, bool test, data *d)
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

bool has_test(const cfg *c)
{
    return !strcmp(c->format, "csv") ? c->test_csv[0] != 0
                                     : (c->test_images[0] && (c->test_labels[0] || autoencoder(c)));
}

int64_t features(const nb_tensor *x) { return x->shape[0] ? nb_numel(x) / x->shape[0] : 0; }

nb_loss_kind loss_kind(const cfg *c)
{
    return !strcmp(c->loss, "mse")       ? NB_LOSS_MSE
           : !strcmp(c->loss, "bce")     ? NB_LOSS_BCE
           : !strcmp(c->loss, "bce_sum") ? NB_LOSS_BCE_SUM
                                         : NB_LOSS_CROSS_ENTROPY;
}

nb_norm_kind norm_kind(const cfg *c)
{
    return !strcmp(c->normalize, "global") ? NB_NORM_GLOBAL
           : !strcmp(c->normalize, "feature") ? NB_NORM_FEATURE
           : !strcmp(c->normalize, "range") ? NB_NORM_RANGE : NB_NORM_NONE;
}

/* Class ids must fit the model's outputs. */
bool labels_ok(const cfg *c, const nb_tensor *y, int64_t classes, const char *what)
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

nb_ctx *make_ctx(const cfg *c)
{
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = c->seed;
    o.num_threads = (int)c->threads;
    return nb_ctx_new(&o);
}

nb_optim *make_optim(nb_ctx *ctx, const cfg *c, nb_module *m)
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

nb_sched *make_sched(nb_ctx *ctx, const cfg *c, nb_optim *opt, int64_t steps_per_epoch)
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


/* ---- transfer learning: [model] init_from and freeze ---------------------------- */
/* Whether `name` is one of the entries of nb_checkpoint_load's skipped list
 * ("a (why), b (why)"; a reason may hold commas, a name holds none). */
static bool in_skipped(const char *skipped, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = skipped; p && (p = strstr(p, name)); p += n)
        if ((p == skipped || (p >= skipped + 3 && p[-2] == ',' && p[-1] == ' ' && p[-3] == ')')) &&
            !strncmp(p + n, " (", 2))
            return true;
    return false;
}

/* Loads the model's tensors that the checkpoint has with the same name and
 * shape (not its optimizer state or normalisation: the normalisation comes
 * from this run's training rows), then freezes; both reported on stdout. */
static int apply_transfer(nb_ctx *ctx, const cfg *c, nb_module *model)
{
    if (c->init_from[0]) {
        char *skipped = NULL;
        nb_param_list l = {0, NULL};
        if (nb_checkpoint_load(ctx, c->init_from, model, NULL, NULL, NULL, NULL, true, &skipped) != NB_OK)
            return fail(ctx, "init_from");
        if (nb_module_params(ctx, model, &l) != NB_OK) {
            nb_free_string(ctx, skipped);
            return fail(ctx, "init_from");
        }
        int n_skipped = 0;
        for (int i = 0; i < l.n; i++)
            n_skipped += in_skipped(skipped, l.items[i].name);
        printf("init_from: loaded %d tensors from %s; skipped: ", l.n - n_skipped, c->init_from);
        if (!n_skipped)
            printf("none\n");
        else {
            for (int i = 0, k = 0; i < l.n; i++)
                if (in_skipped(skipped, l.items[i].name))
                    printf("%s%s", k++ ? ", " : "", l.items[i].name);
            printf(" (absent or another shape)\n");
        }
        nb_param_list_free(ctx, &l);
        nb_free_string(ctx, skipped);
    }
    if (c->freeze[0]) {
        int64_t before = nb_module_param_count(model);
        int n = nb_module_freeze(ctx, model, c->freeze, true);
        if (n < 0)
            return fail(ctx, "model");
        /* values that still train */
        nb_param_list l = {0, NULL};
        int64_t trainable = 0;
        if (nb_module_params(ctx, model, &l) != NB_OK)
            return fail(ctx, "model");
        for (int i = 0; i < l.n; i++)
            if (!l.items[i].is_buffer && nb_requires_grad(l.items[i].tensor))
                trainable += nb_numel(l.items[i].tensor);
        nb_param_list_free(ctx, &l);
        printf("freeze: %d parameters frozen (%s); %lld of %lld values train\n", n, c->freeze,
               (long long)trainable, (long long)before);
    }
    return 0;
}

/* ---- text: windows of bytes -------------------------------------------------------- */
/* Windows over tok[begin, end): row i is tok[begin + i stride, + T) and its
 * targets the same one byte later; U8 [rows, T] both. */
static bool windows(nb_ctx *ctx, const nb_tensor *tok, int64_t begin, int64_t end, int64_t T,
                    int64_t stride, data *d)
{
    int64_t rows = end - begin > T ? (end - begin - T - 1) / stride + 1 : 0;
    d->x = d->y = NULL;
    if (rows < 1) {
        fprintf(stderr, "nabla: data: %lld bytes make no window of context %lld + 1\n",
                (long long)(end - begin), (long long)T);
        return false;
    }
    d->x = nb_buffer(ctx, NB_U8, NB_SHAPE(rows, T));
    d->y = nb_buffer(ctx, NB_U8, NB_SHAPE(rows, T));
    if (!d->x || !d->y)
        return false;
    const uint8_t *t = tok->data;
    for (int64_t r = 0; r < rows; r++) {
        memcpy((uint8_t *)d->x->data + r * T, t + begin + r * stride, (size_t)T);
        memcpy((uint8_t *)d->y->data + r * T, t + begin + r * stride + 1, (size_t)T);
    }
    return true;
}

/* The text's last val_fraction of bytes (whole, not sampled: windows that
 * overlap would leak) is the validation span, cut in windows of T; the rest
 * is cut every `stride` bytes for training. */
static bool load_text(nb_ctx *ctx, const cfg *c, session *s)
{
    nb_tensor *tok = nb_text_read(ctx, c->text_path);
    if (!tok)
        return false;
    int64_t n = tok->shape[0], n_val = (int64_t)((double)n * c->val_fraction);
    int64_t T = c->context, stride = c->stride ? c->stride : T;
    if (!windows(ctx, tok, 0, n - n_val, T, stride, &s->tr) ||
        (n_val > 0 && !windows(ctx, tok, n - n_val, n, T, T, &s->va)))
        return false;
    s->text_bytes = n;
    s->unigram = n_val > 0 ? nb_unigram_entropy(tok, n - n_val, n) : NAN;
    nb_tensor_free(ctx, tok);
    return true;
}

/* ---- a session: everything one training run needs ------------------------------ */
int session_open(const cfg *c, session *s)
{
    memset(s, 0, sizeof *s);
    s->c = c;
    s->ctx = make_ctx(c);
    if (!s->ctx)
        return fail(NULL, "out of memory");
    nb_ctx *ctx = s->ctx;
    bool text = !strcmp(c->format, "text");
    if (text ? !load_text(ctx, c, s)
             : !load_split(ctx, c, false, &s->tr) || (has_test(c) && !load_split(ctx, c, true, &s->te))) {
        if (nb_last_status(ctx) != NB_OK)
            fail(ctx, "data");
        return 1;
    }
    s->model = build_model(ctx, c, s->tr.x, &s->classes);
    if (!s->model)
        return nb_last_status(ctx) != NB_OK ? fail(ctx, "model") : 1;
    if (!labels_ok(c, s->tr.y, s->classes, c->train_labels[0] ? c->train_labels : c->train_csv) ||
        (s->te.y && !labels_ok(c, s->te.y, s->classes, c->test_labels[0] ? c->test_labels : c->test_csv)))
        return 1;
    if (apply_transfer(ctx, c, s->model)) /* before the optimizer is made */
        return 1;
    if (text) { /* all training windows; validation windows apart (load_text) */
        s->sp.n_train = s->tr.x->shape[0];
        s->sp.n_val = s->va.x ? s->va.x->shape[0] : 0;
    } else if (nb_split_make(ctx, s->tr.x->shape[0], c->val_fraction, c->seed, &s->sp) != NB_OK ||
               nb_norm_fit(ctx, s->tr.x, s->sp.train, s->sp.n_train, norm_kind(c), &s->norm) != NB_OK)
        return fail(ctx, "data");
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = c->batch_size;
    lo.shuffle = c->shuffle;
    lo.drop_last = c->drop_last;
    lo.prefetch = c->prefetch;
    lo.seed = c->seed;
    lo.crop_pad = (int)c->crop_pad;
    lo.hflip = c->hflip;
    lo.erase_p = c->erase_p;
    lo.tokens = text;
    s->ltr = nb_loader_new(ctx, s->tr.x, s->tr.y, s->sp.train, s->sp.n_train, &s->norm, &lo);
    nb_loader_opts le = lo;
    le.crop_pad = 0; /* evaluation sees the images as they are */
    le.hflip = false;
    le.erase_p = 0;
    le.shuffle = le.drop_last = false;
    le.batch_size = text ? c->batch_size : 256; /* windows: as many as training holds */
    le.prefetch = false;
    if (s->ltr && s->sp.n_val > 0)
        s->lval = text ? nb_loader_new(ctx, s->va.x, s->va.y, NULL, 0, &s->norm, &le)
                       : nb_loader_new(ctx, s->tr.x, s->tr.y, s->sp.val, s->sp.n_val, &s->norm, &le);
    if (s->ltr && s->te.x)
        s->lte = nb_loader_new(ctx, s->te.x, s->te.y, NULL, 0, &s->norm, &le);
    if (!s->ltr || (s->sp.n_val > 0 && !s->lval) || (s->te.x && !s->lte))
        return fail(ctx, "data");
    s->opt = make_optim(ctx, c, s->model);
    int64_t steps_per_epoch = (nb_loader_batches(s->ltr) + c->accum_steps - 1) / c->accum_steps;
    s->sched = s->opt ? make_sched(ctx, c, s->opt, steps_per_epoch) : NULL;
    if (!s->opt || (strcmp(c->schedule, "constant") && !s->sched))
        return fail(ctx, "config");
    return 0;
}

void session_close(session *s)
{
    nb_ctx *ctx = s->ctx;
    if (!ctx)
        return;
    nb_loader_free(ctx, s->ltr);
    nb_loader_free(ctx, s->lval);
    nb_loader_free(ctx, s->lte);
    nb_sched_free(ctx, s->sched);
    nb_optim_free(ctx, s->opt);
    nb_module_free(ctx, s->model);
    nb_norm_free(ctx, &s->norm);
    nb_split_free(ctx, &s->sp);
    nb_ctx_free(ctx); /* the data too */
    memset(s, 0, sizeof *s);
}
