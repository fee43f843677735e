/* IDX files (MNIST's format), plain or gzip-compressed.
 *
 * Layout: magic 00 00 TYPE NDIM, NDIM big-endian u32 sizes, then the
 * row-major data with multi-byte values big-endian. TYPE: 0x08 u8 -> NB_U8,
 * 0x09 i8 / 0x0B i16 / 0x0C i32 -> NB_I32, 0x0D f32 -> NB_F32, 0x0E f64 ->
 * NB_F64.
 *
 * zlib's gz* functions read gzip and plain files alike. Nothing in the file
 * is trusted: the element count is capped at 2^31 and, before the tensor is
 * allocated, compared with what the file can hold (its exact size for a plain
 * file, the deflate ratio limit for a gzip one), so a forged header cannot
 * make us allocate gigabytes. The data is read in large chunks straight into
 * the tensor; narrow integers (i8, i16) are widened in place afterwards.
 * (zlib's own small buffers come from malloc: gz* has no allocator hook.) */
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAX_ELEMS ((uint64_t)1 << 31)
/* Deflate cannot expand data by more than 1032:1; add room for headers. */
#define IDX_GZ_RATIO 1032u
#define IDX_CHUNK ((size_t)1 << 24)
#define CUT(f) ((f).cut ? " (gzip stream cut short)" : "")

typedef struct idx_file {
    nb_ctx *ctx;
    const char *path;
    gzFile gz;
    bool cut; /* the gzip stream ended early (zlib: "unexpected end of file") */
} idx_file;

/* Reads up to n bytes; returns the count read, or -1 with the error recorded
 * (a read error or corrupt compressed data). A short count means end of file;
 * f->cut tells whether the gzip stream was cut short. */
static long long idx_read(idx_file *f, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < IDX_CHUNK ? n - got : IDX_CHUNK;
        int r = gzread(f->gz, (char *)buf + got, (unsigned)want);
        if (r < 0) {
            int zerr = 0;
            const char *zmsg = gzerror(f->gz, &zerr);
            if (zerr == Z_BUF_ERROR) {
                f->cut = true;
                break;
            }
            if (zerr == Z_ERRNO)
                nb__err(f->ctx, NB_ERR_IO, "idx: %s: read error: %s", f->path, strerror(errno));
            else
                nb__err(f->ctx, NB_ERR_FORMAT, "idx: %s: corrupt gzip data: %s", f->path,
                        zmsg ? zmsg : "?");
            return -1;
        }
        if (r == 0) {
            /* zlib reports a stream cut short as Z_BUF_ERROR, with no data */
            int zerr = 0;
            gzerror(f->gz, &zerr);
            f->cut = f->cut || zerr == Z_BUF_ERROR;
            break;
        }
        got += (size_t)r;
    }
    return (long long)got;
}

static nb_dtype idx_dtype(int code, size_t *file_size)
{
    switch (code) {
    case 0x08: *file_size = 1; return NB_U8;
    case 0x09: *file_size = 1; return NB_I32;
    case 0x0B: *file_size = 2; return NB_I32;
    case 0x0C: *file_size = 4; return NB_I32;
    case 0x0D: *file_size = 4; return NB_F32;
    case 0x0E: *file_size = 8; return NB_F64;
    default: *file_size = 0; return NB_DTYPE_COUNT;
    }
}

static bool host_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 0;
}

/* Big-endian file bytes (n elements of w bytes, at the start of t->data) to
 * host values of t's dtype, in place. Widening runs backwards so that no
 * element is overwritten before it is read. */
static void idx_convert(nb_tensor *t, size_t w, uint64_t n)
{
    unsigned char *p = t->data;
    if (t->dtype == NB_I32 && w == 1) {
        int32_t *d = t->data;
        for (uint64_t i = n; i-- > 0;)
            d[i] = (int8_t)p[i];
    } else if (t->dtype == NB_I32 && w == 2) {
        int32_t *d = t->data;
        for (uint64_t i = n; i-- > 0;)
            d[i] = (int16_t)(uint16_t)((unsigned)p[2 * i] << 8 | p[2 * i + 1]);
    } else if (w > 1 && !host_big_endian()) {
        for (uint64_t i = 0; i < n; i++, p += w)
            for (size_t a = 0, b = w - 1; a < b; a++, b--) {
                unsigned char c = p[a];
                p[a] = p[b];
                p[b] = c;
            }
    }
}

