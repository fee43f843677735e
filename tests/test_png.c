/* nb_save_image_grid (src/io/png.c): every written file is decoded here, in
 * C, by a small independent PNG reader (chunk CRCs, IHDR, IDATs concatenated
 * and inflated, all five row filters undone) and compared pixel by pixel with
 * a grid built from nb_get: borders, empty cells, clamping, NaN, rounding,
 * strided views, f64, RGB, the default column count, a grid large enough for
 * several IDAT chunks. Then the errors (status, message, no file created or
 * replaced) and out-of-memory at every allocation.
 *
 * Temporary files go to a private folder under $TMPDIR, else the current
 * folder, removed at the end. */
#include "core/internal.h"

#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

static char g_dir[256];
static char g_path[320];

static const char *tmp_path(const char *name)
{
    snprintf(g_path, sizeof g_path, "%s/%s", g_dir, name);
    return g_path;
}

static int dir_count(void) /* entries in g_dir other than . and .. */
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* ---- the reference decoder ------------------------------------------------- */
typedef struct png {
    uint32_t w, h, ch; /* ch: 1 gray, 3 RGB */
    int idats;
    unsigned char *px; /* h * w * ch, malloc */
} png;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

static png decode(const char *path)
{
    size_t n, at = 8, zlen = 0;
    unsigned char *f = slurp(path, &n), *z = malloc(n);
    assert_non_null(z);
    assert_true(n >= 8 && !memcmp(f, "\x89PNG\r\n\x1a\n", 8));
    png p = {0};
    bool ihdr = false, iend = false;
    while (!iend) {
        assert_true(at + 12 <= n);
        uint32_t len = be32(f + at);
        const unsigned char *type = f + at + 4, *data = f + at + 8;
        assert_true(len <= n - at - 12);
        assert_int_equal(crc32(crc32(0L, Z_NULL, 0), type, len + 4), be32(data + len));
        assert_true(ihdr || !memcmp(type, "IHDR", 4)); /* IHDR comes first */
        if (!memcmp(type, "IHDR", 4)) {
            assert_false(ihdr);
            assert_int_equal(len, 13);
            p.w = be32(data), p.h = be32(data + 4);
            assert_true(p.w > 0 && p.h > 0 && p.w < 1u << 31 && p.h < 1u << 31);
            assert_int_equal(data[8], 8);                     /* bit depth */
            assert_true(data[9] == 0 || data[9] == 2);        /* gray or RGB */
            assert_true(!data[10] && !data[11] && !data[12]); /* deflate, filters, no interlace */
            p.ch = data[9] == 2 ? 3 : 1;
            ihdr = true;
        } else if (!memcmp(type, "IDAT", 4)) {
            memcpy(z + zlen, data, len);
            zlen += len;
            p.idats++;
        } else {
            assert_memory_equal(type, "IEND", 4);
            assert_int_equal(len, 0);
            iend = true;
        }
        at += 12 + len;
    }
    assert_int_equal(at, n); /* nothing after IEND */
    assert_true(p.idats > 0);
    size_t stride = (size_t)p.w * p.ch, rawlen = p.h * (stride + 1);
    uLongf got = (uLongf)rawlen + 1; /* one spare byte: more data than rows is an error */
    unsigned char *raw = malloc(got), *px = p.px = malloc(p.h * stride);
    assert_true(raw && px);
    assert_int_equal(uncompress(raw, &got, z, (uLong)zlen), Z_OK);
    assert_int_equal(got, rawlen);
    for (size_t y = 0; y < p.h; y++) {
        const unsigned char *r = raw + y * (stride + 1) + 1, *up = y ? px + (y - 1) * stride : NULL;
        unsigned char *o = px + y * stride;
        int ft = r[-1];
        assert_in_range(ft, 0, 4);
        for (size_t i = 0; i < stride; i++) {
            int a = i >= p.ch ? o[i - p.ch] : 0, b = up ? up[i] : 0,
                c = up && i >= p.ch ? up[i - p.ch] : 0;
            int pred = ft == 0   ? 0
                       : ft == 1 ? a
                       : ft == 2 ? b
                       : ft == 3 ? (a + b) / 2
                                 : paeth(a, b, c);
            o[i] = (unsigned char)(r[i] + pred);
        }
    }
    free(raw);
    free(z);
    free(f);
    return p;
}

/* ---- the expected grid ----------------------------------------------------- */
static unsigned char ref_byte(double v, double lo, double hi)
{
    double t = (v - lo) / (hi - lo) * 255.0;
    return isnan(v) || t <= 0 ? 0 : t >= 255 ? 255 : (unsigned char)floor(t + 0.5);
}

