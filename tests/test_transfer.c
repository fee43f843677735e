/* Transfer learning and reproducibility: nb_module_freeze (frozen weights
 * stay bit for bit through Adam with weight decay, SGD with momentum and
 * nb_train with clipping, also when frozen after training; unfreezing;
 * errors leave the model as it was), partial checkpoint loading into a model
 * with another head, and the manifest (valid JSON, its keys, the config text
 * round trip, in checkpoints' metadata, out of memory). */
#include "core/internal.h"

#include <jansson.h>
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

/* 200 rows of 12 features, 4 classes (the quadrant of two projections). */
static void make_data(nb_ctx *ctx, nb_tensor **x, nb_tensor **y)
{
    *x = nb_buffer(ctx, NB_F32, NB_SHAPE(200, 12));
    *y = nb_buffer(ctx, NB_I64, NB_SHAPE(200));
    assert_non_null(*x);
    assert_non_null(*y);
    nb_rng r;
    nb_rng_seed(&r, 7, 1);
    for (int i = 0; i < 200; i++) {
        double a = 0, b = 0;
        for (int j = 0; j < 12; j++) {
            double v = nb_rng_normal(&r);
            nb_set(*x, i * 12 + j, v);
            a += (j % 2 ? 1 : -1) * v;
            b += (j < 6 ? 1 : -1) * v;
        }
        nb_set(*y, i, (a > 0) * 2 + (b > 0));
    }
}

/* body (fc1, relu, fc2, relu) and a head of `classes` outputs */
static nb_module *mlp(nb_ctx *ctx, const char *head, int64_t classes)
{
    nb_module *m = nb_sequential(ctx, NULL);
    nb_module *body = nb_sequential(ctx, "body");
    assert_int_equal(nb_sequential_add(ctx, body, nb_linear(ctx, "fc1", 12, 32, true)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, body, nb_activation(ctx, NULL, NB_ACT_RELU, 0)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, body, nb_linear(ctx, NULL, 32, 16, true)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, body, nb_activation(ctx, NULL, NB_ACT_RELU, 0)), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, m, body), NB_OK);
    assert_int_equal(nb_sequential_add(ctx, m, nb_linear(ctx, head, 16, classes, true)), NB_OK);
    return m;
}

static void train_steps(nb_ctx *ctx, nb_module *m, nb_optim *opt, nb_tensor *x, nb_tensor *y, int n)
{
    for (int s = 0; s < n; s++) {
        nb_arena_reset(ctx);
        nb_tensor *loss = nb_cross_entropy(ctx, nb_module_forward(ctx, m, x), y, NULL);
        assert_non_null(loss);
        assert_int_equal(nb_backward(ctx, loss), NB_OK);
        assert_int_equal(nb_optim_step(ctx, opt), NB_OK);
        nb_optim_zero_grad(opt);
    }
    nb_arena_reset(ctx);
}

/* A copy of a parameter's bytes, to compare bit for bit. */
typedef struct {
    nb_tensor *t;
    void *bytes;
    size_t n;
} snap;

static snap take(nb_ctx *ctx, nb_module *m, const char *name)
{
    snap s;
    s.t = nb_module_find(ctx, m, name);
    assert_non_null(s.t);
    s.n = (size_t)nb_numel(s.t) * sizeof(float);
    s.bytes = malloc(s.n);
    assert_non_null(s.bytes);
    memcpy(s.bytes, s.t->data, s.n);
    return s;
}

static bool same(const snap *s) { return memcmp(s->bytes, s->t->data, s->n) == 0; }

static const char *const body_names[] = {"body.fc1.weight", "body.fc1.bias", "body.2.weight",
                                         "body.2.bias"};

