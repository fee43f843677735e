/* NPY files (NumPy's format), versions 1.0, 2.0 and 3.0.
 *
 * Layout: "\x93NUMPY", major and minor version bytes, the header length (u16
 * little-endian in 1.0, u32 in 2.0 and 3.0), the header: a Python dict literal
 * such as {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ending in '\n', then the raw data.
 *
 * Reading: the header is parsed here (it is small: capped at 1 MiB), with
 * exactly the three keys in any order. descr <f4 <f8 <i4 <i8 |u1 |b1 and the
 * big-endian forms are kept as they are (swapped when needed); i1, i2, u2 are
 * widened to NB_I32, u4 to NB_I64, b1 to NB_U8 (0/1). C order only. The data
 * must fill the rest of the file exactly, which is checked against the file
 * size before anything is allocated.
 *
 * Writing: version 1.0, the dict in NumPy's own spelling, padded so that the
 * data starts at a multiple of 64; the tensor is written in row-major logical
 * order whatever its strides. */
#include "core/internal.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#define NPY_MAX_HEADER ((uint32_t)1 << 20)
#define NPY_CHUNK ((size_t)1 << 16)

static bool host_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 0;
}

/* ---- the header dict ----------------------------------------------------- */
typedef struct npy_header {
    char descr[16];
    int fortran; /* -1 absent, 0, 1 */
    int ndim;    /* -1 absent */
    int64_t shape[NB_MAX_DIMS];
} npy_header;

typedef struct npy_parser {
    const char *p, *end;
    char err[160]; /* what is wrong, for the message */
} npy_parser;

/* Records what is wrong; returns false. */
static bool bad(npy_parser *ps, const char *fmt, ...) NB__PRINTF(2, 3);
static bool bad(npy_parser *ps, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err, sizeof ps->err, fmt, ap);
    va_end(ap);
    return false;
}

static void skip_ws(npy_parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool expect(npy_parser *ps, char c, const char *where)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return bad(ps, "expected '%c' %s, found the end", c, where);
    if (*ps->p != c)
        return bad(ps, "expected '%c' %s, found '%c'", c, where, *ps->p);
    ps->p++;
    return true;
}

/* A quoted string ('...' or "...", no escapes needed for these keys and
 * values) into out[cap]; too long is an error. */
static bool parse_str(npy_parser *ps, char *out, size_t cap, const char *what)
{
    skip_ws(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
        return bad(ps, "expected a quoted %s", what);
    char q = *ps->p++;
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != q) {
        if (*ps->p == '\\' || *ps->p == '\n' || n + 1 >= cap)
            return bad(ps, "%s is not a short plain string", what);
        out[n++] = *ps->p++;
    }
    if (ps->p >= ps->end)
        return bad(ps, "unterminated %s", what);
    ps->p++;
    out[n] = '\0';
    return true;
}

static bool parse_word(npy_parser *ps, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, w, n) == 0) {
        ps->p += n;
        return true;
    }
    return false;
}

/* (d0, d1, ...) with an optional trailing comma; () is 0-d. Old files may
 * spell sizes with Python 2's L suffix. */
static bool parse_shape(npy_parser *ps, npy_header *h)
{
    if (!expect(ps, '(', "to open the shape tuple"))
        return false;
    h->ndim = 0;
    int64_t total = 1;
    for (;;) {
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ')') {
            ps->p++;
            return true;
        }
        if (ps->p < ps->end && *ps->p == '-')
            return bad(ps, "negative size in shape");
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return bad(ps, "shape must be a tuple of non-negative integers");
        if (h->ndim == NB_MAX_DIMS)
            return bad(ps, "shape has more than %d dimensions", NB_MAX_DIMS);
        int64_t v = 0;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            int dgt = *ps->p++ - '0';
            if (v > (INT64_MAX - dgt) / 10)
                return bad(ps, "shape size does not fit in 64 bits");
            v = v * 10 + dgt;
        }
        if (ps->p < ps->end && (*ps->p == 'L' || *ps->p == 'l'))
            ps->p++;
        /* the element count must stay far from overflow (bytes = count * 8) */
        if (v > 0 && total > (INT64_MAX / 16) / v)
            return bad(ps, "shape's element count overflows");
        total *= v;
        h->shape[h->ndim++] = v;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        return expect(ps, ')', "after a shape size");
    }
}