/* Saves x, decodes the file and compares it with the grid made from nb_get;
 * x is [N, H, W] or [N, C, H, W]; cols as the caller gives it, ecols the
 * number the grid must have. Returns the decoded image (caller frees px). */
static png check_grid(nb_ctx *ctx, const nb_tensor *x, int cols, int ecols, double lo, double hi)
{
    const char *path = tmp_path("grid.png");
    assert_int_equal(nb_save_image_grid(ctx, path, x, cols, lo, hi), NB_OK);
    png p = decode(path);
    bool four = x->ndim == 4;
    int64_t n = x->shape[0], c = four ? x->shape[1] : 1, h = x->shape[four ? 2 : 1],
            w = x->shape[four ? 3 : 2], rows = (n + ecols - 1) / ecols;
    assert_int_equal(p.ch, c);
    assert_int_equal(p.w, ecols * (w + 1) + 1);
    assert_int_equal(p.h, rows * (h + 1) + 1);
    for (uint32_t y = 0; y < p.h; y++)
        for (uint32_t xx = 0; xx < p.w; xx++)
            for (uint32_t ch = 0; ch < p.ch; ch++) {
                int64_t gr = y / (h + 1), iy = y % (h + 1) - 1, gc = xx / (w + 1),
                        ix = xx % (w + 1) - 1, k = gr * ecols + gc;
                unsigned char e = 0; /* border or empty cell */
                if (iy >= 0 && ix >= 0 && k < n)
                    e = ref_byte(nb_get(x, ((k * c + ch) * h + iy) * w + ix), lo, hi);
                if (p.px[(y * p.w + xx) * p.ch + ch] != e)
                    fail_msg("pixel (%u, %u, %u): %d, expected %d", xx, y, ch,
                             p.px[(y * p.w + xx) * p.ch + ch], e);
            }
    return p;
}

static nb_tensor *ramp(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, double scale)
{
    nb_tensor *t = nb_empty(ctx, dt, ndim, shape);
    assert_non_null(t);
    for (int64_t i = 0; i < nb_numel(t); i++)
        nb_set(t, i, fmod(i * 0.37, 1.3) * scale - 0.1); /* some below 0, some above 1 */
    return t;
}

/* ---- tests ------------------------------------------------------------------ */
static void test_gray_values(void **state)
{
    nb_ctx *ctx = *state;
    /* 5 images of 2x3, 3 columns: 13x7, the last cell of row 2 empty */
    const float v[30] = {0,        1,         0.5f,   -1,     2,     NAN,
                         INFINITY, -INFINITY, 0.498f, 0.502f, 1e30f, -1e30f};
    nb_tensor *x = nb_from_data(ctx, NB_F32, NB_SHAPE(5, 2, 3), v);
    assert_non_null(x);
    for (int i = 12; i < 30; i++)
        nb_set(x, i, i / 29.0);
    png p = check_grid(ctx, x, 3, 3, 0.0, 1.0);
    /* by hand: image 0 row 0 at (1..3, 1), row 1 at (1..3, 2) */
    const unsigned char want[2][5] = {{0, 0, 255, 128, 0}, {0, 0, 255, 0, 0}};
    for (int y = 0; y < 2; y++)
        assert_memory_equal(p.px + (y + 1) * 13, want[y], 5);
    const unsigned char img1[6] = {255, 0, 127, 128, 255, 0}; /* inf, -inf, 0.498, 0.502, ... */
    assert_memory_equal(p.px + 1 * 13 + 5, img1, 3);
    assert_memory_equal(p.px + 2 * 13 + 5, img1 + 3, 3);
    for (int xx = 9; xx < 13; xx++) /* the empty cell */
        assert_int_equal(p.px[5 * 13 + xx], 0);
    free(p.px);
    /* ties round up: lo 0, hi 255 maps v to v */
    const double t[4] = {2.5, 3.49, 254.5, 0.5};
    x = nb_from_data(ctx, NB_F64, NB_SHAPE(1, 1, 4), t);
    p = check_grid(ctx, x, 1, 1, 0.0, 255.0);
    assert_memory_equal(p.px + 6 + 1, ((const unsigned char[]){3, 3, 255, 1}), 4);
    free(p.px);
}