static void check_frozen_through(nb_optim_kind kind, bool warm_up_first)
{
    nb_ctx *ctx = new_ctx(3);
    nb_tensor *x, *y;
    make_data(ctx, &x, &y);
    nb_module *m = mlp(ctx, "head", 4);
    nb_optim_opts oo = nb_optim_opts_default(kind);
    oo.weight_decay = 0.1;
    oo.momentum = kind == NB_OPT_SGD ? 0.9 : 0;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    assert_non_null(opt);
    assert_int_equal(nb_optim_add_module(ctx, opt, m, false), NB_OK);
    if (warm_up_first) /* gradients, momentum and Adam's moments all exist and are nonzero */
        train_steps(ctx, m, opt, x, y, 3);
    assert_int_equal(nb_module_freeze(ctx, m, "body.*", true), 4);
    snap s[4], head = take(ctx, m, "head.weight");
    for (int i = 0; i < 4; i++) {
        s[i] = take(ctx, m, body_names[i]);
        assert_false(nb_requires_grad(s[i].t));
        assert_null(s[i].t->grad);
    }
    assert_true(nb_requires_grad(head.t));
    train_steps(ctx, m, opt, x, y, 5);
    for (int i = 0; i < 4; i++) {
        assert_true(same(&s[i]));
        assert_null(s[i].t->grad); /* backward skipped it */
    }
    assert_false(same(&head));
    /* unfreezing: the body trains again */
    assert_int_equal(nb_module_freeze(ctx, m, "body.*", false), 4);
    for (int i = 0; i < 4; i++)
        assert_true(nb_requires_grad(s[i].t));
    train_steps(ctx, m, opt, x, y, 2);
    for (int i = 0; i < 4; i++) {
        assert_false(same(&s[i]));
        assert_non_null(s[i].t->grad);
        free(s[i].bytes);
    }
    free(head.bytes);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

static void test_freeze_adam_weight_decay(void **state)
{
    (void)state;
    check_frozen_through(NB_OPT_ADAM, false);
    check_frozen_through(NB_OPT_ADAMW, false);
}

/* Frozen after training: the stale gradient buffer, Adam's moments, SGD's
 * momentum and weight decay must not move the frozen weights. */
static void test_freeze_after_training(void **state)
{
    (void)state;
    check_frozen_through(NB_OPT_ADAM, true);
    check_frozen_through(NB_OPT_ADAMW, true);
    check_frozen_through(NB_OPT_SGD, true);
    check_frozen_through(NB_OPT_RMSPROP, true);
}

/* nb_train (with clipping) on a model whose first layer is frozen. */
static void test_freeze_with_nb_train(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(4);
    nb_tensor *x, *y;
    make_data(ctx, &x, &y);
    nb_module *m = mlp(ctx, "head", 4);
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAMW);
    nb_optim *opt = nb_optim_new(ctx, &oo);
    assert_int_equal(nb_optim_add_module(ctx, opt, m, true), NB_OK);
    assert_int_equal(nb_module_freeze(ctx, m, " body.fc1.weight , body.fc1.bias ", true), 2);
    snap w = take(ctx, m, "body.fc1.weight"), b = take(ctx, m, "body.fc1.bias"),
         w2 = take(ctx, m, "body.2.weight");
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = 32;
    nb_loader *tr = nb_loader_new(ctx, x, y, NULL, 0, NULL, &lo);
    assert_non_null(tr);
    nb_train_opts to = nb_train_opts_default();
    to.epochs = 2;
    to.clip_norm = 1.0;
    nb_train_result res;
    assert_int_equal(nb_train(ctx, m, opt, NULL, tr, NULL, NULL, &to, &res), NB_OK);
    assert_true(same(&w) && same(&b));
    assert_false(same(&w2));
    free(w.bytes);
    free(b.bytes);
    free(w2.bytes);
    nb_loader_free(ctx, tr);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

static void test_freeze_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_module *m = mlp(ctx, "head", 4);
    nb_module *bn = nb_batch_norm_layer(ctx, "bn", 4, 0.1, 1e-5, true);
    assert_int_equal(nb_sequential_add(ctx, m, bn), NB_OK);
    nb_tensor *hw = nb_module_find(ctx, m, "head.weight");
    /* one bad pattern: an error naming it, and nothing frozen */
    assert_int_equal(nb_module_freeze(ctx, m, "head.*, xyz", true), -(int)NB_ERR_ARG);
    assert_int_equal(nb_last_status(ctx), NB_ERR_ARG);
    assert_string_equal(nb_last_error(ctx), "freeze: pattern 'xyz' matches no parameter");
    nb_clear_error(ctx);
    assert_true(nb_requires_grad(hw));
    /* buffers are not parameters */
    assert_int_equal(nb_module_freeze(ctx, m, "bn.running_*", true), -(int)NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(ctx), "'bn.running_*' matches no parameter"));
    nb_clear_error(ctx);
    assert_int_equal(nb_module_freeze(ctx, m, "head.weight,,bn.*", true), -(int)NB_ERR_ARG);
    assert_non_null(strstr(nb_last_error(ctx), "empty pattern"));
    nb_clear_error(ctx);
    assert_int_equal(nb_module_freeze(ctx, m, "", true), -(int)NB_ERR_ARG);
    nb_clear_error(ctx);
    assert_int_equal(nb_module_freeze(ctx, m, NULL, true), -(int)NB_ERR_NULL);
    nb_clear_error(ctx);
    assert_int_equal(nb_module_freeze(ctx, NULL, "x", true), -(int)NB_ERR_NULL);
    nb_clear_error(ctx);
    assert_int_equal(nb_module_freeze(NULL, m, "x", true), -(int)NB_ERR_NULL);
    assert_int_equal(nb_module_freeze(ctx, m, "nope", false), -(int)NB_ERR_ARG);
    assert_string_equal(nb_last_error(ctx), "unfreeze: pattern 'nope' matches no parameter");
    nb_clear_error(ctx);
    assert_true(nb_requires_grad(hw));
    /* overlapping patterns count each parameter once; fnmatch classes work;
     * only bn's weight and bias match bn.* (its buffers are left alone) */
    assert_int_equal(nb_module_freeze(ctx, m, "head.*,head.weight,body.fc[1]*,bn.*", true), 6);
    assert_false(nb_requires_grad(hw));
    nb_tensor *rm = nb_module_find(ctx, m, "bn.running_mean");
    assert_false(nb_requires_grad(rm));
    assert_int_equal(nb_module_freeze(ctx, m, "*", false), 8);
    assert_int_equal(nb_module_freeze(ctx, m, "*", true), 8);
    assert_int_equal(nb_module_freeze(ctx, m, "*", true), 8); /* freezing twice is fine */
    assert_int_equal(nb_last_status(ctx), NB_OK);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

