/* safetensors: the reference's known-answer file both ways, round trips of
 * every store dtype (f16/bf16 rounding checked exhaustively), strided, 0-d
 * and empty tensors, metadata, every kind of malformed file, bad arguments,
 * atomic replacement, and out-of-memory at every allocation.
 *
 * Also the two halves of the PyTorch parity test (parity_safetensors.py):
 *   test_safetensors --write-parity FILE          writes a file Python checks
 *   test_safetensors --read-torch FILE EXPECTED   reads Python's file, compares */
#include "core/internal.h"
#include "io/half.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- helpers ------------------------------------------------------------- */
static nb_ctx *new_ctx(void)
{
    nb_ctx *ctx = nb_ctx_new(NULL);
    assert_non_null(ctx);
    nb_set_num_threads(ctx, 1);
    return ctx;
}

typedef struct tmpdir {
    char dir[64];
    char path[4][128]; /* path_in's results, reused round robin */
    int k;
} tmpdir;

static void tmp_new(tmpdir *t)
{
    const char *base = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/nb_st_XXXXXX", base && strlen(base) < 32 ? base : "/tmp");
    assert_non_null(mkdtemp(t->dir));
    t->k = 0;
}

static const char *path_in(tmpdir *t, const char *name)
{
    char *p = t->path[t->k++ % 4];
    size_t n = strlen(t->dir);
    assert_true(n + strlen(name) + 2 <= sizeof t->path[0]);
    memcpy(p, t->dir, n);
    p[n] = '/';
    strcpy(p + n + 1, name);
    return p;
}

/* Names in the folder other than . and .., joined by spaces. */
static int list_dir(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    out[0] = '\0';
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n++;
        strncat(out, e->d_name, cap - strlen(out) - 2);
        strcat(out, " ");
    }
    closedir(d);
    return n;
}

