/* Diagnostics in the training loop (src/diag/watch.c, nb_diag_opts):
 *   - a 20-layer sigmoid MLP on Fashion-MNIST raises the vanishing alarm for
 *     its early layers; 20 layers of ReLU with He init and residual
 *     connections do not;
 *   - a learning rate 100x too high: the exploding and non-finite alarms, the
 *     latter naming the op and layer that made the first Inf; the run stops
 *     with NB_ERR_NUMERIC, or survives with "skip";
 *   - a NaN born in a backward pass is traced to that op's backward;
 *   - loss spikes and gradient growth on crafted sequences;
 *   - the run-folder files: headers, row counts, histogram counts, ranges.
 * The Fashion-MNIST tests skip when the dataset package is absent. */
#include "core/internal.h"
#include "diag/watch.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#define DIR "/usr/share/datasets/fashion-mnist/"

typedef struct {
    nb_ctx *ctx;
    nb_tensor *x, *y;
    nb_norm norm;
    nb_loader *l;
} fashion;

static bool fashion_open(fashion *f, int64_t rows, int64_t batch)
{
    if (access(DIR "train-images-idx3-ubyte.gz", R_OK) != 0)
        return false;
    nb_ctx_opts co = nb_ctx_opts_default();
    co.seed = 3;
    f->ctx = nb_ctx_new(&co);
    assert_non_null(f->ctx);
    f->x = nb_idx_read(f->ctx, DIR "train-images-idx3-ubyte.gz");
    f->y = nb_idx_read(f->ctx, DIR "train-labels-idx1-ubyte.gz");
    assert_true(f->x && f->y);
    nb_split sp;
    assert_int_equal(nb_split_make(f->ctx, rows, 0.0, 1, &sp), NB_OK);
    assert_int_equal(nb_norm_fit(f->ctx, f->x, sp.train, sp.n_train, NB_NORM_GLOBAL, &f->norm), NB_OK);
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = batch;
    lo.seed = 1;
    f->l = nb_loader_new(f->ctx, f->x, f->y, sp.train, sp.n_train, &f->norm, &lo);
    assert_non_null(f->l);
    nb_split_free(f->ctx, &sp);
    return true;
}

static void fashion_close(fashion *f)
{
    nb_loader_free(f->ctx, f->l);
    nb_ctx_free(f->ctx);
}

/* depth linear layers of width w; act between them; residual: each hidden
 * layer is x + relu(linear(x)) */
static nb_module *deep_mlp(nb_ctx *ctx, int depth, int64_t w, nb_act act, bool residual)
{
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_flatten_layer(ctx, NULL));
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc1", 784, w, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, act, 0));
    for (int i = 2; i < depth; i++) {
        char name[16];
        snprintf(name, sizeof name, "fc%d", i);
        if (residual) {
            nb_module *body = nb_sequential(ctx, NULL);
            nb_sequential_add(ctx, body, nb_linear(ctx, "lin", w, w, true));
            nb_sequential_add(ctx, body, nb_activation(ctx, NULL, act, 0));
            assert_int_equal(nb_sequential_add(ctx, m, nb_residual(ctx, name, body, NULL, NB_ACT_IDENTITY)),
                             NB_OK);
        } else {
            nb_sequential_add(ctx, m, nb_linear(ctx, name, w, w, true));
            nb_sequential_add(ctx, m, nb_activation(ctx, NULL, act, 0));
        }
    }
    char name[16];
    snprintf(name, sizeof name, "fc%d", depth);
    assert_int_equal(nb_sequential_add(ctx, m, nb_linear(ctx, name, w, 10, true)), NB_OK);
    return m;
}

static int count_kind(nb_alarms *a, nb_alarm_kind k, const char *where_prefix)
{
    int n = 0;
    for (int i = 0; i < nb_alarms_count(a, -1); i++) {
        const nb_alarm *al = nb_alarms_get(a, i);
        n += al->kind == k && (!where_prefix || !strncmp(al->where, where_prefix, strlen(where_prefix)));
    }
    return n;
}

/* configs/fashion_mlp.ini's model: 784-512-256-10 */
static nb_module *default_mlp(nb_ctx *ctx)
{
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_flatten_layer(ctx, NULL));
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc1", 784, 512, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc2", 512, 256, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    assert_int_equal(nb_sequential_add(ctx, m, nb_linear(ctx, "fc3", 256, 10, true)), NB_OK);
    return m;
}

