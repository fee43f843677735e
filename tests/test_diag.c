/* Diagnostics (src/diag): the alarm log, sample diversity and the
 * mode-collapse detector.
 *
 * Alarms: counts, order, fields, actions, names, the callback, and the CSV
 * read back byte for byte (header once across two logs appending to one
 * file; quoting). Diversity: a hand-computed case, brute force on random
 * data (one and several Gram blocks, a strided view), identical rows, class
 * entropy through a linear layer with known argmaxes, modes restored and
 * the arena left as found. Detector: each criterion, patience, once per
 * streak, re-arming, bad options. Temporary files go in the current folder
 * (ctest runs in the build's tests folder) and are removed. */
#include "core/internal.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The call returned `want`, recorded it with `text` in the message; cleared. */
static void expect_err(nb_ctx *ctx, nb_status got, nb_status want, const char *text)
{
    assert_int_equal(got, want);
    assert_int_equal(nb_last_status(ctx), want);
    assert_non_null(strstr(nb_last_error(ctx), text));
    nb_clear_error(ctx);
}
#define NEAR(a, b, tol) assert_true(fabs((a) - (b)) <= (tol))

/* ---- alarms --------------------------------------------------------------- */
static void test_alarm_names(void **state)
{
    (void)state;
    for (int k = 0; k < NB_ALARM_COUNT; k++)
        assert_int_equal(nb_alarm_kind_from_name(nb_alarm_kind_name((nb_alarm_kind)k)), k);
    for (int a = 0; a < NB_ACTION_COUNT; a++)
        assert_int_equal(nb_alarm_action_from_name(nb_alarm_action_name((nb_alarm_action)a)), a);
    assert_string_equal(nb_alarm_kind_name(NB_ALARM_MODE_COLLAPSE), "mode_collapse");
    assert_string_equal(nb_alarm_kind_name(NB_ALARM_LOSS_SPIKE), "loss_spike");
    assert_string_equal(nb_alarm_action_name(NB_ACTION_SKIP), "skip");
    assert_int_equal(nb_alarm_kind_from_name("collapse"), NB_ALARM_COUNT);
    assert_int_equal(nb_alarm_kind_from_name(NULL), NB_ALARM_COUNT);
    assert_int_equal(nb_alarm_action_from_name("Warn"), NB_ACTION_COUNT);
    assert_string_equal(nb_alarm_kind_name(NB_ALARM_COUNT), "?");
    assert_string_equal(nb_alarm_action_name((nb_alarm_action)-1), "?");
}

typedef struct {
    int calls;
    nb_alarm last;
} seen_t;

static void on_raise(const nb_alarm *al, void *user)
{
    seen_t *s = user;
    s->calls++;
    s->last = *al;
}