static void tmp_free(tmpdir *t)
{
    DIR *d = opendir(t->dir);
    assert_non_null(d);
    char p[384];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    closedir(d);
    assert_int_equal(rmdir(t->dir), 0);
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

static void spit(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* A file with header text (length as given, no padding) and data bytes
 * (zeros when data is NULL). */
static void put_st(const char *path, const char *header, const void *data, size_t dlen)
{
    size_t n = strlen(header);
    unsigned char *b = calloc(1, 8 + n + dlen + 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    if (data)
        memcpy(b + 8 + n, data, dlen);
    spit(path, b, 8 + n + dlen);
    free(b);
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* The last call failed with `st` and a message holding `path` and `want`. */
static void expect_err(nb_ctx *ctx, nb_status st, const char *path, const char *want)
{
    const char *m = nb_last_error(ctx);
    if (nb_last_status(ctx) != st)
        fail_msg("status %s, expected %s (%s)", nb_status_str(nb_last_status(ctx)),
                 nb_status_str(st), m);
    if ((path && !strstr(m, path)) || !strstr(m, want))
        fail_msg("error '%s' does not contain '%s' and '%s'", m, path ? path : "", want);
    nb_clear_error(ctx);
}

static nb_tensor *vec(nb_ctx *ctx, nb_dtype dt, int64_t n, const double *v)
{
    nb_tensor *t = nb_buffer(ctx, dt, 1, (int64_t[]){n});
    assert_non_null(t);
    for (int64_t i = 0; i < n; i++)
        nb_set(t, i, v[i]);
    return t;
}

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* ---- known answer ------------------------------------------------------- */
static const char KA_HEADER[] =
    "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

static void test_known_answer(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    tmpdir td;
    tmp_new(&td);
    const char *pw = path_in(&td, "w.st"), *pr = path_in(&td, "r.st");
    unsigned char want[8 + 64 + 16] = {0x40};
    assert_int_equal(strlen(KA_HEADER), 60);
    memcpy(want + 8, KA_HEADER, 60);
    memset(want + 68, ' ', 4);
    /* writing {"test": int32 zeros (2,2)} gives exactly those bytes */
    nb_tensor *z = nb_buffer(ctx, NB_I32, NB_SHAPE(2, 2));
    nb_st_item it = {"test", z, NB_DTYPE_COUNT};
    assert_int_equal(nb_safetensors_save(ctx, pw, &it, 1, NULL, 0), NB_OK);
    size_t len;
    unsigned char *got = slurp(pw, &len);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(got, want, sizeof want);
    free(got);
    /* reading those bytes gives the tensor */
    spit(pr, want, sizeof want);
    nb_safetensors *st = nb_safetensors_open(ctx, pr);
    assert_non_null(st);
    assert_int_equal(nb_safetensors_count(st), 1);
    assert_string_equal(nb_safetensors_name(st, 0), "test");
    assert_null(nb_safetensors_name(st, 1));
    assert_null(nb_safetensors_meta(st, "format"));
    nb_dtype dt;
    int nd;
    int64_t shape[NB_MAX_DIMS];
    assert_int_equal(nb_safetensors_info(st, "test", &dt, &nd, shape), NB_OK);
    assert_int_equal(dt, NB_I32);
    assert_int_equal(nd, 2);
    assert_true(shape[0] == 2 && shape[1] == 2);
    nb_tensor *r = nb_buffer(ctx, NB_I32, NB_SHAPE(2, 2)),
              *f = nb_buffer(ctx, NB_F64, NB_SHAPE(2, 2));
    for (int i = 0; i < 4; i++)
        nb_set(r, i, 7), nb_set(f, i, 7);
    assert_int_equal(nb_safetensors_read(ctx, st, "test", r), NB_OK);
    assert_int_equal(nb_safetensors_read(ctx, st, "test", f), NB_OK);
    for (int i = 0; i < 4; i++)
        assert_true(nb_get(r, i) == 0 && nb_get(f, i) == 0);
    nb_safetensors_close(ctx, st);
    tmp_free(&td);
    nb_ctx_free(ctx);
}

/* ---- round trips ---------------------------------------------------------- */
static void test_round_trip_dtypes(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    tmpdir td;
    tmp_new(&td);
    const char *p = path_in(&td, "a.st");
    const double fv[6] = {0, -1.5, 3.141592653589793, 1e-30, -1e30, 0.1};
    nb_tensor *f32 = vec(ctx, NB_F32, 6, fv), *f64 = vec(ctx, NB_F64, 6, fv);
    nb_tensor *i32 = vec(ctx, NB_I32, 4, (double[]){INT32_MIN, -1, 0, INT32_MAX});
    nb_tensor *u8 = vec(ctx, NB_U8, 4, (double[]){0, 1, 128, 255});
    nb_tensor *i64 = nb_buffer(ctx, NB_I64, NB_SHAPE(3));
    const int64_t iv[3] = {INT64_MIN, (INT64_C(1) << 62) + 1, 9007199254740993}; /* not doubles */
    memcpy(i64->data, iv, sizeof iv);
    nb_st_item items[] = {{"u8", u8, NB_DTYPE_COUNT},   {"f32", f32, NB_DTYPE_COUNT},
                          {"f64", f64, NB_DTYPE_COUNT}, {"i32", i32, NB_DTYPE_COUNT},
                          {"i64", i64, NB_DTYPE_COUNT}, {"i32_as_i64", i32, NB_I64},
                          {"u8_as_i32", u8, NB_I32},    {"f32_as_f64", f32, NB_F64}};
    const int n = 8;
    assert_int_equal(nb_safetensors_save(ctx, p, items, n, NULL, 0), NB_OK);
    /* layout: 8-byte dtypes first, then 4, then 1; the given order within a size */
    size_t len;
    unsigned char *raw = slurp(p, &len);
    uint64_t hn = 0;
    for (int i = 0; i < 8; i++)
        hn |= (uint64_t)raw[i] << (8 * i);
    assert_int_equal(hn % 8, 0);
    raw[8 + hn] = '\0';
    const char *order[] = {"f64", "i64", "i32_as_i64", "f32_as_f64",
                           "f32", "i32", "u8_as_i32",  "u8"};
    const int64_t begin[] = {0, 48, 72, 104, 152, 176, 192, 208};
    for (int k = 0; k < n; k++) {
        char want[64];
        snprintf(want, sizeof want, "\"%s\":{", order[k]);
        const char *at = strstr((char *)raw + 8, want);
        assert_non_null(at);
        snprintf(want, sizeof want, "\"data_offsets\":[%lld,", (long long)begin[k]);
        assert_non_null(strstr(at, want));
    }
    assert_null(strstr((char *)raw + 8, "__metadata__"));
    assert_int_equal(len, 8 + hn + 212);
    free(raw);
    nb_safetensors *st = nb_safetensors_open(ctx, p);
    assert_non_null(st);
    assert_int_equal(nb_safetensors_count(st), n);
    for (int k = 0; k < n; k++) {
        assert_string_equal(nb_safetensors_name(st, k), items[k].name); /* header order */
        const nb_tensor *src = items[k].tensor;
        nb_dtype want = items[k].store == NB_DTYPE_COUNT ? src->dtype : items[k].store, dt;
        int nd;
        int64_t shape[NB_MAX_DIMS];
        assert_int_equal(nb_safetensors_info(st, items[k].name, &dt, &nd, shape), NB_OK);
        assert_int_equal(dt, want);
        assert_int_equal(nd, 1);
        assert_int_equal(shape[0], src->shape[0]);
        nb_tensor *back = nb_buffer(ctx, src->dtype, 1, src->shape);
        assert_int_equal(nb_safetensors_read(ctx, st, items[k].name, back), NB_OK);
        assert_memory_equal(back->data, src->data, (size_t)nb_numel(src) * nb__esize(src->dtype));
    }
    nb_safetensors_close(ctx, st);
    tmp_free(&td);
    nb_ctx_free(ctx);
}

/* Adjacent finite values a < b of a 16-bit format (by bits): the midpoint
 * rounds to the even one, a hair off it to the nearer. Covers subnormals,
 * the normal range and the overflow boundary (the last step is to inf). */
static void check_ties(uint16_t (*from)(double), double (*to)(uint16_t), uint16_t inf)
{
    for (uint32_t h = 0; h < inf; h++) {
        double a = to((uint16_t)h);
        double b =
            h + 1 < inf ? to((uint16_t)(h + 1)) : 2 * to((uint16_t)h) - to((uint16_t)(h - 1));
        double m = a + (b - a) / 2; /* exact */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (from(m) != even || from(-m) != (even | 0x8000))
            fail_msg("tie %.17g between %#x and %#x gives %#x", m, h, h + 1, from(m));
        if (from(nextafter(m, 0)) != h || from(nextafter(m, INFINITY)) != h + 1)
            fail_msg("near the tie %.17g after %#x", m, h);
        if (from(a) != h || to(from(a)) != a)
            fail_msg("%#x does not round-trip", h);
    }
}

static void test_f16_bf16_conversion(void **state)
{
    (void)state;
    check_ties(nb__f16_from_double, nb__f16_to_double, 0x7c00);
    check_ties(nb__bf16_from_double, nb__bf16_to_double, 0x7f80);
    for (uint32_t h = 0; h < 0x10000; h++) { /* NaNs stay NaNs of the same sign */
        bool nan16 = (h & 0x7c00) == 0x7c00 && (h & 0x3ff),
             nanb = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (nan16)
            assert_int_equal(nb__f16_from_double(nb__f16_to_double((uint16_t)h)),
                             0x7e00 | (h & 0x8000));
        if (nanb)
            assert_int_equal(nb__bf16_from_double(nb__bf16_to_double((uint16_t)h)),
                             0x7fc0 | (h & 0x8000));
    }
    /* bf16 of a float32 by the bit trick (round to nearest even on the bits) */
    uint32_t s = 12345;
    for (int i = 0; i < 1000000; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t bits = s;
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f))
            continue;
        uint16_t want = (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
        if (nb__bf16_from_double(f) != want)
            fail_msg("bf16(%a) = %#x, expected %#x", f, nb__bf16_from_double(f), want);
    }
}

static void test_f16_bf16_storage(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    tmpdir td;
    tmp_new(&td);
    const char *p = path_in(&td, "h.st");
    /* known cases (PyTorch 1.13's .half() / .bfloat16() of the same float32) */
    const double v[] = {1.0,         -2.5,        65504,    65519.99, 65520,
                        1e-8,        1e-7,        6e-8,     0x1p-25,  0x3p-25,
                        1 + 0x1p-11, 1 + 0x3p-11, 2049,     2051,     3.4028234663852886e38,
                        1e-39,       -0.0,        INFINITY, NAN};
    const uint16_t f16[] = {0x3c00, 0xc100, 0x7bff, 0x7bff, 0x7c00, 0x0000, 0x0002,
                            0x0001, 0x0000, 0x0002, 0x3c00, 0x3c02, 0x6800, 0x6802,
                            0x7c00, 0x0000, 0x8000, 0x7c00, 0x7e00};
    const uint16_t bf16[] = {0x3f80, 0xc020, 0x4780, 0x4780, 0x4780, 0x322c, 0x33d7,
                             0x3381, 0x3300, 0x33c0, 0x3f80, 0x3f80, 0x4500, 0x4500,
                             0x7f80, 0x000b, 0x8000, 0x7f80, 0x7fc0};
    const int n = (int)(sizeof v / sizeof v[0]);
    nb_tensor *x = vec(ctx, NB_F32, n, v);
    /* from float64 the rounding is done once: 1 + 2^-11 + 2^-40 is just above
     * the tie, so f16 gives 1 + 2^-10 (through float32 it would be 1.0) */
    nb_tensor *d = vec(ctx, NB_F64, 4, (double[]){1 + 0x1p-11 + 0x1p-40, 1e300, -1e300, 1e-300});
    const uint16_t d16[] = {0x3c01, 0x7c00, 0xfc00, 0x0000};
    nb_st_item items[] = {{"h", x, NB_F16}, {"b", x, NB_BF16}, {"d", d, NB_F16}};
    assert_int_equal(nb_safetensors_save(ctx, p, items, 3, NULL, 0), NB_OK);
    size_t len;
    unsigned char *raw = slurp(p, &len);
    size_t data = 8 + (size_t)le16(raw); /* header < 64 KiB */
    assert_int_equal(len, data + 2 * (2 * n + 4));
    for (int i = 0; i < n; i++) { /* layout in given order: h, b, d */
        if (le16(raw + data + 2 * i) != f16[i] || le16(raw + data + 2 * (n + i)) != bf16[i])
            fail_msg("%.17g: f16 %#x (want %#x), bf16 %#x (want %#x)", v[i],
                     le16(raw + data + 2 * i), f16[i], le16(raw + data + 2 * (n + i)), bf16[i]);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(le16(raw + data + 4 * n + 2 * i), d16[i]);
    free(raw);
    /* reading widens exactly, into f32 and f64 */
    nb_safetensors *st = nb_safetensors_open(ctx, p);
    assert_non_null(st);
    nb_dtype dt;
    assert_int_equal(nb_safetensors_info(st, "h", &dt, NULL, NULL), NB_OK);
    assert_int_equal(dt, NB_F16);
    assert_int_equal(nb_safetensors_info(st, "b", &dt, NULL, NULL), NB_OK);
    assert_int_equal(dt, NB_BF16);
    nb_tensor *h = nb_buffer(ctx, NB_F32, 1, x->shape), *b = nb_buffer(ctx, NB_F64, 1, x->shape);
    assert_int_equal(nb_safetensors_read(ctx, st, "h", h), NB_OK);
    assert_int_equal(nb_safetensors_read(ctx, st, "b", b), NB_OK);
    for (int i = 0; i < n - 1; i++) {
        assert_true(nb_get(h, i) == nb__f16_to_double(f16[i]));
        assert_true(nb_get(b, i) == nb__bf16_to_double(bf16[i]));
    }
    assert_true(isnan(nb_get(h, n - 1)) && isnan(nb_get(b, n - 1)));
    assert_true(nb_get(h, 4) == INFINITY && nb_get(h, 2) == 65504 && nb_get(h, 6) == 0x2p-24);
    nb_safetensors_close(ctx, st);
    tmp_free(&td);
    nb_ctx_free(ctx);
}

static void test_strided_scalar_empty_metadata(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    tmpdir td;
    tmp_new(&td);
    const char *p = path_in(&td, "s.st");
    nb_tensor *a = nb_buffer(ctx, NB_F32, NB_SHAPE(3, 4)),
              *ai = nb_buffer(ctx, NB_I32, NB_SHAPE(3, 4));
    for (int i = 0; i < 12; i++)
        nb_set(a, i, i * 0.5 - 2), nb_set(ai, i, i - 6);
    nb_tensor *at = nb_transpose(ctx, a, 0, 1),
              *ait = nb_transpose(ctx, ai, 0, 1); /* [4,3] views */
    assert_false(nb_is_contiguous(at));
    nb_tensor *s = nb_buffer(ctx, NB_F64, 0, NULL);
    nb_set(s, 0, 3.5);
    nb_tensor *e = nb_buffer(ctx, NB_F32, NB_SHAPE(0, 3)),
              *e2 = nb_buffer(ctx, NB_I64, NB_SHAPE(2, 0));
    nb_st_item items[] = {{"at", at, NB_DTYPE_COUNT},     {"ait", ait, NB_I64},
                          {"scalar", s, NB_DTYPE_COUNT},  {"empty", e, NB_BF16},
                          {"empty2", e2, NB_DTYPE_COUNT}, {"at16", at, NB_F16}};
    nb_st_meta meta[] = {{"format", "pt"}, {"note", "\xc3\xa9t\xc3\xa9 \"quoted\"\n"}, {"", ""}};
    assert_int_equal(nb_safetensors_save(ctx, p, items, 6, meta, 3), NB_OK);
    nb_safetensors *st = nb_safetensors_open(ctx, p);
    assert_non_null(st);
    assert_string_equal(nb_safetensors_meta(st, "format"), "pt");
    assert_string_equal(nb_safetensors_meta(st, "note"), meta[1].value);
    assert_string_equal(nb_safetensors_meta(st, ""), "");
    assert_null(nb_safetensors_meta(st, "missing"));
    assert_null(nb_safetensors_meta(st, NULL));
    /* transposed source, read into a contiguous [4,3] and into a transposed view */
    nb_tensor *c = nb_buffer(ctx, NB_F32, NB_SHAPE(4, 3)),
              *ci = nb_buffer(ctx, NB_I32, NB_SHAPE(4, 3));
    nb_tensor *h = nb_buffer(ctx, NB_F64, NB_SHAPE(4, 3));
    nb_tensor *b = nb_buffer(ctx, NB_F32, NB_SHAPE(3, 4)), *bt = nb_transpose(ctx, b, 0, 1);
    assert_int_equal(nb_safetensors_read(ctx, st, "at", c), NB_OK);
    assert_int_equal(nb_safetensors_read(ctx, st, "ait", ci), NB_OK);
    assert_int_equal(nb_safetensors_read(ctx, st, "at16", h), NB_OK);
    assert_int_equal(nb_safetensors_read(ctx, st, "at", bt), NB_OK);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) {
            assert_true(nb_get(c, i * 3 + j) == nb_get(a, j * 4 + i));
            assert_true(nb_get(ci, i * 3 + j) == nb_get(ai, j * 4 + i));
            assert_true(nb_get(h, i * 3 + j) == nb_get(a, j * 4 + i)); /* exact in f16 */
        }
    assert_memory_equal(b->data, a->data, 12 * sizeof(float));
    /* 0-d and zero-size */
    nb_dtype dt;
    int nd = -1;
    int64_t shape[NB_MAX_DIMS];
    assert_int_equal(nb_safetensors_info(st, "scalar", &dt, &nd, shape), NB_OK);
    assert_int_equal(nd, 0);
    nb_tensor *s2 = nb_buffer(ctx, NB_F32, 0, NULL);
    assert_int_equal(nb_safetensors_read(ctx, st, "scalar", s2), NB_OK);
    assert_true(nb_get(s2, 0) == 3.5);
    assert_int_equal(nb_safetensors_info(st, "empty", &dt, &nd, shape), NB_OK);
    assert_true(dt == NB_BF16 && nd == 2 && shape[0] == 0 && shape[1] == 3);
    nb_tensor *e3 = nb_buffer(ctx, NB_F64, NB_SHAPE(0, 3)),
              *e4 = nb_buffer(ctx, NB_I64, NB_SHAPE(2, 0));
    assert_int_equal(nb_safetensors_read(ctx, st, "empty", e3), NB_OK);
    assert_int_equal(nb_safetensors_read(ctx, st, "empty2", e4), NB_OK);
    nb_safetensors_close(ctx, st);
    tmp_free(&td);
    nb_ctx_free(ctx);
}

/* ---- malformed files --------------------------------------------------------- */
#define OK_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static void test_malformed_files(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    tmpdir td;
    tmp_new(&td);
    const char *p = path_in(&td, "bad.st"), *pok = path_in(&td, "ok.st");
    int fds = open_fds();
    static const struct {
        const char *header;
        size_t data;
        const char *want;
    } cases[] = {
        {"{\"a\":", 0, "header is not valid JSON"},
        {"{" OK_A "," OK_A "}", 8, "duplicate object key"},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor \"a\": missing \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "missing \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "missing \"data_offsets\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
         "negative size -2 in shape"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":["
         "0,8]}}",
         8, "shape [4294967296,4294967296,4294967296] has too many elements"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1152921504606846975],\"data_offsets\":[0,8]}}", 8,
         "do not match [1152921504606846975] F64 (9223372036854775800 bytes)"},
        {"{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2,
         "[3] F4 is not a whole number of bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8,
         "header is not valid JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "non-integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
         "shape has 9 dimensions (at most 8)"},
        {"{\"a\":{\"dtype\":\"F7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         "unknown dtype \"F7\""},
        {"{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         "\"dtype\" is not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
         "[8,0] end before they begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 8,
         "not two non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]}}", 8,
         "not two non-negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
         "tensor \"a\": data_offsets [0,8] do not match [3] F32 (12 bytes)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
         "gap in the data buffer: bytes [0,4) belong to no tensor (next is \"a\")"},
        {"{" OK_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20,
         "bytes [8,12) belong to no tensor"},
        {"{" OK_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
         "tensor \"b\" (data_offsets [4,12]) overlaps tensor \"a\", which ends at 8"},
        {"{" OK_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8,
         "overlaps"},
        {"{" OK_A "}", 9, "1 trailing bytes after the last tensor"},
        {"{" OK_A "}", 7, "file is truncated: the tensors need 8 bytes of data, 7 are present"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "\"__metadata__\" value of \"k\" is not a string"},
        {"{\"__metadata__\":[\"k\"]}", 0, "\"__metadata__\" is not an object"},
        {"{\"a\":3}", 0, "tensor \"a\": entry is not an object"},
        {" {}", 0, "header does not start with '{'"},
        {"[1]", 0, "header does not start with '{'"},
        {"", 0, "header does not start with '{'"},
        {"{\"\xff\":1}", 0, "header is not valid JSON"},
        {"{\"a\\u0000b\":1}", 0, "header is not valid JSON"},
        {"{} x", 0, "header is not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        put_st(p, cases[i].header, NULL, cases[i].data);
        nb_safetensors *st = nb_safetensors_open(ctx, p);
        if (st)
            fail_msg("case %zu (%s) opened", i, cases[i].header);
        expect_err(ctx, NB_ERR_FORMAT, p, cases[i].want);
    }
    /* header length past the end, above the limit; file too short for it */
    unsigned char raw[24] = {0xe8, 0x03};
    spit(p, raw, sizeof raw);
    assert_null(nb_safetensors_open(ctx, p));
    expect_err(ctx, NB_ERR_FORMAT, p, "header length 1000 runs past the end of the 24-byte file");
    raw[0] = 0x01, raw[1] = 0xe1, raw[2] = 0xf5, raw[3] = 0x05; /* 100,000,001 */
    spit(p, raw, sizeof raw);
    assert_null(nb_safetensors_open(ctx, p));
    expect_err(ctx, NB_ERR_FORMAT, p, "header length 100000001 exceeds the limit of 100000000");
    spit(p, raw, 5);
    assert_null(nb_safetensors_open(ctx, p));
    expect_err(ctx, NB_ERR_FORMAT, p, "file is 5 bytes, too short for the 8-byte header length");
    /* not there, not a file */
    assert_null(nb_safetensors_open(ctx, path_in(&td, "none.st")));
    expect_err(ctx, NB_ERR_IO, "none.st", "No such file or directory");
    assert_null(nb_safetensors_open(ctx, td.dir));
    expect_err(ctx, NB_ERR_IO, td.dir, "not a regular file");
    assert_null(nb_safetensors_open(ctx, NULL));
    expect_err(ctx, NB_ERR_NULL, NULL, "path is NULL");
    /* every prefix of a valid file is refused */
    nb_tensor *t = vec(ctx, NB_F32, 3, (double[]){1, 2, 3});
    nb_st_item it[] = {{"x", t, NB_DTYPE_COUNT}, {"y", t, NB_F16}};
    nb_st_meta m = {"format", "pt"};
    assert_int_equal(nb_safetensors_save(ctx, pok, it, 2, &m, 1), NB_OK);
    size_t len;
    unsigned char *full = slurp(pok, &len);
    p = path_in(&td, "prefix.st");
    for (size_t k = 0; k < len; k++) {
        spit(p, full, k);
        if (nb_safetensors_open(ctx, p))
            fail_msg("a %zu-byte prefix of a %zu-byte file opened", k, len);
        expect_err(ctx, NB_ERR_FORMAT, p, "");
    }
    spit(p, full, len);
    nb_safetensors *st = nb_safetensors_open(ctx, p);
    assert_non_null(st);
    nb_safetensors_close(ctx, st);
    free(full);
    assert_int_equal(open_fds(), fds); /* no descriptor leaked */
    tmp_free(&td);
    nb_ctx_free(ctx);
}

/* Files nabla does not write: other integer dtypes, BOOL, F8. */
static void test_read_conversions_and_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    tmpdir td;
    tmp_new(&td);
    const char *p = path_in(&td, "x.st");
    unsigned char data[64] = {0};
    /* u64 [2]: 2^63, 5 | i64 [1]: 300 | u32 [1]: 4e9 | i16 [2]: -2, 300 | u16 [1] 65535 |
     * i8 [2]: -1, 7 | bool [2]: 1, 2 | f8 [1] */
    const uint64_t u64[2] = {UINT64_C(1) << 63, 5};
    const int64_t i64 = 300;
    const uint32_t u32 = 4000000000u;
    const int16_t i16[2] = {-2, 300};
    const uint16_t u16 = 65535;
    memcpy(data, u64, 16);
    memcpy(data + 16, &i64, 8);
    memcpy(data + 24, &u32, 4);
    memcpy(data + 28, i16, 4);
    memcpy(data + 32, &u16, 2);
    data[34] = 0xff, data[35] = 7, data[36] = 1, data[37] = 2, data[38] = 0x38;
    put_st(p,
           "{\"u64\":{\"dtype\":\"U64\",\"shape\":[2],\"data_offsets\":[0,16]},"
           "\"i64\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]},"
           "\"u32\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[24,28]},"
           "\"i16\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[28,32]},"
           "\"u16\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[32,34]},"
           "\"i8\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[34,36]},"
           "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[36,38],\"extra\":1},"
           "\"f8\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[38,39]}}",
           data, 39);
    nb_safetensors *st = nb_safetensors_open(ctx, p);
    assert_non_null(st);
    nb_dtype dt;
    const char *other[] = {"u64", "u32", "i16", "u16", "i8", "bool", "f8"};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(nb_safetensors_info(st, other[i], &dt, NULL, NULL), NB_OK);
        assert_int_equal(dt, NB_DTYPE_COUNT);
    }
    nb_tensor *f2 = nb_buffer(ctx, NB_F64, NB_SHAPE(2)), *l2 = nb_buffer(ctx, NB_I64, NB_SHAPE(2));
    nb_tensor *l1 = nb_buffer(ctx, NB_I64, NB_SHAPE(1)), *b1 = nb_buffer(ctx, NB_U8, NB_SHAPE(1));
    nb_tensor *i2 = nb_buffer(ctx, NB_I32, NB_SHAPE(2)), *b2 = nb_buffer(ctx, NB_U8, NB_SHAPE(2));
    assert_int_equal(nb_safetensors_read(ctx, st, "u64", f2), NB_OK);
    assert_true(nb_get(f2, 0) == 0x1p63 && nb_get(f2, 1) == 5);
    assert_int_equal(nb_safetensors_read(ctx, st, "u64", l2), NB_ERR_ARG);
    expect_err(ctx, NB_ERR_ARG, p,
               "tensor \"u64\": element 0 is 9223372036854775808, which does not fit i64");
    assert_int_equal(nb_safetensors_read(ctx, st, "u32", l1), NB_OK);
    assert_int_equal(((int64_t *)l1->data)[0], 4000000000);
    assert_int_equal(nb_safetensors_read(ctx, st, "i16", i2), NB_OK);
    assert_true(nb_get(i2, 0) == -2 && nb_get(i2, 1) == 300);
    assert_int_equal(nb_safetensors_read(ctx, st, "i16", b2), NB_ERR_ARG);
    expect_err(ctx, NB_ERR_ARG, p, "element 0 is -2, which does not fit u8");
    assert_int_equal(nb_safetensors_read(ctx, st, "i64", b1), NB_ERR_ARG);
    expect_err(ctx, NB_ERR_ARG, p, "tensor \"i64\": element 0 is 300, which does not fit u8");
    assert_int_equal(nb_safetensors_read(ctx, st, "u16", l1), NB_OK);
    assert_int_equal(((int64_t *)l1->data)[0], 65535);
    assert_int_equal(nb_safetensors_read(ctx, st, "i8", f2), NB_OK);
    assert_true(nb_get(f2, 0) == -1 && nb_get(f2, 1) == 7);
    assert_int_equal(nb_safetensors_read(ctx, st, "bool", b2), NB_ERR_FORMAT);
    expect_err(ctx, NB_ERR_FORMAT, p, "tensor \"bool\": BOOL element 1 is 2, not 0 or 1");
    assert_int_equal(nb_safetensors_read(ctx, st, "f8", l1), NB_ERR_FORMAT);
    expect_err(ctx, NB_ERR_FORMAT, p, "tensor \"f8\" is F8_E4M3, which nabla cannot read");
    /* caller mistakes */
    assert_int_equal(nb_safetensors_read(ctx, st, "i16", l1), NB_ERR_SHAPE);
    expect_err(ctx, NB_ERR_SHAPE, p, "tensor \"i16\" is [2] in the file, dst is [1]");
    assert_int_equal(nb_safetensors_read(ctx, st, "nope", l1), NB_ERR_ARG);
    expect_err(ctx, NB_ERR_ARG, p, "no tensor named \"nope\"");
    assert_int_equal(nb_safetensors_info(st, "nope", &dt, NULL, NULL), NB_ERR_ARG);
    expect_err(ctx, NB_ERR_ARG, p, "no tensor named \"nope\"");
    assert_int_equal(nb_safetensors_read(ctx, st, "i16", NULL), NB_ERR_NULL);
    expect_err(ctx, NB_ERR_NULL, p, "read: dst is NULL");
    assert_int_equal(nb_safetensors_read(ctx, NULL, "i16", l1), NB_ERR_NULL);
    nb_clear_error(ctx);
    assert_int_equal(nb_safetensors_read(NULL, st, "i16", l1), NB_ERR_NULL);
    assert_int_equal(nb_safetensors_info(NULL, "x", &dt, NULL, NULL), NB_ERR_NULL);
    assert_int_equal(nb_safetensors_count(NULL), 0);
    assert_null(nb_safetensors_name(NULL, 0));
    assert_null(nb_safetensors_name(st, -1));
    nb_safetensors_close(ctx, st);
    nb_safetensors_close(ctx, NULL);
    /* floats do not read into integers */
    nb_tensor *f = vec(ctx, NB_F32, 2, (double[]){1, 2});
    nb_st_item it = {"f", f, NB_F16};
    assert_int_equal(nb_safetensors_save(ctx, p, &it, 1, NULL, 0), NB_OK);
    st = nb_safetensors_open(ctx, p);
    assert_non_null(st);
    assert_int_equal(nb_safetensors_read(ctx, st, "f", i2), NB_ERR_DTYPE);
    expect_err(ctx, NB_ERR_DTYPE, p,
               "tensor \"f\" is F16 in the file and cannot be read into a tensor of dtype i32");
    nb_safetensors_close(ctx, st);
    tmp_free(&td);
    nb_ctx_free(ctx);
}