/* Pretrain, save; a model with another head loads the body partially, the
 * skipped list names the head; then the body is frozen and the head trains. */
static void test_partial_load_other_head(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(2);
    nb_tensor *x, *y;
    make_data(ctx, &x, &y);
    nb_module *pre = mlp(ctx, "head", 4);
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    nb_optim *opt = nb_optim_new(ctx, &oo);
    assert_int_equal(nb_optim_add_module(ctx, opt, pre, false), NB_OK);
    train_steps(ctx, pre, opt, x, y, 3);
    char path[340];
    snprintf(path, sizeof path, "%s/pre.safetensors", tmpdir);
    assert_int_equal(nb_checkpoint_save(ctx, path, pre, opt, NULL, NULL, NULL, "cfg"), NB_OK);
    nb_optim_free(ctx, opt);

    for (int variant = 0; variant < 2; variant++) {
        /* variant 0: the head keeps its name, another shape; 1: another name */
        nb_module *m = mlp(ctx, variant ? "classifier" : "head", 3);
        snap h = take(ctx, m, variant ? "classifier.weight" : "head.weight");
        char *skipped = NULL;
        assert_int_equal(nb_checkpoint_load(ctx, path, m, NULL, NULL, NULL, NULL, true, &skipped),
                         NB_OK);
        assert_non_null(skipped);
        if (variant == 0) {
            assert_non_null(strstr(skipped, "head.weight ([4,16] in file, [3,16] here)"));
            assert_non_null(strstr(skipped, "head.bias ([4] in file, [3] here)"));
        } else {
            assert_string_equal(skipped, "classifier.weight (absent), classifier.bias (absent)");
        }
        assert_null(strstr(skipped, "body"));
        nb_free_string(ctx, skipped);
        assert_true(same(&h)); /* the new head keeps its initialisation */
        for (int i = 0; i < 4; i++) {
            nb_tensor *a = nb_module_find(ctx, m, body_names[i]),
                      *b = nb_module_find(ctx, pre, body_names[i]);
            assert_memory_equal(a->data, b->data, (size_t)nb_numel(a) * sizeof(float));
        }
        free(h.bytes);
        nb_module_free(ctx, m);
    }
    nb_module_free(ctx, pre);
    nb_ctx_free(ctx);
}