static nb_train_result train_with(fashion *f, nb_module *m, nb_optim_kind ok, double lr, int epochs,
                                  nb_alarms *alarms, const char *out, nb_status want)
{
    nb_optim_opts oo = nb_optim_opts_default(ok);
    oo.lr = lr;
    nb_optim *opt = nb_optim_new(f->ctx, &oo);
    assert_int_equal(nb_optim_add_module(f->ctx, opt, m, false), NB_OK);
    nb_train_opts to = nb_train_opts_default();
    to.epochs = epochs;
    to.diag.every = 5;
    to.diag.echo = false;
    to.alarms = alarms;
    to.out_dir = out;
    nb_train_result r;
    nb_status st = nb_train(f->ctx, m, opt, NULL, f->l, NULL, &f->norm, &to, &r);
    if (st != want) {
        for (int i = 0; alarms && i < nb_alarms_count(alarms, -1); i++)
            printf("alarm: %s\n", nb_alarms_get(alarms, i)->message);
        fail_msg("train: status %d, want %d: %s", (int)st, (int)want, nb_last_error(f->ctx));
    }
    nb_clear_error(f->ctx);
    nb_optim_free(f->ctx, opt);
    return r;
}

static void test_vanishing(void **state)
{
    (void)state;
    fashion f;
    if (!fashion_open(&f, 3200, 64))
        skip();
    /* 20 sigmoid layers, PyTorch's default init: the early layers starve */
    nb_module *sig = deep_mlp(f.ctx, 20, 64, NB_ACT_SIGMOID, false);
    nb_alarms *a = nb_alarms_new(f.ctx, NULL, false);
    train_with(&f, sig, NB_OPT_ADAM, 1e-3, 1, a, NULL, NB_OK);
    int van = count_kind(a, NB_ALARM_VANISHING, NULL);
    printf("sigmoid x20: %d vanishing alarms, first for %s\n", van,
           van ? nb_alarms_get(a, 0)->where : "-");
    assert_true(van >= 5);
    assert_int_equal(count_kind(a, NB_ALARM_VANISHING, "fc1.weight"), 1); /* the first layer */
    assert_int_equal(count_kind(a, NB_ALARM_VANISHING, "fc19.weight"), 0); /* next to the output */
    nb_alarms_free(f.ctx, a);
    nb_module_free(f.ctx, sig);

    /* the same depth with ReLU, He init and residual connections: quiet */
    nb_module *res = deep_mlp(f.ctx, 20, 64, NB_ACT_RELU, true);
    nb_init he = nb_init_default(NB_INIT_KAIMING_NORMAL), zero = nb_init_default(NB_INIT_CONSTANT);
    he.nonlinearity = NB_GAIN_RELU;
    assert_int_equal(nb_module_init(f.ctx, res, &he, &zero), NB_OK);
    a = nb_alarms_new(f.ctx, NULL, false);
    train_with(&f, res, NB_OPT_ADAM, 1e-3, 1, a, NULL, NB_OK);
    printf("relu + he + residual x20: %d alarms\n", nb_alarms_count(a, -1));
    assert_int_equal(count_kind(a, NB_ALARM_VANISHING, NULL), 0);
    nb_alarms_free(f.ctx, a);
    nb_module_free(f.ctx, res);
    fashion_close(&f);
}

