/* Data file readers: IDX (plain and gzip), NPY (read and write), CSV.
 *
 * Files are generated into a private temporary folder. Every error case
 * checks the status, the message text, that no tensor is left in the
 * context and that the allocator hook's allocations balance (ASan/LSan
 * watch everything else). An out-of-memory pass fails each allocation of
 * each reader in turn.
 *
 * Also the C side of the NumPy parity chain (see tests/data.cmake):
 *   test_data --npy-write DIR   writes c_*.npy and c_expected.txt
 *   test_data --npy-check DIR   reads NumPy's py_*.npy as py_expected.txt says */
#include "core/internal.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

/* ---- allocator accounting ------------------------------------------------ */
typedef struct {
    long allocs, frees, fail_at; /* fail allocation number fail_at (0-based); -1 never */
    size_t max_size;
} counting;
static counting g_count;

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
    if (size > c->max_size)
        c->max_size = size;
    return p;
}

static void count_free(void *p, void *user)
{
    ((counting *)user)->frees++;
    free(p);
}

static nb_ctx *new_ctx_failing(long fail_at)
{
    g_count = (counting){0, 0, fail_at, 0};
    nb_ctx_opts o = nb_ctx_opts_default();
    o.allocator.alloc = count_alloc;
    o.allocator.free = count_free;
    o.allocator.user = &g_count;
    o.num_threads = 1;
    return nb_ctx_new(&o);
}

static nb_ctx *new_ctx(void)
{
    nb_ctx *ctx = new_ctx_failing(-1);
    assert_non_null(ctx);
    return ctx;
}

static void free_ctx(nb_ctx *ctx)
{
    nb_ctx_free(ctx);
    assert_int_equal(g_count.allocs, g_count.frees);
}

static long live(void) { return g_count.allocs - g_count.frees; }

/* The call failed with status st and a message containing msg; nothing it
 * allocated is left. Clears the error. */