/* ---- the manifest ------------------------------------------------------------- */
static const char *jget_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_non_null(v);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_manifest_json(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    const char *cfgtext = "[train]\nseed = 42 ; \"quoted\" \\ back\n\ttab ünïcode €\n";
    char *s = nb_manifest_json(ctx, 42, cfgtext);
    assert_non_null(s);
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    if (!j)
        fail_msg("manifest is not JSON: %s at line %d: %s", err.text, err.line, s);
    assert_true(json_is_object(j));
    assert_string_equal(jget_str(j, "nabla"), NB_VERSION_STRING);
    const char *cc = jget_str(j, "compiler");
    assert_true(!strncmp(cc, "gcc ", 4) || !strncmp(cc, "clang ", 6));
    jget_str(j, "build_type");
    jget_str(j, "c_flags");
    assert_true(json_is_boolean(json_object_get(j, "sanitize")));
    assert_non_null(strstr(jget_str(j, "blas"), "OpenBLAS"));
    assert_int_equal(json_integer_value(json_object_get(j, "blas_threads")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "threads")), nb_get_num_threads(ctx));
    assert_true(json_is_integer(json_object_get(j, "seed")));
    assert_int_equal(json_integer_value(json_object_get(j, "seed")), 42);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    assert_string_equal(jget_str(j, "host"), host);
    json_t *os = json_object_get(j, "os");
    assert_true(json_is_object(os));
    jget_str(os, "sysname");
    jget_str(os, "release");
    jget_str(os, "machine");
    const char *t = jget_str(j, "time"); /* 2026-12-01T09:14:03Z */
    assert_int_equal(strlen(t), 20);
    assert_true(t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' && t[19] == 'Z');
    assert_string_equal(jget_str(j, "config"), cfgtext);
    json_decref(j);
    nb_free_string(ctx, s);

    /* no config: null; a seed above INT64_MAX: a decimal string */
    s = nb_manifest_json(ctx, UINT64_MAX, NULL);
    j = json_loads(s, 0, &err);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "config")));
    assert_string_equal(jget_str(j, "seed"), "18446744073709551615");
    json_decref(j);
    nb_free_string(ctx, s);

    /* a config in Latin-1: bad bytes become '?', the JSON stays valid */
    s = nb_manifest_json(ctx, 0, "name = caf\xe9\nx = \xff\xfe ok \xc3\xa9");
    j = json_loads(s, 0, &err);
    assert_non_null(j);
    assert_string_equal(jget_str(j, "config"), "name = caf?\nx = ?? ok \xc3\xa9");
    json_decref(j);
    nb_free_string(ctx, s);
    assert_null(nb_manifest_json(NULL, 0, NULL));
    assert_int_equal(nb_last_status(ctx), NB_OK);
    nb_ctx_free(ctx);
}