static bool parse_header(npy_parser *ps, npy_header *h)
{
    h->descr[0] = '\0';
    h->fortran = -1;
    h->ndim = -1;
    if (!expect(ps, '{', "at the start (the header must be a dict)"))
        return false;
    for (;;) {
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            break;
        }
        char key[32];
        if (!parse_str(ps, key, sizeof key, "key"))
            return false;
        if (!expect(ps, ':', "after a key"))
            return false;
        skip_ws(ps);
        if (strcmp(key, "descr") == 0) {
            if (h->descr[0])
                return bad(ps, "duplicate key 'descr'");
            if (ps->p < ps->end && *ps->p == '[')
                return bad(ps, "structured dtypes are not supported");
            if (!parse_str(ps, h->descr, sizeof h->descr, "descr"))
                return false;
            if (!h->descr[0])
                return bad(ps, "empty descr");
        } else if (strcmp(key, "fortran_order") == 0) {
            if (h->fortran >= 0)
                return bad(ps, "duplicate key 'fortran_order'");
            if (parse_word(ps, "False"))
                h->fortran = 0;
            else if (parse_word(ps, "True"))
                h->fortran = 1;
            else
                return bad(ps, "fortran_order must be True or False");
        } else if (strcmp(key, "shape") == 0) {
            if (h->ndim >= 0)
                return bad(ps, "duplicate key 'shape'");
            if (!parse_shape(ps, h))
                return false;
        } else {
            return bad(ps, "unexpected key '%s'", key);
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',')
            ps->p++;
        else if (ps->p >= ps->end || *ps->p != '}')
            return bad(ps, "expected ',' or '}' after the value of '%s'", key);
    }
    skip_ws(ps);
    if (ps->p != ps->end)
        return bad(ps, "text after the closing '}'");
    const char *missing = !h->descr[0] ? "descr" : h->fortran < 0 ? "fortran_order"
                          : h->ndim < 0 ? "shape" : NULL;
    if (missing)
        return bad(ps, "key '%s' is missing", missing);
    return true;
}

/* descr -> nabla dtype, element size in the file, whether the file's bytes
 * are big-endian, and the kind of conversion ('=' none, 'i' signed widen,
 * 'u' unsigned widen, 'b' bool). Returns false for an unsupported descr. */
static bool npy_dtype(const char *d, nb_dtype *dt, size_t *w, bool *big, char *conv)
{
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return false;
    *big = order == '>' || (order == '=' && host_big_endian());
    static const struct {
        const char *code;
        nb_dtype dt;
        size_t w;
        char conv;
    } table[] = {
        {"f4", NB_F32, 4, '='}, {"f8", NB_F64, 8, '='}, {"i4", NB_I32, 4, '='},
        {"i8", NB_I64, 8, '='}, {"u1", NB_U8, 1, '='},  {"b1", NB_U8, 1, 'b'},
        {"i1", NB_I32, 1, 'i'}, {"i2", NB_I32, 2, 'i'}, {"u2", NB_I32, 2, 'u'},
        {"u4", NB_I64, 4, 'u'},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(d + 1, table[i].code) == 0) {
            /* '|' means "not applicable": only for one-byte types */
            if (order == '|' && table[i].w != 1)
                return false;
            *dt = table[i].dt;
            *w = table[i].w;
            *conv = table[i].conv;
            return true;
        }
    return false;
}

static uint64_t load_uint(const unsigned char *p, size_t w, bool big)
{
    uint64_t v = 0;
    for (size_t i = 0; i < w; i++)
        v |= (uint64_t)p[big ? i : w - 1 - i] << (8 * (w - 1 - i));
    return v;
}

/* File bytes (n elements of w bytes at the start of t->data) to host values,
 * in place; widening runs backwards so nothing is overwritten before read. */
static void npy_convert(nb_tensor *t, size_t w, bool big, char conv, int64_t n)
{
    unsigned char *p = t->data;
    if (conv == 'b') {
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] != 0;
    } else if (conv == 'i' || conv == 'u') {
        for (int64_t i = n; i-- > 0;) {
            uint64_t u = load_uint(p + (size_t)i * w, w, big);
            int64_t v = conv == 'u' ? (int64_t)u
                        : w == 1      ? (int8_t)u
                                      : (int16_t)u;
            if (t->dtype == NB_I32)
                ((int32_t *)t->data)[i] = (int32_t)v;
            else
                ((int64_t *)t->data)[i] = v;
        }
    } else if (w > 1 && big != host_big_endian()) {
        for (int64_t i = 0; i < n; i++, p += w)
            for (size_t a = 0, b = w - 1; a < b; a++, b--) {
                unsigned char c = p[a];
                p[a] = p[b];
                p[b] = c;
            }
    }
}

/* Records the error and leaves nb_npy_read through its cleanup. */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        nb__err(ctx, __VA_ARGS__);                                                                 \
        goto fail;                                                                                 \
    } while (0)