static void expect_fail(nb_ctx *ctx, long live0, const nb_tensor *persist0, nb_status got,
                        nb_status st, const char *msg)
{
    if (got != st)
        fail_msg("status %s (want %s): %s", nb_status_str(got), nb_status_str(st),
                 nb_last_error(ctx));
    assert_int_equal(nb_last_status(ctx), st);
    if (!strstr(nb_last_error(ctx), msg))
        fail_msg("error '%s' does not contain '%s'", nb_last_error(ctx), msg);
    assert_ptr_equal(ctx->persist, persist0); /* no partial tensor kept */
    assert_int_equal(live(), live0); /* every buffer freed */
    nb_clear_error(ctx);
}
#define EXPECT_NULL(call, st, msg)                                                  \
    do {                                                                            \
        long live0_ = live();                                                       \
        const nb_tensor *p0_ = ctx->persist;                                        \
        nb_tensor *t_ = (call);                                                     \
        if (t_)                                                                     \
            fail_msg("%s succeeded, expected: %s", #call, msg);                     \
        expect_fail(ctx, live0_, p0_, nb_last_status(ctx), st, msg);                \
    } while (0)
#define EXPECT_ST(call, st, msg)                                                    \
    do {                                                                            \
        long live0_ = live();                                                       \
        const nb_tensor *p0_ = ctx->persist;                                        \
        expect_fail(ctx, live0_, p0_, (call), st, msg);                             \
    } while (0)

/* ---- temporary files ----------------------------------------------------- */
static char g_dir[512];

static const char *tpath(const char *name)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    if (n)
        assert_int_equal(gzwrite(g, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

static void write_text(const char *path, const char *s) { write_file(path, s, strlen(s)); }

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static int setup_dir(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/nabla_data_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            const char *p = tpath(e->d_name);
            if (unlink(p) != 0)
                rmdir(p);
        }
    closedir(d);
    return rmdir(g_dir);
}

static void assert_shape(const nb_tensor *t, nb_dtype dt, int ndim, const int64_t *shape)
{
    assert_non_null(t);
    assert_int_equal(t->dtype, dt);
    assert_int_equal(t->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(t->shape[i], shape[i]);
}

/* ---- IDX ----------------------------------------------------------------- */
typedef struct {
    unsigned char b[4096];
    size_t n;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof b->b);
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void put_be(bytes *b, uint64_t v, int w)
{
    for (int i = w - 1; i >= 0; i--) {
        unsigned char c = (unsigned char)(v >> (8 * i));
        put(b, &c, 1);
    }
}
static void idx_head(bytes *b, int type, int ndim, const uint32_t *dims)
{
    b->n = 0;
    put_be(b, (uint64_t)type << 8 | (uint64_t)ndim, 4);
    for (int i = 0; i < ndim; i++)
        put_be(b, dims[i], 4);
}

/* Writes b plain and gzip-compressed; reads both back. */
static nb_tensor *idx_both(nb_ctx *ctx, const bytes *b, const char *name, nb_tensor **gz)
{
    char gname[256];
    snprintf(gname, sizeof gname, "%s.gz", name);
    write_file(tpath(name), b->b, b->n);
    write_gz(tpath(gname), b->b, b->n);
    *gz = nb_idx_read(ctx, tpath(gname));
    if (!*gz)
        fail_msg("%s", nb_last_error(ctx));
    nb_tensor *t = nb_idx_read(ctx, tpath(name));
    if (!t)
        fail_msg("%s", nb_last_error(ctx));
    assert_int_equal(nb__numel(t), nb__numel(*gz));
    assert_memory_equal(t->data, (*gz)->data, nb__numel(t) * nb__esize(t->dtype));
    return t;
}

static void test_idx_values(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    bytes b;
    nb_tensor *g, *t;
    /* u8, 3-d */
    idx_head(&b, 0x08, 3, (const uint32_t[]){2, 3, 4});
    for (int i = 0; i < 24; i++)
        put_be(&b, (uint64_t)(i * 11) & 255, 1);
    t = idx_both(ctx, &b, "u8.idx", &g);
    assert_shape(t, NB_U8, NB_SHAPE(2, 3, 4));
    for (int i = 0; i < 24; i++)
        assert_int_equal(((uint8_t *)t->data)[i], (i * 11) & 255);
    /* i8, i16, i32 -> I32 (sign kept) */
    const int32_t i8v[4] = {-128, -1, 0, 127}, i16v[3] = {-32768, -2, 300},
                  i32v[4] = {INT32_MIN, -5, 7, INT32_MAX};
    idx_head(&b, 0x09, 1, (const uint32_t[]){4});
    for (int i = 0; i < 4; i++)
        put_be(&b, (uint64_t)(uint8_t)i8v[i], 1);
    t = idx_both(ctx, &b, "i8.idx", &g);
    assert_shape(t, NB_I32, NB_SHAPE(4));
    assert_memory_equal(t->data, i8v, sizeof i8v);
    idx_head(&b, 0x0B, 1, (const uint32_t[]){3});
    for (int i = 0; i < 3; i++)
        put_be(&b, (uint64_t)(uint16_t)i16v[i], 2);
    t = idx_both(ctx, &b, "i16.idx", &g);
    assert_shape(t, NB_I32, NB_SHAPE(3));
    assert_memory_equal(t->data, i16v, sizeof i16v);
    idx_head(&b, 0x0C, 2, (const uint32_t[]){2, 2});
    for (int i = 0; i < 4; i++)
        put_be(&b, (uint32_t)i32v[i], 4);
    t = idx_both(ctx, &b, "i32.idx", &g);
    assert_shape(t, NB_I32, NB_SHAPE(2, 2));
    assert_memory_equal(t->data, i32v, sizeof i32v);
    /* f32, f64 */
    const float f32v[3] = {1.5f, -2.25f, 3e-5f};
    const double f64v[2] = {3.141592653589793, -1e300};
    idx_head(&b, 0x0D, 1, (const uint32_t[]){3});
    for (int i = 0; i < 3; i++) {
        uint32_t u;
        memcpy(&u, &f32v[i], 4);
        put_be(&b, u, 4);
    }
    t = idx_both(ctx, &b, "f32.idx", &g);
    assert_shape(t, NB_F32, NB_SHAPE(3));
    assert_memory_equal(t->data, f32v, sizeof f32v);
    idx_head(&b, 0x0E, 2, (const uint32_t[]){1, 2});
    for (int i = 0; i < 2; i++) {
        uint64_t u;
        memcpy(&u, &f64v[i], 8);
        put_be(&b, u, 8);
    }
    t = idx_both(ctx, &b, "f64.idx", &g);
    assert_shape(t, NB_F64, NB_SHAPE(1, 2));
    assert_memory_equal(t->data, f64v, sizeof f64v);
    /* a zero-size dimension is a valid, empty tensor */
    idx_head(&b, 0x08, 2, (const uint32_t[]){0, 28});
    t = idx_both(ctx, &b, "empty.idx", &g);
    assert_shape(t, NB_U8, NB_SHAPE(0, 28));
    nb_tensor_free(ctx, t);
    free_ctx(ctx);
}

static void test_idx_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    char want[256];
    bytes b, c;
    idx_head(&b, 0x0C, 3, (const uint32_t[]){2, 3, 1}); /* 16 header + 24 data bytes */
    for (int i = 0; i < 6; i++)
        put_be(&b, (uint64_t)i, 4);
    assert_int_equal(b.n, 40);
    /* truncated anywhere: magic, sizes, data; plain and gzip alike */
    static const struct {
        size_t len;
        const char *msg;
    } cut[] = {{0, "truncated: 0 of 4 magic bytes"},   {2, "truncated: 2 of 4 magic bytes"},
               {4, "truncated: 4 of 16 header bytes"}, {9, "truncated: 9 of 16 header bytes"},
               {16, "truncated: 0 of 24 data bytes"},  {27, "truncated: 11 of 24 data bytes"},
               {39, "truncated: 23 of 24 data bytes"}};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        write_file(tpath("cut.idx"), b.b, cut[i].len);
        snprintf(want, sizeof want, "idx: %s: %s", tpath("cut.idx"), cut[i].msg);
        EXPECT_NULL(nb_idx_read(ctx, tpath("cut.idx")), NB_ERR_FORMAT, want);
        write_gz(tpath("cut.idx.gz"), b.b, cut[i].len);
        snprintf(want, sizeof want, "idx: %s: %s", tpath("cut.idx.gz"), cut[i].msg);
        EXPECT_NULL(nb_idx_read(ctx, tpath("cut.idx.gz")), NB_ERR_FORMAT, want);
    }
    /* a gzip stream cut short (its bytes, not its contents) */
    {
        bytes big;
        idx_head(&big, 0x08, 1, (const uint32_t[]){3000});
        for (int i = 0; i < 3000; i++)
            put_be(&big, (uint64_t)(i * 2654435761u >> 13) & 255, 1);
        write_gz(tpath("whole.gz"), big.b, big.n);
        size_t n;
        unsigned char *z = read_all(tpath("whole.gz"), &n);
        write_file(tpath("zcut.gz"), z, n / 2);
        EXPECT_NULL(nb_idx_read(ctx, tpath("zcut.gz")), NB_ERR_FORMAT, "(gzip stream cut short)");
        write_file(tpath("zcut.gz"), z, n - 4); /* data whole, trailer cut */
        EXPECT_NULL(nb_idx_read(ctx, tpath("zcut.gz")), NB_ERR_FORMAT,
                    "truncated: gzip stream cut short after the data");
        z[n / 2] ^= 0x55; /* corrupt in the middle */
        write_file(tpath("zbad.gz"), z, n);
        EXPECT_NULL(nb_idx_read(ctx, tpath("zbad.gz")), NB_ERR_FORMAT, "gzip");
        free(z);
    }
    /* bad magic, unknown type, dimensions */
    c.n = 0;
    put_be(&c, 0x12345678, 4);
    write_file(tpath("magic.idx"), c.b, c.n);
    snprintf(want, sizeof want, "idx: %s: bad magic 0x12345678 (expected 00 00 TYPE NDIM)",
             tpath("magic.idx"));
    EXPECT_NULL(nb_idx_read(ctx, tpath("magic.idx")), NB_ERR_FORMAT, want);
    idx_head(&c, 0x0A, 1, (const uint32_t[]){1});
    put_be(&c, 0, 1);
    write_file(tpath("type.idx"), c.b, c.n);
    EXPECT_NULL(nb_idx_read(ctx, tpath("type.idx")), NB_ERR_FORMAT, "unknown element type 0x0A");
    idx_head(&c, 0x08, 0, NULL);
    put_be(&c, 0, 1);
    write_file(tpath("ndim0.idx"), c.b, c.n);
    EXPECT_NULL(nb_idx_read(ctx, tpath("ndim0.idx")), NB_ERR_FORMAT, "0 dimensions (1..8 allowed)");
    idx_head(&c, 0x08, 9, (const uint32_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1});
    put_be(&c, 0, 1);
    write_file(tpath("ndim9.idx"), c.b, c.n);
    EXPECT_NULL(nb_idx_read(ctx, tpath("ndim9.idx")), NB_ERR_FORMAT, "9 dimensions (1..8 allowed)");
    /* trailing bytes */
    c = b;
    put_be(&c, 0xABCDEF, 3);
    write_file(tpath("trail.idx"), c.b, c.n);
    EXPECT_NULL(nb_idx_read(ctx, tpath("trail.idx")), NB_ERR_FORMAT,
                "3 trailing bytes after 24 data bytes");
    write_gz(tpath("trail.idx.gz"), c.b, c.n);
    EXPECT_NULL(nb_idx_read(ctx, tpath("trail.idx.gz")), NB_ERR_FORMAT,
                "3 trailing bytes after 24 data bytes");
    /* sizes whose product overflows or is absurd, even after a zero */
    idx_head(&c, 0x0E, 4, (const uint32_t[]){0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0});
    write_file(tpath("ovf.idx"), c.b, c.n);
    EXPECT_NULL(nb_idx_read(ctx, tpath("ovf.idx")), NB_ERR_FORMAT,
                "shape [4294967295,4294967295,4294967295,0] has more than 2^31 elements");
    idx_head(&c, 0x08, 2, (const uint32_t[]){65536, 32769});
    write_file(tpath("big.idx"), c.b, c.n);
    EXPECT_NULL(nb_idx_read(ctx, tpath("big.idx")), NB_ERR_FORMAT, "more than 2^31 elements");
    /* a forged size is caught before allocating for it */
    idx_head(&c, 0x0E, 1, (const uint32_t[]){1u << 30});
    put_be(&c, 0, 8);
    write_file(tpath("forged.idx"), c.b, c.n);
    g_count.max_size = 0;
    EXPECT_NULL(nb_idx_read(ctx, tpath("forged.idx")), NB_ERR_FORMAT,
                "truncated: 8 of 8589934592 data bytes");
    write_gz(tpath("forged.idx.gz"), c.b, c.n);
    EXPECT_NULL(nb_idx_read(ctx, tpath("forged.idx.gz")), NB_ERR_FORMAT,
                "compressed bytes cannot hold 8589934592 data bytes");
    assert_true(g_count.max_size < (1u << 20));
    /* the file system */
    snprintf(want, sizeof want, "idx: %s: cannot open: %s", tpath("absent.idx"), strerror(ENOENT));
    EXPECT_NULL(nb_idx_read(ctx, tpath("absent.idx")), NB_ERR_IO, want);
    mkdir(tpath("adir"), 0700);
    EXPECT_NULL(nb_idx_read(ctx, tpath("adir")), NB_ERR_IO, "is a directory");
    EXPECT_NULL(nb_idx_read(ctx, NULL), NB_ERR_NULL, "idx: path is NULL");
    assert_null(nb_idx_read(NULL, tpath("u8.idx")));
    free_ctx(ctx);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_idx_fashion_mnist(void **state)
{
    (void)state;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char img[256], lab[256];
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lab, sizeof lab, "%s/train-labels-idx1-ubyte.gz", dir);
    if (access(img, R_OK) != 0 || access(lab, R_OK) != 0) {
        printf("note: %s absent (apt-get install dataset-fashion-mnist); skipped\n", dir);
        skip();
    }
    nb_ctx *ctx = new_ctx();
    double t0 = now_s();
    nb_tensor *x = nb_idx_read(ctx, img);
    double t1 = now_s();
    nb_tensor *y = nb_idx_read(ctx, lab);
    if (!x || !y)
        fail_msg("%s", nb_last_error(ctx));
    printf("fashion-mnist train images read in %.3f s\n", t1 - t0);
    assert_shape(x, NB_U8, NB_SHAPE(60000, 28, 28));
    assert_shape(y, NB_U8, NB_SHAPE(60000));
    long count[10] = {0}, sum = 0;
    const uint8_t *l = y->data, *p = x->data;
    for (int i = 0; i < 60000; i++) {
        assert_true(l[i] <= 9);
        count[l[i]]++;
    }
    for (int c = 0; c < 10; c++)
        assert_int_equal(count[c], 6000); /* the training set is balanced */
    for (int i = 0; i < 28 * 28; i++)
        sum += p[i];
    assert_true(sum > 0); /* the first image is not blank */
    free_ctx(ctx);
}

/* ---- NPY ----------------------------------------------------------------- */
static nb_tensor *filled(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape)
{
    nb_tensor *t = nb_buffer(ctx, dt, ndim, shape);
    assert_non_null(t);
    for (int64_t i = 0; i < nb__numel(t); i++) {
        double v = dt == NB_U8 ? (double)((i * 37 + 3) % 256)
                   : nb__is_float(dt) ? (double)i * 0.375 - 2.5
                                      : (double)(i * 1000003 % 2001) - 1000.0;
        nb_set(t, i, v);
    }
    return t;
}

/* Same dtype, shape and values, element by element in logical order. */
static void assert_same(const nb_tensor *a, const nb_tensor *b)
{
    assert_shape(b, a->dtype, a->ndim, a->shape);
    size_t es = nb__esize(a->dtype);
    for (int64_t i = 0; i < nb__numel(a); i++)
        if (memcmp(nb__elem_ptr(a, i), nb__elem_ptr(b, i), es) != 0)
            fail_msg("element %lld differs: %g vs %g", (long long)i, nb_get(a, i), nb_get(b, i));
}

/* The file's header is NumPy's: version 1.0, data at a multiple of 64, the
 * dict ending in '\n', starting with `dict`. */
static void assert_npy_header(const char *path, const char *dict)
{
    size_t n;
    unsigned char *f = read_all(path, &n);
    assert_true(n >= 10);
    assert_memory_equal(f, "\x93NUMPY\x01\x00", 8);
    size_t hlen = f[8] | (size_t)f[9] << 8;
    assert_int_equal((10 + hlen) % 64, 0);
    assert_true(10 + hlen <= n);
    assert_int_equal(f[10 + hlen - 1], '\n');
    if (strncmp((const char *)f + 10, dict, strlen(dict)) != 0)
        fail_msg("header '%.*s' does not start with '%s'", (int)hlen, f + 10, dict);
    free(f);
}

static void test_npy_roundtrip(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    static const nb_dtype dts[] = {NB_F32, NB_F64, NB_I32, NB_I64, NB_U8};
    static const char *const descr[] = {"<f4", "<f8", "<i4", "<i8", "|u1"};
    char name[64], dict[128];
    for (int k = 0; k < 5; k++) {
        nb_tensor *a = filled(ctx, dts[k], NB_SHAPE(2, 3, 4));
        snprintf(name, sizeof name, "rt_%s.npy", nb_dtype_name(dts[k]));
        assert_int_equal(nb_npy_write(ctx, tpath(name), a), NB_OK);
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (2, 3, 4), }",
                 descr[k]);
        assert_npy_header(tpath(name), dict);
        nb_tensor *b = nb_npy_read(ctx, tpath(name));
        if (!b)
            fail_msg("%s", nb_last_error(ctx));
        assert_same(a, b);
        nb_tensor_free(ctx, a);
        nb_tensor_free(ctx, b);
    }
    /* 0-d, 1-d, empty, 8-d */
    nb_tensor *s = filled(ctx, NB_F64, 0, NULL);
    nb_set(s, 0, -0.1);
    assert_int_equal(nb_npy_write(ctx, tpath("s.npy"), s), NB_OK);
    assert_npy_header(tpath("s.npy"), "{'descr': '<f8', 'fortran_order': False, 'shape': (), }");
    assert_same(s, nb_npy_read(ctx, tpath("s.npy")));
    nb_tensor *v = filled(ctx, NB_I64, NB_SHAPE(5));
    assert_int_equal(nb_npy_write(ctx, tpath("v.npy"), v), NB_OK);
    assert_npy_header(tpath("v.npy"), "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }");
    assert_same(v, nb_npy_read(ctx, tpath("v.npy")));
    nb_tensor *e = filled(ctx, NB_F32, NB_SHAPE(0, 3));
    assert_int_equal(nb_npy_write(ctx, tpath("e.npy"), e), NB_OK);
    assert_npy_header(tpath("e.npy"),
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }");
    assert_same(e, nb_npy_read(ctx, tpath("e.npy")));
    nb_tensor *d8 = filled(ctx, NB_U8, NB_SHAPE(2, 1, 3, 1, 2, 1, 2, 2));
    assert_int_equal(nb_npy_write(ctx, tpath("d8.npy"), d8), NB_OK);
    assert_same(d8, nb_npy_read(ctx, tpath("d8.npy")));
    /* any strides: a transposed view, an expanded one; written in logical order */
    nb_tensor *m = filled(ctx, NB_F32, NB_SHAPE(3, 4));
    nb_tensor *mt = nb_transpose(ctx, m, 0, 1);
    assert_false(nb_is_contiguous(mt));
    assert_int_equal(nb_npy_write(ctx, tpath("mt.npy"), mt), NB_OK);
    nb_tensor *r = nb_npy_read(ctx, tpath("mt.npy"));
    assert_same(mt, r);
    assert_true(nb_get(r, 1) == nb_get(m, 4)); /* r[0][1] = m[1][0] */
    nb_tensor *ex = nb_expand(ctx, filled(ctx, NB_I32, NB_SHAPE(3, 1)), NB_SHAPE(3, 70000));
    assert_non_null(ex);
    assert_int_equal(nb_npy_write(ctx, tpath("ex.npy"), ex), NB_OK);
    assert_same(ex, nb_npy_read(ctx, tpath("ex.npy")));
    free_ctx(ctx);
}

