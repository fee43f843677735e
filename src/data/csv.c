/* Numeric CSV files: features -> F32 [N, D], labels -> I64 [N] or F32 [N, 1].
 *
 * Syntax (RFC 4180 and the usual liberties): fields separated by one
 * delimiter character; a field may be double-quoted ("" inside stands for
 * one quote; quoted fields may span lines); LF, CRLF or CR line ends; an
 * optional UTF-8 byte order mark; lines holding only spaces and tabs are
 * skipped; spaces and tabs around a field are ignored. Numbers are read with
 * strtod in the C locale's spelling, so "nan", "inf" and hex floats are
 * accepted as features; a feature beyond float's range is an error. Integer
 * labels must be whole, finite and non-negative ("3.0" is 3; "3.5" and "-1"
 * are errors).
 *
 * The whole file is read into memory (gzip-compressed files work too: zlib
 * reads both). Pass 1 splits the records and checks that every row has the
 * header's (or the first row's) number of fields, so the tensors can be
 * allocated at their final size; pass 2 splits them again and converts. Every
 * message names the file, the physical line and the column (1-based, with
 * the header's name when there is one). */
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

typedef struct csv_field {
    const char *s; /* contents (inside the quotes for a quoted field) */
    size_t n;
    long long line; /* where the field starts */
    bool quoted;
} csv_field;

typedef struct csv_reader {
    nb_ctx *ctx;
    const char *path;
    const char *p, *end; /* cursor into the file's bytes */
    long long line;      /* physical line of the cursor, 1-based */
    char delim;
    csv_field *f; /* fields of the current record */
    size_t nf, cap;
    long long rec_line; /* line where the current record starts */
    nb_status st;       /* the error this call recorded */
} csv_reader;

/* Records an error (the context keeps only the first one; this call
 * remembers its own status to return). */
#define CSV_ERR(r, s, ...) ((r)->st = nb__err((r)->ctx, (s), __VA_ARGS__))

nb_csv_opts nb_csv_opts_default(void)
{
    nb_csv_opts o;
    memset(&o, 0, sizeof o);
    o.header = true;
    o.delimiter = ',';
    o.label_index = -1; /* the last column */
    return o;
}