static void test_lr_too_high(void **state)
{
    (void)state;
    fashion f;
    if (!fashion_open(&f, 12800, 128))
        skip();
    /* SGD at lr 10 (100x 0.1): the gradient explodes, then the logits overflow */
    nb_module *m = default_mlp(f.ctx);
    nb_alarms *a = nb_alarms_new(f.ctx, NULL, false);
    nb_alarms_set_action(a, NB_ALARM_NONFINITE, NB_ACTION_STOP); /* a given log's actions rule */
    nb_train_result r = train_with(&f, m, NB_OPT_SGD, 10.0, 2, a, NULL, NB_ERR_NUMERIC);
    assert_true(r.stopped_by_alarm);
    int nf = count_kind(a, NB_ALARM_NONFINITE, NULL);
    assert_int_equal(nf, 1);
    const nb_alarm *last = nb_alarms_get(a, nb_alarms_count(a, -1) - 1);
    printf("lr too high: %s at step %lld: %s\n", nb_alarm_kind_name(last->kind), (long long)last->step,
           last->message);
    assert_int_equal(last->kind, NB_ALARM_NONFINITE);
    assert_non_null(strstr(last->message, "op '")); /* names the op ... */
    assert_non_null(strstr(last->where, "fc"));      /* ... and its layer */
    assert_true(count_kind(a, NB_ALARM_EXPLODING, NULL) >= 1);
    nb_alarms_free(f.ctx, a);
    nb_module_free(f.ctx, m);

    /* with skip, the run survives to its end */
    m = default_mlp(f.ctx);
    a = nb_alarms_new(f.ctx, NULL, false);
    nb_alarms_set_action(a, NB_ALARM_NONFINITE, NB_ACTION_SKIP);
    r = train_with(&f, m, NB_OPT_SGD, 10.0, 2, a, NULL, NB_OK);
    printf("with skip: %d epochs, %lld steps skipped\n", r.epochs_run, (long long)r.skipped_steps);
    assert_int_equal(r.epochs_run, 2);
    assert_false(r.stopped_by_alarm);
    assert_true(r.skipped_steps > 0);
    nb_alarms_free(f.ctx, a);
    nb_module_free(f.ctx, m);
    fashion_close(&f);
}

/* sqrt at 0: the forward is finite (0), the backward divides by 0. */
static void test_trace_backward(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc1", 2, 1, true));
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, m, &pl), NB_OK);
    for (int i = 0; i < pl.n; i++)
        nb_fill(ctx, pl.items[i].tensor, 0.0);
    nb_diag_opts o = nb_diag_opts_default();
    o.echo = false;
    nb__watch *w = nb__watch_new(ctx, &o, m, &pl, NULL, false, NULL);
    assert_non_null(w);
    nb__watch_begin(ctx, w, 1, 1);
    nb_tensor *x = nb_full(ctx, NB_F32, NB_SHAPE(3, 2), 1.0);
    nb_tensor *l = nb_sum(ctx, nb_sqrt(ctx, nb_module_forward(ctx, m, x)), 0, NULL, false);
    assert_true(isfinite(nb_get(l, 0)));
    assert_int_equal(nb_backward(ctx, l), NB_OK);
    assert_int_equal(nb__watch_grads(ctx, w, nb_get(l, 0)), NB_ACTION_STOP);
    const nb_alarm *al = nb_alarms_get(nb__watch_alarms(w), 0);
    assert_non_null(al);
    printf("traced: %s\n", al->message);
    assert_non_null(strstr(al->message, "backward of op 'sqrt'"));
    nb__watch_free(ctx, w);
    nb_param_list_free(ctx, &pl);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

/* Crafted sequences through the watch: a loss spike, then gradient growth. */
static void test_spikes(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc1", 4, 1, false));
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, m, &pl), NB_OK);
    nb_tensor *wt = pl.items[0].tensor;
    nb_diag_opts o = nb_diag_opts_default();
    o.echo = false;
    o.spike_window = 50;
    nb__watch *w = nb__watch_new(ctx, &o, m, &pl, NULL, false, NULL);
    nb_rng r;
    nb_rng_seed(&r, 9, 0);
    for (int s = 1; s <= 80; s++) {
        nb_arena_reset(ctx);
        nb__watch_begin(ctx, w, 1, s);
        wt->grad = nb_full(ctx, NB_F32, NB_SHAPE(1, 4), 0.5 + 0.01 * nb_rng_normal(&r));
        double lv = s == 60 ? 5.0 : 1.0 + 0.01 * nb_rng_normal(&r);
        nb__watch_grads(ctx, w, lv);
        assert_int_equal(nb__watch_end(ctx, w, 0.1, false), NB_OK);
        if (s == 60)
            assert_int_equal(count_kind(nb__watch_alarms(w), NB_ALARM_LOSS_SPIKE, "loss"), 1);
    }
    assert_int_equal(count_kind(nb__watch_alarms(w), NB_ALARM_EXPLODING, NULL), 0);
    nb__watch_begin(ctx, w, 1, 81);
    wt->grad = nb_full(ctx, NB_F32, NB_SHAPE(1, 4), 500.0); /* 1000x the usual norm */
    nb__watch_grads(ctx, w, 1.0);
    assert_int_equal(count_kind(nb__watch_alarms(w), NB_ALARM_EXPLODING, NULL), 1);
    assert_int_equal(count_kind(nb__watch_alarms(w), NB_ALARM_LOSS_SPIKE, "grad_norm"), 1);
    wt->grad = NULL;
    nb__watch_free(ctx, w);
    nb_param_list_free(ctx, &pl);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