/* An NPY file from parts: version, header text (padded as NumPy does unless
 * raw), data. */
static void npy_raw(const char *path, int major, const char *dict, const void *data, size_t n)
{
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t hlen = (pre + dl + 1 + 63) / 64 * 64 - pre;
    unsigned char *f = calloc(1, pre + hlen + n);
    assert_non_null(f);
    memcpy(f, "\x93NUMPY", 6);
    f[6] = (unsigned char)major;
    f[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        f[8 + i] = (unsigned char)(hlen >> (8 * i));
    memset(f + pre, ' ', hlen);
    memcpy(f + pre, dict, dl);
    f[pre + hlen - 1] = '\n';
    if (n)
        memcpy(f + pre + hlen, data, n);
    write_file(path, f, pre + hlen + n);
    free(f);
}

static void test_npy_dtypes_by_hand(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_tensor *t;
    /* big-endian, converted */
    const unsigned char be_i4[8] = {0xFF, 0xFF, 0xFF, 0xFE, 0x00, 0x01, 0x00, 0x00};
    npy_raw(tpath("be.npy"), 1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }",
            be_i4, 8);
    t = nb_npy_read(ctx, tpath("be.npy"));
    assert_shape(t, NB_I32, NB_SHAPE(2));
    assert_true(nb_get(t, 0) == -2 && nb_get(t, 1) == 65536);
    const unsigned char be_f8[8] = {0xC0, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18};
    npy_raw(tpath("bef8.npy"), 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (), }",
            be_f8, 8);
    t = nb_npy_read(ctx, tpath("bef8.npy"));
    assert_shape(t, NB_F64, 0, NULL);
    assert_true(nb_get(t, 0) == -3.141592653589793);
    /* widened integers and bool; keys in another order, double quotes, version 2 and 3 */
    const int8_t i1[3] = {-128, -1, 127};
    npy_raw(tpath("i1.npy"), 2, "{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"|i1\"}",
            i1, 3);
    t = nb_npy_read(ctx, tpath("i1.npy"));
    assert_shape(t, NB_I32, NB_SHAPE(3));
    assert_true(nb_get(t, 0) == -128 && nb_get(t, 1) == -1 && nb_get(t, 2) == 127);
    const unsigned char le_i2[4] = {0x00, 0x80, 0xFF, 0x7F}, le_u2[4] = {0xFF, 0xFF, 0x01, 0x00};
    npy_raw(tpath("i2.npy"), 3, "{'fortran_order': False, 'descr': '<i2', 'shape': (2,)}", le_i2,
            4);
    t = nb_npy_read(ctx, tpath("i2.npy"));
    assert_shape(t, NB_I32, NB_SHAPE(2));
    assert_true(nb_get(t, 0) == -32768 && nb_get(t, 1) == 32767);
    npy_raw(tpath("u2.npy"), 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (1L, 2L), }",
            le_u2, 4);
    t = nb_npy_read(ctx, tpath("u2.npy"));
    assert_shape(t, NB_I32, NB_SHAPE(1, 2));
    assert_true(nb_get(t, 0) == 65535 && nb_get(t, 1) == 1);
    const unsigned char u4[4] = {0xFF, 0xFF, 0xFF, 0xFF}, b1[3] = {0, 1, 1};
    npy_raw(tpath("u4.npy"), 1, "{'descr': '<u4', 'fortran_order': False, 'shape': (1,), }", u4, 4);
    t = nb_npy_read(ctx, tpath("u4.npy"));
    assert_shape(t, NB_I64, NB_SHAPE(1));
    assert_true(nb_get(t, 0) == 4294967295.0);
    npy_raw(tpath("b1.npy"), 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", b1, 3);
    t = nb_npy_read(ctx, tpath("b1.npy"));
    assert_shape(t, NB_U8, NB_SHAPE(3));
    assert_true(nb_get(t, 0) == 0 && nb_get(t, 1) == 1 && nb_get(t, 2) == 1);
    free_ctx(ctx);
}

