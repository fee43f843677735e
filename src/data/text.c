/* Byte-level text for language models.
 *
 * Tokens are the file's bytes (ids 0..255): no vocabulary to build or ship,
 * every file is representable, and the unigram entropy of the bytes is the
 * baseline a model has to beat (nats per byte).
 *
 * The window loader cuts (context, next-token) pairs: row b of a batch is
 * tokens[s_b .. s_b + T) and its targets tokens[s_b + 1 .. s_b + T + 1), so
 * one row trains T next-token predictions. Random mode draws each start
 * uniformly from the span (seeded by (seed, batch number)): every batch is a
 * function of the seed and its index, so runs repeat exactly. Sequential
 * mode walks the span in order, the rows of one batch being B evenly spaced
 * streams, so a recurrent model can carry its state from one batch to the
 * next (truncated BPTT). Batches are step tensors (I64).
 *
 * Sampling turns logits into one id: divide by the temperature, keep the
 * top k (0: all), softmax, draw from the context's generator. */
#include "core/internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TEXT_MAX ((int64_t)1 << 31)

/* Appends the bytes of the regular file `path` at t->data + *at (cap bytes
 * in all); with t NULL only adds its size to *at. */
static nb_status read_one(nb_ctx *ctx, const char *path, nb_tensor *t, int64_t *at)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return nb__err(ctx, NB_ERR_IO, "text_read: %s: %s", path, strerror(errno));
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return nb__err(ctx, NB_ERR_IO, "text_read: %s: cannot find its size (not a regular file?)",
                       path);
    }
    if (n > TEXT_MAX - *at) {
        fclose(f);
        return nb__err(ctx, NB_ERR_FORMAT, "text_read: %s: more than 2^31 bytes in all", path);
    }
    if (t && (*at + n > t->shape[0] ||
              fread((uint8_t *)t->data + *at, 1, (size_t)n, f) != (size_t)n)) {
        fclose(f);
        return nb__err(ctx, NB_ERR_IO, "text_read: %s: short read (did it change?)", path);
    }
    fclose(f);
    *at += n;
    return NB_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files (not links, not hidden) of directory `dir`, sorted, as
 * heap "dir/name" strings; *n of them. */
static char **list_dir(nb_ctx *ctx, const char *dir, int *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        nb__err(ctx, NB_ERR_IO, "text_read: %s: %s", dir, strerror(errno));
        return NULL;
    }
    char **v = NULL;
    int cap = 0;
    *n = 0;
    struct dirent *e;
    bool ok = true;
    while (ok && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        struct stat st;
        if (!p) {
            ok = false;
            break;
        }
        snprintf(p, len, "%s/%s", dir, e->d_name);
        if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode)) { /* links would repeat a file */
            free(p);
            continue;
        }
        if (*n == cap) {
            char **nv = realloc(v, (size_t)(cap ? 2 * cap : 16) * sizeof *v);
            if (!nv) {
                free(p);
                ok = false;
                break;
            }
            v = nv;
            cap = cap ? 2 * cap : 16;
        }
        v[(*n)++] = p;
    }
    closedir(d);
    if (!ok) {
        for (int i = 0; i < *n; i++)
            free(v[i]);
        free(v);
        nb__err(ctx, NB_ERR_NOMEM, "text_read: %s: out of memory listing the directory", dir);
        return NULL;
    }
    if (*n == 0) {
        free(v);
        nb__err(ctx, NB_ERR_FORMAT, "text_read: %s: no regular files in the directory", dir);
        return NULL;
    }
    qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