/* ---- writer errors and atomic replacement ------------------------------------ */
static void test_save_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    tmpdir td;
    tmp_new(&td);
    const char *p = path_in(&td, "s.st");
    nb_tensor *f = vec(ctx, NB_F32, 2, (double[]){1, 2}),
              *i = vec(ctx, NB_I32, 2, (double[]){1, 2});
    nb_st_meta m2[] = {{"k", "1"}, {"k", "2"}}, mn = {"k", NULL};
    static const struct {
        nb_st_item a, b;
        nb_status st;
        const char *want;
    } cases[] = {
        {{"w", NULL, NB_DTYPE_COUNT},
         {"w", NULL, NB_DTYPE_COUNT},
         NB_ERR_ARG,
         "duplicate tensor name \"w\""},
        {{NULL, NULL, NB_DTYPE_COUNT},
         {"v", NULL, NB_DTYPE_COUNT},
         NB_ERR_NULL,
         "item 0 has a NULL name"},
        {{"w", NULL, NB_DTYPE_COUNT},
         {"", NULL, NB_DTYPE_COUNT},
         NB_ERR_ARG,
         "item 1 has an empty name"},
        {{"w", NULL, NB_DTYPE_COUNT},
         {"__metadata__", NULL, NB_DTYPE_COUNT},
         NB_ERR_ARG,
         "reserved"},
        {{"w", NULL, NB_DTYPE_COUNT},
         {"\xc3(", NULL, NB_DTYPE_COUNT},
         NB_ERR_ARG,
         "not valid UTF-8"},
        {{"w", NULL, NB_I32},
         {"v", NULL, NB_DTYPE_COUNT},
         NB_ERR_DTYPE,
         "tensor \"w\": dtype f32 cannot be stored as i32"},
        {{"w", NULL, NB_DTYPE_COUNT},
         {"v", NULL, NB_F16},
         NB_ERR_DTYPE,
         "tensor \"v\": dtype i32 cannot be stored as f16"},
        {{"w", NULL, (nb_dtype)99},
         {"v", NULL, NB_DTYPE_COUNT},
         NB_ERR_DTYPE,
         "cannot be stored as ?"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        nb_st_item it[2] = {cases[k].a, cases[k].b};
        it[0].tensor = f;
        it[1].tensor = i;
        assert_int_equal(nb_safetensors_save(ctx, p, it, 2, NULL, 0), cases[k].st);
        expect_err(ctx, cases[k].st, NULL, cases[k].want);
    }
    nb_st_item ok = {"w", f, NB_DTYPE_COUNT}, null_t = {"w", NULL, NB_DTYPE_COUNT};
    assert_int_equal(nb_safetensors_save(ctx, p, &null_t, 1, NULL, 0), NB_ERR_NULL);
    expect_err(ctx, NB_ERR_NULL, p, "tensor \"w\" is NULL");
    assert_int_equal(nb_safetensors_save(ctx, p, &ok, 1, m2, 2), NB_ERR_ARG);
    expect_err(ctx, NB_ERR_ARG, p, "duplicate metadata key \"k\"");
    assert_int_equal(nb_safetensors_save(ctx, p, &ok, 1, &mn, 1), NB_ERR_NULL);
    expect_err(ctx, NB_ERR_NULL, p, "metadata 0 has a NULL value");
    assert_int_equal(nb_safetensors_save(ctx, p, NULL, 1, NULL, 0), NB_ERR_NULL);
    expect_err(ctx, NB_ERR_NULL, p, "items is NULL");
    assert_int_equal(nb_safetensors_save(ctx, p, &ok, -1, NULL, 0), NB_ERR_ARG);
    expect_err(ctx, NB_ERR_ARG, p, "negative count");
    assert_int_equal(nb_safetensors_save(ctx, NULL, &ok, 1, NULL, 0), NB_ERR_NULL);
    expect_err(ctx, NB_ERR_NULL, NULL, "path is NULL");
    assert_int_equal(nb_safetensors_save(NULL, p, &ok, 1, NULL, 0), NB_ERR_NULL);
    char names[256];
    assert_int_equal(list_dir(td.dir, names, sizeof names), 0); /* nothing was created */
    /* a folder that does not exist */
    assert_int_equal(nb_safetensors_save(ctx, "/nonexistent-nb/x.st", &ok, 1, NULL, 0), NB_ERR_IO);
    expect_err(ctx, NB_ERR_IO, "/nonexistent-nb/x.st", "No such file or directory");
    /* an empty file is valid: "{}" and padding */
    assert_int_equal(nb_safetensors_save(ctx, p, NULL, 0, NULL, 0), NB_OK);
    size_t len;
    unsigned char *raw = slurp(p, &len);
    assert_int_equal(len, 16);
    assert_memory_equal(raw, "\x08\0\0\0\0\0\0\0{}      ", 16);
    free(raw);
    tmp_free(&td);
    nb_ctx_free(ctx);
}