static void test_npy_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    char want[256];
    const float d6[6] = {1, 2, 3, 4, 5, 6};
    const char *ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    npy_raw(tpath("ok.npy"), 1, ok, d6, sizeof d6);
    nb_tensor *t = nb_npy_read(ctx, tpath("ok.npy"));
    assert_shape(t, NB_F32, NB_SHAPE(2, 3));
    nb_tensor_free(ctx, t);
    size_t n;
    unsigned char *f = read_all(tpath("ok.npy"), &n);
    assert_int_equal(n, 152); /* 128 preamble and header + 24 data bytes */
    static const struct {
        size_t len;
        const char *msg;
    } cut[] = {{0, "truncated: 0 of at least 10 preamble bytes"},
               {3, "truncated: 3 of at least 10 preamble bytes"},
               {9, "truncated: 9 of at least 10 preamble bytes"},
               {30, "truncated: 20 of 118 header bytes"},
               {128, "truncated: 0 of 24 data bytes"},
               {151, "truncated: 23 of 24 data bytes"}};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        write_file(tpath("cut.npy"), f, cut[i].len);
        snprintf(want, sizeof want, "npy: %s: %s", tpath("cut.npy"), cut[i].msg);
        EXPECT_NULL(nb_npy_read(ctx, tpath("cut.npy")), NB_ERR_FORMAT, want);
    }
    unsigned char *g = malloc(n + 5);
    assert_non_null(g);
    memcpy(g, f, n);
    memcpy(g + n, "extra", 5);
    write_file(tpath("trail.npy"), g, n + 5);
    EXPECT_NULL(nb_npy_read(ctx, tpath("trail.npy")), NB_ERR_FORMAT,
                "5 trailing bytes after 24 data bytes");
    memcpy(g, f, n);
    g[5] = 'X';
    write_file(tpath("magic.npy"), g, n);
    snprintf(want, sizeof want, "npy: %s: bad magic (expected \\x93NUMPY)", tpath("magic.npy"));
    EXPECT_NULL(nb_npy_read(ctx, tpath("magic.npy")), NB_ERR_FORMAT, want);
    memcpy(g, f, n);
    g[6] = 4;
    write_file(tpath("v4.npy"), g, n);
    EXPECT_NULL(nb_npy_read(ctx, tpath("v4.npy")), NB_ERR_FORMAT, "unsupported version 4.0");
    g[6] = 1;
    g[7] = 1;
    write_file(tpath("v11.npy"), g, n);
    EXPECT_NULL(nb_npy_read(ctx, tpath("v11.npy")), NB_ERR_FORMAT, "unsupported version 1.1");
    free(g);
    free(f);
    /* header too long: refused before reading or allocating it */
    unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0, 0, 0x20, 0};
    write_file(tpath("long.npy"), pre, sizeof pre);
    g_count.max_size = 0;
    EXPECT_NULL(nb_npy_read(ctx, tpath("long.npy")), NB_ERR_FORMAT,
                "header of 2097152 bytes is too long (1 MiB allowed)");
    assert_true(g_count.max_size < 4096);
    /* headers */
    static const struct {
        const char *dict;
        const char *msg;
    } bad[] = {
        {"[1, 2]", "bad header: expected '{' at the start (the header must be a dict)"},
        {"", "bad header: expected '{' at the start (the header must be a dict), found the end"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
         "unsupported descr '<c8' (nabla reads f4 f8 i1 i2 i4 i8 u1 u2 u4 b1)"},
        {"{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", "unsupported descr '<f2'"},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }", "unsupported descr '|f4'"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
         "structured dtypes are not supported"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", "fortran_order is True"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }", "negative size in shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
         "shape size does not fit in 64 bits"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
         "shape's element count overflows"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }",
         "shape has more than 8 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }",
         "shape must be a tuple of non-negative integers"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", "expected '(' to open"},
        {"{'descr': '<f4', 'fortran_order': False}", "key 'shape' is missing"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", "must be True or False"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}",
         "duplicate key 'descr'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", "unexpected key 'x'"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (6,)}", "expected ',' or '}'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} junk", "text after the closing"},
        {"{'descr' '<f4', 'fortran_order': False, 'shape': (6,)}",
         "bad header: expected ':' after a key, found ''' (at byte 9 of: {'descr' '<f4', "},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        npy_raw(tpath("bad.npy"), 1, bad[i].dict, d6, sizeof d6);
        EXPECT_NULL(nb_npy_read(ctx, tpath("bad.npy")), NB_ERR_FORMAT, bad[i].msg);
    }
    /* a shape larger than the file is caught before allocating */
    npy_raw(tpath("forged.npy"), 1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", d6,
            sizeof d6);
    g_count.max_size = 0;
    EXPECT_NULL(nb_npy_read(ctx, tpath("forged.npy")), NB_ERR_FORMAT,
                "truncated: 24 of 8000000000000000 data bytes");
    assert_true(g_count.max_size < 4096);
    /* the file system and arguments */
    snprintf(want, sizeof want, "npy: %s: cannot open: %s", tpath("absent.npy"), strerror(ENOENT));
    EXPECT_NULL(nb_npy_read(ctx, tpath("absent.npy")), NB_ERR_IO, want);
    mkdir(tpath("adir"), 0700);
    EXPECT_NULL(nb_npy_read(ctx, tpath("adir")), NB_ERR_IO, "is a directory");
    EXPECT_NULL(nb_npy_read(ctx, NULL), NB_ERR_NULL, "npy: path is NULL");
    nb_tensor *a = filled(ctx, NB_F32, NB_SHAPE(2));
    snprintf(want, sizeof want, "npy: %s: cannot create: %s", tpath("no/such/dir.npy"),
             strerror(ENOENT));
    EXPECT_ST(nb_npy_write(ctx, tpath("no/such/dir.npy"), a), NB_ERR_IO, want);
    EXPECT_ST(nb_npy_write(ctx, NULL, a), NB_ERR_NULL, "npy: path is NULL");
    EXPECT_ST(nb_npy_write(ctx, tpath("x.npy"), NULL), NB_ERR_NULL, "npy: tensor is NULL");
    nb_tensor half = *a; /* a header with a dtype nabla cannot store yet */
    half.dtype = NB_F16;
    nb_tensor_free(ctx, a);
    EXPECT_ST(nb_npy_write(ctx, tpath("x.npy"), &half), NB_ERR_DTYPE, "cannot write dtype");
    assert_int_equal(access(tpath("x.npy"), F_OK), -1); /* nothing created */
    free_ctx(ctx);
}