nb_tensor *nb_npy_read(nb_ctx *ctx, const char *path)
{
    if (!ctx)
        return NULL;
    if (!path) {
        nb__err(ctx, NB_ERR_NULL, "npy: path is NULL");
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        nb__err(ctx, NB_ERR_IO, "npy: %s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *hdr = NULL;
    nb_tensor *t = NULL;
    struct stat st;
    bool have_st = fstat(fileno(fp), &st) == 0;
    bool sized = have_st && S_ISREG(st.st_mode); /* exact size known */
    if (have_st && S_ISDIR(st.st_mode))
        FAIL(NB_ERR_IO, "npy: %s: cannot read: is a directory", path);
    unsigned char pre[12];
    size_t got = fread(pre, 1, 10, fp);
    if (got >= 6 && memcmp(pre, "\x93NUMPY", 6) != 0)
        FAIL(NB_ERR_FORMAT, "npy: %s: bad magic (expected \\x93NUMPY)", path);
    if (got < 10) {
        if (ferror(fp))
            nb__err(ctx, NB_ERR_IO, "npy: %s: read error: %s", path, strerror(errno));
        else
            nb__err(ctx, NB_ERR_FORMAT, "npy: %s: truncated: %zu of at least 10 preamble bytes",
                    path, got);
        goto fail;
    }
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        FAIL(NB_ERR_FORMAT, "npy: %s: unsupported version %d.%d (1.0, 2.0, 3.0 are read)",
             path, major, minor);
    size_t pre_len = major == 1 ? 10 : 12;
    if (major > 1) {
        got += fread(pre + 10, 1, 2, fp);
        if (got < 12)
            FAIL(NB_ERR_FORMAT, "npy: %s: truncated: %zu of 12 preamble bytes", path, got);
    }
    uint32_t hlen = major == 1 ? (uint32_t)load_uint(pre + 8, 2, false)
                               : (uint32_t)load_uint(pre + 8, 4, false);
    if (hlen > NPY_MAX_HEADER)
        FAIL(NB_ERR_FORMAT, "npy: %s: header of %u bytes is too long (1 MiB allowed)", path,
             (unsigned)hlen);
    if (sized && (uint64_t)st.st_size < pre_len + (uint64_t)hlen)
        FAIL(NB_ERR_FORMAT, "npy: %s: truncated: %llu of %u header bytes", path,
             (unsigned long long)st.st_size - pre_len, (unsigned)hlen);
    hdr = nb__heap_alloc(ctx, (size_t)hlen + 1);
    if (!hdr)
        FAIL(NB_ERR_NOMEM, "npy: %s: allocator failed for a %u-byte header", path,
             (unsigned)hlen);
    got = fread(hdr, 1, hlen, fp);
    if (got < hlen)
        FAIL(NB_ERR_FORMAT, "npy: %s: truncated: %zu of %u header bytes", path, got,
             (unsigned)hlen);
    hdr[hlen] = '\0';
    npy_parser ps = {hdr, hdr + hlen, {0}};
    npy_header h;
    if (!parse_header(&ps, &h)) {
        int shown = (int)(hlen < 80 ? hlen : 80);
        while (shown > 0 && (hdr[shown - 1] == ' ' || hdr[shown - 1] == '\n'))
            shown--;
        nb__err(ctx, NB_ERR_FORMAT, "npy: %s: bad header: %s (at byte %d of: %.*s)", path, ps.err,
                (int)(ps.p - hdr), shown, hdr);
        goto fail;
    }
    nb_dtype dt;
    size_t w;
    bool big;
    char conv;
    if (!npy_dtype(h.descr, &dt, &w, &big, &conv))
        FAIL(NB_ERR_FORMAT,
             "npy: %s: unsupported descr '%s' (nabla reads f4 f8 i1 i2 i4 i8 u1 u2 u4 b1)", path,
             h.descr);
    if (h.fortran == 1)
        FAIL(NB_ERR_FORMAT,
             "npy: %s: fortran_order is True (only C order is read; save "
             "np.ascontiguousarray(a))", path);
    int64_t n = nb__prod(h.ndim, h.shape); /* bounded by parse_shape */
    uint64_t bytes = (uint64_t)n * w;
    if (sized) {
        uint64_t size = (uint64_t)st.st_size, start = pre_len + hlen;
        uint64_t have = size > start ? size - start : 0;
        if (have != bytes) {
            if (have < bytes)
                nb__err(ctx, NB_ERR_FORMAT, "npy: %s: truncated: %llu of %llu data bytes", path,
                        (unsigned long long)have, (unsigned long long)bytes);
            else
                nb__err(ctx, NB_ERR_FORMAT, "npy: %s: %llu trailing bytes after %llu data bytes",
                        path, (unsigned long long)(have - bytes), (unsigned long long)bytes);
            goto fail;
        }
    }
    t = nb_buffer(ctx, dt, h.ndim, h.shape);
    if (!t)
        goto fail;
    got = fread(t->data, 1, (size_t)bytes, fp);
    if (got < bytes) {
        if (ferror(fp))
            nb__err(ctx, NB_ERR_IO, "npy: %s: read error: %s", path, strerror(errno));
        else
            nb__err(ctx, NB_ERR_FORMAT, "npy: %s: truncated: %zu of %llu data bytes", path, got,
                    (unsigned long long)bytes);
        goto fail;
    }
    if (fgetc(fp) != EOF)
        FAIL(NB_ERR_FORMAT, "npy: %s: trailing bytes after %llu data bytes", path,
             (unsigned long long)bytes);
    npy_convert(t, w, big, conv, n);
    nb__heap_free(ctx, hdr);
    fclose(fp);
    return t;

fail:
    nb_tensor_free(ctx, t);
    nb__heap_free(ctx, hdr);
    fclose(fp);
    return NULL;
}

/* ---- writing ------------------------------------------------------------- */
static const char *npy_descr(nb_dtype dt)
{
    bool be = host_big_endian();
    switch (dt) {
    case NB_F32: return be ? ">f4" : "<f4";
    case NB_F64: return be ? ">f8" : "<f8";
    case NB_I32: return be ? ">i4" : "<i4";
    case NB_I64: return be ? ">i8" : "<i8";
    case NB_U8: return "|u1";
    default: return NULL;
    }
}

/* Writes t's elements in row-major logical order, gathering strided ones
 * through buf (NPY_CHUNK bytes). Returns false on a write error. */
static bool npy_write_data(FILE *fp, const nb_tensor *t, unsigned char *buf)
{
    int64_t n = nb__numel(t);
    size_t es = nb__esize(t->dtype);
    if (n == 0)
        return true;
    if (nb_is_contiguous(t))
        return fwrite(t->data, es, (size_t)n, fp) == (size_t)n;
    /* odometer over the logical shape; the innermost dimension runs fastest */
    int64_t idx[NB_MAX_DIMS] = {0};
    const unsigned char *src = t->data;
    size_t fill = 0;
    for (int64_t k = 0; k < n; k++) {
        memcpy(buf + fill, src, es);
        fill += es;
        if (fill + es > NPY_CHUNK) {
            if (fwrite(buf, 1, fill, fp) != fill)
                return false;
            fill = 0;
        }
        for (int d = t->ndim - 1; d >= 0; d--) {
            src += t->strides[d] * (int64_t)es;
            if (++idx[d] < t->shape[d])
                break;
            src -= t->strides[d] * t->shape[d] * (int64_t)es;
            idx[d] = 0;
        }
    }
    return fill == 0 || fwrite(buf, 1, fill, fp) == fill;
}

nb_status nb_npy_write(nb_ctx *ctx, const char *path, const nb_tensor *t)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!path || !t)
        return nb__err(ctx, NB_ERR_NULL, "npy: %s is NULL", !path ? "path" : "tensor");
    const char *descr = npy_descr(t->dtype);
    if (!descr)
        return nb__err(ctx, NB_ERR_DTYPE, "npy: %s: cannot write dtype %s (f32 f64 i32 i64 u8)",
                       path, nb_dtype_name(t->dtype));
    /* header: NumPy's spelling, then spaces and '\n' up to a multiple of 64 */
    char hdr[384];
    int k = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->ndim; i++)
        k += snprintf(hdr + k, sizeof hdr - (size_t)k, i ? ", %lld" : "%lld",
                      (long long)t->shape[i]);
    k += snprintf(hdr + k, sizeof hdr - (size_t)k, t->ndim == 1 ? ",), }" : "), }");
    size_t total = (10 + (size_t)k + 1 + 63) / 64 * 64; /* preamble + dict + '\n' */
    size_t hlen = total - 10;
    memset(hdr + k, ' ', hlen - (size_t)k);
    hdr[hlen - 1] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};

    unsigned char *buf = NULL;
    if (!nb_is_contiguous(t) && nb__numel(t) > 0) {
        buf = nb__heap_alloc(ctx, NPY_CHUNK);
        if (!buf)
            return nb__err(ctx, NB_ERR_NOMEM, "npy: %s: allocator failed for %zu bytes", path,
                           NPY_CHUNK);
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        nb__heap_free(ctx, buf);
        return nb__err(ctx, NB_ERR_IO, "npy: %s: cannot create: %s", path, strerror(errno));
    }
    bool ok = fwrite(pre, 1, sizeof pre, fp) == sizeof pre && fwrite(hdr, 1, hlen, fp) == hlen &&
              npy_write_data(fp, t, buf);
    int e = errno;
    if (fclose(fp) != 0 && ok) {
        ok = false;
        e = errno;
    }
    nb__heap_free(ctx, buf);
    if (!ok) {
        remove(path); /* leave no half-written file behind */
        return nb__err(ctx, NB_ERR_IO, "npy: %s: write error: %s", path, strerror(e));
    }
    return NB_OK;
}