static void test_alarm_log(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_alarms *a = nb_alarms_new(ctx, NULL, true); /* echo on: lines on stderr */
    assert_non_null(a);
    for (int k = 0; k < NB_ALARM_COUNT; k++)
        assert_int_equal(nb_alarms_action(a, (nb_alarm_kind)k), NB_ACTION_WARN);
    nb_alarms_set_action(a, NB_ALARM_NONFINITE, NB_ACTION_STOP);
    nb_alarms_set_action(a, NB_ALARM_LOSS_SPIKE, NB_ACTION_SKIP);
    nb_alarms_set_action(a, NB_ALARM_EXPLODING, NB_ACTION_COUNT); /* ignored */
    assert_int_equal(nb_alarms_action(a, NB_ALARM_NONFINITE), NB_ACTION_STOP);
    assert_int_equal(nb_alarms_action(a, NB_ALARM_EXPLODING), NB_ACTION_WARN);
    seen_t seen = {0};
    nb_alarms_on_raise(a, on_raise, &seen);

    assert_int_equal(nb_alarm_raise(ctx, a, NB_ALARM_LOSS_SPIKE, 1, 10, "", 7.5, 4, "z %d", 7),
                     NB_ACTION_SKIP);
    assert_int_equal(nb_alarm_raise(ctx, a, NB_ALARM_NONFINITE, 2, 20, "fc1.weight", NAN, 0,
                                    "NaN in %s", "grad"),
                     NB_ACTION_STOP);
    assert_int_equal(nb_alarm_raise(ctx, a, NB_ALARM_LOSS_SPIKE, 0, 30, NULL, 9, 4, "again"),
                     NB_ACTION_SKIP);
    assert_int_equal(nb_alarm_raise(ctx, a, NB_ALARM_MODE_COLLAPSE, 3, 1200, "generator", 0.3,
                                    0.5, "line one\nline two"),
                     NB_ACTION_WARN);
    for (int i = 0; i < 40; i++) /* grows the array past its first capacity */
        nb_alarm_raise(ctx, a, NB_ALARM_VANISHING, 4, 100 + i, "layer", 1e-9, 1e-6, "%d", i);
    assert_int_equal(nb_last_status(ctx), NB_OK);

    assert_int_equal(nb_alarms_count(a, -1), 44);
    assert_int_equal(nb_alarms_count(a, NB_ALARM_LOSS_SPIKE), 2);
    assert_int_equal(nb_alarms_count(a, NB_ALARM_NONFINITE), 1);
    assert_int_equal(nb_alarms_count(a, NB_ALARM_EXPLODING), 0);
    assert_int_equal(nb_alarms_count(a, NB_ALARM_VANISHING), 40);
    assert_int_equal(nb_alarms_count(a, NB_ALARM_COUNT), 0);
    assert_int_equal(nb_alarms_count(a, -2), 0);

    const nb_alarm *al = nb_alarms_get(a, 1);
    assert_non_null(al);
    assert_int_equal(al->kind, NB_ALARM_NONFINITE);
    assert_int_equal(al->action, NB_ACTION_STOP);
    assert_int_equal(al->epoch, 2);
    assert_int_equal(al->step, 20);
    assert_string_equal(al->where, "fc1.weight");
    assert_true(isnan(al->value));
    assert_string_equal(al->message, "NaN in grad");
    al = nb_alarms_get(a, 0);
    assert_string_equal(al->message, "z 7");
    assert_true(al->value == 7.5 && al->threshold == 4);
    assert_string_equal(nb_alarms_get(a, 2)->where, ""); /* NULL where */
    assert_string_equal(nb_alarms_get(a, 3)->message, "line one line two");
    assert_int_equal(nb_alarms_get(a, 43)->step, 139);
    assert_string_equal(nb_alarms_get(a, 43)->message, "39");
    assert_null(nb_alarms_get(a, 44));
    assert_null(nb_alarms_get(a, -1));

    assert_int_equal(seen.calls, 44);
    assert_int_equal(seen.last.step, 139);
    assert_int_equal(seen.last.kind, NB_ALARM_VANISHING);
    nb_alarms_on_raise(a, NULL, NULL);
    nb_alarm_raise(ctx, a, NB_ALARM_EXPLODING, 5, 1, "x", 1e9, 1e6, "big");
    assert_int_equal(seen.calls, 44);
    nb_alarms_free(ctx, a);
    nb_ctx_free(ctx);
}

#define HEADER "epoch,step,kind,where,value,threshold,action,message\n"
#define ROW1 "3,1200,mode_collapse,\"generator\",0.25,0.5,stop,\"said \"\"stop\"\", then 2\"\n"

static void test_alarm_csv(void **state)
{
    (void)state;
    const char *path = "test_diag_alarms.csv";
    remove(path);
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_alarms *a = nb_alarms_new(ctx, path, false);
    assert_non_null(a);
    nb_alarms_set_action(a, NB_ALARM_MODE_COLLAPSE, NB_ACTION_STOP);
    nb_alarm_raise(ctx, a, NB_ALARM_MODE_COLLAPSE, 3, 1200, "generator", 0.25, 0.5,
                   "said \"%s\", then %d", "stop", 2);
    /* the row is flushed at once: readable before the log is closed */
    assert_string_equal(slurp(path), HEADER ROW1);
    nb_alarms_free(ctx, a);

    a = nb_alarms_new(ctx, path, false); /* appends; no second header */
    assert_non_null(a);
    assert_int_equal(nb_alarms_count(a, -1), 0); /* a new log starts empty */
    nb_alarm_raise(ctx, a, NB_ALARM_NONFINITE, 0, -1, "a,\"b\"", INFINITY, 1e-7, "%s", "");
    nb_alarms_free(ctx, a);
    assert_string_equal(slurp(path),
                        HEADER ROW1
                        "0,-1,nonfinite,\"a,\"\"b\"\"\",inf,1e-07,warn,\"\"\n");
    assert_int_equal(nb_last_status(ctx), NB_OK);
    assert_int_equal(remove(path), 0);
    nb_ctx_free(ctx);
}