/* ---- CSV ----------------------------------------------------------------- */
static nb_csv_opts csv_opts(void) { return nb_csv_opts_default(); }

/* Reads path; checks x [n, d] and the labels (I64, F32 [n, 1], or none). */
static void csv_ok(nb_ctx *ctx, const char *text, const nb_csv_opts *o, int64_t n, int64_t d,
                   const float *xs, const double *ys)
{
    write_text(tpath("t.csv"), text);
    nb_tensor *x = NULL, *y = (nb_tensor *)1;
    nb_status st = nb_csv_read(ctx, tpath("t.csv"), o, &x, o->no_label ? NULL : &y);
    if (st != NB_OK)
        fail_msg("%s", nb_last_error(ctx));
    assert_shape(x, NB_F32, NB_SHAPE(n, d));
    assert_memory_equal(x->data, xs, (size_t)(n * d) * sizeof(float));
    if (o->no_label) {
        nb_tensor_free(ctx, x);
        return;
    }
    if (o->label_float)
        assert_shape(y, NB_F32, NB_SHAPE(n, 1));
    else
        assert_shape(y, NB_I64, NB_SHAPE(n));
    for (int64_t i = 0; i < n; i++)
        if (nb_get(y, i) != ys[i])
            fail_msg("label %lld: %g, want %g", (long long)i, nb_get(y, i), ys[i]);
    nb_tensor_free(ctx, x);
    nb_tensor_free(ctx, y);
}