static void test_atomic_replace(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    tmpdir td;
    tmp_new(&td);
    const char *p = path_in(&td, "model.st");
    nb_tensor *a = vec(ctx, NB_F32, 3, (double[]){1, 2, 3});
    nb_tensor *big = nb_buffer(ctx, NB_I32, NB_SHAPE(100000)); /* beyond one write chunk */
    nb_set(big, 99999, 300);
    nb_st_item first = {"old", a, NB_DTYPE_COUNT};
    assert_int_equal(nb_safetensors_save(ctx, p, &first, 1, NULL, 0), NB_OK);
    size_t len0, len1;
    unsigned char *before = slurp(p, &len0);
    /* the third item's last value does not fit u8: found while writing */
    nb_st_item items[] = {{"a", a, NB_F64}, {"b", a, NB_BF16}, {"big", big, NB_U8}};
    assert_int_equal(nb_safetensors_save(ctx, p, items, 3, NULL, 0), NB_ERR_ARG);
    expect_err(ctx, NB_ERR_ARG, p, "tensor \"big\": element 99999 is 300, which does not fit U8");
    unsigned char *after = slurp(p, &len1);
    assert_int_equal(len1, len0);
    assert_memory_equal(after, before, len0);
    free(after);
    char names[256];
    assert_int_equal(list_dir(td.dir, names, sizeof names), 1);
    assert_string_equal(names, "model.st ");
    /* a rename that fails (the target is a folder) leaves no temporary file */
    const char *dirp = path_in(&td, "folder.st");
    assert_int_equal(mkdir(dirp, 0700), 0);
    assert_int_equal(nb_safetensors_save(ctx, dirp, &first, 1, NULL, 0), NB_ERR_IO);
    expect_err(ctx, NB_ERR_IO, dirp, "rename");
    assert_int_equal(list_dir(td.dir, names, sizeof names), 2);
    /* a successful save replaces the file */
    nb_set(big, 99999, 255);
    assert_int_equal(nb_safetensors_save(ctx, p, items, 3, NULL, 0), NB_OK);
    after = slurp(p, &len1);
    assert_true(len1 != len0 || memcmp(after, before, len0) != 0);
    free(after);
    free(before);
    nb_safetensors *st = nb_safetensors_open(ctx, p);
    assert_non_null(st);
    assert_int_equal(nb_safetensors_count(st), 3);
    nb_tensor *r = nb_buffer(ctx, NB_I32, NB_SHAPE(100000));
    assert_int_equal(nb_safetensors_read(ctx, st, "big", r), NB_OK);
    assert_memory_equal(r->data, big->data, 100000 * 4);
    nb_safetensors_close(ctx, st);
    assert_int_equal(list_dir(td.dir, names, sizeof names), 2);
    tmp_free(&td);
    nb_ctx_free(ctx);
}