static void test_alarm_null_and_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_alarms_set_action(NULL, NB_ALARM_NONFINITE, NB_ACTION_STOP);
    nb_alarms_on_raise(NULL, on_raise, NULL);
    assert_int_equal(nb_alarms_action(NULL, NB_ALARM_NONFINITE), NB_ACTION_WARN);
    assert_int_equal(nb_alarms_count(NULL, -1), 0);
    assert_null(nb_alarms_get(NULL, 0));
    nb_alarms_free(ctx, NULL);
    assert_null(nb_alarms_new(NULL, NULL, false));
    assert_int_equal(nb_alarm_raise(ctx, NULL, NB_ALARM_NONFINITE, 1, 1, "w", 0, 0, "m"),
                     NB_ACTION_WARN);
    assert_int_equal(nb_last_status(ctx), NB_OK);

    nb_alarms *a = nb_alarms_new(ctx, NULL, false);
    nb_alarms_set_action(a, NB_ALARM_NONFINITE, NB_ACTION_STOP);
    assert_int_equal(nb_alarm_raise(NULL, a, NB_ALARM_NONFINITE, 1, 1, "w", 0, 0, "m"),
                     NB_ACTION_WARN);
    assert_int_equal(nb_alarm_raise(ctx, a, NB_ALARM_COUNT, 1, 1, "w", 0, 0, "m"), NB_ACTION_WARN);
    expect_err(ctx, NB_ERR_ARG, NB_ERR_ARG, "alarms: unknown alarm kind 5");
    assert_int_equal(nb_alarms_count(a, -1), 0);
    nb_alarms_free(ctx, a);

    assert_null(nb_alarms_new(ctx, "/nonexistent-dir/a.csv", false));
    expect_err(ctx, NB_ERR_IO, NB_ERR_IO, "alarms: cannot open /nonexistent-dir/a.csv: ");
    nb_ctx_free(ctx);
}

/* An allocator hook that fails on demand and counts what is live. */
typedef struct {
    bool fail;
    long live;
} hook_t;
static void *hook_alloc(size_t size, size_t align, void *user)
{
    hook_t *h = user;
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    if (h->fail || posix_memalign(&p, align, size ? size : 1))
        return NULL;
    h->live++;
    return p;
}
static void hook_free(void *p, void *user)
{
    ((hook_t *)user)->live--;
    free(p);
}

static void test_alarm_out_of_memory(void **state)
{
    (void)state;
    hook_t h = {false, 0};
    nb_ctx_opts o = nb_ctx_opts_default();
    o.allocator = (nb_allocator){hook_alloc, hook_free, &h};
    nb_ctx *ctx = nb_ctx_new(&o);
    long base = h.live;
    h.fail = true;
    assert_null(nb_alarms_new(ctx, NULL, false));
    assert_int_equal(nb_last_status(ctx), NB_ERR_NOMEM);
    nb_clear_error(ctx);
    h.fail = false;
    nb_alarms *a = nb_alarms_new(ctx, NULL, false);
    nb_alarms_set_action(a, NB_ALARM_NONFINITE, NB_ACTION_STOP);
    seen_t seen = {0};
    nb_alarms_on_raise(a, on_raise, &seen);
    h.fail = true; /* the log cannot grow: the alarm still reaches the caller */
    assert_int_equal(nb_alarm_raise(ctx, a, NB_ALARM_NONFINITE, 1, 5, "w", 1, 2, "m"),
                     NB_ACTION_STOP);
    assert_int_equal(nb_last_status(ctx), NB_ERR_NOMEM);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.last.message, "m");
    assert_int_equal(nb_alarms_count(a, -1), 0);
    h.fail = false;
    nb_alarms_free(ctx, a);
    assert_int_equal(h.live, base);
    nb_ctx_free(ctx);
    assert_int_equal(h.live, 0);
}