static void test_csv_reads(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_csv_opts o = csv_opts();
    const char *iris = "sepal,petal_width,species,z\n1,2,0,3\n4,5.5,2,6\n";
    /* label by name, in the middle */
    o.label_name = "species";
    csv_ok(ctx, iris, &o, 2, 3, (const float[]){1, 2, 3, 4, 5.5f, 6}, (const double[]){0, 2});
    /* by index: first, last (the default), negative */
    o = csv_opts();
    o.label_index = 0;
    csv_ok(ctx, iris, &o, 2, 3, (const float[]){2, 0, 3, 5.5f, 2, 6}, (const double[]){1, 4});
    o = csv_opts();
    csv_ok(ctx, iris, &o, 2, 3, (const float[]){1, 2, 0, 4, 5.5f, 2}, (const double[]){3, 6});
    o.label_index = -2;
    csv_ok(ctx, iris, &o, 2, 3, (const float[]){1, 2, 3, 4, 5.5f, 6}, (const double[]){0, 2});
    /* no header; no label */
    o = csv_opts();
    o.header = false;
    csv_ok(ctx, "1,2,7\n3,4,8\n", &o, 2, 2, (const float[]){1, 2, 3, 4}, (const double[]){7, 8});
    o.no_label = true;
    csv_ok(ctx, "1,2,7\n3,4,8", &o, 2, 3, (const float[]){1, 2, 7, 3, 4, 8}, NULL);
    /* quoted fields: numbers, names with delimiters, "" escapes, a line break */
    o = csv_opts();
    o.label_name = "la\"bel";
    o.label_float = true;
    csv_ok(ctx, "\"a, b\",\"la\"\"bel\",\"c\nd\"\n\"1\", \" 2.5 \" ,-3e2\n", &o, 1, 2,
           (const float[]){1, -300}, (const double[]){2.5});
    /* CRLF, a BOM, blank lines, whitespace around numbers, 3.0 as a class id */
    o = csv_opts();
    csv_ok(ctx, "\xEF\xBB\xBF" "x,y,label\r\n\r\n 1 ,\t2\t,3.0\r\n   \r\n4,5,1\r\n\r\n", &o, 2, 2,
           (const float[]){1, 2, 4, 5}, (const double[]){3, 1});
    /* float labels [N, 1] */
    o.label_float = true;
    csv_ok(ctx, "x,t\n1,0.5\n2,-1.25\n", &o, 2, 1, (const float[]){1, 2},
           (const double[]){0.5, -1.25});
    /* other delimiters */
    o = csv_opts();
    o.delimiter = ';';
    o.header = false;
    csv_ok(ctx, "1.5;2;0\n3;4;1\n", &o, 2, 2, (const float[]){1.5f, 2, 3, 4},
           (const double[]){0, 1});
    o.delimiter = '\t';
    csv_ok(ctx, "1.5\t2\t0\n3\t4\t1", &o, 2, 2, (const float[]){1.5f, 2, 3, 4},
           (const double[]){0, 1});
    free_ctx(ctx);
}

static void test_csv_long_lines_gzip_nan(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    /* 3000 columns: lines far longer than any fixed buffer */
    const int cols = 3000, rows = 3;
    size_t cap = (size_t)cols * rows * 16 + 1024, k = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int c = 0; c < cols; c++)
        k += (size_t)snprintf(text + k, cap - k, c ? ",c%d" : "c%d", c);
    text[k++] = '\n';
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++)
            k += (size_t)snprintf(text + k, cap - k, c ? ",%d.25" : "%d.25", r * cols + c);
        text[k++] = '\n';
    }
    text[k] = '\0';
    write_gz(tpath("long.csv.gz"), text, k);
    nb_csv_opts o = nb_csv_opts_default();
    o.no_label = true;
    nb_tensor *x = NULL;
    for (int pass = 0; pass < 2; pass++) {
        const char *path = pass ? tpath("long.csv") : tpath("long.csv.gz");
        if (pass)
            write_text(path, text);
        if (nb_csv_read(ctx, path, &o, &x, NULL) != NB_OK)
            fail_msg("%s", nb_last_error(ctx));
        assert_shape(x, NB_F32, NB_SHAPE(rows, cols));
        for (int i = 0; i < rows * cols; i++)
            assert_true(((float *)x->data)[i] == (float)i + 0.25f);
        nb_tensor_free(ctx, x);
    }
    /* a gzip file cut short is an error, not a shorter table */
    size_t zn;
    unsigned char *z = read_all(tpath("long.csv.gz"), &zn);
    write_file(tpath("cut.csv.gz"), z, zn / 2);
    free(z);
    long live0 = live();
    assert_int_equal(nb_csv_read(ctx, tpath("cut.csv.gz"), &o, &x, NULL), NB_ERR_FORMAT);
    assert_non_null(strstr(nb_last_error(ctx), "truncated gzip data"));
    assert_int_equal(live(), live0);
    nb_clear_error(ctx);
    free(text);
    /* nan and inf are accepted as features (strtod's spellings) */
    write_text(tpath("nan.csv"), "a,b\nnan,-inf\n");
    assert_int_equal(nb_csv_read(ctx, tpath("nan.csv"), &o, &x, NULL), NB_OK);
    assert_true(isnan(((float *)x->data)[0]) && isinf(((float *)x->data)[1]));
    free_ctx(ctx);
}

static void test_csv_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx();
    nb_csv_opts o = csv_opts();
    nb_tensor *x = (nb_tensor *)1, *y = (nb_tensor *)1;
    char want[512];
    const char *p = tpath("e.csv");