/* ---- out of memory at every allocation ------------------------------------- */
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

static nb_status save_and_load(nb_ctx *ctx, const char *path)
{
    nb_tensor *a = nb_buffer(ctx, NB_F32, NB_SHAPE(2, 3)),
              *b = nb_buffer(ctx, NB_F64, NB_SHAPE(2, 3));
    if (!a || !b)
        return nb_last_status(ctx);
    for (int i = 0; i < 6; i++)
        nb_set(a, i, i + 0.25);
    nb_st_item it[] = {{"a", a, NB_BF16}, {"a2", a, NB_DTYPE_COUNT}};
    nb_st_meta m = {"format", "pt"};
    nb_status st = nb_safetensors_save(ctx, path, it, 2, &m, 1);
    if (st != NB_OK)
        return st;
    nb_safetensors *f = nb_safetensors_open(ctx, path);
    if (!f)
        return nb_last_status(ctx);
    st = nb_safetensors_read(ctx, f, "a", b);
    if (st == NB_OK)
        st = nb_safetensors_read(ctx, f, "a2", a);
    nb_safetensors_close(ctx, f);
    if (st == NB_OK && nb_get(b, 5) != 5.25)
        return NB_ERR_FORMAT;
    return st;
}

static void test_out_of_memory(void **state)
{
    (void)state;
    tmpdir td;
    tmp_new(&td);
    const char *p = path_in(&td, "oom.st");
    int fds = open_fds();
    long total = -1, nomem = 0;
    for (long k = -1;; k++) {
        unlink(p);
        counting c = {0, 0, k};
        nb_ctx_opts o = nb_ctx_opts_default();
        o.allocator = (nb_allocator){count_alloc, count_free, &c};
        nb_ctx *ctx = nb_ctx_new(&o);
        if (!ctx)
            continue;
        nb_status st = save_and_load(ctx, p);
        if (st != NB_OK) {
            assert_int_equal(st, NB_ERR_NOMEM);
            assert_non_null(strstr(nb_last_error(ctx), "allocator"));
            nomem++;
        }
        nb_ctx_free(ctx);
        assert_int_equal(c.allocs, c.frees);
        char names[256];
        assert_true(list_dir(td.dir, names, sizeof names) <= 1); /* no temporary file left */
        if (k == -1) {
            assert_int_equal(st, NB_OK);
            total = c.allocs;
        } else if (k >= total) {
            break;
        }
    }
    assert_true(total >= 8);
    assert_true(nomem >= total - 1); /* only the context's own allocation fails silently */
    assert_int_equal(open_fds(), fds);
    tmp_free(&td);
}