/* ---- diversity ------------------------------------------------------------ */
static double brute_pairwise(const nb_tensor *x)
{
    int64_t n = x->shape[0], d = nb_numel(x) / n;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double q = 0;
            for (int64_t k = 0; k < d; k++) {
                double t = nb_get(x, i * d + k) - nb_get(x, j * d + k);
                q += t * t;
            }
            s += sqrt(q);
        }
    return s / ((double)n * (double)(n - 1) / 2);
}

static void test_pairwise(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_diversity dv;
    /* (0,0), (3,0), (0,4): distances 3, 4, 5 */
    const double p[6] = {0, 0, 3, 0, 0, 4};
    nb_tensor *x = nb_from_data(ctx, NB_F64, NB_SHAPE(3, 2), p);
    size_t used = nb_arena_used(ctx);
    assert_int_equal(nb_diversity_measure(ctx, NULL, x, &dv), NB_OK);
    assert_int_equal(nb_arena_used(ctx), used); /* nothing left behind */
    NEAR(dv.pairwise, 4, 1e-12);
    assert_true(isnan(dv.entropy) && isnan(dv.entropy_max));
    assert_int_equal(dv.classes_seen, 0);
    assert_int_equal(dv.n, 3);
    /* the same points as F32 [3, 1, 2] (rows flattened) and as a strided view */
    x = nb_cast(ctx, nb_reshape(ctx, x, NB_SHAPE(3, 1, 2)), NB_F32);
    assert_int_equal(nb_diversity_measure(ctx, NULL, x, &dv), NB_OK);
    NEAR(dv.pairwise, 4, 1e-6);
    const double pt[6] = {0, 3, 0, 0, 0, 4};
    x = nb_transpose(ctx, nb_from_data(ctx, NB_F64, NB_SHAPE(2, 3), pt), 0, 1);
    assert_false(nb_is_contiguous(x));
    assert_int_equal(nb_diversity_measure(ctx, NULL, x, &dv), NB_OK);
    NEAR(dv.pairwise, 4, 1e-12);

    /* random data with an offset (centring matters), brute force in double;
     * N = 300 takes two Gram blocks */
    const int64_t sizes[3][2] = {{50, 30}, {300, 5}, {2, 1}};
    for (int s = 0; s < 3; s++)
        for (int f = 0; f < 2; f++) {
            nb_dtype dt = f ? NB_F32 : NB_F64;
            x = nb_empty(ctx, dt, NB_SHAPE(sizes[s][0], sizes[s][1]));
            nb_fill_normal(ctx, x, 5, 2);
            assert_int_equal(nb_diversity_measure(ctx, NULL, x, &dv), NB_OK);
            double want = brute_pairwise(x);
            assert_true(fabs(dv.pairwise - want) <= (f ? 1e-5 : 1e-9) * want);
            assert_int_equal(dv.n, sizes[s][0]);
        }

    /* identical rows: 0 (up to rounding of the mean) */
    x = nb_full(ctx, NB_F64, NB_SHAPE(7, 13), 0.1);
    assert_int_equal(nb_diversity_measure(ctx, NULL, x, &dv), NB_OK);
    assert_true(dv.pairwise >= 0 && dv.pairwise < 1e-12);
    x = nb_full(ctx, NB_F32, NB_SHAPE(5, 3), 123.456);
    assert_int_equal(nb_diversity_measure(ctx, NULL, x, &dv), NB_OK);
    assert_true(dv.pairwise >= 0 && dv.pairwise < 1e-9);
    x = nb_zeros(ctx, NB_F32, NB_SHAPE(4, 0)); /* empty rows */
    assert_int_equal(nb_diversity_measure(ctx, NULL, x, &dv), NB_OK);
    assert_true(dv.pairwise == 0);
    /* a NaN sample gives a NaN distance (which the detector calls collapsed) */
    x = nb_zeros(ctx, NB_F64, NB_SHAPE(3, 2));
    nb_set(x, 1, NAN);
    assert_int_equal(nb_diversity_measure(ctx, NULL, x, &dv), NB_OK);
    assert_true(isnan(dv.pairwise));
    nb_ctx_free(ctx);
}