nb_tensor *nb_idx_read(nb_ctx *ctx, const char *path)
{
    if (!ctx)
        return NULL;
    if (!path) {
        nb__err(ctx, NB_ERR_NULL, "idx: path is NULL");
        return NULL;
    }
    idx_file f = {ctx, path, NULL, false};
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        nb__err(ctx, NB_ERR_IO, "idx: %s: cannot open: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        nb__err(ctx, NB_ERR_IO, "idx: %s: cannot read: is a directory", path);
        close(fd);
        return NULL;
    }
    f.gz = gzdopen(fd, "rb");
    if (!f.gz) {
        nb__err(ctx, NB_ERR_NOMEM, "idx: %s: zlib could not allocate its buffers", path);
        close(fd);
        return NULL;
    }
    gzbuffer(f.gz, 1u << 17);

    nb_tensor *t = NULL;
    unsigned char head[4 + 4 * 255];
    long long r = idx_read(&f, head, 4);
    if (r < 0)
        goto fail;
    if (r < 4) {
        nb__err(ctx, NB_ERR_FORMAT, "idx: %s: truncated: %lld of 4 magic bytes%s", path, r,
                CUT(f));
        goto fail;
    }
    if (head[0] != 0 || head[1] != 0) {
        nb__err(ctx, NB_ERR_FORMAT,
                "idx: %s: bad magic 0x%02X%02X%02X%02X (expected 00 00 TYPE NDIM)", path,
                head[0], head[1], head[2], head[3]);
        goto fail;
    }
    size_t w;
    nb_dtype dt = idx_dtype(head[2], &w);
    if (dt == NB_DTYPE_COUNT) {
        nb__err(ctx, NB_ERR_FORMAT,
                "idx: %s: unknown element type 0x%02X (expected 08 u8, 09 i8, 0B i16, 0C i32, "
                "0D f32 or 0E f64)", path, head[2]);
        goto fail;
    }
    int ndim = head[3];
    if (ndim < 1 || ndim > NB_MAX_DIMS) {
        nb__err(ctx, NB_ERR_FORMAT, "idx: %s: %d dimensions (1..%d allowed)", path, ndim,
                NB_MAX_DIMS);
        goto fail;
    }
    r = idx_read(&f, head + 4, 4 * (size_t)ndim);
    if (r < 0)
        goto fail;
    if (r < 4 * ndim) {
        nb__err(ctx, NB_ERR_FORMAT, "idx: %s: truncated: %lld of %d header bytes%s", path, r + 4,
                4 + 4 * ndim, CUT(f));
        goto fail;
    }
    int64_t shape[NB_MAX_DIMS];
    uint64_t n = 1;
    bool too_big = false;
    for (int i = 0; i < ndim; i++) {
        const unsigned char *b = head + 4 + 4 * i;
        uint64_t d = (uint64_t)b[0] << 24 | (uint64_t)b[1] << 16 | (uint64_t)b[2] << 8 | b[3];
        shape[i] = (int64_t)d;
        if (d > 0 && n > IDX_MAX_ELEMS / d)
            too_big = true; /* keep going: a later 0 does not excuse it */
        else
            n *= d;
    }
    if (too_big || n > IDX_MAX_ELEMS) {
        char sb[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_FORMAT, "idx: %s: shape %s has more than 2^31 elements", path,
                nb__shape_fmt(ndim, shape, sb, sizeof sb));
        goto fail;
    }
    uint64_t bytes = n * w, head_bytes = 4 + 4 * (uint64_t)ndim;
    /* Check what the file can hold before allocating for it. */
    if (gzdirect(f.gz) && S_ISREG(st.st_mode)) {
        uint64_t size = (uint64_t)st.st_size;
        uint64_t have = size > head_bytes ? size - head_bytes : 0;
        if (have < bytes) {
            nb__err(ctx, NB_ERR_FORMAT, "idx: %s: truncated: %llu of %llu data bytes", path,
                    (unsigned long long)have, (unsigned long long)bytes);
            goto fail;
        }
    } else if (S_ISREG(st.st_mode) &&
               bytes / IDX_GZ_RATIO > (uint64_t)st.st_size + 1024) {
        nb__err(ctx, NB_ERR_FORMAT,
                "idx: %s: truncated: %lld compressed bytes cannot hold %llu data bytes", path,
                (long long)st.st_size, (unsigned long long)bytes);
        goto fail;
    }
    t = nb_buffer(ctx, dt, ndim, shape);
    if (!t)
        goto fail;
    r = idx_read(&f, t->data, (size_t)bytes);
    if (r < 0)
        goto fail;
    if ((uint64_t)r < bytes) {
        nb__err(ctx, NB_ERR_FORMAT, "idx: %s: truncated: %lld of %llu data bytes%s", path, r,
                (unsigned long long)bytes, CUT(f));
        goto fail;
    }
    /* trailing garbage: count up to 64 KiB of it for the message */
    unsigned char extra[4096];
    long long more = 0;
    while (more < 65536) {
        r = idx_read(&f, extra, sizeof extra);
        if (r < 0)
            goto fail;
        if (r == 0)
            break;
        more += r;
    }
    if (more == 0 && f.cut) {
        nb__err(ctx, NB_ERR_FORMAT, "idx: %s: truncated: gzip stream cut short after the data",
                path);
        goto fail;
    }
    if (more > 0) {
        nb__err(ctx, NB_ERR_FORMAT, "idx: %s: %s%lld trailing bytes after %llu data bytes", path,
                more >= 65536 ? "at least " : "", more, (unsigned long long)bytes);
        goto fail;
    }
    gzclose(f.gz);
    idx_convert(t, w, n);
    return t;

fail:
    nb_tensor_free(ctx, t);
    gzclose(f.gz);
    return NULL;
}
