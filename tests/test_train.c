/* Layers, initializers, the loader, the training loop and checkpoints:
 * exact resume, early stopping with best weights restored, partial and
 * mismatched loads, and the bad-input paths. */
#include "core/internal.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

static char tmpdir[256];

static nb_ctx *new_ctx(uint64_t seed)
{
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = seed;
    o.num_threads = 2;
    nb_ctx *ctx = nb_ctx_new(&o);
    assert_non_null(ctx);
    return ctx;
}

/* A synthetic 4-class problem: 600 rows of 12 features; the class is the
 * quadrant of two noisy projections. */
static void make_data(nb_ctx *ctx, nb_tensor **x, nb_tensor **y)
{
    *x = nb_buffer(ctx, NB_F32, NB_SHAPE(600, 12));
    *y = nb_buffer(ctx, NB_U8, NB_SHAPE(600));
    nb_rng r;
    nb_rng_seed(&r, 3, 3);
    for (int i = 0; i < 600; i++) {
        double a = 0, b = 0;
        for (int j = 0; j < 12; j++) {
            double v = nb_rng_normal(&r) + 3.0;
            nb_set(*x, i * 12 + j, v);
            a += (j % 2 ? 1 : -1) * (v - 3.0);
            b += (j < 6 ? 1 : -1) * (v - 3.0);
        }
        nb_set(*y, i, (a > 0) * 2 + (b > 0));
    }
}

static nb_module *mlp(nb_ctx *ctx)
{
    nb_module *m = nb_sequential(ctx, NULL);
    assert_int_equal(nb_sequential_add(ctx, m, nb_linear(ctx, "fc1", 12, 32, true)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, m, nb_dropout_layer(ctx, NULL, 0.2)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, m, nb_linear(ctx, "fc2", 32, 4, true)), NB_OK);
    return m;
}