/* x [n, 4] rows one-hot at cls[i]; an identity linear layer maps them to
 * logits whose argmax is cls[i]. */
static nb_tensor *one_hot_rows(nb_ctx *ctx, int n, const int *cls)
{
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(n, 4));
    for (int i = 0; i < n; i++)
        nb_set(x, i * 4 + cls[i], 1 + 0.1 * i);
    return x;
}

static void test_entropy(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_module *lin = nb_linear(ctx, "fc", 4, 4, true);
    nb_tensor *w = nb_module_find(ctx, lin, "weight"), *b = nb_module_find(ctx, lin, "bias");
    assert_non_null(w);
    assert_non_null(b);
    nb_fill(ctx, w, 0);
    nb_fill(ctx, b, 0);
    for (int i = 0; i < 4; i++)
        nb_set(w, i * 4 + i, 1);
    nb_diversity dv;

    const int uniform[8] = {0, 1, 2, 3, 3, 2, 1, 0};
    nb_tensor *x = one_hot_rows(ctx, 8, uniform);
    size_t used = nb_arena_used(ctx), tape = nb_tape_length(ctx);
    assert_true(nb_module_training(lin));
    assert_int_equal(nb_diversity_measure(ctx, lin, x, &dv), NB_OK);
    assert_true(nb_module_training(lin)); /* mode restored */
    assert_int_equal(nb_arena_used(ctx), used);
    assert_int_equal(nb_tape_length(ctx), tape);
    NEAR(dv.entropy, log(4), 1e-12);
    NEAR(dv.entropy_max, log(4), 1e-12);
    assert_int_equal(dv.classes_seen, 4);
    assert_int_equal(dv.n, 8);

    const int one[5] = {2, 2, 2, 2, 2};
    x = one_hot_rows(ctx, 5, one);
    nb_module_train(lin, false);
    assert_int_equal(nb_diversity_measure(ctx, lin, x, &dv), NB_OK);
    assert_false(nb_module_training(lin));
    assert_true(dv.entropy == 0);
    assert_int_equal(dv.classes_seen, 1);

    const int three[4] = {0, 0, 1, 3}; /* p = 1/2, 1/4, 1/4 */
    x = one_hot_rows(ctx, 4, three);
    nb_module *seq = nb_sequential(ctx, "net");
    nb_module *drop = nb_dropout_layer(ctx, "drop", 0.9);
    nb_sequential_add(ctx, seq, drop);
    nb_sequential_add(ctx, seq, lin);
    nb_module_train(seq, true);
    nb_module_train(drop, false); /* a mixed tree keeps its mix */
    assert_int_equal(nb_diversity_measure(ctx, seq, x, &dv), NB_OK);
    NEAR(dv.entropy, 1.5 * log(2), 1e-12); /* dropout was off */
    assert_int_equal(dv.classes_seen, 3);
    assert_true(nb_module_training(seq) && nb_module_training(lin));
    assert_false(nb_module_training(drop));
    assert_true(nb_grad_enabled(ctx));
    nb_module_free(ctx, seq);
    nb_ctx_free(ctx);
}