static void test_cols_and_layouts(void **state)
{
    nb_ctx *ctx = *state;
    const int64_t ns[] = {1, 2, 4, 5, 9, 10, 17};
    const int ecols[] = {1, 2, 2, 3, 3, 4, 5};
    for (int i = 0; i < 7; i++) {
        nb_tensor *x = ramp(ctx, NB_F32, NB_SHAPE(ns[i], 3, 2), 1.0);
        free(check_grid(ctx, x, 0, ecols[i], 0.0, 1.0).px);
        free(check_grid(ctx, x, -2, ecols[i], 0.0, 1.0).px);
        free(check_grid(ctx, x, 4, ns[i] < 4 ? (int)ns[i] : 4, 0.0, 1.0).px); /* cols > N: N */
    }
    /* white images after the last one in memory: empty cells must stay black */
    nb_tensor *white = nb_full(ctx, NB_F32, NB_SHAPE(8, 2, 2), 1.0);
    free(check_grid(ctx, nb_slice(ctx, white, 0, 0, 5, 1), 3, 3, 0.0, 1.0).px);
    nb_tensor *x = ramp(ctx, NB_F64, NB_SHAPE(7, 1, 4, 3), 10.0); /* f64 [N, 1, H, W] */
    free(check_grid(ctx, x, 1, 1, -2.0, 8.0).px);
    x = ramp(ctx, NB_F64, NB_SHAPE(5, 3, 4, 2), 1.0); /* RGB */
    free(check_grid(ctx, x, 2, 2, 0.0, 1.0).px);
}