nb_tensor *nb_text_read(nb_ctx *ctx, const char *path)
{
    if (!ctx)
        return NULL;
    if (!path) {
        nb__err(ctx, NB_ERR_NULL, "text_read: path is NULL");
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        nb__err(ctx, NB_ERR_IO, "text_read: %s: %s", path, strerror(errno));
        return NULL;
    }
    const char *one[1] = {path};
    char **files = (char **)one;
    int n = 1;
    if (S_ISDIR(st.st_mode) && !(files = list_dir(ctx, path, &n)))
        return NULL;
    int64_t len = 0;
    nb_tensor *t = NULL;
    for (int i = 0; i < n; i++)
        if (read_one(ctx, files[i], NULL, &len) != NB_OK)
            goto done;
    if (len < 2) {
        nb__err(ctx, NB_ERR_FORMAT, "text_read: %s: %lld bytes; needs 2 to 2^31", path,
                (long long)len);
        goto done;
    }
    if (!(t = nb_buffer(ctx, NB_U8, 1, &len)))
        goto done;
    int64_t at = 0;
    for (int i = 0; i < n; i++)
        if (read_one(ctx, files[i], t, &at) != NB_OK) {
            nb_tensor_free(ctx, t);
            t = NULL;
            goto done;
        }
done:
    if (files != (char **)one) {
        for (int i = 0; i < n; i++)
            free(files[i]);
        free(files);
    }
    return t;
}

double nb_unigram_entropy(const nb_tensor *tokens, int64_t begin, int64_t end)
{
    if (!tokens || tokens->dtype != NB_U8 || tokens->ndim != 1 || begin < 0 || end > tokens->shape[0] ||
        end <= begin)
        return NAN;
    int64_t count[256] = {0};
    const uint8_t *p = tokens->data;
    for (int64_t i = begin; i < end; i++)
        count[p[i]]++;
    double h = 0, n = (double)(end - begin);
    for (int i = 0; i < 256; i++)
        if (count[i])
            h -= (double)count[i] / n * log((double)count[i] / n);
    return h;
}

/* ---- windows ----------------------------------------------------------------------- */
struct nb_text_loader {
    const nb_tensor *tokens;
    int64_t begin, end, T, B;
    uint64_t seed;
    bool random;
    int64_t batch;  /* batches handed out */
    int64_t stride; /* sequential: the distance between the streams */
};

nb_text_loader *nb_text_loader_new(nb_ctx *ctx, const nb_tensor *tokens, int64_t begin, int64_t end,
                                   int64_t context, int64_t batch, bool random, uint64_t seed)
{
    if (!ctx)
        return NULL;
    if (!tokens || tokens->dtype != NB_U8 || tokens->ndim != 1) {
        nb__err(ctx, tokens ? NB_ERR_DTYPE : NB_ERR_NULL,
                "text_loader: tokens must be a U8 tensor [len] (nb_text_read)");
        return NULL;
    }
    if (begin < 0 || end > tokens->shape[0] || context < 1 || batch < 1 || end - begin < context + 1 ||
        (!random && (end - begin - 1) / batch < context)) {
        nb__err(ctx, NB_ERR_ARG,
                "text_loader: span [%lld, %lld) of %lld tokens is too short for context %lld "
                "and batch %lld (or out of range)",
                (long long)begin, (long long)end, (long long)tokens->shape[0], (long long)context,
                (long long)batch);
        return NULL;
    }
    nb_text_loader *l = nb__heap_alloc(ctx, sizeof *l);
    if (!l) {
        nb__err(ctx, NB_ERR_NOMEM, "text_loader: allocator failed");
        return NULL;
    }
    *l = (nb_text_loader){tokens, begin, end, context, batch, seed, random, 0,
                          (end - begin - 1) / batch};
    return l;
}

void nb_text_loader_free(nb_ctx *ctx, nb_text_loader *l)
{
    if (ctx)
        nb__heap_free(ctx, l);
}

int64_t nb_text_loader_batches(const nb_text_loader *l)
{
    if (!l)
        return 0;
    return l->random ? (l->end - l->begin - 1) / (l->T * l->B) + 1 : l->stride / l->T;
}

void nb_text_loader_seek(nb_text_loader *l, int64_t batch)
{
    if (l)
        l->batch = batch < 0 ? 0 : batch;
}