/* ---- the C halves of parity_safetensors.py ---------------------------------- */
/* A file whose contents parity_safetensors.py recomputes and checks. */
static int write_parity(const char *path)
{
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_tensor *w = nb_buffer(ctx, NB_F32, NB_SHAPE(3, 4)),
              *d = nb_buffer(ctx, NB_F64, NB_SHAPE(2, 3));
    for (int i = 0; i < 12; i++)
        nb_set(w, i, (i - 5) * 0.375);
    for (int i = 0; i < 6; i++)
        nb_set(d, i, 1.0 / (i + 1));
    nb_tensor *i32 = vec(ctx, NB_I32, 5, (double[]){INT32_MIN, -1, 0, 1, INT32_MAX});
    nb_tensor *i64 = nb_buffer(ctx, NB_I64, NB_SHAPE(2, 2));
    const int64_t iv[4] = {-(INT64_C(1) << 62) - 3, (INT64_C(1) << 62) + 1, 0, 9007199254740993};
    memcpy(i64->data, iv, sizeof iv);
    nb_tensor *u8 = vec(ctx, NB_U8, 4, (double[]){0, 1, 128, 255});
    /* f16/bf16 of float32 values checked against torch: 4096 bit patterns from
     * an LCG (NaNs kept), then 2048 exact f16 ties and 2048 exact bf16 ties */
    nb_tensor *src = nb_buffer(ctx, NB_F32, NB_SHAPE(8192));
    uint32_t s = 2024;
    for (int i = 0; i < 8192; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t h = s >> 16, bits = s, sign = (s & 1u) << 31;
        if (i >= 4096 && i < 6144) {
            h %= 0x7bff; /* midpoint of f16 h and h + 1, both finite */
            float m =
                (float)((nb__f16_to_double((uint16_t)h) + nb__f16_to_double((uint16_t)(h + 1))) /
                        2);
            memcpy(&bits, &m, 4);
            bits |= sign;
        } else if (i >= 6144) {
            bits = ((h % 0x7f7f) << 16) | 0x8000u | sign; /* midpoint of two bf16 */
        }
        memcpy((float *)src->data + i, &bits, 4);
    }
    nb_tensor *sc = nb_buffer(ctx, NB_F64, 0, NULL), *e = nb_buffer(ctx, NB_F32, NB_SHAPE(0, 3));
    nb_set(sc, 0, 2.75);
    nb_tensor *nar = vec(ctx, NB_F64, 3, (double[]){0.1, 1e-40, 1e39});
    nb_st_item items[] = {
        {"w_f32", w, NB_DTYPE_COUNT},
        {"d_f64", d, NB_DTYPE_COUNT},
        {"idx_i32", i32, NB_DTYPE_COUNT},
        {"idx_i64", i64, NB_DTYPE_COUNT},
        {"mask_u8", u8, NB_DTYPE_COUNT},
        {"src", src, NB_DTYPE_COUNT},
        {"src_f16", src, NB_F16},
        {"src_bf16", src, NB_BF16},
        {"w_t", nb_transpose(ctx, w, 0, 1), NB_DTYPE_COUNT},
        {"scalar", sc, NB_DTYPE_COUNT},
        {"empty", e, NB_DTYPE_COUNT},
        {"i32_as_i64", i32, NB_I64},
        {"f64_as_f32", nar, NB_F32},
    };
    nb_st_meta meta[] = {{"format", "pt"}, {"producer", "nabla"}};
    nb_status st = nb_safetensors_save(ctx, path, items, 13, meta, 2);
    if (st != NB_OK)
        fprintf(stderr, "%s\n", nb_last_error(ctx));
    nb_ctx_free(ctx);
    return st == NB_OK ? 0 : 1;
}