static void test_strided_views(void **state)
{
    nb_ctx *ctx = *state;
    /* channels last [N, H, W, 3] permuted to [N, 3, H, W] */
    nb_tensor *hwc = ramp(ctx, NB_F32, NB_SHAPE(6, 5, 4, 3), 1.0);
    nb_tensor *x = nb_permute(ctx, hwc, NB_AXES(0, 3, 1, 2));
    assert_non_null(x);
    free(check_grid(ctx, x, 3, 3, 0.0, 1.0).px);
    /* the same pixels from a contiguous copy give the same file, byte for byte */
    size_t n1, n2;
    unsigned char *a = slurp(tmp_path("grid.png"), &n1);
    free(check_grid(ctx, nb_contiguous(ctx, x), 3, 3, 0.0, 1.0).px);
    unsigned char *b = slurp(tmp_path("grid.png"), &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    free(a);
    free(b);
    /* [W, H, N] transposed, then every other image and column */
    nb_tensor *whn = ramp(ctx, NB_F64, NB_SHAPE(7, 3, 9), 1.0);
    x = nb_permute(ctx, whn, NB_AXES(2, 1, 0));
    x = nb_slice(ctx, nb_slice(ctx, x, 0, 1, 9, 2), 2, 0, 7, 2);
    assert_non_null(x);
    assert_int_equal(x->shape[0], 4);
    free(check_grid(ctx, x, 0, 2, 0.0, 1.0).px);
    /* an expanded tensor (stride 0): one value everywhere */
    nb_tensor *one = nb_full(ctx, NB_F32, NB_SHAPE(1, 1, 1), 0.25);
    x = nb_expand(ctx, one, NB_SHAPE(3, 2, 2));
    png p = check_grid(ctx, x, 3, 3, 0.0, 1.0);
    assert_int_equal(p.px[1 * p.w + 1], 64);
    free(p.px);
}

static void test_large_grid(void **state)
{
    nb_ctx *ctx = *state;
    /* noise does not compress: over 64 KiB of zlib stream, several IDATs */
    nb_tensor *x = nb_empty(ctx, NB_F32, NB_SHAPE(16, 3, 64, 64));
    assert_int_equal(nb_fill_uniform(ctx, x, -0.1, 1.1), NB_OK);
    png p = check_grid(ctx, x, 0, 4, 0.0, 1.0);
    assert_true(p.idats > 1);
    free(p.px);
    /* 64 MNIST-sized images: one IDAT */
    x = ramp(ctx, NB_F32, NB_SHAPE(64, 28, 28), 1.0);
    p = check_grid(ctx, x, 8, 8, 0.0, 1.0);
    assert_int_equal(p.w, 233);
    assert_int_equal(p.idats, 1);
    free(p.px);
}

static void expect_err(nb_ctx *ctx, const nb_tensor *x, int cols, double lo, double hi,
                       nb_status want)
{
    nb_clear_error(ctx);
    assert_int_equal(nb_save_image_grid(ctx, tmp_path("bad.png"), x, cols, lo, hi), want);
    assert_non_null(strstr(nb_last_error(ctx), "save_image_grid"));
    assert_int_equal(dir_count(), 1); /* only keep.png: nothing created */
}

static void test_errors(void **state)
{
    nb_ctx *ctx = *state;
    nb_tensor *ok = ramp(ctx, NB_F32, NB_SHAPE(2, 3, 3), 1.0);
    /* a file the failing calls must leave alone */
    char keep[sizeof g_path]; /* tmp_path's buffer is reused */
    snprintf(keep, sizeof keep, "%s", tmp_path("keep.png"));
    assert_int_equal(nb_save_image_grid(ctx, keep, ok, 0, 0.0, 1.0), NB_OK);
    size_t n0, n1;
    unsigned char *before = slurp(keep, &n0);
    assert_int_equal(dir_count(), 1);

    assert_int_equal(nb_save_image_grid(NULL, keep, ok, 0, 0.0, 1.0), NB_ERR_NULL);
    nb_clear_error(ctx);
    assert_int_equal(nb_save_image_grid(ctx, NULL, ok, 0, 0.0, 1.0), NB_ERR_NULL);
    assert_non_null(strstr(nb_last_error(ctx), "save_image_grid"));
    expect_err(ctx, NULL, 0, 0.0, 1.0, NB_ERR_NULL);
    expect_err(ctx, nb_zeros(ctx, NB_I32, NB_SHAPE(2, 3, 3)), 0, 0.0, 1.0, NB_ERR_DTYPE);
    expect_err(ctx, nb_zeros(ctx, NB_U8, NB_SHAPE(2, 1, 3, 3)), 0, 0.0, 1.0, NB_ERR_DTYPE);
    expect_err(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(3, 3)), 0, 0.0, 1.0, NB_ERR_SHAPE);
    expect_err(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 2, 3, 3)), 0, 0.0, 1.0, NB_ERR_SHAPE);
    expect_err(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 4, 3, 3)), 0, 0.0, 1.0, NB_ERR_SHAPE);
    expect_err(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(1, 2, 1, 3, 3)), 0, 0.0, 1.0, NB_ERR_SHAPE);
    expect_err(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(0, 3, 3)), 0, 0.0, 1.0, NB_ERR_ARG);
    expect_err(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 1, 0, 3)), 0, 0.0, 1.0, NB_ERR_ARG);
    expect_err(ctx, ok, 0, 1.0, 1.0, NB_ERR_ARG);
    expect_err(ctx, ok, 0, 1.0, 0.0, NB_ERR_ARG);
    expect_err(ctx, ok, 0, NAN, 1.0, NB_ERR_ARG);
    expect_err(ctx, ok, 0, 0.0, INFINITY, NB_ERR_ARG);
    expect_err(ctx, ok, 0, -INFINITY, 0.0, NB_ERR_ARG);
    /* too large, from expanded tensors (no memory behind them) */
    nb_tensor *one = nb_zeros(ctx, NB_F32, NB_SHAPE(1, 1, 1));
    expect_err(ctx, nb_expand(ctx, one, NB_SHAPE(1, 50000, 50000)), 0, 0.0, 1.0, NB_ERR_ARG);
    expect_err(ctx, nb_expand(ctx, one, NB_SHAPE((int64_t)1 << 31, 1, 1)), 0, 0.0, 1.0,
               NB_ERR_ARG);
    expect_err(ctx, nb_expand(ctx, one, NB_SHAPE(1 << 20, 1, 2048)), 1 << 20, 0.0, 1.0,
               NB_ERR_ARG); /* too wide */
    expect_err(ctx, nb_expand(ctx, one, NB_SHAPE(1 << 20, 2048, 1)), 1, 0.0, 1.0,
               NB_ERR_ARG); /* too tall */
    expect_err(ctx, nb_expand(ctx, one, NB_SHAPE(INT64_MAX / 2, 1, 1)), 0, 0.0, 1.0,
               NB_ERR_ARG); /* too many */
    expect_err(ctx, nb_expand(ctx, one, NB_SHAPE(2, 1, (int64_t)1 << 40)), 0, 0.0, 1.0,
               NB_ERR_ARG);
    nb_tensor *rgb = nb_expand(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(1, 3, 1, 1)),
                               NB_SHAPE(1, 3, 26000, 28000)); /* 7.3e8 pixels: 2.2e9 bytes */
    expect_err(ctx, rgb, 0, 0.0, 1.0, NB_ERR_ARG);
    /* an unwritable path: NB_ERR_IO, nothing created */
    nb_clear_error(ctx);
    assert_int_equal(nb_save_image_grid(ctx, "/nonexistent-dir/x.png", ok, 0, 0.0, 1.0),
                     NB_ERR_IO);
    assert_non_null(strstr(nb_last_error(ctx), "/nonexistent-dir/x.png"));
    assert_int_equal(access("/nonexistent-dir", F_OK), -1);
    /* bad arguments to keep.png's own path leave it as it was */
    nb_clear_error(ctx);
    assert_int_equal(nb_save_image_grid(ctx, keep, ok, 0, 2.0, 1.0), NB_ERR_ARG);
    unsigned char *after = slurp(keep, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(after);
    /* a good call replaces it */
    nb_clear_error(ctx);
    assert_int_equal(nb_save_image_grid(ctx, keep, ok, 1, 0.0, 1.0), NB_OK);
    after = slurp(keep, &n1);
    assert_true(n0 != n1 || memcmp(before, after, n0));
    assert_int_equal(dir_count(), 1);
    free(after);
    free(before);
    unlink(keep);
}