/* ---- layers and initializers ------------------------------------------------ */
static void test_registry_names(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_module *m = mlp(ctx);
    nb_module *inner = nb_sequential(ctx, "head");
    assert_int_equal(nb_sequential_add(ctx, inner, nb_linear(ctx, NULL, 4, 2, false)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, m, inner), NB_OK);
    nb_param_list l;
    assert_int_equal(nb_module_params(ctx, m, &l), NB_OK);
    const char *want[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "head.0.weight"};
    assert_int_equal(l.n, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(l.items[i].name, want[i]);
    assert_ptr_equal(nb_module_find(ctx, m, "fc2.bias"), l.items[3].tensor);
    assert_null(nb_module_find(ctx, m, "fc3.weight"));
    assert_int_equal(nb_module_param_count(m), 12 * 32 + 32 + 32 * 4 + 4 + 4 * 2);
    nb_param_list_free(ctx, &l);
    /* a duplicate child name and a bad name are refused, the child freed */
    assert_int_equal(nb_sequential_add(ctx, m, nb_linear(ctx, "fc1", 2, 2, true)), NB_ERR_ARG);
    nb_clear_error(ctx);
    assert_null(nb_linear(ctx, "a.b", 2, 2, true));
    nb_clear_error(ctx);
    assert_null(nb_linear(ctx, "x", 0, 2, true));
    nb_clear_error(ctx);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

static void test_linear_and_dropout_modes(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_module *lin = nb_linear(ctx, "l", 3, 2, true);
    nb_tensor *w = nb_module_find(ctx, lin, "weight"), *b = nb_module_find(ctx, lin, "bias");
    /* torch.nn.Linear's default init: U(-1/sqrt(3), 1/sqrt(3)) */
    for (int i = 0; i < 6; i++)
        assert_true(fabs(nb_get(w, i)) <= 1 / sqrt(3.0));
    float xv[3] = {1, 2, 3};
    nb_tensor *x = nb_from_data(ctx, NB_F32, NB_SHAPE(1, 3), xv);
    nb_tensor *y = nb_module_forward(ctx, lin, x);
    for (int o = 0; o < 2; o++) {
        double want = nb_get(b, o);
        for (int i = 0; i < 3; i++)
            want += nb_get(w, o * 3 + i) * xv[i];
        assert_true(fabs(nb_get(y, o) - want) < 1e-6);
    }
    nb_module *d = nb_dropout_layer(ctx, NULL, 0.5);
    nb_tensor *ones = nb_full(ctx, NB_F32, NB_SHAPE(1000), 1.0);
    nb_tensor *on = nb_module_forward(ctx, d, ones);
    int zeros = 0;
    for (int i = 0; i < 1000; i++)
        zeros += nb_get(on, i) == 0;
    assert_true(zeros > 400 && zeros < 600);
    nb_module_train(d, false);
    assert_ptr_equal(nb_module_forward(ctx, d, ones), ones);
    nb_module_free(ctx, lin);
    nb_module_free(ctx, d);
    nb_ctx_free(ctx);
}

static void test_initializers(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(9);
    nb_tensor *w = nb_buffer(ctx, NB_F32, NB_SHAPE(400, 300));
    struct {
        nb_init_kind k;
        double sd;
    } cases[] = {
        {NB_INIT_XAVIER_UNIFORM, sqrt(2.0 / 700)}, /* uniform: sd = bound / sqrt(3) */
        {NB_INIT_XAVIER_NORMAL, sqrt(2.0 / 700)},
        {NB_INIT_KAIMING_NORMAL, sqrt(2.0 / 300)},
        {NB_INIT_KAIMING_UNIFORM, sqrt(2.0 / 300)},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        nb_init in = nb_init_default(cases[c].k);
        in.nonlinearity = cases[c].k >= NB_INIT_KAIMING_UNIFORM ? NB_GAIN_RELU : NB_GAIN_LINEAR;
        assert_int_equal(nb_init_tensor(ctx, w, &in), NB_OK);
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < 120000; i++) {
            double v = nb_get(w, i);
            s += v;
            s2 += v * v;
        }
        double sd = sqrt(s2 / 120000 - (s / 120000) * (s / 120000));
        if (fabs(sd / cases[c].sd - 1) > 0.02)
            fail_msg("initializer %d: sd %g, expected %g", (int)cases[c].k, sd, cases[c].sd);
    }
    /* orthogonal: W W^T = I for a wide matrix, W^T W = I for a tall one */
    for (int tall = 0; tall < 2; tall++) {
        nb_tensor *q = nb_buffer(ctx, NB_F64, NB_SHAPE(tall ? 30 : 20, tall ? 20 : 30));
        nb_init in = nb_init_default(NB_INIT_ORTHOGONAL);
        assert_int_equal(nb_init_tensor(ctx, q, &in), NB_OK);
        int64_t r = q->shape[0], c = q->shape[1], k = tall ? c : r;
        for (int64_t i = 0; i < k; i++)
            for (int64_t j = 0; j < k; j++) {
                double dot = 0;
                for (int64_t t = 0; t < (tall ? r : c); t++)
                    dot += tall ? nb_get(q, t * c + i) * nb_get(q, t * c + j)
                                : nb_get(q, i * c + t) * nb_get(q, j * c + t);
                assert_true(fabs(dot - (i == j)) < 1e-12);
            }
        nb_tensor_free(ctx, q);
    }
    nb_init bad = nb_init_default(NB_INIT_UNIFORM);
    bad.a = 2;
    bad.b = 1;
    assert_int_equal(nb_init_tensor(ctx, w, &bad), NB_ERR_ARG);
    nb_ctx_free(ctx);
}

/* ---- loader ------------------------------------------------------------------- */
static void test_loader_order_and_prefetch(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_tensor *x = nb_buffer(ctx, NB_F32, NB_SHAPE(103, 2));
    nb_tensor *y = nb_buffer(ctx, NB_I32, NB_SHAPE(103));
    for (int i = 0; i < 103; i++) {
        nb_set(x, 2 * i, i);
        nb_set(x, 2 * i + 1, -i);
        nb_set(y, i, i % 7);
    }
    nb_loader_opts o = nb_loader_opts_default();
    o.batch_size = 10;
    o.seed = 5;
    nb_loader *a = nb_loader_new(ctx, x, y, NULL, 0, NULL, &o);
    o.prefetch = true;
    nb_loader *b = nb_loader_new(ctx, x, y, NULL, 0, NULL, &o);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(nb_loader_batches(a), 11);
    double first_epoch0 = -1;
    for (int e = 0; e < 3; e++) {
        assert_int_equal(nb_loader_start(ctx, a, e), NB_OK);
        assert_int_equal(nb_loader_start(ctx, b, e), NB_OK);
        int seen[103] = {0}, rows = 0;
        for (;;) {
            nb_tensor *xa, *ya, *xb, *yb;
            assert_int_equal(nb_loader_next(ctx, a, &xa, &ya), NB_OK);
            assert_int_equal(nb_loader_next(ctx, b, &xb, &yb), NB_OK);
            if (!xa) {
                assert_null(xb);
                break;
            }
            assert_int_equal(xa->shape[0], xb->shape[0]);
            assert_int_equal(ya->dtype, NB_I64);
            for (int64_t i = 0; i < xa->shape[0]; i++) {
                int r = (int)nb_get(xa, 2 * i);
                assert_true(r >= 0 && r < 103);
                seen[r]++;
                assert_true(nb_get(xa, 2 * i + 1) == -r);
                assert_true(nb_get(ya, i) == r % 7);
                assert_true(nb_get(xb, 2 * i) == r); /* prefetch: the same batches */
                assert_true(nb_get(yb, i) == r % 7);
            }
            rows += (int)xa->shape[0];
        }
        assert_int_equal(rows, 103);
        for (int i = 0; i < 103; i++)
            assert_int_equal(seen[i], 1);
        /* another epoch, another order; the same epoch again, the same order */
        nb_loader_start(ctx, a, e);
        nb_tensor *xf, *yf;
        nb_loader_next(ctx, a, &xf, &yf);
        if (e == 0)
            first_epoch0 = nb_get(xf, 0);
        else
            assert_true(nb_get(xf, 0) != first_epoch0 || e == 2);
    }
    nb_loader_free(ctx, a);
    nb_loader_free(ctx, b);
    /* drop_last and a split */
    o.drop_last = true;
    o.prefetch = false;
    nb_split sp;
    assert_int_equal(nb_split_make(ctx, 103, 0.2, 1, &sp), NB_OK);
    assert_int_equal(sp.n_val, 21);
    assert_int_equal(sp.n_train, 82);
    nb_loader *c = nb_loader_new(ctx, x, y, sp.train, sp.n_train, NULL, &o);
    assert_int_equal(nb_loader_batches(c), 8);
    nb_loader_free(ctx, c);
    nb_split_free(ctx, &sp);
    /* bad input */
    assert_null(nb_loader_new(ctx, x, nb_buffer(ctx, NB_I64, NB_SHAPE(50)), NULL, 0, NULL, &o));
    assert_int_equal(nb_last_status(ctx), NB_ERR_SHAPE);
    nb_clear_error(ctx);
    int64_t bad_idx[2] = {0, 500};
    assert_null(nb_loader_new(ctx, x, y, bad_idx, 2, NULL, &o));
    assert_int_equal(nb_last_status(ctx), NB_ERR_INDEX);
    nb_ctx_free(ctx);
}

/* Augmentation: flips mirror, crops shift, erasing zeroes; the draws depend
 * on (seed, epoch, row position) only, so prefetching changes nothing. */
static void test_augmentation(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_tensor *x = nb_buffer(ctx, NB_F32, NB_SHAPE(64, 5, 6));
    for (int64_t i = 0; i < 64 * 30; i++)
        nb_set(x, i, 1 + (double)(i % 30)); /* every image 1..30, no zeros */
    nb_loader_opts o = nb_loader_opts_default();
    o.batch_size = 64;
    o.shuffle = false;
    o.seed = 3;
    o.hflip = true;
    nb_loader *l = nb_loader_new(ctx, x, NULL, NULL, 0, NULL, &o);
    nb_tensor *b, *yb;
    assert_int_equal(nb_loader_next(ctx, l, &b, &yb), NB_OK);
    int flipped = 0;
    for (int r = 0; r < 64; r++) {
        bool same = true, mirror = true;
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 6; j++) {
                double v = nb_get(b, r * 30 + i * 6 + j);
                same &= v == 1 + i * 6 + j;
                mirror &= v == 1 + i * 6 + (5 - j);
            }
        assert_true(same || mirror);
        flipped += mirror;
    }
    assert_true(flipped > 16 && flipped < 48);
    nb_loader_free(ctx, l);
    o.hflip = false;
    o.crop_pad = 2;
    o.erase_p = 0.5;
    nb_loader *a = nb_loader_new(ctx, x, NULL, NULL, 0, NULL, &o);
    o.prefetch = true;
    nb_loader *p = nb_loader_new(ctx, x, NULL, NULL, 0, NULL, &o);
    for (int e = 0; e < 2; e++) {
        nb_loader_start(ctx, a, e);
        nb_loader_start(ctx, p, e);
        nb_tensor *ba, *bp;
        assert_int_equal(nb_loader_next(ctx, a, &ba, NULL), NB_OK);
        assert_int_equal(nb_loader_next(ctx, p, &bp, NULL), NB_OK);
        assert_memory_equal(ba->data, bp->data, 64 * 30 * sizeof(float));
        int zeros = 0, moved = 0;
        for (int r = 0; r < 64; r++) {
            moved += nb_get(ba, r * 30 + 2 * 6 + 2) != 1 + 2 * 6 + 2; /* the centre moved */
            for (int k = 0; k < 30; k++)
                zeros += nb_get(ba, r * 30 + k) == 0;
        }
        assert_true(moved > 32); /* 24 of 25 crop offsets move the centre */
        assert_true(zeros > 0);
    }
    /* the same epoch again: the same images */
    nb_loader_start(ctx, a, 1);
    nb_tensor *b1, *b2;
    nb_loader_next(ctx, a, &b1, NULL);
    float first[30];
    memcpy(first, b1->data, sizeof first);
    nb_loader_start(ctx, a, 1);
    nb_loader_next(ctx, a, &b2, NULL);
    assert_memory_equal(first, b2->data, sizeof first);
    nb_loader_free(ctx, a);
    nb_loader_free(ctx, p);
    /* features that are not images cannot be augmented */
    nb_tensor *flat = nb_buffer(ctx, NB_F32, NB_SHAPE(10, 3));
    assert_null(nb_loader_new(ctx, flat, NULL, NULL, 0, NULL, &o));
    assert_int_equal(nb_last_status(ctx), NB_ERR_ARG);
    nb_ctx_free(ctx);
}

