/* Byte-level text (src/data/text.c): reading, the unigram entropy, the
 * window loader (targets are the inputs shifted by one, random windows
 * repeat with the seed, sequential streams continue from batch to batch),
 * sampling (temperature, top-k, frequencies), and bad input. */
#include "core/internal.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static const char *write_tmp(const char *text, size_t n)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/nb_text_%d.txt", (int)getpid());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
    return path;
}

static void test_read_entropy(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    const char *path = write_tmp("abababab", 8);
    nb_tensor *t = nb_text_read(ctx, path);
    assert_non_null(t);
    assert_int_equal(t->dtype, NB_U8);
    assert_int_equal(t->shape[0], 8);
    assert_int_equal((int)nb_get(t, 1), 'b');
    assert_true(fabs(nb_unigram_entropy(t, 0, 8) - log(2.0)) < 1e-12);
    assert_true(nb_unigram_entropy(t, 0, 1) == 0);
    assert_true(isnan(nb_unigram_entropy(t, 3, 2)));
    unlink(path);
    assert_null(nb_text_read(ctx, "/nonexistent/x.txt"));
    assert_int_equal(nb_last_status(ctx), NB_ERR_IO);
    nb_clear_error(ctx);
    path = write_tmp("a", 1);
    assert_null(nb_text_read(ctx, path));
    assert_int_equal(nb_last_status(ctx), NB_ERR_FORMAT);
    nb_clear_error(ctx);
    unlink(path);
    nb_ctx_free(ctx);
}

/* A directory: its regular files in name order; links and dot files skipped */
static void test_read_dir(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    char dir[64], p[128];
    snprintf(dir, sizeof dir, "/tmp/nb_textdir_%d", (int)getpid());
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_null(nb_text_read(ctx, dir));
    assert_int_equal(nb_last_status(ctx), NB_ERR_FORMAT);
    assert_non_null(strstr(nb_last_error(ctx), ": no regular files in the directory"));
    nb_clear_error(ctx);
    static const char *names[] = {"b.txt", "a.txt", ".hidden"}, *texts[] = {"BB", "aaa", "zz"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        fputs(texts[i], f);
        fclose(f);
    }
    char ln[160];
    snprintf(p, sizeof p, "%s/a.txt", dir);
    snprintf(ln, sizeof ln, "%s/c.link", dir);
    assert_int_equal(symlink(p, ln), 0);
    nb_tensor *t = nb_text_read(ctx, dir);
    assert_non_null(t);
    assert_int_equal(t->shape[0], 5);
    assert_memory_equal(t->data, "aaaBB", 5);
    nb_tensor_free(ctx, t);
    unlink(ln);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    nb_ctx_free(ctx);
}

static void test_windows(void **state)
{
    (void)state;
    nb_ctx *ctx = nb_ctx_new(NULL);
    int64_t n = 1000;
    nb_tensor *t = nb_buffer(ctx, NB_U8, 1, &n);
    for (int64_t i = 0; i < n; i++) /* 0 outside the span [100, 900) */
        nb_set(t, i, i >= 100 && i < 900 ? (double)(1 + i % 250) : 0.0);
    /* random windows: inside the span, y is x shifted by one, the same seed repeats */
    nb_text_loader *l = nb_text_loader_new(ctx, t, 100, 900, 16, 4, true, 7);
    nb_tensor *x, *y;
    int64_t first[4];
    for (int rep = 0; rep < 2; rep++) {
        nb_text_loader_seek(l, 0);
        assert_int_equal(nb_text_loader_next(ctx, l, &x, &y), NB_OK);
        assert_int_equal(x->shape[0], 4);
        assert_int_equal(x->shape[1], 16);
        for (int b = 0; b < 4; b++) {
            int64_t s = (int64_t)nb_get(x, b * 16);
            if (rep == 0)
                first[b] = s;
            assert_int_equal(s, first[b]);
            for (int k = 0; k < 16; k++) {
                int64_t v = (int64_t)nb_get(x, b * 16 + k), w = (int64_t)nb_get(y, b * 16 + k);
                assert_true(v != 0 && w != 0); /* inside the span, targets too */
                assert_int_equal(w, v % 250 + 1);
            }
        }
    }
    nb_text_loader_free(ctx, l);
    /* sequential streams: batch k + 1 continues where batch k stopped */
    for (int64_t i = 0; i < n; i++)
        nb_set(t, i, (double)(i % 251));
    l = nb_text_loader_new(ctx, t, 0, 1000, 10, 3, false, 0);
    assert_non_null(l);
    int64_t per = nb_text_loader_batches(l);
    assert_int_equal(per, 333 / 10);
    nb_tensor *x0, *y0;
    assert_int_equal(nb_text_loader_next(ctx, l, &x0, &y0), NB_OK);
    assert_int_equal(nb_text_loader_next(ctx, l, &x, &y), NB_OK);
    for (int b = 0; b < 3; b++) {
        assert_int_equal((int64_t)nb_get(x0, b * 10), (b * 333) % 251);
        assert_int_equal((int64_t)nb_get(x, b * 10), (int64_t)nb_get(y0, b * 10 + 9));
    }
    nb_text_loader_free(ctx, l);
    /* errors */
    assert_null(nb_text_loader_new(ctx, t, 0, 10, 16, 4, true, 0));
    assert_int_equal(nb_last_status(ctx), NB_ERR_ARG);
    nb_clear_error(ctx);
    nb_tensor *f = nb_zeros(ctx, NB_F32, NB_SHAPE(100));
    assert_null(nb_text_loader_new(ctx, f, 0, 100, 4, 2, true, 0));
    assert_int_equal(nb_last_status(ctx), NB_ERR_DTYPE);
    nb_clear_error(ctx);
    nb_ctx_free(ctx);
}

static void test_sampling(void **state)
{
    (void)state;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = 5;
    nb_ctx *ctx = nb_ctx_new(&o);
    const double p[4] = {0.1, 0.2, 0.3, 0.4};
    nb_tensor *lg = nb_empty(ctx, NB_F32, 2, (int64_t[]){2, 4});
    for (int v = 0; v < 4; v++) {
        nb_set(lg, v, 0); /* an earlier row: ignored */
        nb_set(lg, 4 + v, log(p[v]));
    }
    int cnt[4] = {0}, n = 20000;
    for (int i = 0; i < n; i++) {
        int64_t v = nb_sample_token(ctx, lg, 1.0, 0);
        assert_true(v >= 0 && v < 4);
        cnt[v]++;
    }
    for (int v = 0; v < 4; v++)
        assert_true(fabs(cnt[v] / (double)n - p[v]) < 5 * sqrt(p[v] * (1 - p[v]) / n));
    /* top 2: only ids 2 and 3, in ratio 3:4 */
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < n; i++)
        cnt[nb_sample_token(ctx, lg, 1.0, 2)]++;
    assert_int_equal(cnt[0] + cnt[1], 0);
    assert_true(fabs(cnt[3] / (double)n - 4.0 / 7.0) < 0.02);
    /* a tiny temperature is argmax */
    for (int i = 0; i < 100; i++)
        assert_int_equal(nb_sample_token(ctx, lg, 1e-3, 0), 3);
    assert_int_equal(nb_sample_token(ctx, lg, 0, 0), -1);
    assert_int_equal(nb_last_status(ctx), NB_ERR_ARG);
    nb_clear_error(ctx);
    assert_int_equal(nb_sample_token(ctx, lg, 1, -1), -1);
    nb_clear_error(ctx);
    nb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_entropy), cmocka_unit_test(test_read_dir),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_sampling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