static void test_diversity_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_diversity dv = {.n = -7};
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(1, 4));
    expect_err(ctx, nb_diversity_measure(ctx, NULL, x, &dv), NB_ERR_ARG, "at least 2 samples");
    x = nb_zeros(ctx, NB_I32, NB_SHAPE(3, 4));
    expect_err(ctx, nb_diversity_measure(ctx, NULL, x, &dv), NB_ERR_DTYPE, "got i32");
    x = nb_scalar(ctx, NB_F32, 1);
    expect_err(ctx, nb_diversity_measure(ctx, NULL, x, &dv), NB_ERR_SHAPE, "scalar");
    expect_err(ctx, nb_diversity_measure(ctx, NULL, NULL, &dv), NB_ERR_NULL, "x is NULL");
    x = nb_zeros(ctx, NB_F32, NB_SHAPE(8, 4));
    expect_err(ctx, nb_diversity_measure(ctx, NULL, x, NULL), NB_ERR_NULL, "out is NULL");
    assert_int_equal(nb_diversity_measure(NULL, NULL, x, &dv), NB_ERR_NULL);

    /* a classifier that does not give [N, C] */
    nb_module *bad = nb_reshape_layer(ctx, "r", NB_SHAPE(2, 2));
    size_t used = nb_arena_used(ctx);
    expect_err(ctx, nb_diversity_measure(ctx, bad, x, &dv), NB_ERR_SHAPE,
               "gave [8,2,2], expected logits [8, C]");
    assert_true(nb_module_training(bad));
    assert_int_equal(nb_arena_used(ctx), used);
    /* one whose forward fails: its error comes through */
    nb_module *lin = nb_linear(ctx, NULL, 5, 3, true);
    assert_int_equal(nb_diversity_measure(ctx, lin, x, &dv), NB_ERR_SHAPE);
    assert_true(nb_module_training(lin));
    assert_int_equal(dv.n, -7); /* out untouched on failure */
    nb_module_free(ctx, bad);
    nb_module_free(ctx, lin);
    nb_ctx_free(ctx);
}

/* ---- the collapse detector ------------------------------------------------ */
static nb_diversity div_of(double entropy, double pairwise)
{
    return (nb_diversity){entropy, log(10), 10, pairwise, 100};
}