static void test_norm_fit(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_tensor *x = nb_buffer(ctx, NB_U8, NB_SHAPE(4, 2));
    uint8_t v[8] = {0, 10, 2, 10, 4, 10, 250, 10};
    memcpy(x->data, v, 8);
    int64_t rows[3] = {0, 1, 2}; /* the last row (250) is not a training row */
    nb_norm g, f;
    assert_int_equal(nb_norm_fit(ctx, x, rows, 3, NB_NORM_GLOBAL, &g), NB_OK);
    assert_true(fabs(nb_get(g.mean, 0) - 6.0) < 1e-6);
    assert_int_equal(nb_norm_fit(ctx, x, rows, 3, NB_NORM_FEATURE, &f), NB_OK);
    assert_true(fabs(nb_get(f.mean, 0) - 2.0) < 1e-6);
    assert_true(fabs(nb_get(f.std, 0) - sqrt(8.0 / 3)) < 1e-6);
    assert_true(nb_get(f.std, 1) == 1.0); /* a constant feature is only centred */
    nb_norm_free(ctx, &g);
    nb_norm_free(ctx, &f);
    nb_ctx_free(ctx);
}

/* ---- training, resume, early stopping ---------------------------------------- */
typedef struct {
    nb_module *m;
    nb_optim *opt;
    nb_sched *sched;
    nb_loader *tr, *val;
    nb_norm norm;
    nb_split sp;
} rig;