static void test_manifest_in_checkpoint(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_module *m = mlp(ctx, "head", 4);
    char path[340];
    snprintf(path, sizeof path, "%s/m.safetensors", tmpdir);
    const char *cfgtext = "[model]\nlayers = \"a\", b\n";
    assert_int_equal(nb_checkpoint_save(ctx, path, m, NULL, NULL, NULL, NULL, cfgtext), NB_OK);
    nb_safetensors *f = nb_safetensors_open(ctx, path);
    assert_non_null(f);
    const char *ms = nb_safetensors_meta(f, "manifest");
    assert_non_null(ms);
    json_t *j = json_loads(ms, 0, NULL);
    assert_non_null(j);
    assert_string_equal(jget_str(j, "config"), cfgtext);
    assert_string_equal(jget_str(j, "nabla"), NB_VERSION_STRING);
    assert_true(json_is_integer(json_object_get(j, "seed"))); /* the context's seed */
    assert_int_equal(json_integer_value(json_object_get(j, "seed")), (json_int_t)ctx->seed);
    json_decref(j);
    assert_string_equal(nb_safetensors_meta(f, "config"), cfgtext);
    nb_safetensors_close(ctx, f);
    /* and it still loads */
    assert_int_equal(nb_checkpoint_load(ctx, path, m, NULL, NULL, NULL, NULL, false, NULL), NB_OK);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

/* ---- out of memory: every allocation of freeze, the manifest and a save ---------- */
typedef struct {
    long n, fail_at, live;
} counter;

static void *count_alloc(size_t size, size_t align, void *user)
{
    counter *c = user;
    if (c->fail_at >= 0 && c->n++ == c->fail_at)
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size ? size : 1) != 0)
        return NULL;
    c->live++;
    return p;
}

static void count_free(void *p, void *user)
{
    counter *c = user;
    if (p) {
        c->live--;
        free(p);
    }
}

static void test_out_of_memory(void **state)
{
    (void)state;
    char path[340];
    snprintf(path, sizeof path, "%s/oom.safetensors", tmpdir);
    bool reached_ok = false;
    for (long k = 0; k < 200 && !reached_ok; k++) {
        counter c = {0, -1, 0};
        nb_ctx_opts o = nb_ctx_opts_default();
        o.allocator = (nb_allocator){count_alloc, count_free, &c};
        o.num_threads = 1;
        nb_ctx *ctx = nb_ctx_new(&o);
        assert_non_null(ctx);
        nb_module *m = mlp(ctx, "head", 4);
        c.n = 0;
        c.fail_at = k; /* the k-th allocation from here on fails */
        int r = nb_module_freeze(ctx, m, "body.*", true);
        char *s = r == 4 ? nb_manifest_json(ctx, 1, "x") : NULL;
        nb_status st = s ? nb_checkpoint_save(ctx, path, m, NULL, NULL, NULL, NULL, "x") : NB_OK;
        if (r != 4) {
            assert_int_equal(r, -(int)NB_ERR_NOMEM);
            /* nothing changed */
            assert_true(nb_requires_grad(nb_module_find(ctx, m, "body.fc1.weight")));
        } else if (!s) {
            assert_int_equal(nb_last_status(ctx), NB_ERR_NOMEM);
        } else if (st != NB_OK) {
            assert_int_equal(st, NB_ERR_NOMEM);
        } else {
            reached_ok = true;
        }
        nb_free_string(ctx, s);
        nb_module_free(ctx, m);
        nb_ctx_free(ctx);
        assert_int_equal(c.live, 0);
    }
    assert_true(reached_ok);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nabla_transfer_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_freeze_adam_weight_decay),
        cmocka_unit_test(test_freeze_after_training),
        cmocka_unit_test(test_freeze_with_nb_train),
        cmocka_unit_test(test_freeze_errors),
        cmocka_unit_test(test_partial_load_other_head),
        cmocka_unit_test(test_manifest_json),
        cmocka_unit_test(test_manifest_in_checkpoint),
        cmocka_unit_test(test_out_of_memory),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "note: could not remove %s\n", tmpdir);
    return rc ? 1 : 0;
}
