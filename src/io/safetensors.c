/* safetensors: write (atomically) and read, with strict validation.
 *
 * File: u64 little-endian N; N bytes of UTF-8 JSON, an object
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}, ...,
 *    "__metadata__": {"key": "value", ...}}
 * right-padded with spaces; then the data buffer: little-endian, row-major
 * tensors at [BEGIN, END) of the buffer.
 *
 * Writer: the header lists the tensors in the caller's order (then
 * "__metadata__", omitted when empty); in the buffer they are ordered by
 * alignment (8-byte dtypes first, then 4, 2, 1; the caller's order within a
 * size), and N is a multiple of 8 so the buffer starts 8-aligned. Everything
 * that can be checked without the values is checked before the file is
 * created; a value that does not fit its store dtype is found while writing,
 * and then the temporary file is removed (atomic.h).
 *
 * Reader: open reads and validates the header only (file size from fstat)
 * and keeps the file descriptor; read preads one tensor, in chunks, and
 * converts it into dst. Checks on open: N <= 100,000,000, 8 + N <= file
 * size, header starts with '{', valid JSON (UTF-8, no duplicate keys), every
 * entry has a known dtype, a shape of at most 8 non-negative integers whose
 * byte size does not overflow, and data_offsets [BEGIN, END] with END - BEGIN
 * = that size; sorted by BEGIN the entries tile the buffer from 0 with no gap
 * or overlap and 8 + N + last END = file size; "__metadata__" is an object of
 * strings. Extra fields in an entry are ignored (room for extensions).
 *
 * The handle keeps its context and the open descriptor; nb_safetensors_read
 * preads, so a file that shrinks after open gives an error, never a crash
 * (which mmap could not promise). */