static void rig_make(nb_ctx *ctx, rig *r, nb_tensor *x, nb_tensor *y)
{
    r->m = mlp(ctx);
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    oo.lr = 3e-3;
    r->opt = nb_optim_new(ctx, &oo);
    assert_int_equal(nb_optim_add_module(ctx, r->opt, r->m, true), NB_OK);
    nb_sched_opts so = nb_sched_opts_default(NB_SCHED_STEP);
    so.step_size = 1;
    so.gamma = 0.7;
    r->sched = nb_sched_new(ctx, r->opt, &so);
    assert_int_equal(nb_split_make(ctx, 600, 0.25, 11, &r->sp), NB_OK);
    assert_int_equal(nb_norm_fit(ctx, x, r->sp.train, r->sp.n_train, NB_NORM_FEATURE, &r->norm), NB_OK);
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = 32;
    lo.seed = 4;
    lo.prefetch = true;
    r->tr = nb_loader_new(ctx, x, y, r->sp.train, r->sp.n_train, &r->norm, &lo);
    lo.shuffle = false;
    r->val = nb_loader_new(ctx, x, y, r->sp.val, r->sp.n_val, &r->norm, &lo);
    assert_non_null(r->tr);
    assert_non_null(r->val);
}

static void rig_free(nb_ctx *ctx, rig *r)
{
    nb_loader_free(ctx, r->tr);
    nb_loader_free(ctx, r->val);
    nb_sched_free(ctx, r->sched);
    nb_optim_free(ctx, r->opt);
    nb_module_free(ctx, r->m);
    nb_norm_free(ctx, &r->norm);
    nb_split_free(ctx, &r->sp);
}