static void test_collapse(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_alarms *log_ = nb_alarms_new(ctx, NULL, false);
    nb_diversity ref = div_of(log(10), 10), now;
    nb_collapse *d = nb_collapse_new(ctx, &ref, NULL);
    assert_non_null(d);
    bool col, alarm;

    now = div_of(0.9 * log(10), 9);
    assert_int_equal(nb_collapse_check(ctx, d, &now, 1, 100, log_, &col, &alarm), NB_OK);
    assert_false(col || alarm);
    assert_int_equal(nb_alarms_count(log_, -1), 0);

    now = div_of(0.5, 9); /* entropy ratio 0.22 */
    nb_collapse_check(ctx, d, &now, 2, 200, log_, &col, &alarm);
    assert_true(col && alarm);
    assert_int_equal(nb_alarms_count(log_, NB_ALARM_MODE_COLLAPSE), 1);
    const nb_alarm *al = nb_alarms_get(log_, 0);
    assert_string_equal(al->where, "generator");
    assert_int_equal(al->epoch, 2);
    assert_int_equal(al->step, 200);
    assert_true(fabs(al->value - 0.5 / log(10)) < 1e-12 && al->threshold == 0.5);
    assert_non_null(strstr(al->message, "class entropy 0.5 nats vs 2.3"));
    assert_null(strstr(al->message, "pairwise"));
    /* still collapsed: the same streak, no second alarm */
    nb_collapse_check(ctx, d, &now, 2, 300, log_, &col, &alarm);
    assert_true(col && !alarm);
    now = div_of(log(10), 10); /* healthy: re-arms */
    nb_collapse_check(ctx, d, &now, 3, 400, log_, &col, &alarm);
    assert_false(col || alarm);
    now = div_of(log(10), 3); /* distance ratio 0.3 */
    nb_collapse_check(ctx, d, &now, 3, 500, log_, &col, &alarm);
    assert_true(col && alarm);
    assert_int_equal(nb_alarms_count(log_, -1), 2);
    al = nb_alarms_get(log_, 1);
    assert_true(fabs(al->value - 0.3) < 1e-12 && al->threshold == 0.5);
    assert_non_null(strstr(al->message, "pairwise distance 3 vs 10"));
    assert_null(strstr(al->message, "entropy"));
    now = div_of(log(10), 10);
    nb_collapse_check(ctx, d, &now, 3, 600, log_, NULL, NULL);
    now = div_of(0.1, NAN); /* both, and a non-finite distance */
    nb_collapse_check(ctx, d, &now, 4, 700, log_, &col, &alarm);
    assert_true(col && alarm);
    al = nb_alarms_get(log_, 2);
    assert_true(isnan(al->value)); /* the distance criterion reports */
    assert_non_null(strstr(al->message, "entropy"));
    assert_non_null(strstr(al->message, "pairwise"));
    nb_collapse_free(ctx, d);

    /* patience 2, no log: *alarmed still says when it fires */
    nb_collapse_opts o = nb_collapse_opts_default();
    assert_true(o.min_entropy_ratio == 0.5 && o.min_distance_ratio == 0.5 && o.patience == 1);
    o.patience = 2;
    d = nb_collapse_new(ctx, &ref, &o);
    const bool want_alarm[6] = {false, true, false, false, false, true};
    const double dist[6] = {1, 1, 1, 10, 1, 1};
    for (int i = 0; i < 6; i++) {
        now = div_of(log(10), dist[i]);
        assert_int_equal(nb_collapse_check(ctx, d, &now, 1, i, NULL, &col, &alarm), NB_OK);
        assert_int_equal(col, dist[i] < 5);
        assert_int_equal(alarm, want_alarm[i]);
    }
    nb_collapse_free(ctx, d);

    /* a reference without a classifier: the entropy criterion is off */
    ref = div_of(NAN, 10);
    d = nb_collapse_new(ctx, &ref, NULL);
    now = div_of(0.0, 9);
    nb_collapse_check(ctx, d, &now, 1, 1, log_, &col, &alarm);
    assert_false(col || alarm);
    assert_int_equal(nb_collapse_check(ctx, d, NULL, 1, 1, log_, &col, &alarm), NB_ERR_NULL);
    assert_int_equal(nb_collapse_check(ctx, NULL, &now, 1, 1, log_, &col, &alarm), NB_ERR_NULL);
    nb_clear_error(ctx);
    nb_collapse_free(ctx, d);
    assert_int_equal(nb_last_status(ctx), NB_OK);
    nb_alarms_free(ctx, log_);
    nb_ctx_free(ctx);
}

static void test_collapse_bad_options(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_diversity ref = div_of(log(10), 10);
    const nb_collapse_opts bad[] = {{1.5, 0.5, 1}, {0.5, -0.1, 1}, {NAN, 0.5, 1}, {0.5, 0.5, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_null(nb_collapse_new(ctx, &ref, &bad[i]));
        expect_err(ctx, NB_ERR_ARG, NB_ERR_ARG, i < 3 ? "ratios must be in [0, 1]" : "patience");
    }
    const double bad_ref[] = {0, -1, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_ref / sizeof *bad_ref; i++) {
        ref = div_of(log(10), bad_ref[i]);
        assert_null(nb_collapse_new(ctx, &ref, NULL));
        expect_err(ctx, NB_ERR_ARG, NB_ERR_ARG, "pairwise distance must be finite and > 0");
    }
    assert_null(nb_collapse_new(ctx, NULL, NULL));
    expect_err(ctx, NB_ERR_NULL, NB_ERR_NULL, "reference is NULL");
    assert_null(nb_collapse_new(NULL, &ref, NULL));
    nb_collapse_free(ctx, NULL);
    nb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alarm_names),
        cmocka_unit_test(test_alarm_log),
        cmocka_unit_test(test_alarm_csv),
        cmocka_unit_test(test_alarm_null_and_errors),
        cmocka_unit_test(test_alarm_out_of_memory),
        cmocka_unit_test(test_pairwise),
        cmocka_unit_test(test_entropy),
        cmocka_unit_test(test_diversity_errors),
        cmocka_unit_test(test_collapse),
        cmocka_unit_test(test_collapse_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