/* ---- reading the file ---------------------------------------------------- */
/* The whole file (decompressed if gzip) into a heap buffer; *len bytes. */
static char *csv_slurp(nb_ctx *ctx, const char *path, size_t *len, nb_status *status)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        *status = nb__err(ctx, NB_ERR_IO, "csv: %s: cannot open: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        *status = nb__err(ctx, NB_ERR_IO, "csv: %s: cannot read: is a directory", path);
        close(fd);
        return NULL;
    }
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        *status = nb__err(ctx, NB_ERR_NOMEM, "csv: %s: zlib could not allocate its buffers",
                          path);
        close(fd);
        return NULL;
    }
    gzbuffer(gz, 1u << 17);
    /* a plain file's size is exact; a gzip file grows the buffer as it goes */
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 16;
    size_t n = 0;
    char *buf = nb__heap_alloc(ctx, cap);
    for (;;) {
        if (!buf) {
            *status = nb__err(ctx, NB_ERR_NOMEM, "csv: %s: allocator failed for %zu bytes", path,
                              cap);
            gzclose(gz);
            return NULL;
        }
        if (n == cap) {
            size_t ncap = cap > SIZE_MAX / 4 ? 0 : cap * 2;
            char *nbuf = ncap ? nb__heap_alloc(ctx, ncap) : NULL;
            if (nbuf)
                memcpy(nbuf, buf, n);
            nb__heap_free(ctx, buf);
            buf = nbuf;
            cap = ncap;
            continue;
        }
        size_t want = cap - n < ((size_t)1 << 30) ? cap - n : (size_t)1 << 30;
        int r = gzread(gz, buf + n, (unsigned)want);
        int zerr = 0;
        const char *zmsg = r <= 0 ? gzerror(gz, &zerr) : NULL;
        if (zerr != Z_OK) { /* Z_BUF_ERROR: a gzip stream cut short */
            if (zerr == Z_ERRNO)
                *status = nb__err(ctx, NB_ERR_IO, "csv: %s: read error: %s", path,
                                  strerror(errno));
            else
                *status = nb__err(ctx, NB_ERR_FORMAT, "csv: %s: %s gzip data: %s", path,
                                  zerr == Z_BUF_ERROR ? "truncated" : "corrupt", zmsg);
            nb__heap_free(ctx, buf);
            gzclose(gz);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    gzclose(gz);
    *len = n;
    return buf;
}

/* ---- splitting records --------------------------------------------------- */
static bool is_space(const csv_reader *r, char c)
{
    return (c == ' ' || c == '\t') && c != r->delim;
}

static bool push_field(csv_reader *r, const csv_field *fld)
{
    if (r->nf == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64;
        csv_field *nf = nb__heap_alloc(r->ctx, ncap * sizeof *nf);
        if (!nf) {
            CSV_ERR(r, NB_ERR_NOMEM, "csv: %s: allocator failed for %zu fields", r->path,
                    ncap);
            return false;
        }
        if (r->nf)
            memcpy(nf, r->f, r->nf * sizeof *nf);
        nb__heap_free(r->ctx, r->f);
        r->f = nf;
        r->cap = ncap;
    }
    r->f[r->nf++] = *fld;
    return true;
}

/* Consumes a line end at the cursor (LF, CRLF or CR). */
static void eat_eol(csv_reader *r)
{
    if (r->p < r->end && *r->p == '\r')
        r->p++;
    if (r->p < r->end && *r->p == '\n')
        r->p++;
    r->line++;
}

/* Splits the next non-blank record into r->f. Returns 1, 0 at the end of
 * the file, -1 with the error recorded. */
static int next_record(csv_reader *r)
{
    for (;;) { /* skip blank lines */
        const char *q = r->p;
        while (q < r->end && (*q == ' ' || *q == '\t'))
            q++;
        if (q == r->end) {
            r->p = q;
            return 0;
        }
        if (*q != '\n' && *q != '\r')
            break;
        r->p = q;
        eat_eol(r);
    }
    r->nf = 0;
    r->rec_line = r->line;
    for (;;) {
        while (r->p < r->end && is_space(r, *r->p))
            r->p++;
        csv_field fld = {r->p, 0, r->line, false};
        if (r->p < r->end && *r->p == '"') {
            fld.quoted = true;
            fld.s = ++r->p;
            for (;;) {
                if (r->p >= r->end) {
                    CSV_ERR(r, NB_ERR_FORMAT,
                            "csv: %s: line %lld, column %zu: quoted field is never closed", r->path,
                            fld.line, r->nf + 1);
                    return -1;
                }
                char c = *r->p++;
                if (c == '"') {
                    if (r->p < r->end && *r->p == '"') {
                        r->p++; /* "" stands for one quote */
                        continue;
                    }
                    break;
                }
                if (c == '\n' || (c == '\r' && (r->p >= r->end || *r->p != '\n')))
                    r->line++;
            }
            fld.n = (size_t)(r->p - 1 - fld.s);
            while (r->p < r->end && is_space(r, *r->p))
                r->p++;
            if (r->p < r->end && *r->p != r->delim && *r->p != '\n' && *r->p != '\r') {
                CSV_ERR(r, NB_ERR_FORMAT,
                        "csv: %s: line %lld, column %zu: unexpected '%c' after a closing quote",
                        r->path, r->line, r->nf + 1, *r->p);
                return -1;
            }
        } else {
            const char d = r->delim;
            const char *q = r->p;
            while (q < r->end && *q != d && *q != '\n' && *q != '\r')
                q++;
            r->p = q;
            while (q > fld.s && is_space(r, q[-1]))
                q--;
            fld.n = (size_t)(q - fld.s);
        }
        if (!push_field(r, &fld))
            return -1;
        if (r->p < r->end && *r->p == r->delim) {
            r->p++;
            continue;
        }
        if (r->p < r->end)
            eat_eol(r);
        return 1;
    }
}

/* ---- fields -------------------------------------------------------------- */
/* A field's text with "" unescaped equals s. */
static bool field_equals(const csv_field *f, const char *s)
{
    size_t i = 0;
    for (; i < f->n; i++, s++) {
        if (*s != f->s[i])
            return false;
        if (f->quoted && f->s[i] == '"')
            i++; /* skip the second quote of "" */
    }
    return *s == '\0';
}

/* strtod over the whole field (spaces allowed around). */
static bool parse_double(const csv_field *f, double *v)
{
    char buf[256];
    if (f->n == 0 || f->n >= sizeof buf)
        return false;
    memcpy(buf, f->s, f->n);
    buf[f->n] = '\0';
    char *e = NULL;
    *v = strtod(buf, &e);
    while (e && (*e == ' ' || *e == '\t'))
        e++;
    return e && e != buf && *e == '\0';
}

typedef struct csv_cols {
    const csv_field *names; /* header fields, or NULL */
    size_t n;
} csv_cols;

/* " (\"name\")" for column c (0-based), or "" without a header. */
static const char *col_name(const csv_cols *h, size_t c, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (h->names && c < h->n) {
        const csv_field *f = &h->names[c];
        char name[44];
        size_t i = 0, k = 0;
        for (; i < f->n && k < 40; i++) {
            name[k++] = f->s[i];
            if (f->quoted && f->s[i] == '"')
                i++; /* "" shown as one quote */
        }
        name[k] = '\0';
        snprintf(buf, cap, " (\"%s%s\")", name, i < f->n ? "..." : "");
    }
    return buf;
}

/* Feature or float label: a number representable in f32. */
static bool conv_f32(csv_reader *r, const csv_cols *h, size_t c, float *out)
{
    const csv_field *f = &r->f[c];
    double v;
    char nb[64];
    int n = f->n > 40 ? 40 : (int)f->n;
    if (f->n == 0) {
        CSV_ERR(r, NB_ERR_FORMAT,
                "csv: %s: line %lld, column %zu%s: empty field, expected a number",
                r->path, f->line, c + 1, col_name(h, c, nb, sizeof nb));
        return false;
    }
    if (!parse_double(f, &v)) {
        CSV_ERR(r, NB_ERR_FORMAT, "csv: %s: line %lld, column %zu%s: \"%.*s%s\" is not a number",
                r->path, f->line, c + 1, col_name(h, c, nb, sizeof nb), n, f->s,
                f->n > 40 ? "..." : "");
        return false;
    }
    if (isfinite(v) && !isfinite((float)v)) {
        CSV_ERR(r, NB_ERR_FORMAT, "csv: %s: line %lld, column %zu%s: %.*s is out of f32's range",
                r->path, f->line, c + 1, col_name(h, c, nb, sizeof nb), n, f->s);
        return false;
    }
    *out = (float)v;
    return true;
}

/* Class id: whole, finite, non-negative. */
static bool conv_label(csv_reader *r, const csv_cols *h, size_t c, int64_t *out)
{
    const csv_field *f = &r->f[c];
    double v;
    char nb[64];
    int n = f->n > 40 ? 40 : (int)f->n;
    const char *why = NULL;
    if (f->n == 0)
        why = "is empty";
    else if (!parse_double(f, &v))
        why = "is not a number";
    else if (!isfinite(v) || v != floor(v))
        why = "is not a whole number (class ids are integers; use label_float for regression)";
    else if (v < 0)
        why = "is negative (class ids start at 0)";
    else if (v >= 9.2e18)
        why = "is too large for a class id";
    if (why) {
        CSV_ERR(r, NB_ERR_FORMAT, "csv: %s: line %lld, column %zu%s: label \"%.*s%s\" %s",
                r->path, f->line, c + 1, col_name(h, c, nb, sizeof nb), n, f->s,
                f->n > 40 ? "..." : "", why);
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/* ---- the reader ---------------------------------------------------------- */
static nb_status check_opts(nb_ctx *ctx, const char *path, const nb_csv_opts *o, nb_tensor **y)
{
    char d = o->delimiter;
    if (d == '\0' || d == '"' || d == '\n' || d == '\r' || d == '.' || d == '+' || d == '-' ||
        (d >= '0' && d <= '9') || (d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z'))
        return nb__err(ctx, NB_ERR_ARG,
                       "csv: %s: delimiter 0x%02X cannot be used (it can appear in numbers or "
                       "quotes)", path, (unsigned char)d);
    if (o->no_label && o->label_name)
        return nb__err(ctx, NB_ERR_ARG, "csv: %s: no_label and label_name are both set", path);
    if (o->label_name && !o->header)
        return nb__err(ctx, NB_ERR_ARG,
                       "csv: %s: label_name \"%s\" needs a header row (header is false)", path,
                       o->label_name);
    if (!o->no_label && !y)
        return nb__err(ctx, NB_ERR_NULL, "csv: %s: y is NULL but a label column is read", path);
    return NB_OK;
}

/* The label column (0-based) or -1 with the error recorded. */
static long long find_label(csv_reader *r, const nb_csv_opts *o, const csv_cols *h)
{
    if (o->label_name) {
        for (size_t c = 0; c < h->n; c++)
            if (field_equals(&h->names[c], o->label_name))
                return (long long)c;
        char list[200];
        size_t k = 0;
        list[0] = '\0';
        for (size_t c = 0; c < h->n && k + 1 < sizeof list; c++) {
            int w = snprintf(list + k, sizeof list - k, "%s%.*s", c ? ", " : "",
                             h->names[c].n > 30 ? 30 : (int)h->names[c].n, h->names[c].s);
            k += w > 0 ? (size_t)w : 0;
        }
        if (k >= sizeof list)
            memcpy(list + sizeof list - 4, "...", 4);
        CSV_ERR(r, NB_ERR_ARG, "csv: %s: no column named \"%s\" in the header (columns: %s)",
                r->path, o->label_name, list);
        return -1;
    }
    long long n = (long long)h->n, i = o->label_index;
    if (i < -n || i >= n) {
        CSV_ERR(r, NB_ERR_ARG, "csv: %s: label_index %d is out of range for %lld columns",
                r->path, o->label_index, n);
        return -1;
    }
    return i < 0 ? i + n : i;
}

/* Records the error and leaves nb_csv_read through its cleanup. */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        CSV_ERR(&r, __VA_ARGS__);                                                                  \
        goto fail;                                                                                 \
    } while (0)

nb_status nb_csv_read(nb_ctx *ctx, const char *path, const nb_csv_opts *opts, nb_tensor **x,
                      nb_tensor **y)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (x)
        *x = NULL;
    if (y)
        *y = NULL;
    if (!path || !x)
        return nb__err(ctx, NB_ERR_NULL, "csv: %s is NULL", !path ? "path" : "x");
    nb_csv_opts o = opts ? *opts : nb_csv_opts_default();
    nb_status st = check_opts(ctx, path, &o, y);
    if (st != NB_OK)
        return st;
    size_t len = 0;
    char *buf = csv_slurp(ctx, path, &len, &st);
    if (!buf)
        return st;

    csv_reader r = {ctx, path, buf, buf + len, 1, o.delimiter, NULL, 0, 0, 0, NB_OK};
    csv_field *names = NULL;
    nb_tensor *tx = NULL, *ty = NULL;
    csv_cols h = {NULL, 0};
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        r.p += 3;
    int k;
    if (o.header) {
        if ((k = next_record(&r)) < 0)
            goto fail;
        if (k == 0)
            FAIL(NB_ERR_FORMAT, "csv: %s: empty file (no header, no rows)", path);
        names = nb__heap_alloc(ctx, r.nf * sizeof *names);
        if (!names)
            FAIL(NB_ERR_NOMEM, "csv: %s: allocator failed for %zu names", path, r.nf);
        memcpy(names, r.f, r.nf * sizeof *names);
        h.names = names;
        h.n = r.nf;
    }
    /* pass 1: count the rows, check that none is ragged */
    const char *data_p = r.p;
    long long data_line = r.line, header_line = r.rec_line;
    size_t ncols = h.n;
    int64_t nrows = 0;
    while ((k = next_record(&r)) > 0) {
        if (nrows == 0 && !o.header)
            ncols = r.nf;
        if (r.nf != ncols)
            FAIL(NB_ERR_FORMAT, "csv: %s: line %lld: %zu fields, expected %zu (ragged row)", path,
                 r.rec_line, r.nf, ncols);
        nrows++;
    }
    if (k < 0)
        goto fail;
    if (nrows == 0 && o.header)
        FAIL(NB_ERR_FORMAT, "csv: %s: no data rows after the header (line %lld)", path,
             header_line);
    if (nrows == 0)
        FAIL(NB_ERR_FORMAT, "csv: %s: empty file (no rows)", path);
    h.n = ncols;
    long long lab = -1;
    if (!o.no_label && (lab = find_label(&r, &o, &h)) < 0)
        goto fail;
    int64_t nfeat = (int64_t)ncols - (lab >= 0);
    if (nfeat == 0)
        FAIL(NB_ERR_FORMAT, "csv: %s: the only column is the label: no features", path);
    /* the shapes are valid (nrows * nfeat < the file's size): failing is NOMEM */
    r.st = NB_ERR_NOMEM;
    tx = nb_buffer(ctx, NB_F32, NB_SHAPE(nrows, nfeat));
    if (!tx)
        goto fail;
    if (lab >= 0) {
        ty = o.label_float ? nb_buffer(ctx, NB_F32, NB_SHAPE(nrows, 1))
                           : nb_buffer(ctx, NB_I64, NB_SHAPE(nrows));
        if (!ty)
            goto fail;
    }
    r.st = NB_OK;
    /* pass 2: convert */
    r.p = data_p;
    r.line = data_line;
    float *xd = tx->data;
    for (int64_t i = 0; i < nrows; i++) {
        if (next_record(&r) <= 0) /* cannot happen: pass 1 split these very bytes */
            goto fail;
        for (size_t c = 0; c < ncols; c++) {
            bool ok;
            if ((long long)c != lab)
                ok = conv_f32(&r, &h, c, xd++);
            else if (o.label_float)
                ok = conv_f32(&r, &h, c, (float *)ty->data + i);
            else
                ok = conv_label(&r, &h, c, (int64_t *)ty->data + i);
            if (!ok)
                goto fail;
        }
    }
    nb__heap_free(ctx, r.f);
    nb__heap_free(ctx, names);
    nb__heap_free(ctx, buf);
    *x = tx;
    if (y)
        *y = ty;
    return NB_OK;

fail:
    nb_tensor_free(ctx, tx);
    nb_tensor_free(ctx, ty);
    nb__heap_free(ctx, r.f);
    nb__heap_free(ctx, names);
    nb__heap_free(ctx, buf);
    return r.st != NB_OK ? r.st : NB_ERR_FORMAT;
}