/* every model tensor of two rigs, byte for byte */
static void assert_same_weights(nb_ctx *c1, rig *a, nb_ctx *c2, rig *b)
{
    nb_param_list la, lb;
    assert_int_equal(nb_module_params(c1, a->m, &la), NB_OK);
    assert_int_equal(nb_module_params(c2, b->m, &lb), NB_OK);
    assert_int_equal(la.n, lb.n);
    for (int i = 0; i < la.n; i++)
        if (memcmp(la.items[i].tensor->data, lb.items[i].tensor->data,
                   (size_t)nb_numel(la.items[i].tensor) * 4) != 0)
            fail_msg("tensor %s differs", la.items[i].name);
    nb_param_list_free(c1, &la);
    nb_param_list_free(c2, &lb);
}

static void test_resume_is_exact(void **state)
{
    (void)state;
    char dir_a[300], dir_b[300], last[340];
    snprintf(dir_a, sizeof dir_a, "%s/straight", tmpdir);
    snprintf(dir_b, sizeof dir_b, "%s/resumed", tmpdir);
    snprintf(last, sizeof last, "%s/last.safetensors", dir_b);

    /* two epochs straight */
    nb_ctx *c1 = new_ctx(21);
    nb_tensor *x1, *y1;
    make_data(c1, &x1, &y1);
    rig a;
    rig_make(c1, &a, x1, y1);
    nb_train_opts o = nb_train_opts_default();
    o.epochs = 2;
    o.out_dir = dir_a;
    o.restore_best = false;
    nb_train_result ra;
    assert_int_equal(nb_train(c1, a.m, a.opt, a.sched, a.tr, a.val, &a.norm, &o, &ra), NB_OK);
    assert_int_equal(ra.epochs_run, 2);

    /* one epoch, then a new process-like start that resumes from the checkpoint */
    nb_ctx *c2 = new_ctx(21);
    nb_tensor *x2, *y2;
    make_data(c2, &x2, &y2);
    rig b;
    rig_make(c2, &b, x2, y2);
    o.epochs = 1;
    o.out_dir = dir_b;
    nb_train_result rb;
    assert_int_equal(nb_train(c2, b.m, b.opt, b.sched, b.tr, b.val, &b.norm, &o, &rb), NB_OK);
    rig_free(c2, &b);
    nb_ctx_free(c2);

    nb_ctx *c3 = new_ctx(999); /* another seed: the checkpoint's generator state wins */
    nb_tensor *x3, *y3;
    make_data(c3, &x3, &y3);
    rig d;
    rig_make(c3, &d, x3, y3);
    o.epochs = 2;
    o.resume = last;
    assert_int_equal(nb_train(c3, d.m, d.opt, d.sched, d.tr, d.val, &d.norm, &o, &rb), NB_OK);
    assert_int_equal(rb.epochs_run, 2);
    assert_same_weights(c1, &a, c3, &d);
    assert_true(fabs(nb_optim_lr(d.opt, 0) - nb_optim_lr(a.opt, 0)) == 0);
    rig_free(c1, &a);
    rig_free(c3, &d);
    nb_ctx_free(c1);
    nb_ctx_free(c3);
}