static int64_t lines(const char *path, char *header, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s was not written", path);
    char buf[8192];
    int64_t n = 0;
    while (fgets(buf, sizeof buf, f)) {
        if (n == 0 && header) {
            size_t k = strlen(buf) < cap ? strlen(buf) : cap - 1;
            memcpy(header, buf, k);
            header[k] = '\0';
        }
        n++;
    }
    fclose(f);
    return n;
}

static void test_files(void **state)
{
    (void)state;
    fashion f;
    if (!fashion_open(&f, 1280, 64)) /* 20 steps an epoch */
        skip();
    char dir[] = "/tmp/nb_watch_XXXXXX";
    assert_non_null(mkdtemp(dir));
    nb_module *m = deep_mlp(f.ctx, 3, 32, NB_ACT_RELU, false);
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    nb_optim *opt = nb_optim_new(f.ctx, &oo);
    nb_optim_add_module(f.ctx, opt, m, false);
    nb_train_opts to = nb_train_opts_default();
    to.epochs = 2;
    to.out_dir = dir;
    to.diag.every = 10;
    to.diag.hist_every = 20;
    to.diag.hist_bins = 7;
    to.diag.echo = false;
    nb_train_result r;
    assert_int_equal(nb_train(f.ctx, m, opt, NULL, f.l, NULL, &f.norm, &to, &r), NB_OK);
    char path[256], head[256];
    /* 40 steps; statistics at steps 1, 10, 20, 30, 40; histograms at 1, 20, 40 */
    snprintf(path, sizeof path, "%s/steps.csv", dir);
    assert_int_equal(lines(path, head, sizeof head), 41);
    assert_string_equal(head, "step,epoch,loss,lr,grad_norm\n");
    snprintf(path, sizeof path, "%s/params.csv", dir);
    assert_int_equal(lines(path, head, sizeof head), 1 + 5 * 6); /* 3 layers x (weight, bias) */
    assert_string_equal(head, "step,epoch,name,grad_norm,weight_norm,update_ratio\n");
    snprintf(path, sizeof path, "%s/acts.csv", dir);
    assert_int_equal(lines(path, head, sizeof head), 1 + 5 * 6); /* flatten, fc1, relu, fc2, relu, fc3 */
    snprintf(path, sizeof path, "%s/hist.csv", dir);
    assert_int_equal(lines(path, head, sizeof head), 1 + 3 * 6 * 2);
    /* histogram counts add up to the tensor's size; dead fractions in [0, 1] */
    FILE *h = fopen(path, "r");
    char buf[4096];
    assert_non_null(fgets(buf, sizeof buf, h));
    while (fgets(buf, sizeof buf, h)) {
        char *c = buf;
        for (int k = 0; k < 6; k++)
            c = strchr(c, ',') + 1;
        int64_t sum = 0;
        for (char *e; *c && *c != '\n'; c = e)
            sum += strtoll(c, &e, 10);
        assert_true(sum == 784 * 32 || sum == 32 || sum == 32 * 32 || sum == 32 * 10 || sum == 10);
    }
    fclose(h);
    snprintf(path, sizeof path, "%s/acts.csv", dir);
    h = fopen(path, "r");
    assert_non_null(fgets(buf, sizeof buf, h));
    int relus = 0;
    while (fgets(buf, sizeof buf, h)) {
        char layer[32], kind[32];
        double mean, sd, dead;
        long long step;
        int ep;
        if (sscanf(buf, "%lld,%d,%31[^,],%31[^,],%lf,%lf,%lf", &step, &ep, layer, kind, &mean, &sd, &dead) == 7) {
            assert_string_equal(kind, "relu");
            assert_true(dead >= 0 && dead <= 1 && mean >= 0);
            relus++;
        }
    }
    fclose(h);
    assert_int_equal(relus, 10);
    const char *files[] = {"steps.csv", "params.csv", "acts.csv", "hist.csv", "alarms.csv", "log.csv",
                           "best.safetensors", "last.safetensors", "manifest.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    nb_optim_free(f.ctx, opt);
    nb_module_free(f.ctx, m);
    fashion_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_backward), cmocka_unit_test(test_spikes),
        cmocka_unit_test(test_files),          cmocka_unit_test(test_vanishing),
        cmocka_unit_test(test_lr_too_high),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