nb_status nb_text_loader_next(nb_ctx *ctx, nb_text_loader *l, nb_tensor **x, nb_tensor **y)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!l || !x || !y)
        return nb__err(ctx, NB_ERR_NULL, "text_loader_next: loader or output is NULL");
    int64_t shape[2] = {l->B, l->T};
    *x = nb__new_step(ctx, NB_I64, 2, shape);
    *y = *x ? nb__new_step(ctx, NB_I64, 2, shape) : NULL;
    if (!*y)
        return ctx->err;
    const uint8_t *p = l->tokens->data;
    int64_t *xp = (*x)->data, *yp = (*y)->data;
    int64_t per = nb_text_loader_batches(l), k = l->random ? l->batch : l->batch % per;
    nb_rng r;
    nb_rng_seed(&r, l->seed, (uint64_t)l->batch);
    for (int64_t b = 0; b < l->B; b++) {
        int64_t s;
        if (l->random) { /* a start in [begin, end - T - 1], 53-bit uniform */
            int64_t span = l->end - l->begin - l->T;
            s = l->begin + (int64_t)(nb_rng_uniform(&r) * (double)span);
            s = s > l->end - l->T - 1 ? l->end - l->T - 1 : s;
        } else { /* stream b, chunk k */
            s = l->begin + b * l->stride + k * l->T;
        }
        for (int64_t t = 0; t < l->T; t++) {
            xp[b * l->T + t] = p[s + t];
            yp[b * l->T + t] = p[s + t + 1];
        }
    }
    l->batch++;
    return NB_OK;
}

/* ---- sampling ------------------------------------------------------------------------ */
int64_t nb_sample_token(nb_ctx *ctx, const nb_tensor *logits, double temperature, int top_k)
{
    if (!ctx)
        return -1;
    if (!logits || !nb__is_float(logits->dtype) || logits->ndim < 1) {
        nb__err(ctx, logits ? NB_ERR_DTYPE : NB_ERR_NULL, "sample_token: needs float logits [..., V]");
        return -1;
    }
    if (!(temperature > 0) || !isfinite(temperature) || top_k < 0) {
        nb__err(ctx, NB_ERR_ARG, "sample_token: temperature must be > 0 (got %g) and top_k >= 0 (got %d)",
                temperature, top_k);
        return -1;
    }
    /* the last row of the last dim: the next token after a whole context */
    int64_t V = logits->shape[logits->ndim - 1], off = nb_numel(logits) - V;
    double *w = nb__arena_alloc(ctx, sizeof(double) * (size_t)V);
    if (!w) {
        nb__arena_err(ctx, "sample_token", sizeof(double) * (size_t)V);
        return -1;
    }
    double mx = -INFINITY;
    for (int64_t v = 0; v < V; v++) {
        w[v] = nb_get(logits, off + v) / temperature;
        if (!isfinite(w[v]) && !(w[v] == -INFINITY)) {
            nb__err(ctx, NB_ERR_NUMERIC, "sample_token: logit %lld is %g", (long long)v, w[v]);
            return -1;
        }
        mx = w[v] > mx ? w[v] : mx;
    }
    double cut = -INFINITY; /* the k-th largest: keep w >= cut */
    if (top_k > 0 && top_k < V) {
        double *tmp = nb__arena_alloc(ctx, sizeof(double) * (size_t)V);
        if (!tmp) {
            nb__arena_err(ctx, "sample_token", sizeof(double) * (size_t)V);
            return -1;
        }
        memcpy(tmp, w, sizeof(double) * (size_t)V);
        for (int k = 0; k < top_k; k++) { /* partial selection: k is small */
            int64_t best = k;
            for (int64_t v = k + 1; v < V; v++)
                if (tmp[v] > tmp[best])
                    best = v;
            double t = tmp[k];
            tmp[k] = tmp[best];
            tmp[best] = t;
        }
        cut = tmp[top_k - 1];
    }
    double sum = 0;
    for (int64_t v = 0; v < V; v++) {
        w[v] = w[v] >= cut ? exp(w[v] - mx) : 0.0;
        sum += w[v];
    }
    double u = nb_rng_uniform(&ctx->rng) * sum, acc = 0;
    int64_t last = 0;
    for (int64_t v = 0; v < V; v++) {
        if (w[v] > 0)
            last = v;
        acc += w[v];
        if (u < acc)
            return v;
    }
    return last; /* rounding left u at the very top */
}