/* What nb_safetensors_info reports for a file dtype. */
static nb_dtype nabla_dtype(const char *name)
{
    static const char *const names[] = {"F32", "F64", "I32", "I64", "U8", "F16", "BF16"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(name, names[i]))
            return (nb_dtype)i; /* the order of nb_dtype */
    return NB_DTYPE_COUNT;
}

/* EXPECTED: one line per tensor: "name DTYPE ndim d0 .. count v0 v1 ..."
 * with float values in C99 hex and integers in decimal. */
static int read_torch(const char *path, const char *expected)
{
    nb_ctx *ctx = nb_ctx_new(NULL);
    nb_safetensors *st = nb_safetensors_open(ctx, path);
    FILE *f = fopen(expected, "r");
    int bad = 0, lines = 0;
    if (!st || !f) {
        fprintf(stderr, "cannot open: %s\n", st ? expected : nb_last_error(ctx));
        return 1;
    }
    const char *fmt = nb_safetensors_meta(st, "format");
    if (!fmt || strcmp(fmt, "pt") != 0)
        bad++, fprintf(stderr, "metadata format is %s, not pt\n", fmt ? fmt : "(none)");
    char name[128], dname[16];
    int nd;
    while (fscanf(f, "%127s %15s %d", name, dname, &nd) == 3 && nd >= 0 && nd <= NB_MAX_DIMS) {
        lines++;
        int64_t shape[NB_MAX_DIMS], fshape[NB_MAX_DIMS];
        long long n = 1, cnt = 0;
        for (int k = 0; k < nd; k++) {
            long long v = 0;
            if (fscanf(f, "%lld", &v) != 1)
                return 1;
            shape[k] = v;
            n *= v;
        }
        if (fscanf(f, "%lld", &cnt) != 1 || cnt != n)
            return 1;
        nb_dtype dt;
        int fnd = -1;
        if (nb_safetensors_info(st, name, &dt, &fnd, fshape) != NB_OK || fnd != nd ||
            memcmp(shape, fshape, sizeof(int64_t) * (size_t)nd) != 0 || dt != nabla_dtype(dname)) {
            fprintf(stderr, "%s: info differs (%s)\n", name, nb_last_error(ctx));
            bad++;
        }
        bool isint = dname[0] == 'I' || dname[0] == 'U';
        nb_tensor *t = nb_buffer(ctx, isint ? NB_I64 : NB_F64, nd, shape);
        if (!t || nb_safetensors_read(ctx, st, name, t) != NB_OK) {
            fprintf(stderr, "%s: %s\n", name, nb_last_error(ctx));
            return 1;
        }
        for (long long i = 0; i < n; i++) {
            char tok[64];
            if (fscanf(f, "%63s", tok) != 1)
                return 1;
            bool same = isint ? ((int64_t *)t->data)[i] == strtoll(tok, NULL, 10)
                              : ((double *)t->data)[i] == strtod(tok, NULL);
            if (!same && bad++ < 10)
                fprintf(stderr, "%s[%lld]: nabla %.17g, torch %s\n", name, i, nb_get(t, i), tok);
        }
        nb_tensor_free(ctx, t);
    }
    if (lines != nb_safetensors_count(st))
        bad++,
            fprintf(stderr, "%d expected tensors, file has %d\n", lines, nb_safetensors_count(st));
    printf("read %d tensors written by PyTorch: %s\n", lines, bad ? "MISMATCH" : "all exact");
    fclose(f);
    nb_safetensors_close(ctx, st);
    nb_ctx_free(ctx);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-parity"))
        return write_parity(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "--read-torch"))
        return read_torch(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_round_trip_dtypes),
        cmocka_unit_test(test_f16_bf16_conversion),
        cmocka_unit_test(test_f16_bf16_storage),
        cmocka_unit_test(test_strided_scalar_empty_metadata),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_read_conversions_and_errors),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_atomic_replace),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