static void test_learns_and_early_stops(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(5);
    nb_tensor *x, *y;
    make_data(ctx, &x, &y);
    rig r;
    rig_make(ctx, &r, x, y);
    nb_sched_free(ctx, r.sched);
    r.sched = NULL;
    nb_train_opts o = nb_train_opts_default();
    o.epochs = 60;
    o.patience = 3;
    o.min_delta = 1e-3;
    o.monitor_acc = true;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/early", tmpdir);
    o.out_dir = dir;
    nb_train_result res;
    assert_int_equal(nb_train(ctx, r.m, r.opt, NULL, r.tr, r.val, &r.norm, &o, &res), NB_OK);
    printf("learned: best val acc %.3f at epoch %d of %d\n", res.best_metric, res.best_epoch,
           res.epochs_run);
    assert_true(res.best_metric > 0.8); /* chance is 0.25 */
    assert_true(res.stopped_early);
    assert_int_equal(res.epochs_run, res.best_epoch + 3);
    /* the weights now are the best epoch's: evaluation gives its accuracy */
    nb_eval_result ev;
    assert_int_equal(nb_evaluate(ctx, r.m, r.val, NB_LOSS_CROSS_ENTROPY, 2, &ev), NB_OK);
    assert_true(fabs(ev.acc - res.best_metric) < 1e-12);
    assert_true(ev.topk >= ev.acc);
    /* log.csv has a header and one line per epoch */
    char path[340], line[512];
    snprintf(path, sizeof path, "%s/log.csv", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int lines = 0;
    while (fgets(line, sizeof line, f))
        lines++;
    fclose(f);
    assert_int_equal(lines, res.epochs_run + 1);
    rig_free(ctx, &r);
    nb_ctx_free(ctx);
}

/* Two micro-batches of 16 accumulated make the step of one batch of 32 (the
 * epoch's order is the same permutation for both). */
static void test_gradient_accumulation(void **state)
{
    (void)state;
    nb_module *m[2];
    nb_ctx *ctx[2];
    for (int k = 0; k < 2; k++) {
        ctx[k] = new_ctx(8);
        nb_tensor *x, *y;
        make_data(ctx[k], &x, &y);
        m[k] = nb_sequential(ctx[k], NULL);
        nb_sequential_add(ctx[k], m[k], nb_linear(ctx[k], "fc1", 12, 16, true));
        nb_sequential_add(ctx[k], m[k], nb_activation(ctx[k], NULL, NB_ACT_TANH, 0));
        nb_sequential_add(ctx[k], m[k], nb_linear(ctx[k], "fc2", 16, 4, true));
        nb_optim_opts oo = nb_optim_opts_default(NB_OPT_SGD);
        oo.lr = 0.05;
        nb_optim *opt = nb_optim_new(ctx[k], &oo);
        nb_optim_add_module(ctx[k], opt, m[k], false);
        nb_loader_opts lo = nb_loader_opts_default();
        lo.batch_size = k == 0 ? 32 : 16;
        lo.seed = 2;
        nb_norm nm;
        nb_norm_fit(ctx[k], x, NULL, 0, NB_NORM_FEATURE, &nm);
        int64_t rows[576];
        for (int i = 0; i < 576; i++)
            rows[i] = i;
        nb_loader *l = nb_loader_new(ctx[k], x, y, rows, 576, &nm, &lo);
        nb_train_opts o = nb_train_opts_default();
        o.epochs = 2;
        o.accum_steps = k == 0 ? 1 : 2;
        nb_train_result r;
        assert_int_equal(nb_train(ctx[k], m[k], opt, NULL, l, NULL, NULL, &o, &r), NB_OK);
        assert_int_equal(nb_optim_steps(opt), 36); /* 18 steps an epoch either way */
        nb_loader_free(ctx[k], l);
        nb_optim_free(ctx[k], opt);
        nb_norm_free(ctx[k], &nm);
    }
    nb_param_list a, b;
    nb_module_params(ctx[0], m[0], &a);
    nb_module_params(ctx[1], m[1], &b);
    for (int i = 0; i < a.n; i++)
        for (int64_t j = 0; j < nb_numel(a.items[i].tensor); j++) {
            double u = nb_get(a.items[i].tensor, j), v = nb_get(b.items[i].tensor, j);
            if (fabs(u - v) > 1e-5 * (1 + fabs(u)))
                fail_msg("%s[%lld]: %g vs %g", a.items[i].name, (long long)j, u, v);
        }
    nb_param_list_free(ctx[0], &a);
    nb_param_list_free(ctx[1], &b);
    for (int k = 0; k < 2; k++) {
        nb_module_free(ctx[k], m[k]);
        nb_ctx_free(ctx[k]);
    }
}

static void test_checkpoint_partial_and_mismatch(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(5);
    nb_module *m = mlp(ctx);
    char path[340];
    snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
    assert_int_equal(nb_checkpoint_save(ctx, path, m, NULL, NULL, NULL, NULL, "x=1"), NB_OK);
    /* a model with another head: strict load fails and changes nothing */
    nb_module *m2 = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m2, nb_linear(ctx, "fc1", 12, 32, true));
    nb_sequential_add(ctx, m2, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    nb_sequential_add(ctx, m2, nb_linear(ctx, "fc2", 32, 7, true));
    nb_tensor *w1 = nb_module_find(ctx, m2, "fc1.weight");
    float before = (float)nb_get(w1, 0);
    assert_int_equal(nb_checkpoint_load(ctx, path, m2, NULL, NULL, NULL, NULL, false, NULL),
                     NB_ERR_SHAPE);
    assert_non_null(strstr(nb_last_error(ctx), "\"fc2.weight\" is [4,32] in the file but [7,32]"));
    nb_clear_error(ctx);
    assert_true((float)nb_get(w1, 0) == before);
    /* partial: the body loads, the head is reported */
    char *skipped = NULL;
    assert_int_equal(nb_checkpoint_load(ctx, path, m2, NULL, NULL, NULL, NULL, true, &skipped), NB_OK);
    assert_int_equal(nb_last_status(ctx), NB_OK); /* skipping is not an error */
    assert_non_null(skipped);
    assert_non_null(strstr(skipped, "fc2.weight ([4,32] in file, [7,32] here)"));
    assert_non_null(strstr(skipped, "fc2.bias"));
    nb_free_string(ctx, skipped);
    assert_true(nb_get(w1, 0) == nb_get(nb_module_find(ctx, m, "fc1.weight"), 0));
    /* an optimizer asked of a file without one */
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_SGD);
    nb_optim *opt = nb_optim_new(ctx, &oo);
    nb_optim_add_module(ctx, opt, m, false);
    assert_int_equal(nb_checkpoint_load(ctx, path, m, opt, NULL, NULL, NULL, false, NULL),
                     NB_ERR_FORMAT);
    nb_clear_error(ctx);
    /* a corrupt file: clear error */
    FILE *f = fopen(path, "r+b");
    fseek(f, 12, SEEK_SET);
    fputc('#', f);
    fclose(f);
    assert_int_equal(nb_checkpoint_load(ctx, path, m, NULL, NULL, NULL, NULL, false, NULL),
                     NB_ERR_FORMAT);
    nb_clear_error(ctx);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, m);
    nb_module_free(ctx, m2);
    nb_ctx_free(ctx);
}