#define CSV_FAIL(text, st, ...)                                                     \
    do {                                                                            \
        write_text(p, text);                                                        \
        snprintf(want, sizeof want, __VA_ARGS__);                                   \
        EXPECT_ST(nb_csv_read(ctx, p, &o, &x, &y), st, want);                       \
        assert_null(x);                                                             \
        assert_null(y);                                                             \
    } while (0)
    /* ragged rows; line numbers count blank lines and CRLF */
    CSV_FAIL("a,b,c,d\n1,2,3,4\n\n1,2,3,4\r\n5,6,7,8\n\n1,2,3,4,5\n", NB_ERR_FORMAT,
             "csv: %s: line 7: 5 fields, expected 4 (ragged row)", p);
    CSV_FAIL("a,b,c\n1,2,3\n1,2\n", NB_ERR_FORMAT,
             "csv: %s: line 3: 2 fields, expected 3 (ragged row)", p);
    o.header = false;
    CSV_FAIL("1,2,3\n1,2,3,\n", NB_ERR_FORMAT,
             "csv: %s: line 2: 4 fields, expected 3 (ragged row)", p);
    o = csv_opts();
    /* not a number: line, column and the header's name */
    CSV_FAIL("sepal,petal_width,label\n1,2,0\n1,abc,1\n", NB_ERR_FORMAT,
             "csv: %s: line 3, column 2 (\"petal_width\"): \"abc\" is not a number", p);
    CSV_FAIL("a,b,label\n1,,0\n", NB_ERR_FORMAT,
             "csv: %s: line 2, column 2 (\"b\"): empty field, expected a number", p);
    CSV_FAIL("a,b,label\n1,1e39,0\n", NB_ERR_FORMAT,
             "csv: %s: line 2, column 2 (\"b\"): 1e39 is out of f32's range", p);
    CSV_FAIL("\"a\nb\",c,label\n1,2,0\n1,\"2\"x,0\n", NB_ERR_FORMAT,
             "csv: %s: line 4, column 2: unexpected 'x' after a closing quote", p);
    CSV_FAIL("a,b,label\n1,2,0\n1,\"2,0\n", NB_ERR_FORMAT,
             "csv: %s: line 3, column 2: quoted field is never closed", p);
    o.header = false;
    CSV_FAIL("1,2,0\n3,4 5,1\n", NB_ERR_FORMAT,
             "csv: %s: line 2, column 2: \"4 5\" is not a number", p);
    o = csv_opts();
    /* labels */
    CSV_FAIL("a,label\n1,0\n2,3.5\n", NB_ERR_FORMAT,
             "csv: %s: line 3, column 2 (\"label\"): label \"3.5\" is not a whole number", p);
    CSV_FAIL("a,label\n1,-1\n", NB_ERR_FORMAT,
             "csv: %s: line 2, column 2 (\"label\"): label \"-1\" is negative "
             "(class ids start at 0)", p);
    CSV_FAIL("a,label\n1,cat\n", NB_ERR_FORMAT, "label \"cat\" is not a number");
    CSV_FAIL("\"x\"\"1\",\"a very long column name, longer than forty characters\"\n1,2.5\n",
             NB_ERR_FORMAT, "line 2, column 2 (\"a very long column name, longer than for...\"): "
             "label \"2.5\" is not a whole number");
    CSV_FAIL("\"x\"\"1\",y\nz,2\n", NB_ERR_FORMAT,
             "line 2, column 1 (\"x\"1\"): \"z\" is not a number");
    CSV_FAIL("a,label\n1,inf\n", NB_ERR_FORMAT, "label \"inf\" is not a whole number");
    CSV_FAIL("a,label\n1,\n", NB_ERR_FORMAT, "label \"\" is empty");
    CSV_FAIL("label\n1\n", NB_ERR_FORMAT, "the only column is the label: no features");
    o.label_name = "species";
    CSV_FAIL("a,b,label\n1,2,0\n", NB_ERR_ARG,
             "csv: %s: no column named \"species\" in the header (columns: a, b, label)", p);
    o = csv_opts();
    o.label_index = 3;
    CSV_FAIL("a,b,label\n1,2,0\n", NB_ERR_ARG,
             "csv: %s: label_index 3 is out of range for 3 columns", p);
    o.label_index = -4;
    CSV_FAIL("a,b,label\n1,2,0\n", NB_ERR_ARG, "label_index -4 is out of range for 3 columns");
    o = csv_opts();
    /* empty files */
    CSV_FAIL("", NB_ERR_FORMAT, "csv: %s: empty file (no header, no rows)", p);
    CSV_FAIL("\xEF\xBB\xBF\n  \r\n\n", NB_ERR_FORMAT,
             "csv: %s: empty file (no header, no rows)", p);
    CSV_FAIL("\na,b\n\n", NB_ERR_FORMAT, "csv: %s: no data rows after the header (line 2)", p);
    o.header = false;
    CSV_FAIL("\n\n", NB_ERR_FORMAT, "csv: %s: empty file (no rows)", p);
    /* options */
    o = csv_opts();
    o.header = false;
    o.label_name = "y";
    CSV_FAIL("1,2\n", NB_ERR_ARG,
             "csv: %s: label_name \"y\" needs a header row (header is false)", p);
    o = csv_opts();
    o.delimiter = '.';
    CSV_FAIL("1,2\n", NB_ERR_ARG, "csv: %s: delimiter 0x2E cannot be used", p);
    o.delimiter = '"';
    CSV_FAIL("1,2\n", NB_ERR_ARG, "delimiter 0x22 cannot be used");
    o = csv_opts();
    o.no_label = true;
    o.label_name = "y";
    CSV_FAIL("1,2\n", NB_ERR_ARG, "no_label and label_name are both set");
    o = csv_opts();
    EXPECT_ST(nb_csv_read(ctx, p, &o, &x, NULL), NB_ERR_NULL,
              "y is NULL but a label column is read");
    EXPECT_ST(nb_csv_read(ctx, p, &o, NULL, &y), NB_ERR_NULL, "csv: x is NULL");
    EXPECT_ST(nb_csv_read(ctx, NULL, &o, &x, &y), NB_ERR_NULL, "csv: path is NULL");
    assert_int_equal(nb_csv_read(NULL, p, &o, &x, &y), NB_ERR_NULL);
    snprintf(want, sizeof want, "csv: %s: cannot open: %s", tpath("absent.csv"), strerror(ENOENT));
    EXPECT_ST(nb_csv_read(ctx, tpath("absent.csv"), &o, &x, &y), NB_ERR_IO, want);
    mkdir(tpath("adir"), 0700);
    EXPECT_ST(nb_csv_read(ctx, tpath("adir"), &o, &x, &y), NB_ERR_IO, "is a directory");
#undef CSV_FAIL
    /* an error already pending does not change what this call returns */
    nb__err(ctx, NB_ERR_SHAPE, "earlier");
    write_text(p, "a,b\n1,x\n");
    assert_int_equal(nb_csv_read(ctx, p, &o, &x, &y), NB_ERR_FORMAT);
    assert_string_equal(nb_last_error(ctx), "earlier");
    nb_clear_error(ctx);
    free_ctx(ctx);
}

/* ---- out of memory at every allocation of every reader ------------------ */
static nb_status run_reader(nb_ctx *ctx, int which)
{
    nb_tensor *x = NULL, *y = NULL;
    switch (which) {
    case 0: x = nb_idx_read(ctx, tpath("oom.idx")); break;
    case 1: x = nb_npy_read(ctx, tpath("oom.npy")); break;
    case 2: {
        nb_tensor *t = nb_transpose(ctx, nb_buffer(ctx, NB_F32, NB_SHAPE(3, 5)), 0, 1);
        if (!t)
            return nb_last_status(ctx);
        return nb_npy_write(ctx, tpath("oom_w.npy"), t);
    }
    default: {
        nb_status st = nb_csv_read(ctx, tpath("oom.csv"), NULL, &x, &y);
        if (st != NB_OK) {
            assert_null(x);
            assert_null(y);
        }
        return st;
    }
    }
    return x ? NB_OK : nb_last_status(ctx);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    bytes b;
    idx_head(&b, 0x0B, 2, (const uint32_t[]){2, 3});
    for (int i = 0; i < 6; i++)
        put_be(&b, (uint64_t)i, 2);
    write_gz(tpath("oom.idx"), b.b, b.n);
    npy_raw(tpath("oom.npy"), 1, "{'descr': '>i2', 'fortran_order': False, 'shape': (2, 3), }",
            b.b + 12, 12);
    write_text(tpath("oom.csv"), "a,b,label\n1,2,0\n3,4,1\n");
    for (int which = 0; which < 4; which++) {
        long total = -1;
        for (long k = -1;; k++) {
            nb_ctx *ctx = new_ctx_failing(k);
            if (!ctx) {
                assert_int_equal(k, 0);
                continue;
            }
            nb_status st = run_reader(ctx, which);
            if (k == -1) {
                if (st != NB_OK)
                    fail_msg("%s", nb_last_error(ctx));
            } else if (k < total) {
                if (st != NB_ERR_NOMEM)
                    fail_msg("reader %d, allocation %ld: %s", which, k, nb_last_error(ctx));
                assert_non_null(strstr(nb_last_error(ctx), "allocator"));
            }
            free_ctx(ctx); /* balanced: nothing leaked */
            if (k == -1)
                total = g_count.allocs;
            else if (k >= total)
                break;
        }
        assert_true(total >= 2);
    }
}