#include "core/internal.h"
#include "io/atomic.h"
#include "io/half.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000ull

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s++;
        int more = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (more < 0)
            return false;
        uint32_t cp = more == 0 ? c : more == 1 ? (c & 0x1f) : more == 2 ? (c & 0x0f) : (c & 0x07);
        for (int k = 0; k < more; k++, s++) {
            if ((*s & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (*s & 0x3f);
        }
        static const uint32_t least[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < least[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

/* ---- writer ------------------------------------------------------------ */
typedef struct plan {
    nb__st_dtype ft; /* dtype in the file */
    uint64_t begin, end;
} plan;

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice in names[n] (sorted in place), or NULL. */
static const char *find_duplicate(const char **names, int n)
{
    qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

/* Checks one item; fills its file dtype and byte size. */
static nb_status check_item(nb_ctx *ctx, const char *path, const nb_st_item *it, int i, plan *pl)
{
    const nb_tensor *t = it->tensor;
    if (!it->name)
        return nb__err(ctx, NB_ERR_NULL, "safetensors: %s: item %d has a NULL name", path, i);
    if (!it->name[0])
        return nb__err(ctx, NB_ERR_ARG, "safetensors: %s: item %d has an empty name", path, i);
    if (strcmp(it->name, "__metadata__") == 0)
        return nb__err(ctx, NB_ERR_ARG, "safetensors: %s: item %d: \"__metadata__\" is reserved",
                       path, i);
    if (!utf8_valid(it->name))
        return nb__err(ctx, NB_ERR_ARG, "safetensors: %s: item %d: name is not valid UTF-8", path,
                       i);
    if (!t)
        return nb__err(ctx, NB_ERR_NULL, "safetensors: %s: tensor \"%s\" is NULL", path, it->name);
    if (!nb__is_float(t->dtype) && !nb__is_int(t->dtype))
        return nb__err(ctx, NB_ERR_DTYPE, "safetensors: %s: tensor \"%s\" has dtype %s", path,
                       it->name, nb_dtype_name(t->dtype));
    nb_dtype store = it->store == NB_DTYPE_COUNT ? t->dtype : it->store;
    bool ok = nb__is_float(t->dtype)
                  ? (store == NB_F32 || store == NB_F64 || store == NB_F16 || store == NB_BF16)
                  : nb__is_int(store);
    if (!ok)
        return nb__err(ctx, NB_ERR_DTYPE,
                       "safetensors: %s: tensor \"%s\": dtype %s cannot be stored as %s "
                       "(floats as f32, f64, f16, bf16; integers as i32, i64, u8)",
                       path, it->name, nb_dtype_name(t->dtype), nb_dtype_name(store));
    if (t->ndim < 0 || t->ndim > NB_MAX_DIMS)
        return nb__err(ctx, NB_ERR_SHAPE, "safetensors: %s: tensor \"%s\" has %d dimensions", path,
                       it->name, t->ndim);
    pl->ft = nb__st_from_nb(store);
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 ||
            (t->shape[d] > 0 && n > (uint64_t)INT64_MAX / 8 / (uint64_t)t->shape[d]))
            return nb__err(ctx, NB_ERR_SHAPE, "safetensors: %s: tensor \"%s\": bad shape", path,
                           it->name);
        n *= (uint64_t)t->shape[d];
    }
    if (n > 0 && !t->data)
        return nb__err(ctx, NB_ERR_NULL, "safetensors: %s: tensor \"%s\" has no data", path,
                       it->name);
    pl->end = n * nb__st_types[pl->ft].bits / 8; /* pl->begin is set by the layout */
    return NB_OK;
}

/* The header JSON (compact, from jansson's malloc: free with free()). */
static char *build_header(const nb_st_item *items, int n, const plan *pl, const nb_st_meta *meta,
                          int nmeta)
{
    json_t *root = json_object();
    bool ok = root != NULL;
    for (int i = 0; i < n && ok; i++) {
        const nb_tensor *t = items[i].tensor;
        json_t *e = json_object(), *shape = json_array(), *off = json_array();
        ok = e && shape && off;
        for (int d = 0; d < t->ndim && ok; d++)
            ok = json_array_append_new(shape, json_integer(t->shape[d])) == 0;
        ok = ok && json_array_append_new(off, json_integer((json_int_t)pl[i].begin)) == 0 &&
             json_array_append_new(off, json_integer((json_int_t)pl[i].end)) == 0;
        ok = ok && json_object_set_new(e, "dtype", json_string(nb__st_types[pl[i].ft].name)) == 0;
        ok = ok && json_object_set(e, "shape", shape) == 0 &&
             json_object_set(e, "data_offsets", off) == 0;
        ok = ok && json_object_set(root, items[i].name, e) == 0;
        json_decref(shape);
        json_decref(off);
        json_decref(e);
    }
    if (ok && nmeta > 0) {
        json_t *m = json_object();
        ok = m != NULL;
        for (int i = 0; i < nmeta && ok; i++)
            ok = json_object_set_new(m, meta[i].key, json_string(meta[i].value)) == 0;
        ok = ok && json_object_set(root, "__metadata__", m) == 0;
        json_decref(m);
    }
    char *s = ok ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

/* Writes one tensor's data, converted to its file dtype, through buf. */
static nb_status write_tensor(nb_ctx *ctx, nb__afile *f, const char *path, const nb_st_item *it,
                              const plan *pl, unsigned char *buf, size_t cap)
{
    const nb_tensor *t = it->tensor;
    const nb__st_type *ty = &nb__st_types[pl->ft];
    const size_t es = (size_t)ty->bits / 8;
    const int64_t n = nb__numel(t);
    if (n > 0 && ty->nb == t->dtype && nb_is_contiguous(t) && nb__host_little_endian())
        return nb__afile_write(ctx, f, t->data, (size_t)n * es);
    nb__cursor c;
    nb__cursor_init(&c, t);
    nb_status st = NB_OK;
    for (int64_t i = 0; i < n && st == NB_OK;) {
        int64_t k = n - i < (int64_t)(cap / es) ? n - i : (int64_t)(cap / es), bad;
        int64_t at = nb__st_encode(&c, pl->ft, buf, k, &bad);
        if (at >= 0)
            return nb__err(ctx, NB_ERR_ARG,
                           "safetensors: %s: tensor \"%s\": element %lld is %lld, which does "
                           "not fit %s",
                           path, it->name, (long long)(i + at), (long long)bad, ty->name);
        st = nb__afile_write(ctx, f, buf, (size_t)k * es);
        i += k;
    }
    return st;
}

static nb_status write_all(nb_ctx *ctx, nb__afile *f, const char *path, const nb_st_item *items,
                           int n, const plan *pl, const int *order, const char *json)
{
    size_t len = strlen(json), padded = (len + 7) & ~(size_t)7;
    unsigned char head[8];
    nb__st_wr_le(head, padded, 8);
    nb_status st = nb__afile_write(ctx, f, head, 8);
    if (st == NB_OK)
        st = nb__afile_write(ctx, f, json, len);
    if (st == NB_OK)
        st = nb__afile_write(ctx, f, "        ", padded - len);
    uint64_t need = 0;
    for (int i = 0; i < n; i++)
        if (nb__st_types[pl[i].ft].nb != items[i].tensor->dtype ||
            !nb_is_contiguous(items[i].tensor) || !nb__host_little_endian())
            need = pl[i].end - pl[i].begin > need ? pl[i].end - pl[i].begin : need;
    size_t cap = need < (1u << 16) ? (size_t)need : (1u << 16);
    unsigned char *buf = NULL;
    if (st == NB_OK && cap > 0 && !(buf = nb__heap_alloc(ctx, cap)))
        st = nb__err(ctx, NB_ERR_NOMEM, "safetensors: %s: allocator failed for %zu bytes", path,
                     cap);
    for (int k = 0; k < n && st == NB_OK; k++)
        st = write_tensor(ctx, f, path, &items[order[k]], &pl[order[k]], buf, cap);
    nb__heap_free(ctx, buf);
    return st;
}

nb_status nb_safetensors_save(nb_ctx *ctx, const char *path, const nb_st_item *items, int n,
                              const nb_st_meta *meta, int nmeta)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!path)
        return nb__err(ctx, NB_ERR_NULL, "safetensors: path is NULL");
    if (n < 0 || nmeta < 0)
        return nb__err(ctx, NB_ERR_ARG, "safetensors: %s: negative count (%d items, %d metadata)",
                       path, n, nmeta);
    if ((n > 0 && !items) || (nmeta > 0 && !meta))
        return nb__err(ctx, NB_ERR_NULL, "safetensors: %s: %s is NULL", path,
                       n > 0 && !items ? "items" : "meta");
    int most = n > nmeta ? n : nmeta;
    size_t bytes = (size_t)n * (sizeof(plan) + sizeof(int)) + (size_t)most * sizeof(char *) + 8;
    unsigned char *mem = nb__heap_alloc(ctx, bytes);
    if (!mem)
        return nb__err(ctx, NB_ERR_NOMEM, "safetensors: %s: allocator failed for %zu bytes", path,
                       bytes);
    plan *pl = (plan *)mem;
    const char **names = (const char **)(mem + (size_t)n * sizeof(plan));
    int *order = (int *)(mem + (size_t)n * sizeof(plan) + (size_t)most * sizeof(char *));
    nb_status st = NB_OK;
    for (int i = 0; i < n && st == NB_OK; i++) {
        st = check_item(ctx, path, &items[i], i, &pl[i]);
        names[i] = items[i].name;
    }
    const char *dup;
    if (st == NB_OK && (dup = find_duplicate(names, n)))
        st = nb__err(ctx, NB_ERR_ARG, "safetensors: %s: duplicate tensor name \"%s\"", path, dup);
    for (int i = 0; i < nmeta && st == NB_OK; i++) {
        if (!meta[i].key || !meta[i].value)
            st = nb__err(ctx, NB_ERR_NULL, "safetensors: %s: metadata %d has a NULL %s", path, i,
                         meta[i].key ? "value" : "key");
        else if (!utf8_valid(meta[i].key) || !utf8_valid(meta[i].value))
            st = nb__err(ctx, NB_ERR_ARG, "safetensors: %s: metadata \"%s\" is not valid UTF-8",
                         path, meta[i].key);
        names[i] = meta[i].key;
    }
    if (st == NB_OK && (dup = find_duplicate(names, nmeta)))
        st = nb__err(ctx, NB_ERR_ARG, "safetensors: %s: duplicate metadata key \"%s\"", path, dup);
    /* layout: 8-byte dtypes first, then 4, 2, 1; stable within a size */
    uint64_t at = 0;
    int k = 0;
    for (int size = 8; size >= 1 && st == NB_OK; size /= 2)
        for (int i = 0; i < n; i++)
            if (nb__st_types[pl[i].ft].bits == size * 8) {
                uint64_t len = pl[i].end;
                if (at > (uint64_t)INT64_MAX - len) {
                    st = nb__err(ctx, NB_ERR_ARG, "safetensors: %s: data exceed 2^63 bytes", path);
                    break;
                }
                pl[i].begin = at;
                pl[i].end = at += len;
                order[k++] = i;
            }
    char *json = st == NB_OK ? build_header(items, n, pl, meta, nmeta) : NULL;
    if (st == NB_OK && !json)
        st = nb__err(ctx, NB_ERR_NOMEM, "safetensors: %s: out of memory building the header", path);
    if (st == NB_OK && strlen(json) + 7 > ST_MAX_HEADER)
        st = nb__err(ctx, NB_ERR_ARG,
                     "safetensors: %s: header of %zu bytes exceeds the %llu-byte "
                     "limit of readers",
                     path, strlen(json), ST_MAX_HEADER);
    nb__afile f;
    if (st == NB_OK && (st = nb__afile_open(ctx, &f, path, "safetensors")) == NB_OK) {
        st = write_all(ctx, &f, path, items, n, pl, order, json);
        if (st == NB_OK)
            st = nb__afile_commit(ctx, &f);
        else
            nb__afile_abort(ctx, &f);
    }
    free(json);
    nb__heap_free(ctx, mem);
    return st;
}

/* ---- reader ------------------------------------------------------------ */
typedef struct st_entry {
    const char *name;
    nb__st_dtype dt;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

struct nb_safetensors {
    nb_ctx *ctx;
    int fd;
    const char *path;
    uint64_t data_start; /* 8 + N */
    int n, nmeta;
    st_entry *e;        /* header order */
    st_entry **by_name; /* sorted by name, for lookups */
    const char **meta;  /* key, value pairs in header order */
};

#define FMT(...) nb__err(ctx, NB_ERR_FORMAT, __VA_ARGS__)

static nb_status pread_all(nb_ctx *ctx, int fd, const char *path, void *buf, size_t n, uint64_t off)
{
    unsigned char *p = buf;
    while (n > 0) {
        size_t part = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t r = pread(fd, p, part, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return nb__err(ctx, NB_ERR_IO, "safetensors: %s: read: %s", path, strerror(errno));
        if (r == 0)
            return FMT("safetensors: %s: file ends early (did it change after opening?)", path);
        p += r;
        off += (uint64_t)r;
        n -= (size_t)r;
    }
    return NB_OK;
}

static bool json_uint(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Validates one entry's fields into e (name already set). */
static nb_status parse_entry(nb_ctx *ctx, const char *path, json_t *v, st_entry *e)
{
    const char *nm = e->name;
    if (!json_is_object(v))
        return FMT("safetensors: %s: tensor \"%s\": entry is not an object", path, nm);
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    const char *miss = !dt ? "dtype" : !sh ? "shape" : !off ? "data_offsets" : NULL;
    if (miss)
        return FMT("safetensors: %s: tensor \"%s\": missing \"%s\"", path, nm, miss);
    int t = json_is_string(dt) ? nb__st_lookup(json_string_value(dt)) : -1;
    if (!json_is_string(dt))
        return FMT("safetensors: %s: tensor \"%s\": \"dtype\" is not a string", path, nm);
    if (t < 0)
        return FMT("safetensors: %s: tensor \"%s\": unknown dtype \"%s\"", path, nm,
                   json_string_value(dt));
    e->dt = (nb__st_dtype)t;
    if (!json_is_array(sh))
        return FMT("safetensors: %s: tensor \"%s\": \"shape\" is not an array", path, nm);
    if (json_array_size(sh) > NB_MAX_DIMS)
        return FMT("safetensors: %s: tensor \"%s\": shape has %zu dimensions (at most %d)", path,
                   nm, json_array_size(sh), NB_MAX_DIMS);
    e->ndim = (int)json_array_size(sh);
    uint64_t numel = 1;
    bool overflow = false;
    for (int d = 0; d < e->ndim; d++) {
        json_t *x = json_array_get(sh, (size_t)d);
        if (!json_is_integer(x))
            return FMT("safetensors: %s: tensor \"%s\": shape holds a non-integer", path, nm);
        if (json_integer_value(x) < 0)
            return FMT("safetensors: %s: tensor \"%s\": negative size %lld in shape", path, nm,
                       (long long)json_integer_value(x));
        e->shape[d] = json_integer_value(x);
        uint64_t s = (uint64_t)e->shape[d];
        if (s > 0 && numel > (uint64_t)INT64_MAX / 8 / s)
            overflow = true; /* keep going: a later 0 makes it fine, a later -1 is worse */
        else
            numel *= s;
    }
    char sb[NB__SHAPE_BUF];
    nb__shape_fmt(e->ndim, e->shape, sb, sizeof sb);
    if (overflow && numel != 0)
        return FMT("safetensors: %s: tensor \"%s\": shape %s has too many elements", path, nm, sb);
    if (overflow)
        numel = 0;
    /* numel <= 2^60: whole bytes times numel fit, sub-byte bits times numel too */
    const uint64_t bits = (uint64_t)nb__st_types[t].bits;
    if (bits % 8 != 0 && (numel * bits) % 8 != 0)
        return FMT("safetensors: %s: tensor \"%s\": %s %s is not a whole number of bytes", path, nm,
                   sb, nb__st_types[t].name);
    uint64_t bytes = bits % 8 == 0 ? numel * (bits / 8) : numel * bits / 8;
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !json_uint(json_array_get(off, 0), &e->begin) ||
        !json_uint(json_array_get(off, 1), &e->end))
        return FMT("safetensors: %s: tensor \"%s\": \"data_offsets\" is not two non-negative "
                   "integers",
                   path, nm);
    if (e->begin > e->end)
        return FMT("safetensors: %s: tensor \"%s\": data_offsets [%llu,%llu] end before they begin",
                   path, nm, (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end - e->begin != bytes)
        return FMT("safetensors: %s: tensor \"%s\": data_offsets [%llu,%llu] do not match %s %s "
                   "(%llu bytes)",
                   path, nm, (unsigned long long)e->begin, (unsigned long long)e->end, sb,
                   nb__st_types[t].name, (unsigned long long)bytes);
    return NB_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const st_entry *const *)a)->name, (*(const st_entry *const *)b)->name);
}

/* Checks that the entries tile [0, data_bytes) exactly. */
static nb_status check_tiling(nb_ctx *ctx, const char *path, st_entry **s, int n,
                              uint64_t data_bytes)
{
    qsort(s, (size_t)n, sizeof *s, cmp_offset);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (s[i]->begin > at)
            return FMT("safetensors: %s: gap in the data buffer: bytes [%llu,%llu) belong to no "
                       "tensor (next is \"%s\")",
                       path, (unsigned long long)at, (unsigned long long)s[i]->begin, s[i]->name);
        if (s[i]->begin < at)
            return FMT("safetensors: %s: tensor \"%s\" (data_offsets [%llu,%llu]) overlaps "
                       "tensor \"%s\", which ends at %llu",
                       path, s[i]->name, (unsigned long long)s[i]->begin,
                       (unsigned long long)s[i]->end, s[i - 1]->name, (unsigned long long)at);
        at = s[i]->end;
    }
    if (data_bytes > at)
        return FMT("safetensors: %s: %llu trailing bytes after the last tensor", path,
                   (unsigned long long)(data_bytes - at));
    if (data_bytes < at)
        return FMT("safetensors: %s: file is truncated: the tensors need %llu bytes of data, "
                   "%llu are present",
                   path, (unsigned long long)at, (unsigned long long)data_bytes);
    qsort(s, (size_t)n, sizeof *s, cmp_name);
    return NB_OK;
}

#define ALIGN8(x) (((x) + 7) & ~(size_t)7)

/* Builds the handle from the parsed header: one heap block holds the
 * struct, the entries, the lookup table, the metadata pointers and all
 * strings. */
static nb_safetensors *from_json(nb_ctx *ctx, const char *path, json_t *root, int fd, uint64_t N,
                                 uint64_t size)
{
    if (!json_is_object(root)) {
        FMT("safetensors: %s: header is not a JSON object", path);
        return NULL;
    }
    size_t n = 0, nmeta = 0, chars = strlen(path) + 1;
    const char *key;
    json_t *v, *md = json_object_get(root, "__metadata__");
    json_object_foreach(root, key, v)
    {
        if (v != md) {
            n++;
            chars += strlen(key) + 1;
        }
    }
    if (md && !json_is_object(md)) {
        FMT("safetensors: %s: \"__metadata__\" is not an object", path);
        return NULL;
    }
    json_object_foreach(md, key, v)
    {
        if (!json_is_string(v)) {
            FMT("safetensors: %s: \"__metadata__\" value of \"%s\" is not a string", path, key);
            return NULL;
        }
        nmeta++;
        chars += strlen(key) + strlen(json_string_value(v)) + 2;
    }
    if (n > INT32_MAX || nmeta > INT32_MAX) {
        FMT("safetensors: %s: too many entries", path);
        return NULL;
    }
    size_t o_e = ALIGN8(sizeof(nb_safetensors)), o_by = o_e + ALIGN8(n * sizeof(st_entry));
    size_t o_m = o_by + ALIGN8(n * sizeof(st_entry *)), o_c = o_m + 2 * nmeta * sizeof(char *);
    unsigned char *mem = nb__heap_alloc(ctx, o_c + chars);
    if (!mem) {
        nb__err(ctx, NB_ERR_NOMEM, "safetensors: %s: allocator failed for %zu bytes", path,
                o_c + chars);
        return NULL;
    }
    nb_safetensors *st = (nb_safetensors *)mem;
    st->ctx = ctx;
    st->fd = fd;
    st->data_start = 8 + N;
    st->n = (int)n;
    st->nmeta = (int)nmeta;
    st->e = (st_entry *)(mem + o_e);
    st->by_name = (st_entry **)(mem + o_by);
    st->meta = (const char **)(mem + o_m);
    char *c = (char *)(mem + o_c);
#define COPY(dst, s) (dst = c, c += strlen(s) + 1, memcpy((char *)(dst), s, strlen(s) + 1))
    COPY(st->path, path);
    int i = 0;
    nb_status rc = NB_OK;
    json_object_foreach(root, key, v)
    {
        if (v == md)
            continue;
        memset(&st->e[i], 0, sizeof st->e[i]);
        COPY(st->e[i].name, key);
        st->by_name[i] = &st->e[i];
        if ((rc = parse_entry(ctx, path, v, &st->e[i])) != NB_OK)
            break;
        i++;
    }
    i = 0;
    json_object_foreach(md, key, v)
    {
        COPY(st->meta[2 * i], key);
        COPY(st->meta[2 * i + 1], json_string_value(v));
        i++;
    }
#undef COPY
    if (rc == NB_OK)
        rc = check_tiling(ctx, path, st->by_name, st->n, size - 8 - N);
    if (rc != NB_OK) {
        nb__heap_free(ctx, mem);
        return NULL;
    }
    return st;
}

nb_safetensors *nb_safetensors_open(nb_ctx *ctx, const char *path)
{
    if (!ctx)
        return NULL;
    if (!path) {
        nb__err(ctx, NB_ERR_NULL, "safetensors: path is NULL");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        nb__err(ctx, NB_ERR_IO, "safetensors: %s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    unsigned char head[8];
    char *text = NULL;
    json_t *root = NULL;
    nb_safetensors *st = NULL;
    uint64_t N = 0, size = 0;
    if (fstat(fd, &sb) != 0) {
        nb__err(ctx, NB_ERR_IO, "safetensors: %s: fstat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        nb__err(ctx, NB_ERR_IO, "safetensors: %s: not a regular file", path);
        goto out;
    }
    size = (uint64_t)sb.st_size;
    if (size < 8) {
        FMT("safetensors: %s: file is %llu bytes, too short for the 8-byte header length", path,
            (unsigned long long)size);
        goto out;
    }
    if (pread_all(ctx, fd, path, head, 8, 0) != NB_OK)
        goto out;
    N = nb__st_rd_le(head, 8);
    if (N > ST_MAX_HEADER) {
        FMT("safetensors: %s: header length %llu exceeds the limit of %llu bytes", path,
            (unsigned long long)N, ST_MAX_HEADER);
        goto out;
    }
    if (8 + N > size) {
        FMT("safetensors: %s: header length %llu runs past the end of the %llu-byte file", path,
            (unsigned long long)N, (unsigned long long)size);
        goto out;
    }
    if (!(text = nb__heap_alloc(ctx, (size_t)N + 1))) {
        nb__err(ctx, NB_ERR_NOMEM, "safetensors: %s: allocator failed for a %llu-byte header", path,
                (unsigned long long)N);
        goto out;
    }
    if (pread_all(ctx, fd, path, text, (size_t)N, 8) != NB_OK)
        goto out;
    if (N == 0 || text[0] != '{') {
        FMT("safetensors: %s: header does not start with '{'", path);
        goto out;
    }
    json_error_t jerr;
    root = json_loadb(text, (size_t)N, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        FMT("safetensors: %s: header is not valid JSON: %s (at byte %d of the header)", path,
            jerr.text, jerr.position);
        goto out;
    }
    st = from_json(ctx, path, root, fd, N, size);
out:
    json_decref(root);
    nb__heap_free(ctx, text);
    if (!st)
        close(fd);
    return st;
}

void nb_safetensors_close(nb_ctx *ctx, nb_safetensors *st)
{
    (void)ctx; /* st was allocated through its own context */
    if (!st)
        return;
    close(st->fd);
    nb__heap_free(st->ctx, st);
}

int nb_safetensors_count(const nb_safetensors *st) { return st ? st->n : 0; }

const char *nb_safetensors_name(const nb_safetensors *st, int i)
{
    return st && i >= 0 && i < st->n ? st->e[i].name : NULL;
}

const char *nb_safetensors_meta(const nb_safetensors *st, const char *key)
{
    if (!st || !key)
        return NULL;
    for (int i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta[2 * i], key) == 0)
            return st->meta[2 * i + 1];
    return NULL;
}

static const st_entry *find(nb_ctx *ctx, const nb_safetensors *st, const char *name)
{
    st_entry key = {.name = name}, *kp = &key;
    st_entry **hit = bsearch(&kp, st->by_name, (size_t)st->n, sizeof *st->by_name, cmp_name);
    if (!hit)
        nb__err(ctx, NB_ERR_ARG, "safetensors: %s: no tensor named \"%s\"", st->path, name);
    return hit ? *hit : NULL;
}

nb_status nb_safetensors_info(const nb_safetensors *st, const char *name, nb_dtype *dtype,
                              int *ndim, int64_t shape[NB_MAX_DIMS])
{
    if (!st)
        return NB_ERR_NULL;
    if (!name)
        return nb__err(st->ctx, NB_ERR_NULL, "safetensors: %s: info: name is NULL", st->path);
    const st_entry *e = find(st->ctx, st, name);
    if (!e)
        return NB_ERR_ARG;
    if (dtype)
        *dtype = nb__st_types[e->dt].nb;
    if (ndim)
        *ndim = e->ndim;
    if (shape)
        for (int d = 0; d < e->ndim; d++)
            shape[d] = e->shape[d];
    return NB_OK;
}

nb_status nb_safetensors_read(nb_ctx *ctx, const nb_safetensors *st, const char *name,
                              nb_tensor *dst)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!st)
        return nb__err(ctx, NB_ERR_NULL, "safetensors: read: the file handle is NULL");
    if (!name || !dst)
        return nb__err(ctx, NB_ERR_NULL, "safetensors: %s: read: %s is NULL", st->path,
                       !name ? "name" : "dst");
    const st_entry *e = find(ctx, st, name);
    if (!e)
        return NB_ERR_ARG;
    const nb__st_type *ty = &nb__st_types[e->dt];
    const char *path = st->path;
    if (ty->kind == 'x')
        return FMT("safetensors: %s: tensor \"%s\" is %s, which nabla cannot read", path, name,
                   ty->name);
    if ((!nb__is_float(dst->dtype) && !nb__is_int(dst->dtype)) ||
        (ty->kind == 'f' && !nb__is_float(dst->dtype)))
        return nb__err(ctx, NB_ERR_DTYPE,
                       "safetensors: %s: tensor \"%s\" is %s in the file and "
                       "cannot be read into a tensor of dtype %s (%s)",
                       path, name, ty->name, nb_dtype_name(dst->dtype),
                       ty->kind == 'f' ? "floats read into f32 or f64"
                                       : "integers read into f32, f64, i32, i64 or u8");
    bool same = dst->ndim == e->ndim;
    for (int d = 0; same && d < e->ndim; d++)
        same = dst->shape[d] == e->shape[d];
    if (!same) {
        char a[NB__SHAPE_BUF], b[NB__SHAPE_BUF];
        return nb__err(ctx, NB_ERR_SHAPE,
                       "safetensors: %s: tensor \"%s\" is %s in the file, "
                       "dst is %s",
                       path, name, nb__shape_fmt(e->ndim, e->shape, a, sizeof a),
                       nb__shape_fmt(dst->ndim, dst->shape, b, sizeof b));
    }
    const int64_t n = nb__numel(dst);
    const uint64_t bytes = e->end - e->begin, off = st->data_start + e->begin;
    if (n == 0)
        return NB_OK;
    if (!dst->data)
        return nb__err(ctx, NB_ERR_NULL, "safetensors: %s: read: dst has no data", path);
    if (ty->nb == dst->dtype && nb_is_contiguous(dst) && nb__host_little_endian())
        return pread_all(ctx, st->fd, path, dst->data, (size_t)bytes, off);
    const size_t es = (size_t)ty->bits / 8, cap = bytes < (1u << 16) ? (size_t)bytes : (1u << 16);
    unsigned char *buf = nb__heap_alloc(ctx, cap);
    if (!buf)
        return nb__err(ctx, NB_ERR_NOMEM, "safetensors: %s: allocator failed for %zu bytes", path,
                       cap);
    nb__cursor c;
    nb__cursor_init(&c, dst);
    nb_status rc = NB_OK;
    for (int64_t i = 0; i < n && rc == NB_OK;) {
        int64_t k = n - i < (int64_t)(cap / es) ? n - i : (int64_t)(cap / es);
        rc = pread_all(ctx, st->fd, path, buf, (size_t)k * es, off + (uint64_t)i * es);
        int why = 0;
        char what[32];
        int64_t at = rc == NB_OK ? nb__st_decode(&c, e->dt, buf, k, &why, what, sizeof what) : -1;
        if (at >= 0 && why == 2)
            rc = FMT("safetensors: %s: tensor \"%s\": BOOL element %lld is %s, not 0 or 1", path,
                     name, (long long)(i + at), what);
        else if (at >= 0)
            rc = nb__err(ctx, NB_ERR_ARG,
                         "safetensors: %s: tensor \"%s\": element %lld is %s, "
                         "which does not fit %s",
                         path, name, (long long)(i + at), what, nb_dtype_name(dst->dtype));
        i += k;
    }
    nb__heap_free(ctx, buf);
    return rc;
}