/* ---- out of memory at every allocation --------------------------------------- */
typedef struct {
    long allocs, frees, fail_at;
} counting;

static void *count_alloc(size_t size, size_t align, void *user)
{
    counting *c = user;
    if (c->fail_at >= 0 && c->allocs == c->fail_at) {
        c->fail_at = -2;
        return NULL;
    }
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size ? size : 1))
        return NULL;
    c->allocs++;
    return p;
}

static void count_free(void *p, void *user)
{
    ((counting *)user)->frees++;
    free(p);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    long total = -1;
    for (long k = -1; total < 0 || k < total; k++) {
        counting c = {0, 0, -1};
        nb_ctx_opts o = nb_ctx_opts_default();
        o.allocator = (nb_allocator){count_alloc, count_free, &c};
        nb_ctx *ctx = nb_ctx_new(&o);
        assert_non_null(ctx);
        nb_tensor *x = ramp(ctx, NB_F32, NB_SHAPE(5, 3, 7, 6), 1.0);
        long base = c.allocs; /* fail the k-th allocation of the save itself */
        c.fail_at = k < 0 ? -1 : base + k;
        nb_status st = nb_save_image_grid(ctx, tmp_path("oom.png"), x, 0, 0.0, 1.0);
        if (k < 0) {
            assert_int_equal(st, NB_OK);
            total = c.allocs - base;
            assert_true(total >= 3); /* temporary name, buffers, zlib's state */
            unlink(tmp_path("oom.png"));
        } else {
            assert_int_equal(st, NB_ERR_NOMEM);
            assert_non_null(strstr(nb_last_error(ctx), "allocator failed"));
        }
        nb_ctx_free(ctx);
        assert_int_equal(c.allocs, c.frees);
        assert_int_equal(dir_count(), 0);
    }
}

static int setup(void **state)
{
    nb_ctx *ctx = nb_ctx_new(NULL);
    *state = ctx;
    return ctx ? 0 : -1;
}

static int teardown(void **state)
{
    nb_ctx_free(*state);
    unlink(tmp_path("grid.png"));
    return 0;
}

/* test_png --check FILE W H: FILE decodes (every check above) to a W x H
 * picture that is not one flat colour (examples' sample grids). */
static const char *g_check;
static uint32_t g_check_w, g_check_h;

static void test_check_file(void **state)
{
    (void)state;
    png p = decode(g_check);
    assert_int_equal(p.w, g_check_w);
    assert_int_equal(p.h, g_check_h);
    unsigned char lo = 255, hi = 0;
    for (size_t i = 0; i < (size_t)p.w * p.h * p.ch; i++) {
        lo = p.px[i] < lo ? p.px[i] : lo;
        hi = p.px[i] > hi ? p.px[i] : hi;
    }
    assert_true(hi - lo > 64);
    free(p.px);
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--check")) {
        g_check = argv[2];
        g_check_w = (uint32_t)strtoul(argv[3], NULL, 10);
        g_check_h = (uint32_t)strtoul(argv[4], NULL, 10);
        const struct CMUnitTest one[] = {cmocka_unit_test(test_check_file)};
        return cmocka_run_group_tests(one, NULL, NULL) ? 1 : 0;
    }
    const char *base = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/nb_png_XXXXXX", base && strlen(base) < 200 ? base : ".");
    if (!mkdtemp(g_dir)) {
        perror(g_dir);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gray_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cols_and_layouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strided_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_grid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test(test_out_of_memory),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rmdir(g_dir) != 0)
        perror(g_dir);
    return rc ? 1 : 0;
}