/* ---- the C side of the NumPy parity chain -------------------------------- */
/* Manifest lines: NAME DTYPE NDIM D0 .. N V0 .. (values as %.17g / %lld). */
static void manifest_line(FILE *m, const char *name, const nb_tensor *t)
{
    fprintf(m, "%s %s %d", name, nb_dtype_name(t->dtype), t->ndim);
    for (int i = 0; i < t->ndim; i++)
        fprintf(m, " %lld", (long long)t->shape[i]);
    fprintf(m, " %lld", (long long)nb__numel(t));
    for (int64_t i = 0; i < nb__numel(t); i++) {
        const void *e = nb__elem_ptr(t, i);
        if (t->dtype == NB_I64)
            fprintf(m, " %lld", (long long)*(const int64_t *)e);
        else
            fprintf(m, " %.17g", nb__load(t->dtype, e));
    }
    fprintf(m, "\n");
}

static int npy_write_for_numpy(const char *dir)
{
    char path[1024];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/py_expected.txt", dir);
    remove(path); /* never leave a stale manifest for the next step */
    snprintf(path, sizeof path, "%s/c_expected.txt", dir);
    FILE *m = fopen(path, "w");
    if (!m)
        return 1;
    nb_ctx *ctx = nb_ctx_new(NULL);
    struct {
        const char *name;
        nb_tensor *t;
    } out[16];
    int n = 0;
    nb_tensor *big = filled(ctx, NB_I64, NB_SHAPE(3));
    nb_set(big, 0, 0); /* int64 extremes, exactly */
    ((int64_t *)big->data)[0] = INT64_MIN;
    ((int64_t *)big->data)[2] = INT64_MAX;
    out[n].name = "c_f32";
    out[n++].t = filled(ctx, NB_F32, NB_SHAPE(2, 3));
    out[n].name = "c_f64";
    out[n++].t = filled(ctx, NB_F64, NB_SHAPE(7));
    out[n].name = "c_i32";
    out[n++].t = filled(ctx, NB_I32, NB_SHAPE(2, 2, 2));
    out[n].name = "c_i64";
    out[n++].t = big;
    out[n].name = "c_u8";
    out[n++].t = filled(ctx, NB_U8, NB_SHAPE(5, 1));
    out[n].name = "c_scalar";
    out[n++].t = filled(ctx, NB_F64, 0, NULL);
    out[n].name = "c_empty";
    out[n++].t = filled(ctx, NB_F32, NB_SHAPE(0, 4));
    out[n].name = "c_8d";
    out[n++].t = filled(ctx, NB_I32, NB_SHAPE(1, 2, 1, 2, 1, 2, 1, 2));
    out[n].name = "c_transposed";
    out[n++].t = nb_transpose(ctx, filled(ctx, NB_F32, NB_SHAPE(3, 4)), 0, 1);
    out[n].name = "c_expanded";
    out[n++].t = nb_expand(ctx, filled(ctx, NB_F64, NB_SHAPE(3, 1)), NB_SHAPE(3, 5));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s.npy", dir, out[i].name);
        if (!out[i].t || nb_npy_write(ctx, path, out[i].t) != NB_OK) {
            fprintf(stderr, "%s: %s\n", out[i].name, nb_last_error(ctx));
            rc = 1;
            continue;
        }
        manifest_line(m, out[i].name, out[i].t);
    }
    nb_ctx_free(ctx);
    if (fclose(m) != 0)
        rc = 1;
    printf("wrote %d npy files and c_expected.txt to %s\n", n, dir);
    return rc;
}

/* Reads NumPy's files as py_expected.txt says:
 *   ok NAME DTYPE NDIM D0 .. N V0 ..     (the file must read to exactly this)
 *   err NAME MESSAGE...                  (the read must fail, message containing this) */
static int npy_check_from_numpy(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/py_expected.txt", dir);
    FILE *m = fopen(path, "r");
    if (!m) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return 1;
    }
    nb_ctx *ctx = nb_ctx_new(NULL);
    char kind[8], name[128];
    int bad = 0, files = 0;
    while (fscanf(m, "%7s %127s", kind, name) == 2) {
        files++;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        nb_tensor *t = nb_npy_read(ctx, path);
        if (strcmp(kind, "err") == 0) {
            char msg[256];
            if (!fgets(msg, sizeof msg, m))
                msg[0] = '\0';
            msg[strcspn(msg, "\n")] = '\0';
            const char *want = msg + strspn(msg, " ");
            if (t || nb_last_status(ctx) != NB_ERR_FORMAT || !strstr(nb_last_error(ctx), want)) {
                fprintf(stderr, "%s: expected error '%s', got '%s'\n", name, want,
                        t ? "success" : nb_last_error(ctx));
                bad++;
            }
            nb_clear_error(ctx);
            nb_tensor_free(ctx, t);
            continue;
        }
        char dts[8];
        int ndim;
        long long numel;
        int64_t shape[NB_MAX_DIMS];
        if (fscanf(m, "%7s %d", dts, &ndim) != 2 || ndim < 0 || ndim > NB_MAX_DIMS) {
            fprintf(stderr, "bad manifest line for %s\n", name);
            bad++;
            break;
        }
        for (int i = 0; i < ndim; i++)
            if (fscanf(m, "%" SCNd64, &shape[i]) != 1)
                bad++;
        if (fscanf(m, "%lld", &numel) != 1)
            bad++;
        bool ok = t != NULL;
        if (!t)
            fprintf(stderr, "%s: %s\n", name, nb_last_error(ctx));
        else if (strcmp(nb_dtype_name(t->dtype), dts) != 0 || t->ndim != ndim ||
                 nb__numel(t) != numel) {
            fprintf(stderr, "%s: got %s ndim %d numel %lld, want %s %d %lld\n", name,
                    nb_dtype_name(t->dtype), t->ndim, (long long)nb__numel(t), dts, ndim, numel);
            ok = false;
        } else
            for (int i = 0; i < ndim; i++)
                ok = ok && t->shape[i] == shape[i];
        for (long long i = 0; i < numel; i++) {
            char tok[64];
            if (fscanf(m, "%63s", tok) != 1) {
                ok = false;
                break;
            }
            if (!ok || !t)
                continue;
            bool same;
            if (t->dtype == NB_I64)
                same = ((int64_t *)t->data)[i] == strtoll(tok, NULL, 10);
            else {
                double want = strtod(tok, NULL), got = nb_get(t, i);
                same = got == want || (isnan(got) && isnan(want));
            }
            if (!same) {
                fprintf(stderr, "%s: element %lld is %.17g, want %s\n", name, i, nb_get(t, i), tok);
                ok = false;
            }
        }
        if (!ok)
            bad++;
        nb_clear_error(ctx);
        nb_tensor_free(ctx, t);
    }
    fclose(m);
    nb_ctx_free(ctx);
    printf("checked %d NumPy files: %d wrong\n", files, bad);
    return bad || files < 10;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--npy-write") == 0)
        return npy_write_for_numpy(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--npy-check") == 0)
        return npy_check_from_numpy(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_values),
        cmocka_unit_test(test_idx_errors),
        cmocka_unit_test(test_idx_fashion_mnist),
        cmocka_unit_test(test_npy_roundtrip),
        cmocka_unit_test(test_npy_dtypes_by_hand),
        cmocka_unit_test(test_npy_errors),
        cmocka_unit_test(test_csv_reads),
        cmocka_unit_test(test_csv_long_lines_gzip_nan),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