static void test_train_bad_input(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(5);
    nb_tensor *x, *y;
    make_data(ctx, &x, &y);
    rig r;
    rig_make(ctx, &r, x, y);
    nb_train_opts o = nb_train_opts_default();
    o.epochs = 0;
    assert_int_equal(nb_train(ctx, r.m, r.opt, NULL, r.tr, NULL, NULL, &o, NULL), NB_ERR_ARG);
    nb_clear_error(ctx);
    o = nb_train_opts_default();
    o.resume = "/nonexistent/ckpt.safetensors";
    assert_int_equal(nb_train(ctx, r.m, r.opt, NULL, r.tr, NULL, NULL, &o, NULL), NB_ERR_IO);
    nb_clear_error(ctx);
    /* a learning rate so large the loss overflows: a clear error, not a crash */
    nb_optim_set_lr(r.opt, -1, 1e30);
    o = nb_train_opts_default();
    o.epochs = 3;
    assert_int_equal(nb_train(ctx, r.m, r.opt, NULL, r.tr, NULL, NULL, &o, NULL), NB_ERR_NUMERIC);
    assert_non_null(strstr(nb_last_error(ctx), "train: the loss is"));
    nb_clear_error(ctx);
    nb_optim_opts bad = nb_optim_opts_default(NB_OPT_ADAM);
    bad.lr = -0.1;
    assert_null(nb_optim_new(ctx, &bad));
    assert_int_equal(nb_last_status(ctx), NB_ERR_ARG);
    nb_clear_error(ctx);
    rig_free(ctx, &r);
    nb_ctx_free(ctx);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nabla_train_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_names),
        cmocka_unit_test(test_linear_and_dropout_modes),
        cmocka_unit_test(test_initializers),
        cmocka_unit_test(test_loader_order_and_prefetch),
        cmocka_unit_test(test_augmentation),
        cmocka_unit_test(test_norm_fit),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_learns_and_early_stops),
        cmocka_unit_test(test_gradient_accumulation),
        cmocka_unit_test(test_checkpoint_partial_and_mismatch),
        cmocka_unit_test(test_train_bad_input),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "note: could not remove %s\n", tmpdir);
    return rc ? 1 : 0;
}
